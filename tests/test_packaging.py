"""The wheel users install carries every module and the shipped search spaces."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_module_and_search_space(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(ROOT),
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("autodistill_kd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "autodistill").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    spaces = {f"autodistill/search_spaces/{p.name}" for p in (ROOT / "search_spaces").glob("*.yaml")}
    assert len(spaces) >= 4 and spaces <= names, sorted(spaces - names)
