"""`evaluate --model DIR` on folders that transformers would prompt about, run code from, or fail
on with a traceback: each is refused up front with a message naming the file."""

from __future__ import annotations

import builtins
import json

import pytest
from helpers import sentiment_rows, tiny_classifier_dir, write_csv

from autodistill.config import parse
from autodistill.config.run import RunConfig
from autodistill.errors import ModelFolderError
from autodistill.tasks.sequence_classification.evaluate import run_evaluate
from autodistill.teacher.folder import needs_remote_code


def run_config(tmp_path, **teacher) -> RunConfig:
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(60))
    return parse(
        RunConfig,
        {
            "data": {"source": str(data), "max_length": 32},
            "teacher": {"model": "builtin:minilm", **teacher},
            "evaluate": {"latency": False},
        },
        "",
    )


@pytest.fixture
def no_prompt(monkeypatch):
    """Fails the test if anything asks on stdin (transformers' 'run the custom code?' prompt)."""
    asked = []

    def refuse(prompt=""):
        asked.append(prompt)
        raise AssertionError(f"asked on stdin: {prompt}")

    monkeypatch.setattr(builtins, "input", refuse)
    return asked


def remote_code_folder(tmp_path):
    folder = tiny_classifier_dir(tmp_path / "custom")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "sneaky_bert"
    config["auto_map"] = {
        "AutoConfig": "sneaky.SneakyConfig",
        "AutoModelForSequenceClassification": "sneaky.SneakyModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    sentinel = tmp_path / "code-ran"
    (folder / "sneaky.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "class SneakyConfig(BertConfig):\n    model_type = 'sneaky_bert'\n"
        "class SneakyModel(BertForSequenceClassification):\n    config_class = SneakyConfig\n"
    )
    return folder, sentinel


def test_a_folder_that_needs_its_own_code_is_refused_without_asking(tmp_path, no_prompt):
    folder, sentinel = remote_code_folder(tmp_path)
    with pytest.raises(ModelFolderError, match=r"needs its own Python code.*'teacher.trust_remote_code' is false") as e:
        run_evaluate(run_config(tmp_path), str(folder), progress=False)
    assert str(folder) in str(e.value) and "sneaky.SneakyModel" in str(e.value)
    assert not no_prompt and not sentinel.exists()


def test_an_auto_map_over_a_known_model_type_needs_no_code():
    assert not needs_remote_code({"model_type": "bert", "auto_map": {"AutoConfig": "x.Y"}})
    assert not needs_remote_code({"model_type": "autodistill_bert", "auto_map": {"AutoConfig": "x.Y"}})
    assert not needs_remote_code({"model_type": "sneaky_bert"})
    assert needs_remote_code({"model_type": "sneaky_bert", "auto_map": {"AutoConfig": "x.Y"}})


def test_a_whole_folder_still_evaluates(tmp_path, no_prompt):
    folder = tiny_classifier_dir(tmp_path / "clf")
    out = run_evaluate(run_config(tmp_path), str(folder), progress=False)
    assert 0 <= out["accuracy"] <= 1 and out["parameters"]["total"] > 0


def test_truncated_weights_are_named(tmp_path):
    folder = tiny_classifier_dir(tmp_path / "clf")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelFolderError, match=r"model.safetensors' cannot be loaded: .* truncated. Save or export"):
        run_evaluate(run_config(tmp_path), str(folder), progress=False)


def test_a_garbled_weights_header_is_named(tmp_path):
    folder = tiny_classifier_dir(tmp_path / "clf")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"\xff" * 32
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match=r"model.safetensors' cannot be loaded: its header cannot be read"):
        run_evaluate(run_config(tmp_path), str(folder), progress=False)


def test_pickled_weights_only_are_refused_with_how_to_convert(tmp_path):
    import torch
    from transformers import BertForSequenceClassification

    folder = tiny_classifier_dir(tmp_path / "clf")
    model = BertForSequenceClassification.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelFolderError, match=r"only pickled ones \(pytorch_model.bin\).*save_pretrained") as e:
        run_evaluate(run_config(tmp_path, safetensors_only=False), str(folder), progress=False)
    assert "never loads pickles" in str(e.value)


def test_a_broken_config_json_is_named(tmp_path):
    folder = tiny_classifier_dir(tmp_path / "clf")
    (folder / "config.json").write_text('{"model_type": "bert", ')
    with pytest.raises(ModelFolderError, match=r"config.json' cannot be read as JSON"):
        run_evaluate(run_config(tmp_path), str(folder), progress=False)
