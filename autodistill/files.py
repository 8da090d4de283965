"""Writes that an interruption never leaves half done: every file and folder the tool writes is
built under a temporary name beside its target (same filesystem, so the rename is atomic) and takes
the target's place only when complete. A reader in another process, or the next run after a crash,
sees the old content or the new one, never a mix.

The export folder adds its own rules on top (``export/atomic.py``: only an earlier export is ever
replaced); everything here is the plain mechanism.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def json_default(obj: Any) -> Any:
    """JSON for what ``json`` cannot write itself: numpy numbers and arrays; anything else as text."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def temp_beside(target: Path, tag: str = "", folder: bool = False) -> Path:
    """A new private file or folder named ``.<target name>.<tag><random>`` in the target's folder."""
    prefix = f".{target.name}.{tag}"
    if folder:
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    return Path(name)


def plain_modes(path: Path) -> None:
    """Give ``path`` (and, for a folder, all it holds) the modes a plain mkdir/open would: the
    temporary names are created private, and the finished file should not stay so."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [path, *(path.rglob("*") if path.is_dir() else ())]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


@contextmanager
def replacing_file(path: str | Path) -> Iterator[Path]:
    """``with replacing_file(p) as tmp:`` write the whole file at ``tmp``; on a clean exit it
    replaces ``p``, on an exception it is removed and ``p`` is left as it was."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        plain_modes(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def open_replacing(path: str | Path, mode: str = "w", **options: Any) -> Iterator[IO[Any]]:
    """``open`` for a whole new content of ``path`` (modes ``w``/``wb``), which replaces it only when
    the block ends without an exception."""
    if not mode.startswith("w"):
        raise ValueError(f"open_replacing writes a whole file; mode must start with 'w'. Got {mode!r} instead.")
    with replacing_file(path) as tmp, open(tmp, mode, **options) as fh:
        yield fh


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with open_replacing(path) as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (numpy values as numbers)."""
    write_text(path, json.dumps(obj, indent=2, default=json_default))


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    where the system cannot, changing nothing (the caller then falls back to two renames)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def swap_folder(new: Path, target: Path) -> None:
    """Make the complete folder ``new`` the ``target``; the earlier target is removed afterwards.

    One atomic exchange where the system has it. Elsewhere the earlier target is renamed aside
    first and put back should the second rename fail, so a failure leaves the target as it was."""
    if target.exists() and exchange(new, target):
        remove(new)  # holds the earlier target now
        return
    aside = None
    if target.exists() or target.is_symlink():
        aside = target.with_name(f".{target.name}.old")
        remove(aside)
        os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        remove(aside)


def remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree; nothing there is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def replacing_folder(target: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """``with replacing_folder(t) as tmp:`` write the whole folder into ``tmp``; on a clean exit it
    takes the place of ``t``, on an exception it is removed and ``t`` is left as it was.

    ``keep_existing``: a folder already at ``t`` wins (another process wrote the same content
    first, as with the teacher home) and ``tmp`` is discarded instead.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(target, folder=True)
    try:
        yield tmp
        plain_modes(tmp)
        if keep_existing:
            _rename_unless_present(tmp, target)
        else:
            swap_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _rename_unless_present(tmp: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # not the race this handles: someone else's folder appearing
            raise
        shutil.rmtree(tmp, ignore_errors=True)
