"""A teacher fine-tuned into the home whose files were damaged later, and teacher folders that
would run their own code: each is a message naming the file and what to do."""

from __future__ import annotations

import builtins
import json
import shutil

import pytest
from helpers import sentiment_rows, tiny_backbone_dir, write_csv

from autodistill.config import parse
from autodistill.config.run import RunConfig, TeacherConfig
from autodistill.data import load_task_data
from autodistill.errors import TeacherError
from autodistill.teacher import prepare_teacher
from autodistill.teacher.load import load_config

pytestmark = pytest.mark.filterwarnings("ignore:The fine-tuned teacher.s validation")


@pytest.fixture
def home_teacher(tmp_path):
    backbone = tiny_backbone_dir(tmp_path / "backbone", layers=2)
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(80))
    cfg = parse(
        RunConfig,
        {
            "teacher": {"model": str(backbone), "finetune": {"max_steps": 2, "batch_size": 16}},
            "data": {"source": str(data), "max_length": 32},
        },
        "",
    )
    task = load_task_data(cfg.data)
    teacher = prepare_teacher(cfg, task, progress=False)
    assert teacher.finetuned
    return cfg, task, teacher


def test_a_corrupt_teacher_json_names_the_file_and_how_to_fine_tune_again(home_teacher):
    cfg, task, teacher = home_teacher
    record = teacher.path / "teacher.json"
    record.write_text(record.read_text()[:40])
    with pytest.raises(TeacherError, match=r"teacher.json' cannot be read as JSON .*Delete the folder") as e:
        prepare_teacher(cfg, task, progress=False)
    assert str(teacher.path) in str(e.value)
    # as the message says: without the folder the teacher is fine-tuned again, into the same place
    shutil.rmtree(teacher.path)
    again = prepare_teacher(cfg, task, progress=False)
    assert again.path == teacher.path and json.loads(record.read_text())["fingerprint"] == teacher.fingerprint


def test_truncated_teacher_weights_in_the_home_are_named(home_teacher):
    cfg, task, teacher = home_teacher
    weights = teacher.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(TeacherError, match=r"model.safetensors' cannot be loaded: .*truncated. Delete the folder"):
        prepare_teacher(cfg, task, progress=False)


def test_a_teacher_folder_that_needs_its_own_code_is_refused_without_asking(tmp_path, monkeypatch):
    folder = tiny_backbone_dir(tmp_path / "custom", layers=2)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="sneaky_bert", auto_map={"AutoConfig": "sneaky.SneakyConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    sentinel = tmp_path / "code-ran"
    (folder / "sneaky.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n")
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("asked on stdin"))
    with pytest.raises(TeacherError, match=r"custom' needs its own Python code .*'teacher.trust_remote_code'"):
        load_config(folder, TeacherConfig(model=str(folder)))
    assert not sentinel.exists()
