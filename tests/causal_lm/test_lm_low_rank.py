"""The causal-LM ``low_rank`` transform on tiny in-process teachers: full rank computes what the
teacher computes, a truncated factor is the best rank-r approximation of its projection, the
student's parameter count is predicted exactly, records rebuild it exactly, it saves as the
registered ``autodistill_<family>`` architecture that reloads and generates in a fresh process,
and misplaced or wrong options are refused naming their key."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from test_student import teacher
from transformers import AutoModelForCausalLM

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.factored import FactoredLinear, is_factored
from autodistill.tasks.causal_lm.low_rank import projection_dims
from autodistill.tasks.causal_lm.student import build_student, predict_parameters, rebuild_student

IDS = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29], [2, 4, 8, 16, 32, 64, 3, 7]])
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "qwen3"])
def test_full_rank_factors_compute_what_the_teacher_computes(kind):
    t = teacher(kind)
    full = min(min(d) for d in projection_dims(t.config).values())  # 16: the k/v projections
    student, _ = build_student(t, [{"name": "low_rank", "targets": ALL, "rank": full}], None)
    assert is_factored(student.config) and student.config.model_type == f"autodistill_{kind}"
    # k/v are 32 -> 16, full at 16; q/o/mlp are truncated at 16, so compare a k/v-only student exactly
    exact, _ = build_student(t, [{"name": "low_rank", "targets": ["k_proj", "v_proj"], "rank": full}], None)
    with torch.no_grad():
        torch.testing.assert_close(exact.eval()(IDS).logits, t(IDS).logits, atol=2e-5, rtol=1e-4)
        assert student.eval()(IDS).logits.shape == t(IDS).logits.shape


def test_a_truncated_factor_is_the_best_rank_r_approximation():
    t = teacher("llama")
    student, records = build_student(t, [{"name": "low_rank", "targets": ["gate_proj"], "rank": 5}], None)
    w = t.model.layers[1].mlp.gate_proj.weight.detach().double()
    f = student.model.layers[1].mlp.gate_proj
    assert isinstance(f, FactoredLinear) and f.rank == 5
    err = torch.linalg.matrix_norm(w - f.up.weight.detach().double() @ f.down.weight.detach().double())
    s = torch.linalg.svdvals(w)
    assert float(err) == pytest.approx(float(s[5:].pow(2).sum().sqrt()), rel=1e-4)
    assert records[0]["resolved"]["ranks"] == {"gate_proj": 5}


def test_rank_share_counts_and_rebuilds_exactly_after_other_cuts():
    t = teacher("llama")
    transforms = [{"name": "depth", "layers": 2}, {"name": "low_rank", "rank_share": 0.5}]
    student, records = build_student(t, transforms, IDS)
    assert sum(p.numel() for p in student.parameters()) == predict_parameters(t.config, transforms)
    assert student.model.layers[0].mlp.down_proj.rank == 16  # half of min(64, 32), a multiple of 8
    again = rebuild_student(t, records)
    for (k, a), (_, b) in zip(student.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    smaller = predict_parameters(t.config, [{"name": "depth", "layers": 2}])
    assert predict_parameters(t.config, transforms) < smaller


def test_the_factored_student_reloads_and_generates_in_a_fresh_process(tmp_path):
    student, _ = build_student(teacher("llama"), [{"name": "low_rank", "rank": 8}], None)
    student.eval().save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.eval()(IDS).logits, student(IDS).logits)
    code = (
        "import autodistill, torch; from transformers import AutoModelForCausalLM;"
        f"m = AutoModelForCausalLM.from_pretrained(r'{tmp_path}');"
        "print(type(m).__name__, m.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False).shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "AutodistillLlamaForCausalLM torch.Size([1, 7])" in done.stdout


@pytest.mark.parametrize(
    ("transforms", "match"),
    [
        ([{"name": "low_rank", "rank": 8}, {"name": "depth", "layers": 2}], r"transforms\[0\].name.*after every other"),
        ([{"name": "low_rank", "rank": 8}, {"name": "lora", "r": 4}], r"transforms\[0\].name.*lora"),
        ([{"name": "low_rank", "rank": 17, "targets": ["k_proj"]}], r"transforms\[0\].rank.*<= 16"),
        ([{"name": "low_rank", "rank": 8, "rank_share": 0.5}], r"transforms\[0\].rank\b"),
        ([{"name": "low_rank"}], r"transforms\[0\].rank\b"),
        ([{"name": "low_rank", "rank": 8, "targets": ["w1"]}], r"transforms\[0\].targets"),
        ([{"name": "low_rank", "rank_share": 1.0}], r"transforms\[0\].rank_share"),
    ],
)
def test_misplaced_or_wrong_options_are_refused_by_key(transforms, match):
    with pytest.raises(ConfigError, match=match):
        build_student(teacher("llama"), transforms, IDS)


def test_gpt2_teachers_do_not_take_low_rank():
    with pytest.raises(ConfigError, match="does not support"):
        build_student(teacher("gpt2"), [{"name": "low_rank", "rank": 8}], None)


def test_gguf_is_refused_before_training_for_a_factored_pick_and_onnx_taken():
    from types import SimpleNamespace

    from helpers import lm_texts, tiny_lm_tokenizer

    from autodistill.tasks import get_task

    tok = tiny_lm_tokenizer(lm_texts(50))
    t = teacher("llama")
    prep = SimpleNamespace(teacher_model=lambda: t, teacher=SimpleNamespace(tokenizer=tok))
    task = get_task("causal-lm")
    picked = [{"transforms": [{"name": "depth", "layers": 2}, {"name": "low_rank", "rank": 8}]}]
    task.check_formats(prep, ("hf", "onnx"), picked)
    task.check_formats(prep, ("hf", "gguf"), [{"transforms": [{"name": "depth", "layers": 2}]}])
    with pytest.raises(ConfigError, match=r"'--formats' option lists gguf.*low-rank"):
        task.check_formats(prep, ("hf", "gguf"), picked)


def test_a_factored_student_exports_to_onnx(tmp_path):
    from autodistill.tasks.causal_lm.onnx_export import write_onnx

    student, _ = build_student(teacher("llama"), [{"name": "low_rank", "rank": 8}], None)
    found = write_onnx(student.eval(), tmp_path / "model.onnx")
    assert found["agreement"] == 1.0 and found["max_abs_diff"] < 1e-4


def test_distill_with_low_rank_then_evaluate_gives_back_the_perplexity(tmp_path, capsys):
    import json

    import yaml
    from helpers import lm_texts, tiny_lm_dir, write_jsonl

    from autodistill.cli import main

    texts = lm_texts(300)
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(tiny_lm_dir(tmp_path / "teacher", texts))},
        "data": {"source": str(write_jsonl(tmp_path / "c.jsonl", texts)), "max_length": 32},
        "student": {"transforms": [{"name": "depth", "layers": 2, "choice": "uniform"},
                                   {"name": "low_rank", "rank_share": 0.5}]},
        "distill": {"epochs": 1, "batch_size": 8, "lr": 2e-3, "top_k": 8,
                    "loss": {"temperature": 1.0, "terms": [{"name": "fkl", "weight": 1.0}]}},
        "evaluate": {"repeats": 2, "warmup": 1, "new_tokens": 3, "seq_len": 8},
        "tracking": {"enabled": False},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["distill", str(path), "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["student"]["kind"] == "registered"
    folder = tmp_path / "out" / "student"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "autodistill_llama" and config["layer_ranks"][0] == {
        "gate_proj": 16, "up_proj": 16, "down_proj": 16,
    }  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", str(path), "--model", str(folder), "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["perplexity"] == pytest.approx(result["student"]["test"]["perplexity"], rel=0.01)
