"""Where an export may be written: a new folder, an empty one, or an earlier export, never anything else.

An export replaces its target folder as a whole, so the target is checked before any work (the
teacher load and the final training take minutes) and again at the swap (``atomic.py``). Every
export folder carries a marker file; a folder without it is someone else's and is never replaced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from autodistill.errors import ConfigError

MARKER = ".autodistill-export"
# exports written before the marker existed: both files are written by every export and together
# are unlikely in a folder of the user's own, so such a folder is taken as an earlier export
LEGACY_FILES = ("export.json", "autodistill_student.json")
# the run's own export folders inside output_dir: OUTPUT_DIR/export (the default) and
# OUTPUT_DIR/export-<name> (the notebook's and the benchmark's)
RUN_EXPORT_NAME = "export"

_WHAT = "must be a new folder, an empty folder or an earlier export"


class ExportTargetError(ConfigError):
    """The export folder ('--out' or 'export.out') would replace files that export did not write."""


def write_marker(folder: Path) -> None:
    from autodistill import __version__

    body = {"written_by": "autodistill export", "version": __version__}
    (folder / MARKER).write_text(json.dumps(body) + "\n")


def is_export(folder: Path) -> bool:
    """A real folder (not a link) that an export wrote: it has the marker, or both legacy files."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if _plain_file(folder / MARKER):
        return True
    return all(_plain_file(folder / name) for name in LEGACY_FILES)


def replaceable(path: Path) -> bool:
    """True where an export may take ``path``'s place: nothing there, an empty folder, an export."""
    if path.is_symlink():
        return False
    if not path.exists():
        return True
    return path.is_dir() and (is_export(path) or not any(path.iterdir()))


def check_replaceable(path: Path, flag: str = "--out") -> None:
    """Raise ExportTargetError naming ``path`` unless an export may take its place."""
    head = f"The '{flag}' path {_WHAT}. Got '{path}'"
    if path.is_symlink():
        raise ExportTargetError(
            f"{head}, a symbolic link to '{os.readlink(path)}', instead. Export never writes through a link, so "
            f"the folder it points to was left as it is. Give that folder's own path if it is an earlier export, "
            f"or choose another {flag}."
        )
    if not path.exists():
        return
    if not path.is_dir():
        raise ExportTargetError(
            f"{head}, an existing file, instead. Choose another {flag}, or remove the file yourself if it may go."
        )
    try:
        if replaceable(path):
            return
        n = sum(1 for _ in path.iterdir())
    except OSError as err:
        raise ExportTargetError(
            f"{head}, a folder that cannot be read ({err.strerror}), instead. Choose another {flag}."
        ) from None
    raise ExportTargetError(
        f"{head}, a folder of {n} entries that export did not write (it has no {MARKER} marker), instead. "
        f"Nothing in it was changed. Choose another {flag}, or remove the folder yourself if it may go."
    )


def out_flag(out: str | Path | None, configured: str | Path | None) -> str:
    """The name the user gave the target by: the config's key when it is the config's value."""
    if out is not None and configured is not None and str(out) == str(configured):
        return "export.out"
    return "--out"


def absolute(path: str | Path) -> Path:
    """``path`` made absolute with its parent's links resolved and its last part kept as written, so
    a link there is seen (and refused) rather than followed."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    return p if p == p.parent else p.parent.resolve() / p.name


def export_target(out: str | Path | None, output_dir: str | Path, flag: str = "--out") -> Path:
    """The export folder for ``out`` (None: OUTPUT_DIR/export), checked before any work is done.

    Besides :func:`check_replaceable`: the run's output_dir holds the study and results the export
    is made from, so neither it, a folder above it, nor a path inside it other than a direct child
    named ``export`` or ``export-<name>`` may be the target.
    """
    run = absolute(output_dir).resolve()
    target = absolute(out) if out is not None else run / RUN_EXPORT_NAME
    where = None  # target's parent is resolved and its last part is not followed: compare it as it is
    if target == run:
        where = "the run's output_dir itself"
    elif run.is_relative_to(target):
        where = f"a folder above the run's output_dir '{run}'"
    elif target.is_relative_to(run) and not (target.parent == run and _run_export_name(target.name)):
        where = f"inside the run's output_dir '{run}', which holds the study and results the export is made from"
    if where is not None:
        raise ExportTargetError(
            f"The '{flag}' path must not be the run's output_dir, a folder above it, or a path inside it other "
            f"than its export folders ('{RUN_EXPORT_NAME}' or '{RUN_EXPORT_NAME}-<name>'). Got '{target}', "
            f"{where}, instead. Nothing was changed. Choose another {flag}, e.g. '{run / RUN_EXPORT_NAME}'."
        )
    check_replaceable(target, flag)
    return target


def _run_export_name(name: str) -> bool:
    return name == RUN_EXPORT_NAME or (name.startswith(RUN_EXPORT_NAME + "-") and len(name) > len(RUN_EXPORT_NAME) + 1)


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()
