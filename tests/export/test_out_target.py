"""`export --out` never replaces what export did not write: a folder of the user's files, the run's
own output_dir (or a folder above it, or a path inside it other than an export folder), a link, a
file. Each is refused with a message naming the path, before the teacher is loaded, and every file
is still there byte for byte. New folders, empty ones and earlier exports are written as before."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import file_tree, sentiment_rows, tiny_classifier_dir, write_csv

from autodistill.export.target import MARKER, ExportTargetError, export_target, out_flag

SPACE = {
    "name": "tiny-out",
    "proxy_steps": 4,
    "proxy_examples": 32,
    "transforms": [{"name": "depth", "layers": {"int": [1, 2]}, "choice": "uniform"}],
    "loss": {"temperature": 2.0, "terms": [{"name": "kl", "weight": 1.0}]},
    "train": {"lr": {"float": [1.0e-3, 2.0e-3]}},
}


def _user_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("chapter one")
    (folder / "figures").mkdir(exist_ok=True)
    (folder / "figures" / "plot.png").write_bytes(bytes(range(256)) * 4)
    return folder


def _run_dir(root: Path) -> Path:
    """A run's output_dir as a search and a distill leave it."""
    run = root / "run"
    (run / "student").mkdir(parents=True)
    (run / "study.db").write_bytes(b"SQLite format 3\x00" + bytes(100))
    (run / "result.json").write_text('{"student": {}}')
    (run / "student" / "model.safetensors").write_bytes(b"weights" * 50)
    return run


# the target check alone (what run_export calls before any work)


def test_a_folder_of_the_users_files_is_refused(tmp_path):
    mine = _user_folder(tmp_path / "mine")
    before = file_tree(mine)
    with pytest.raises(ExportTargetError) as err:
        export_target(mine, _run_dir(tmp_path))
    msg = str(err.value)
    assert f"'{mine}'" in msg and "2 entries that export did not write" in msg and MARKER in msg
    assert "Choose another --out, or remove the folder yourself" in msg
    assert file_tree(mine) == before


@pytest.mark.parametrize(
    "where, words",
    [
        (lambda run: run, "the run's output_dir itself"),
        (lambda run: run.parent, "a folder above the run's output_dir"),
        (lambda run: run / "student", "inside the run's output_dir"),
        (lambda run: run / "new-folder", "inside the run's output_dir"),
        (lambda run: run / "export" / "inner", "inside the run's output_dir"),
        (lambda run: run / "student" / ".." / ".", "the run's output_dir itself"),
    ],
    ids=["output_dir", "above", "student", "new-inside", "inside-export", "dots"],
)
def test_the_runs_own_folder_is_refused(tmp_path, where, words):
    run = _run_dir(tmp_path / "project")
    before = file_tree(tmp_path)
    out = str(where(run))
    with pytest.raises(ExportTargetError) as err:
        export_target(out, run, flag="export.out")
    msg = str(err.value)
    assert "The 'export.out' path must not be the run's output_dir" in msg and words in msg
    assert f"Choose another export.out, e.g. '{run / 'export'}'" in msg
    assert file_tree(tmp_path) == before


def test_a_link_is_refused_and_the_folder_it_points_to_is_untouched(tmp_path):
    mine = _user_folder(tmp_path / "mine")
    link = tmp_path / "out-link"
    link.symlink_to(mine, target_is_directory=True)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / MARKER).write_text("{}")
    to_export = tmp_path / "export-link"
    to_export.symlink_to(earlier, target_is_directory=True)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    before = file_tree(tmp_path)
    for path, dest in ((link, mine), (to_export, earlier), (dangling, tmp_path / "nowhere")):
        with pytest.raises(ExportTargetError) as err:
            export_target(path, tmp_path / "run")
        msg = str(err.value)
        assert f"'{path}', a symbolic link to '{dest}'" in msg and "Export never writes through a link" in msg
    assert file_tree(tmp_path) == before


def test_a_file_is_refused(tmp_path):
    paper = tmp_path / "paper.pdf"
    paper.write_bytes(b"%PDF-1.7" + bytes(500))
    before = file_tree(paper)
    with pytest.raises(ExportTargetError, match=r"Got '.*paper\.pdf', an existing file, instead\. Choose another"):
        export_target(paper, tmp_path / "run")
    assert file_tree(paper) == before and not list(tmp_path.glob(".paper*"))


def test_new_empty_and_earlier_exports_are_accepted(tmp_path):
    run = _run_dir(tmp_path)
    assert export_target(None, run) == run.resolve() / "export"
    assert export_target(run / "export-int8", run) == run.resolve() / "export-int8"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_target(empty, run) == empty
    assert export_target(tmp_path / "new" / "deeper", run) == tmp_path / "new" / "deeper"
    marked = _user_folder(tmp_path / "marked")
    (marked / MARKER).write_text("{}")
    assert export_target(marked, run) == marked
    # written before the marker existed: both files every export writes mark it as an export
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "export.json").write_text("{}")
    (legacy / "autodistill_student.json").write_text("{}")
    assert export_target(legacy, run) == legacy
    (legacy / "autodistill_student.json").unlink()
    with pytest.raises(ExportTargetError, match="no .autodistill-export marker"):
        export_target(legacy, run)


def test_the_message_names_the_key_the_user_wrote():
    assert out_flag(None, None) == "--out" and out_flag("a/b", None) == "--out"
    assert out_flag("a/b", "a/b") == "export.out" and out_flag("c", "a/b") == "--out"


# end to end, through the CLI, on a real tiny study


def _config(root: Path) -> Path:
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    cfg = {
        "output_dir": str(root / "run"),
        "seed": 0,
        "teacher": {"model": str(tiny_classifier_dir(root / "teacher", layers=2))},
        "data": {
            "source": str(write_csv(root / "toy.csv", sentiment_rows(120))),
            "max_length": 12,
            "validation_size": 0.2,
            "test_size": 0.2,
        },
        "distill": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64, "device": "cpu", "bf16": False},
        "evaluate": {"warmup": 1, "repeats": 1, "seq_len": 8},
        "search": {"space": str(space), "n_trials": 1, "startup_trials": 1, "sampler": "random"},
        "tracking": {"enabled": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A one-trial search with its own autodistill home, shared by this module's CLI tests."""
    from autodistill.config import load_config
    from autodistill.search.run import Search

    root = tmp_path_factory.mktemp("out-target")
    old = os.environ.get("AUTODISTILL_HOME")
    os.environ["AUTODISTILL_HOME"] = str(root / "home")
    try:
        path = _config(root)
        Search(load_config(path), progress=False).run()
        yield path, root / "run"
    finally:
        if old is not None:
            os.environ["AUTODISTILL_HOME"] = old


@pytest.fixture
def export_cli(study, monkeypatch, capsys):
    """``autodistill export CONFIG ... --out OUT``: (exit code, stderr)."""
    from autodistill.cli import main

    path, run = study
    monkeypatch.setenv("AUTODISTILL_HOME", str(run.parent / "home"))

    def call(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["export", str(path), "--trial", "0", "--no-retrain", "--quiet", *args])
        return code, capsys.readouterr().err

    return call


@pytest.mark.parametrize("kind", ["user-folder", "output_dir", "link", "file"])
def test_cli_refuses_before_the_teacher_is_loaded_and_loses_nothing(study, export_cli, tmp_path, monkeypatch, kind):
    import autodistill.tasks.sequence_classification.prepare as prepare

    def no_teacher(*a, **k):
        raise AssertionError("the teacher was loaded before the --out check")

    monkeypatch.setattr(prepare, "prepare", no_teacher)
    _, run = study
    mine = _user_folder(tmp_path / "mine")
    if kind == "user-folder":
        out, watched, words = mine, mine, "entries that export did not write"
    elif kind == "output_dir":
        out, watched, words = run, run, "the run's output_dir itself"
    elif kind == "link":
        out, watched, words = tmp_path / "link", tmp_path, "a symbolic link to"
        out.symlink_to(mine, target_is_directory=True)
    else:
        out, watched, words = tmp_path / "notes.txt", tmp_path, "an existing file"
        out.write_text("my notes")
    before = file_tree(watched)
    assert kind != "output_dir" or "study.db" in before
    code, err = export_cli("--out", str(out))
    assert code == 2 and err.startswith("autodistill export: error: The '--out' path must")
    assert f"'{out}" in err and words in err and "choose another --out" in err.lower()
    assert file_tree(watched) == before


def test_cli_writes_a_new_folder_then_replaces_only_its_own_export(study, export_cli, tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    code, err = export_cli("--out", str(target))
    assert code == 0, err
    marker = json.loads((target / MARKER).read_text())
    assert marker["written_by"] == "autodistill export" and marker["version"]
    first = json.loads((target / "export.json").read_text())
    assert first["pick"]["trial"] == 0 and first["out_name"] == "empty"
    # an earlier export (the marker, or an export from before the marker: export.json and
    # autodistill_student.json) is replaced, and nothing is left beside it
    (target / MARKER).unlink()
    code, err = export_cli("--out", str(target))
    assert code == 0, err
    assert (target / MARKER).is_file() and (target / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    # a marked folder is the export's own and is replaced as a whole, files added inside it included
    (target / "notes.txt").write_text("mine")
    code, err = export_cli("--out", str(target))
    assert code == 0 and not (target / "notes.txt").exists()
