"""autodistill/files.py: a write that fails or is killed half-way leaves the earlier file or folder
as it was; a finished one gets plain modes; and no other module hand-writes the same mechanism."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autodistill import files

PKG = Path(__file__).resolve().parents[1] / "autodistill"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot be written")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_json_writes_numpy_values_as_numbers(tmp_path):
    path = tmp_path / "result.json"
    files.write_json(path, {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(2), "p": Path("a/b")})
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "a": [0, 1], "p": "a/b"}


def test_a_failed_json_write_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "result.json"
    files.write_json(path, {"run": 1})
    with pytest.raises(RuntimeError, match="cannot be written"):
        files.write_json(path, {"run": 2, "bad": Unprintable()})
    assert json.loads(path.read_text()) == {"run": 1}
    assert _leftovers(tmp_path) == []


def test_a_write_that_fails_half_way_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "pareto.csv"
    files.write_text(path, "old\n")
    with pytest.raises(OSError), files.open_replacing(path) as fh:
        fh.write("half of the new")
        raise OSError("disk full")
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_a_process_killed_half_way_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "result.json"
    files.write_text(path, "old")
    # files.py loaded on its own (the package would import torch): it needs nothing of autodistill
    code = (
        "import importlib.util as u, os, sys\n"
        "spec = u.spec_from_file_location('files', sys.argv[2]); files = u.module_from_spec(spec)\n"
        "spec.loader.exec_module(files)\n"
        "with files.open_replacing(sys.argv[1]) as fh:\n"
        "    fh.write('half'); fh.flush(); os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path), str(PKG / "files.py")], timeout=60)
    assert done.returncode == 9
    assert path.read_text() == "old"


def test_binary_writes_and_plain_modes(tmp_path):
    path = tmp_path / "x.npy"
    with files.open_replacing(path, "wb") as fh:
        np.save(fh, np.arange(4))
    assert np.load(path).tolist() == [0, 1, 2, 3]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the private mode of the temporary name


def test_open_replacing_refuses_an_append_mode(tmp_path):
    with pytest.raises(ValueError, match="mode must start with 'w'"), files.open_replacing(tmp_path / "a", "a"):
        pass


def _folder(path: Path, **content: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in content.items():
        (path / name).write_text(text)
    return path


def _content(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_replacing_folder_swaps_in_the_whole_new_folder(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(files, "exchange", lambda a, b: False)
    target = _folder(tmp_path / "student", old="1", gone="x")
    with files.replacing_folder(target) as tmp:
        (tmp / "new").write_text("2")
        assert _content(target) == {"gone": "x", "old": "1"}  # untouched until the block ends
    assert _content(target) == {"new": "2"}
    assert _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask


def test_replacing_folder_makes_a_new_target_and_its_parents(tmp_path):
    with files.replacing_folder(tmp_path / "a" / "b") as tmp:
        (tmp / "f").write_text("x")
    assert _content(tmp_path / "a" / "b") == {"f": "x"}


def test_a_failed_folder_write_leaves_the_earlier_folder(tmp_path):
    target = _folder(tmp_path / "student", old="1")
    with pytest.raises(RuntimeError), files.replacing_folder(target) as tmp:
        (tmp / "new").write_text("2")
        raise RuntimeError("training crashed")
    assert _content(target) == {"old": "1"}
    assert _leftovers(tmp_path) == []


def test_a_failed_second_rename_puts_the_earlier_folder_back(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "exchange", lambda a, b: False)
    target = _folder(tmp_path / "student", old="1")
    real = os.replace

    def failing(src, dst):
        if Path(dst) == target and Path(src).name != ".student.old":  # the new folder's rename, not the undo
            raise OSError("no space left")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(OSError, match="no space"), files.replacing_folder(target) as tmp:
        (tmp / "new").write_text("2")
    monkeypatch.setattr(files.os, "replace", real)
    assert _content(target) == {"old": "1"}
    assert _leftovers(tmp_path) == []


def test_keep_existing_keeps_the_folder_another_process_finished_first(tmp_path):
    target = tmp_path / "teacher"
    with files.replacing_folder(target, keep_existing=True) as tmp:
        (tmp / "mine").write_text("a")
        _folder(target, theirs="b")  # the other process renames its folder in meanwhile
    assert _content(target) == {"theirs": "b"}
    assert _leftovers(tmp_path) == []
    with files.replacing_folder(tmp_path / "fresh", keep_existing=True) as tmp:
        (tmp / "mine").write_text("a")
    assert _content(tmp_path / "fresh") == {"mine": "a"}


def test_exchange_swaps_two_folders_or_says_it_cannot(tmp_path):
    a, b = _folder(tmp_path / "a", x="a"), _folder(tmp_path / "b", x="b")
    if files.exchange(a, b):
        assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
    else:  # no renameat2 here: nothing may have changed
        assert (a / "x").read_text() == "a" and (b / "x").read_text() == "b"


# the mechanism lives in files.py; export/atomic.py adds the export's own renames (its aside copy)
HAND_WRITTEN = re.compile(r"\bos\.replace\(|\bmkstemp\(|\bmkdtemp\(|NamedTemporaryFile\(|\brenameat2\b")
ALLOWED = {PKG / "files.py", PKG / "export" / "atomic.py"}


def test_no_other_module_hand_writes_an_atomic_write():
    found = [
        f"{path.relative_to(PKG)}:{i}"
        for path in sorted(PKG.rglob("*.py"))
        if path not in ALLOWED
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if HAND_WRITTEN.search(line)
    ]
    assert not found, f"write through autodistill.files instead: {found}"


def test_the_hand_written_check_can_fail():
    assert HAND_WRITTEN.search("    fd, tmp = tempfile.mkstemp(dir=path.parent)")
    assert HAND_WRITTEN.search("        os.replace(tmp, path)")
