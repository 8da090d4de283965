"""Atomic folder writes: a write killed half-way (SIGKILL) or failing leaves the earlier folder, and
the swap never removes a folder that is not an export (no marker), even one that appears mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import file_tree

from autodistill.export import atomic
from autodistill.export.atomic import atomic_folder
from autodistill.export.target import MARKER, ExportTargetError

# a child that writes a new export slowly and says when it is half-way
CHILD = """
import sys, time
from pathlib import Path
from autodistill.export.atomic import atomic_folder
target, ready = Path(sys.argv[1]), Path(sys.argv[2])
with atomic_folder(target) as tmp:
    (tmp / "model.safetensors").write_bytes(b"new weights " * 1000)
    ready.write_text("half-way")
    time.sleep(60)
    (tmp / "README.md").write_text("new card")
"""


def _earlier(target: Path) -> dict[str, bytes]:
    with atomic_folder(target) as tmp:
        (tmp / "model.safetensors").write_bytes(b"old weights")
        (tmp / "README.md").write_text("old card")
    return _contents(target)


def _contents(folder: Path) -> dict[str, bytes]:
    """The folder's files but the marker (every export has it; asserted where it matters)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != MARKER}


def _user_folder(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("chapter one")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "rows.bin").write_bytes(bytes(range(256)))
    return file_tree(folder)


@pytest.mark.subprocess
def test_sigkill_half_way_leaves_the_earlier_export(tmp_path):
    target = tmp_path / "export"
    before = _earlier(target)
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(ready)])
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert proc.poll() is None, "the writer died before half-way"
            assert time.time() < deadline, "the writer never got half-way"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert _contents(target) == before  # untouched, no new file mixed in
    assert list(tmp_path.glob(".export.tmp-*"))  # the half-written folder is beside it, not at it
    # the next write cleans up the leftover and replaces the target
    with atomic_folder(target) as tmp:
        (tmp / "model.safetensors").write_bytes(b"newer")
    assert _contents(target) == {"model.safetensors": b"newer"}
    assert not list(tmp_path.glob(".export.*"))


def test_exception_half_way_leaves_the_earlier_export(tmp_path):
    target = tmp_path / "export"
    before = _earlier(target)
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("disk full")
    assert _contents(target) == before
    assert not list(tmp_path.glob(".export.*"))


def test_replaces_and_removes_the_earlier_export(tmp_path):
    target = tmp_path / "export"
    _earlier(target)
    with atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert _contents(target) == {"config.json": b"{}"}
    assert json.loads((target / MARKER).read_text())["written_by"] == "autodistill export"
    assert not list(tmp_path.glob(".export.*"))
    assert target.stat().st_mode & 0o055  # readable by others like a plain mkdir, not mkdtemp's 0700


def test_fallback_swap_and_recovery(tmp_path, monkeypatch):
    """Without an atomic exchange: the earlier export goes aside first; if the process dies between
    the two renames, the next write puts it back before anything else."""
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "export"
    before = _earlier(target)
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("new")
    assert _contents(target) == {"a": b"new"}
    # simulate a death right after the earlier export was moved aside
    os.replace(target, atomic._aside(target))
    assert not target.exists()
    with pytest.raises(RuntimeError):
        with atomic_folder(target):
            assert _contents(target) == {"a": b"new"}  # recovered on entry
            raise RuntimeError("stop")
    assert _contents(target) == {"a": b"new"}
    assert before != _contents(target)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_user_files_appearing_at_the_target_mid_write_are_not_removed(tmp_path, monkeypatch, exchange):
    """The target was new (or an export) when the write began; by the swap it holds the user's
    files: the swap refuses, both with the atomic exchange and with the rename-aside fallback."""
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    for earlier in (False, True):
        target = tmp_path / f"export-{earlier}"
        if earlier:
            _earlier(target)
        with pytest.raises(ExportTargetError) as err:
            with atomic_folder(target) as tmp:
                (tmp / "model.safetensors").write_bytes(b"new")
                if earlier:  # the earlier export is replaced by a user's folder of the same name
                    atomic.shutil.rmtree(target)
                before = _user_folder(target)
        assert f"'{target}'" in str(err.value) and "export did not write" in str(err.value)
        assert file_tree(target) == before  # byte for byte, and nothing added
        assert not list(tmp_path.glob(f".{target.name}.*"))  # the new export's temp folder is gone


def test_the_swap_puts_back_what_changed_after_the_check(tmp_path, monkeypatch):
    """Between the swap's own check and the exchange the user's files land at the target: the
    exchange is undone and they stay."""
    target = tmp_path / "export"
    _earlier(target)
    real_exchange = atomic._exchange

    def late(a, b):  # the target turns into the user's folder just before the exchange
        if not late.done:
            late.done = True
            atomic.shutil.rmtree(b)
            late.before = _user_folder(b)
        return real_exchange(a, b)

    late.done = False
    monkeypatch.setattr(atomic, "_exchange", late)
    with pytest.raises(ExportTargetError, match="changed while the export was written|export did not write"):
        with atomic_folder(target) as tmp:
            (tmp / "model.safetensors").write_bytes(b"new")
    assert file_tree(target) == late.before
    assert not list(tmp_path.glob(".export.*"))


def test_leftovers_and_asides_that_are_not_exports_are_kept(tmp_path, monkeypatch):
    """Only marked folders are cleaned up or put back: a user's folder that happens to look like a
    leftover temp or an aside copy is left alone."""
    target = tmp_path / "export"
    lookalike = _user_folder(tmp_path / ".export.tmp-mine")
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("new")
    assert file_tree(tmp_path / ".export.tmp-mine") == lookalike
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    aside = _user_folder(tmp_path / ".export.previous")
    with pytest.raises(ExportTargetError, match=r"\.export\.previous"):
        with atomic_folder(target) as tmp:
            (tmp / "a").write_text("newer")
    assert file_tree(tmp_path / ".export.previous") == aside and _contents(target) == {"a": b"new"}
    atomic.shutil.rmtree(target)  # a missing target is not refilled from a folder without the marker
    with atomic_folder(target) as tmp:
        assert not target.exists()
        (tmp / "a").write_text("fresh")
    assert file_tree(tmp_path / ".export.previous") == aside


def test_a_legacy_export_is_replaced_and_a_lookalike_is_not(tmp_path):
    """Exports written before the marker existed hold export.json and autodistill_student.json."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "export.json").write_text("{}")
    (legacy / "autodistill_student.json").write_text("{}")
    with atomic_folder(legacy) as tmp:
        (tmp / "a").write_text("new")
    assert _contents(legacy) == {"a": b"new"} and (legacy / MARKER).is_file()
    half = tmp_path / "half"
    _user_folder(half)
    (half / "export.json").write_text("{}")  # one of the two is not enough
    before = file_tree(half)
    with pytest.raises(ExportTargetError, match="no .autodistill-export marker"):
        with atomic_folder(half):
            raise AssertionError("the body must not run")
    assert file_tree(half) == before
