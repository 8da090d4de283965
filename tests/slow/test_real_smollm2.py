"""The real SmolLM2-135M teacher (the offline GGUF asset, converted once) on a few thousand tokens of
the built-in movie dialogue: distil a 2-layer student, check that training lowered its perplexity,
that `evaluate` gives the same perplexity back, and that its GGUF file agrees with the HF folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from autodistill.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smollm2")
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp / "out"),
        "teacher": {"model": "builtin:smollm2"},
        "data": {"source": "builtin:movie_dialog", "max_length": 64, "validation_size": 0.001,
                 "test_size": 0.001, "max_train_examples": 48},
        "student": {"transforms": [{"name": "depth", "layers": 2, "choice": "importance"}],
                    "calibration_examples": 8},
        "distill": {"mode": "full", "epochs": 2, "batch_size": 8, "lr": 1e-3, "top_k": 64,
                    "loss": {"temperature": 1.0, "terms": [{"name": "fkl", "weight": 1.0}]}},
        "evaluate": {"repeats": 2, "warmup": 1, "new_tokens": 4, "seq_len": 16},
        "tracking": {"enabled": False},
    }  # fmt: skip
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp


def test_real_smollm2_student_trains_evaluates_and_exports_gguf(lm_config, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from autodistill.config import load_config
    from autodistill.tasks.causal_lm.data import load_lm_data
    from autodistill.tasks.causal_lm.gguf_export import write_gguf

    path, tmp = lm_config
    assert main(["distill", str(path), "--quiet"]) == 0
    result = json.loads((tmp / "out" / "result.json").read_text())
    s, t = result["student"], result["teacher"]
    assert t["parameters"]["total"] == pytest.approx(134.5e6, rel=0.01)
    assert s["parameters"]["total"] < 0.4 * t["parameters"]["total"]
    # training moved the cut student towards the teacher: its best checkpoint beats its first
    evals = [q for _, q in result["train"]["evals"]]
    assert len(evals) == 2 and max(evals) >= evals[0]
    assert 1 < t["test"]["perplexity"] < s["test"]["perplexity"]
    folder = tmp / "out" / "student"
    capsys.readouterr()
    assert main(["evaluate", str(path), "--model", str(folder), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["perplexity"] == pytest.approx(s["test"]["perplexity"], rel=0.01)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    info = write_gguf(hf, AutoTokenizer.from_pretrained(folder), folder / "model.gguf", dtype="f16")
    assert info["bytes"] > 0
    gg = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", dtype=torch.float32).eval()
    # next-token predictions over the real test split, HF folder against its GGUF file
    test = load_lm_data(load_config(str(path)).data, AutoTokenizer.from_pretrained(folder)).splits["test"]
    ids = torch.as_tensor(np.asarray(test.input_ids), dtype=torch.long)
    mask = torch.as_tensor(np.asarray(test.attention_mask), dtype=torch.long)
    with torch.inference_mode():
        same = hf(ids, attention_mask=mask).logits.argmax(-1) == gg(ids, attention_mask=mask).logits.argmax(-1)
    assert float(same[mask.bool()].float().mean()) >= 0.99
