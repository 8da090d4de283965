"""The real MiniLM teacher on a subset of the real Rotten Tomatoes snippets (offline assets)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from autodistill.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    cfg = {
        "output_dir": str(tmp / "out"),
        "teacher": {"model": "builtin:minilm", "finetune": {"epochs": 1, "lr": 5e-5, "batch_size": 32}},
        "data": {"source": "builtin:rotten_tomatoes", "max_length": 64, "max_train_examples": 2000},
        "student": {"transforms": [{"name": "depth", "layers": 3, "choice": "uniform"}]},
        # no teacher-labelled copies (2,000 rows would turn them on): they double every step's cost,
        # and the tiny end-to-end tests cover them
        "distill": {"mode": "full", "epochs": 2, "lr": 1e-4, "batch_size": 32, "augment": {"ratio": 0}},
        "evaluate": {"repeats": 3},
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp


def test_real_teacher_and_student(real_config, capsys):
    path, tmp = real_config
    assert main(["distill", str(path), "--quiet"]) == 0
    result = json.loads((tmp / "out" / "result.json").read_text())
    teacher, student = result["teacher"], result["student"]
    # a fine-tuned sentence encoder is a real sentiment classifier, clearly above chance
    assert teacher["finetuned"] and teacher["test"]["accuracy"] > 0.7
    assert student["test"]["accuracy"] > 0.6
    assert student["parameters"]["total"] < 0.8 * teacher["parameters"]["total"]
    assert result["labels"] == ["negative", "positive"]
    assert result["relative"]["speedup_b1"] > 1.0
    student_dir = tmp / "out" / "student"
    code = (
        "from transformers import AutoModelForSequenceClassification as M;"
        f"m = M.from_pretrained(r'{student_dir}'); print(m.config.num_hidden_layers, m.config.id2label[1])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "positive"]
    capsys.readouterr()
    assert main(["evaluate", str(path), "--model", str(student_dir), "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert abs(ev["accuracy"] - student["test"]["accuracy"]) <= 0.005


THIN_SPACE = {
    "name": "real-thin",
    "proxy_steps": 20,
    "proxy_examples": 256,
    "transforms": [
        {"name": "vocab", "min_count": 2},
        {"name": "depth", "layers": 3, "choice": "uniform"},
        {"name": "heads", "ratio": {"float": [0.4, 0.6]}, "score": "fisher"},
        {"name": "ffn", "ratio": {"float": [0.3, 0.5]}, "score": "fisher"},
    ],
    "loss": {
        "temperature": 2.0,
        "terms": [{"name": "ce", "weight": 0.5}, {"name": "kl", "weight": 0.5}, {"name": "hidden_mse", "weight": 1.0}],
    },
    "train": {"lr": 3.0e-4, "prune_after": 0.5, "prune_stages": 2},
}


def test_real_search_and_export_of_a_thin_registered_student(real_config, capsys):
    """The real teacher and data: a 2-trial search of thin students pruned gradually after a warm-up
    (Fisher scores), then `autodistill export` with ONNX and int8. The exported registered student
    loads in a fresh process after `import autodistill`, as its card says, and `autodistill
    evaluate` on it gives the card's test accuracy to 0.5 points."""
    path, tmp = real_config
    space = tmp / "thin.yaml"
    space.write_text(yaml.safe_dump(THIN_SPACE))
    cfg = yaml.safe_load(path.read_text())
    cfg["output_dir"] = str(tmp / "thin-out")
    cfg["distill"]["epochs"] = 1
    cfg["student"] = {"calibration_examples": 512}
    cfg["search"] = {
        "space": str(space),
        "n_trials": 2,
        "startup_trials": 2,
        "sampler": "random",
        "pruning": {"enabled": False},
        "calibration_examples": 128,
    }
    thin = tmp / "thin-run.yaml"
    thin.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(thin), "--quiet"]) == 0
    target = tmp / "thin-export"
    assert main(["export", str(thin), "--formats", "onnx,int8", "--out", str(target), "--quiet"]) == 0
    r = json.loads((target / "export.json").read_text())
    record = json.loads((target / "autodistill_student.json").read_text())
    staged = [(t["name"], t.get("stage")) for t in record["transforms"]]
    assert staged == [("vocab", None), ("depth", None), ("heads", 1), ("ffn", 1), ("heads", 2), ("ffn", 2)]
    assert r["student"]["kind"] == "registered" and r["train"]["mode"] == "retrained"
    card = (target / "README.md").read_text()
    assert "import autodistill" in card and f"{r['student']['test']['quality']:.4f}" in card
    assert r["formats"]["onnx"]["agreement"] == 1.0 and r["formats"]["int8"]["test_quality"] > 0.6
    code = (
        "import autodistill\nfrom transformers import pipeline\n"
        f"p = pipeline('text-classification', model={str(target)!r})\n"
        "out = p(['a moving, funny and smart film', 'dull, lifeless and far too long'])\n"
        "print(' '.join(o['label'] for o in out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(done.stdout.split()) <= {"negative", "positive"} and len(done.stdout.split()) == 2
    capsys.readouterr()
    assert main(["evaluate", str(thin), "--model", str(target), "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert abs(ev["accuracy"] - r["student"]["test"]["accuracy"]) <= 0.005
    # the card's validation (on which the checkpoint was kept) is measured as shipped too
    assert main(["evaluate", str(thin), "--model", str(target), "--split", "validation", "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["accuracy"] == pytest.approx(r["student"]["validation"]["accuracy"], abs=1e-9)
