"""End to end on a tiny randomly initialised Llama and a toy corpus, offline: the teacher's top-k
cache, one distillation, a search of 3 trials, export as an HF folder and GGUF, a fresh process
that generates with transformers alone, and `evaluate` giving back the card's perplexity."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from helpers import lm_texts, tiny_lm_dir, write_jsonl

from autodistill.cli import main


@pytest.fixture
def lm_run(tmp_path):
    texts = lm_texts(400)
    teacher = tiny_lm_dir(tmp_path / "teacher", texts)
    data = write_jsonl(tmp_path / "corpus.jsonl", texts)
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(teacher)},
        "data": {"source": str(data), "max_length": 32, "validation_size": 0.1, "test_size": 0.1},
        "student": {"transforms": [{"name": "depth", "layers": 2, "choice": "uniform"}], "calibration_examples": 8},
        "distill": {"mode": "full", "epochs": 1, "lr": 2e-3, "batch_size": 8, "top_k": 16, "on_policy": 0.25,
                    "loss": {"temperature": 1.0, "terms": [{"name": "fkl", "weight": 1.0}]}},
        "evaluate": {"repeats": 2, "warmup": 1, "new_tokens": 4, "seq_len": 8},
        "search": {"space": "lm_fast", "n_trials": 3, "startup_trials": 2, "calibration_examples": 8,
                   "pruning": {"enabled": False}},
        "tracking": {"enabled": False},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp_path


def test_distill_then_a_fresh_process_generates_and_evaluate_gives_back_the_perplexity(lm_run, capsys):
    path, tmp = lm_run
    assert main(["distill", str(path), "--quiet"]) == 0
    result = json.loads((tmp / "out" / "result.json").read_text())
    s, t = result["student"], result["teacher"]
    assert s["parameters"]["total"] < t["parameters"]["total"]
    assert s["test"]["perplexity"] > 1 and t["test"]["perplexity"] > 1
    assert s["test"]["quality"] == pytest.approx(1 / s["test"]["perplexity"], rel=1e-6)
    assert 0 <= s["test"]["top1_agreement"] <= 1 and s["test"]["kl"] >= 0
    assert s["latency_ms"]["latency_ms_b1"] > 0 and s["generation"]["decode_tokens_per_s"] > 0
    for who in (s, t):  # energy per 1,000 decoded tokens (a causal LM's prediction is a token)
        assert who["energy"]["unit"] == "decoded tokens" and who["energy"]["joules_per_1000"] > 0
    student_dir = tmp / "out" / "student"
    assert json.loads((student_dir / "config.json").read_text())["num_hidden_layers"] == 2
    code = (
        "from transformers import pipeline;"
        f"g = pipeline('text-generation', model=r'{student_dir}');"
        "print(repr(g('the cat', max_new_tokens=5, do_sample=False)[0]['generated_text']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("'the cat")
    capsys.readouterr()
    assert main(["evaluate", str(path), "--model", str(student_dir), "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["perplexity"] == pytest.approx(s["test"]["perplexity"], rel=0.01)


def test_plan_search_then_export_writes_a_gguf_that_transformers_reads_back(lm_run, capsys):
    from transformers import AutoModelForCausalLM

    path, tmp = lm_run
    capsys.readouterr()
    assert main(["plan", str(path), "--quiet", "--json"]) == 0  # the plan of a causal-LM search
    info = json.loads(capsys.readouterr().out)
    assert info["space"] == "lm_fast" and info["cache_mb"] > 0 and info["trial_seconds_max"] > 0
    assert info["predicted_parameters_max"] < info["teacher_parameters"]
    assert main(["search", str(path), "--quiet"]) == 0
    assert main(["export", str(path), "--formats", "hf,gguf,onnx", "--quiet"]) == 0
    folder = tmp / "out" / "export"
    record = json.loads((folder / "export.json").read_text())
    assert record["formats"]["gguf"]["file"] == "model.gguf"
    assert record["formats"]["onnx"]["agreement"] == 1.0 and (folder / "model.onnx").is_file()
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "test perplexity" in card
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    gg = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", dtype=torch.float32).eval()
    ids = torch.as_tensor(np.random.default_rng(0).integers(3, hf.config.vocab_size, (4, 24)))
    with torch.inference_mode():
        a, b = hf(ids).logits.argmax(-1), gg(ids).logits.argmax(-1)
    assert float((a == b).float().mean()) >= 0.99


def test_a_gpt2_teacher_distils_by_depth_and_refuses_the_transforms_it_lacks(tmp_path, capsys):
    from helpers import tiny_lm_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    texts = lm_texts(300)
    tok = tiny_lm_tokenizer(texts)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=3, n_head=4, n_positions=64,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(tmp_path / "gpt2")},
        "data": {"source": str(write_jsonl(tmp_path / "c.jsonl", texts)), "max_length": 32},
        "student": {"transforms": [{"name": "depth", "layers": 1, "choice": "first"}]},
        "distill": {"epochs": 1, "batch_size": 8, "lr": 2e-3, "top_k": 8,
                    "loss": {"temperature": 1.0, "terms": [{"name": "rkl", "weight": 1.0},
                                                           {"name": "ce", "weight": 0.5}]}},
        "evaluate": {"repeats": 2, "warmup": 1, "new_tokens": 3, "seq_len": 8},
        "tracking": {"enabled": False},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["distill", str(path), "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["student"]["kind"] == "stock" and result["metric"] == "perplexity"
    assert json.loads((tmp_path / "out" / "student" / "config.json").read_text())["n_layer"] == 1
    # a transform GPT-2 does not support is refused by name before any work
    bad = {**cfg, "student": {"transforms": [{"name": "heads", "kv_groups": 1}]}}
    path.write_text(yaml.safe_dump(bad))
    assert main(["distill", str(path), "--quiet"]) != 0
    assert "student.transforms[0]" in capsys.readouterr().err


def test_gguf_is_refused_before_training_for_a_teacher_it_cannot_hold(tmp_path):
    from types import SimpleNamespace

    from helpers import tiny_lm_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    from autodistill.errors import ConfigError
    from autodistill.tasks import get_task

    tok = tiny_lm_tokenizer(lm_texts(50))
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=32))
    prep = SimpleNamespace(teacher_model=lambda: gpt2, teacher=SimpleNamespace(tokenizer=tok))
    task = get_task("causal-lm")
    task.check_formats(prep, ("hf", "onnx"))  # ONNX takes GPT-2
    with pytest.raises(ConfigError, match=r"'--formats' option lists gguf.*gpt2"):
        task.check_formats(prep, ("hf", "gguf"))
