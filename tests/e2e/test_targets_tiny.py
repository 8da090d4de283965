"""End to end on tiny assets: several teachers combined into one target (teacher.extra,
distill.combine) and a teacher assistant (distill.assistant), through the CLI, the search and the
export that rebuilds the searched choice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import SPECIALS, sentiment_rows, tiny_backbone_dir, tiny_bert_config, write_csv

from autodistill.cli import main

FINETUNE = {"epochs": 2, "lr": 2e-3, "batch_size": 16}


def _write(tmp_path: Path, **sections) -> Path:
    backbone = tiny_backbone_dir(tmp_path / "backbone")
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(240))
    cfg = {
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(backbone), "finetune": FINETUNE},
        "data": {"source": str(data), "max_length": 16},
        "student": {"transforms": [{"name": "depth", "layers": 1, "choice": "uniform"}]},
        "distill": {"mode": "full", "epochs": 1, "lr": 1e-3, "batch_size": 16, "eval_batch_size": 64},
        "evaluate": {"batch_sizes": [1], "repeats": 2, "warmup": 1, "energy": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_teachers_combined_by_learned_weights(tmp_path, capsys):
    backbone = str(tmp_path / "backbone")
    extra = [{"model": backbone, "finetune": {**FINETUNE, "seed": 1}}]
    path = _write(tmp_path, teacher={"extra": extra}, distill={"combine": "learned"})
    assert main(["teacher", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"teacher {backbone}: validation accuracy") == 2, out
    assert "the students learn from all 2 combined by learned, weights [" in out
    assert main(["distill", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "from 2 teachers combined by learned (test " in out
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    targets = result["train"]["targets"]
    assert targets["kind"] == "teachers" and len(targets["teachers"]["teachers"]) == 2
    assert sum(targets["teachers"]["weights"]) == pytest.approx(1.0, abs=1e-3)
    # the teacher every report measures the student against is the combination it learned from
    assert result["teacher"]["test"]["quality"] == pytest.approx(targets["teachers"]["combined"]["test"])
    # two fine-tunes with different seeds: two teachers, two caches
    assert len(list((Path(os.environ["AUTODISTILL_HOME"]) / "teachers").iterdir())) >= 2
    assert result["train"]["augment"] is None  # copies need one live teacher: off, automatically


def _letters_backbone(folder: Path) -> Path:
    """A backbone whose tokenizer knows only letters: every word becomes one piece per letter."""
    import torch
    from transformers import BertModel, BertTokenizerFast

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = SPECIALS + letters + [f"##{c}" for c in letters]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(1)
    BertModel(tiny_bert_config(layers=2, vocab_size=len(vocab))).save_pretrained(folder)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    return folder


def test_an_extra_teacher_with_another_tokenizer_reads_the_text_its_own_way(tmp_path, capsys):
    from transformers import AutoTokenizer

    letters = _letters_backbone(tmp_path / "letters")
    path = _write(tmp_path, teacher={"extra": [{"model": str(letters)}]}, distill={"combine": "confidence"})
    first = AutoTokenizer.from_pretrained(tmp_path / "backbone")
    other = AutoTokenizer.from_pretrained(letters)
    assert len(first("a superb film")["input_ids"]) < len(other("a superb film")["input_ids"])  # not one encoding
    assert main(["distill", str(path), "--quiet"]) == 0
    assert "from 2 teachers combined by confidence (test " in capsys.readouterr().out
    targets = json.loads((tmp_path / "out" / "result.json").read_text())["train"]["targets"]
    names = [t["model"] for t in targets["teachers"]["teachers"]]
    assert names == [str(tmp_path / "backbone"), str(letters)], targets
    # each teacher's own cache: the two keys differ because the models and tokenizers do
    caches = list((Path(os.environ["AUTODISTILL_HOME"]) / "teachers").iterdir())
    assert len(caches) >= 2


def test_assistant_is_distilled_once_and_skipped_where_it_does_not_fit(tmp_path):
    path = _write(tmp_path, distill={"assistant": 2})
    assert main(["distill", str(path), "--quiet"]) == 0
    targets = json.loads((tmp_path / "out" / "result.json").read_text())["train"]["targets"]
    assert targets["kind"] == "assistant" and targets["assistant"]["layers"] == 2
    (folder,) = [p for p in (Path(os.environ["AUTODISTILL_HOME"]) / "assistants").iterdir() if p.is_dir()]
    assert {"train.logits.npy", "validation.logits.npy", "test.logits.npy", "assistant.json"} <= {
        p.name for p in folder.iterdir()
    }
    made = (folder / "assistant.json").stat().st_mtime_ns
    # another student seed shares the assistant (seeded like the teacher): not distilled again
    assert main(["distill", str(path), "--quiet", "--set", "seed=1"]) == 0
    assert (folder / "assistant.json").stat().st_mtime_ns == made
    # an assistant no deeper than the student is skipped, and the record says so
    assert main(["distill", str(path), "--quiet", "--set", "distill.assistant=1"]) == 0
    targets = json.loads((tmp_path / "out" / "result.json").read_text())["train"]["targets"]
    assert targets["kind"] == "teacher" and "do not lie between" in targets["assistant_skipped"]


def test_searched_assistant_is_rebuilt_by_export(tmp_path):
    from autodistill.config import load_config
    from autodistill.export.run import run_export
    from autodistill.search.run import Search

    space = tmp_path / "space.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-targets",
                "proxy_steps": 6,
                "proxy_examples": 64,
                "transforms": [{"name": "depth", "layers": 1, "choice": "uniform"}],
                "loss": {"temperature": 2.0, "terms": [{"name": "kl", "weight": 1.0}]},
                "train": {"assistant": {"choice": [2]}, "combine": {"choice": ["mean", "confidence"]}},
            }
        )
    )
    search = {"space": str(space), "n_trials": 2, "startup_trials": 2, "sampler": "random"}
    path = _write(tmp_path, search={**search, "pruning": {"enabled": False}})
    cfg = load_config(path)
    out = Search(cfg, progress=False).run()
    assert out["trained"] == 2
    r = run_export(cfg, formats="hf", out=tmp_path / "exported", progress=False)
    assert r["train"]["spec"]["assistant"] == 2
    assert r["train"]["targets"]["kind"] == "assistant"
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "it learned from a 2-layer teacher assistant (test " in card
