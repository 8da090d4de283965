"""``teacher.adapt``: a tiny random Llama teacher is fine-tuned on the training text once, gets
better on validation, is reused by the next run without training again, and every cache and
metric downstream is keyed by (and scored on) the adapted teacher."""

from __future__ import annotations

import json

import pytest
from helpers import lm_texts, tiny_lm_dir, write_jsonl

from autodistill.config import load_config
from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.prepare import prepare


def _config(tmp_path, adapt: bool = True, **finetune):
    texts = lm_texts(300)
    teacher = tiny_lm_dir(tmp_path / "teacher", texts)
    data = write_jsonl(tmp_path / "corpus.jsonl", texts)
    ft = {"batch_size": 8, "epochs": 4, "lr": 5e-3, "patience": 1, "eval_every": 5, **finetune}
    raw = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(teacher), "adapt": adapt, "finetune": ft},
        "data": {"source": str(data), "max_length": 32, "validation_size": 0.1, "test_size": 0.1},
        "distill": {"top_k": 8},
        "tracking": {"enabled": False},
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(raw))
    return load_config(str(path))


def test_the_adapted_teacher_is_better_on_validation_and_made_once(tmp_path, capsys):
    cfg = _config(tmp_path)
    plain = prepare(_config(tmp_path / "plain", adapt=False), progress=False)
    prep = prepare(cfg, progress=True)
    info = prep.teacher.info
    assert prep.teacher.finetuned and prep.teacher.path.name.startswith("lm-adapted-")
    assert info["validation_perplexity"] < info["validation_perplexity_before"]
    assert info["steps"] >= info["best_step"] >= 5 and info["curve"]
    assert "adapting the teacher" in capsys.readouterr().out
    # the teacher's recorded metrics are those of the adapted weights, by the students' scoring path
    assert prep.teacher_metrics["validation"]["perplexity"] == pytest.approx(info["validation_perplexity"], rel=1e-3)
    assert plain.teacher_metrics["validation"]["perplexity"] == pytest.approx(
        info["validation_perplexity_before"], rel=1e-3
    )
    # the cache is keyed by the adapted teacher, not the base one
    assert prep.teacher.fingerprint != plain.teacher.fingerprint
    assert prep.cache_key != plain.cache_key
    stamp = (prep.teacher.path / "teacher.json").stat().st_mtime_ns
    again = prepare(cfg, progress=True)
    assert "adapting the teacher" not in capsys.readouterr().out
    assert again.teacher.path == prep.teacher.path
    assert (again.teacher.path / "teacher.json").stat().st_mtime_ns == stamp


def test_other_settings_make_another_adapted_teacher(tmp_path):
    first = prepare(_config(tmp_path, max_steps=3, patience=None), progress=False)
    second = prepare(_config(tmp_path, max_steps=4, patience=None), progress=False)
    assert first.teacher.path != second.teacher.path
    assert first.teacher.info["steps"] == 3 and second.teacher.info["steps"] == 4
    assert first.teacher.info["stopped"] == "step cap"


def test_a_bad_patience_is_refused_by_key(tmp_path):
    with pytest.raises(ConfigError, match="patience"):
        _config(tmp_path, patience=0)
