"""Atomic folder writes: a write killed half-way (SIGKILL) or failing leaves the earlier folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autodistill.export import atomic
from autodistill.export.atomic import atomic_folder

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
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


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
