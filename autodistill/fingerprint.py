"""Content fingerprints: what keys the teacher home and the teacher-output cache."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def hash_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_file(path: str | Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) within the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def hash_folder(
    folder: str | Path, suffixes: tuple[str, ...] = (".safetensors", ".bin", ".json", ".txt", ".model")
) -> str:
    """Hash of the model files in a folder (names and contents), ignoring READMEs and caches."""
    root = Path(folder)
    entries = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in suffixes and not any(part.startswith(".") for part in p.relative_to(root).parts):
            if p.name.lower() == "readme.md":
                continue
            entries.append((str(p.relative_to(root)), hash_file(p)))
    return hash_json(entries)


def home() -> Path:
    """autodistill's home for fine-tuned teachers and teacher-output caches.

    ``$AUTODISTILL_HOME`` when set, else ``$XDG_CACHE_HOME/autodistill``, else ``~/.cache/autodistill``.
    """
    env = os.environ.get("AUTODISTILL_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "autodistill"
