"""Write a folder so that an interrupted write never leaves a half-written folder at the target.

The new folder is built in a temporary folder beside the target (same filesystem, so renames are
atomic). When it is complete it takes the target's place: on Linux by one atomic exchange
(``renameat2(RENAME_EXCHANGE)``), so the target always holds a complete export; elsewhere the
earlier export is first renamed aside and removed only after the new one is in place. A process
killed between those two renames leaves the earlier export aside; ``recover`` (run at the start
of the next write) puts it back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot (then the caller falls back)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _aside(target: Path) -> Path:
    return target.with_name(f".{target.name}.previous")


def recover(target: Path) -> bool:
    """Put back an earlier export that an interrupted swap left aside. True if it did."""
    aside = _aside(target)
    if aside.is_dir() and not target.exists():
        os.replace(aside, target)
        return True
    return False


def clean_leftovers(target: Path) -> None:
    """Remove temporary folders of interrupted writes (never the target or its aside copy)."""
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


def swap_in(tmp: Path, target: Path) -> None:
    """Make the complete folder ``tmp`` the target; the earlier target is removed afterwards."""
    if target.exists() and _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the earlier export
        return
    aside = None
    if target.exists():
        aside = _aside(target)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
    os.replace(tmp, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _plain_modes(folder: Path) -> None:
    """Give the folder the modes a plain mkdir/open would (mkdtemp/mkstemp make them private)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


@contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """``with atomic_folder(out) as tmp:`` write everything into ``tmp``; on a clean exit it
    replaces ``out``; on an exception ``tmp`` is removed and ``out`` is left as it was."""
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    clean_leftovers(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
        _plain_modes(tmp)
        swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
