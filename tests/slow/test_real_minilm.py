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
        "distill": {"mode": "full", "epochs": 2, "lr": 1e-4, "batch_size": 32},
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
