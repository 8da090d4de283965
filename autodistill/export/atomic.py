"""Write a folder so that an interrupted write never leaves a half-written folder at the target.

The new folder is built in a temporary folder beside the target (same filesystem, so renames are
atomic). When it is complete it takes the target's place: on Linux by one atomic exchange
(``renameat2(RENAME_EXCHANGE)``), so the target always holds a complete export; elsewhere the
earlier export is first renamed aside and removed only after the new one is in place. A process
killed between those two renames leaves the earlier export aside; ``recover`` (run at the start
of the next write) puts it back.

Only exports are ever removed: every folder written here gets the export marker (``target.py``)
first thing, the target is checked before the write and again at the swap, and a folder is removed
only when it is an export (or empty). The mechanism (temporary names, the exchange, file modes) is
``autodistill/files.py``'s; the marker rules are this module's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autodistill.export.target import (
    MARKER,
    ExportTargetError,
    absolute,
    check_replaceable,
    is_export,
    replaceable,
    write_marker,
)
from autodistill.files import exchange as _exchange
from autodistill.files import plain_modes, temp_beside


def _aside(target: Path) -> Path:
    return target.with_name(f".{target.name}.previous")


def recover(target: Path) -> bool:
    """Put back an earlier export that an interrupted swap left aside. True if it did."""
    aside = _aside(target)
    if is_export(aside) and not target.exists() and not target.is_symlink():
        os.replace(aside, target)
        return True
    return False


def clean_leftovers(target: Path) -> None:
    """Remove temporary folders of interrupted writes (never the target or its aside copy)."""
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        if _removable(p):  # each gets the marker first thing (or is still empty); anything else is not ours
            shutil.rmtree(p, ignore_errors=True)


def swap_in(tmp: Path, target: Path, flag: str = "--out") -> None:
    """Make the complete folder ``tmp`` the target; the earlier target (an export) is removed afterwards.

    Raises ExportTargetError, leaving the target as it is, when something other than an export or
    an empty folder is at the target by now (it was checked before the export's work began).
    """
    check_replaceable(target, flag)
    if target.exists() and _exchange(tmp, target):
        # tmp now holds what was at the target; should that have changed since the check, swap back
        if not _removable(tmp):
            _exchange(tmp, target)
            _refuse(target, flag)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = None
    if target.exists():
        aside = _aside(target)
        _discard(aside)  # a stale aside of an earlier interrupted swap
        os.replace(target, aside)
    os.replace(tmp, target)  # fails, changing nothing, if a non-empty folder or a file has appeared there
    if aside is not None:
        _discard(aside)


def _removable(folder: Path) -> bool:
    return folder.is_dir() and replaceable(folder)


def _discard(folder: Path) -> None:
    """Remove ``folder`` if it is an export or empty; refuse to remove anything else."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not _removable(folder):
        raise ExportTargetError(
            f"Export left '{folder}' as it is: it is not an export (no {MARKER} marker) and export removes only "
            "its own folders. Move it elsewhere or remove it yourself, then run export again."
        )
    shutil.rmtree(folder, ignore_errors=True)


def _refuse(target: Path, flag: str) -> None:
    check_replaceable(target, flag)  # raises, naming what is there now
    raise ExportTargetError(f"The '{flag}' path '{target}' changed while the export was written; it was left as it is.")


@contextmanager
def atomic_folder(target: str | Path, flag: str = "--out") -> Iterator[Path]:
    """``with atomic_folder(out) as tmp:`` write everything into ``tmp``; on a clean exit it
    replaces ``out``; on an exception ``tmp`` is removed and ``out`` is left as it was.

    ``out`` must be new, an empty folder or an earlier export (ExportTargetError, naming ``flag``,
    otherwise); a link there is refused, not followed.
    """
    target = absolute(target)
    recover(target)
    check_replaceable(target, flag)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = temp_beside(target, "tmp-", folder=True)
    try:
        write_marker(tmp)
        yield tmp
        plain_modes(tmp)
        swap_in(tmp, target, flag)
    except BaseException:
        if _removable(tmp):  # ours (it has the marker), unless a failed swap left something else there
            shutil.rmtree(tmp, ignore_errors=True)
        raise
