"""The task seam: the config's task names are the registry's, a task folder registers itself and is
found by name, export asks the task which formats it writes and which pipeline its students run in."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from autodistill.config.run import EXPORT_FORMATS
from autodistill.config.run import TASKS as CONFIG_TASKS
from autodistill.errors import ConfigError
from autodistill.registry import RegistryError
from autodistill.tasks import TASKS, Task, get_task

PKG = Path(__file__).resolve().parents[1] / "autodistill"

TOY = """
from autodistill.tasks.base import TASKS, Task


@TASKS.register("toy-task")
class Toy(Task):
    name = "toy-task"
    pipeline_tag = "toy"

    def prepare(self, cfg, progress=True):
        return {"prepared": cfg}

    def teacher(self, cfg, progress=True):
        return {}

    def predicted_parameters(self, prep, student):
        return 1

    def untrained_model(self, prep, student):
        return None

    def train_spec(self, cfg, n_examples):
        raise NotImplementedError

    def proxy_indices(self, prep, n, seed):
        raise NotImplementedError

    def distill(self, prep, student, loss, **options):
        raise NotImplementedError

    def trial_metrics(self, run):
        return {"quality": 0.0}

    def shipped_quality(self, prep, build, split="test"):
        return {"quality": 0.0}

    def latency_seq_len(self, cfg, prep):
        return 8

    def save_student(self, build, prep, folder):
        raise NotImplementedError

    def evaluate_folder(self, cfg, model_dir, split, progress=True):
        return {}

    def model_card(self, result):
        return "# toy"
"""


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """A task registered by importing a module that lives outside the package, removed afterwards."""
    (tmp_path / "toy_task_module.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_task_module")
    yield module.Toy
    TASKS.unregister("toy-task")
    sys.modules.pop("toy_task_module", None)


def test_the_config_accepts_exactly_the_registered_tasks():
    """``config.run.TASKS`` is spelled out (the config layer cannot import the tasks); it must name
    every registered task and no other."""
    assert sorted(CONFIG_TASKS) == TASKS.names()


def test_a_task_registered_in_its_own_module_is_found_by_name(toy_task):
    task = get_task("toy-task")
    assert isinstance(task, toy_task) and isinstance(task, Task)
    assert task.prepare("cfg") == {"prepared": "cfg"}
    assert task.formats == ("hf",) and task.export_formats(None, None, Path("."), ("hf",)) == {}
    assert "toy-task" in TASKS.names() and "sequence-classification" in TASKS.names()


def test_an_unknown_task_lists_the_registered_ones():
    with pytest.raises(
        RegistryError, match=r"Unknown task 'seq2seq'\. Valid names: causal-lm, sequence-classification\."
    ):
        get_task("seq2seq")


def test_a_second_task_of_the_same_name_is_refused(toy_task):
    with pytest.raises(RegistryError, match="already registered"):
        TASKS.register("toy-task")(toy_task)


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_declares_what_export_needs(name):
    task = get_task(name)
    assert task.name == name
    assert "hf" in task.formats and set(task.formats) <= set(EXPORT_FORMATS)
    assert isinstance(task.pipeline_tag, str) and task.pipeline_tag
    assert task.metrics[0] == "quality"


def test_every_task_folder_is_imported_by_the_tasks_package():
    """A folder under autodistill/tasks/ registers on import; the package imports each one, so no
    task can silently be missing."""
    folders = {p.name for p in (PKG / "tasks").iterdir() if (p / "__init__.py").is_file()}
    tree = ast.parse((PKG / "tasks" / "__init__.py").read_text())
    imported = {
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "autodistill.tasks"
        for alias in node.names
    }
    assert folders and folders <= imported, sorted(folders - imported)


def test_export_refuses_a_format_the_task_does_not_write(toy_task):
    from autodistill.export.run import parse_formats

    toy = get_task("toy-task")
    assert parse_formats("hf", toy) == ("hf",)
    with pytest.raises(ConfigError, match=r"must list some of hf for task 'toy-task'.*Got 'onnx' instead"):
        parse_formats("onnx", toy)
    with pytest.raises(ConfigError, match="Got 'onnx' instead"):  # int8 is made from the ONNX graph
        parse_formats(["int8"], toy)
    classifier = get_task("sequence-classification")
    assert parse_formats("int8", classifier) == ("hf", "onnx", "int8")
    with pytest.raises(
        ConfigError, match=r"must list some of hf, onnx, int8 for task 'sequence-classification'.*Got 'gguf'"
    ):
        parse_formats("hf,gguf", classifier)
    assert parse_formats("hf,gguf", get_task("causal-lm")) == ("hf", "gguf")


def test_the_mlflow_model_is_logged_as_the_tasks_pipeline(toy_task, tmp_path, monkeypatch):
    """export hands the task's pipeline tag to the tracker (a stock student is logged as a
    transformers pipeline of that kind)."""
    import autodistill.export.run as run_mod
    import autodistill.tracking.mlflow_tracker as tracker_mod
    from autodistill.config import parse
    from autodistill.config.run import RunConfig

    seen = {}

    class FakeTracker:
        def __init__(self, *args, **kwargs):
            pass

        def log_export(self, folder, kind, register=None, metrics=None, *, pipeline_tag):
            seen.update(kind=kind, pipeline_tag=pipeline_tag)
            return {}

    monkeypatch.setattr(tracker_mod, "Tracker", FakeTracker)
    cfg = parse(RunConfig, {"output_dir": str(tmp_path / "run")}, "")
    student = {"test": {"quality": 0.5}, "validation": {"quality": 0.5}, "parameters": {"total": 10}}
    result = {"student": {**student, "size_mb": 0.1, "kind": "stock"}, "pick": {"trial": 0}}
    run_mod._log_mlflow(get_task("toy-task"), cfg, "study", tmp_path, result, None)
    assert seen == {"kind": "stock", "pipeline_tag": "toy"}
    run_mod._log_mlflow(get_task("sequence-classification"), cfg, "study", tmp_path, result, None)
    assert seen["pipeline_tag"] == "text-classification"
