"""Whether a split's teacher-output cache files are whole and agree with each other.

Each split's arrays are tied together by its offsets: N examples, ``offsets[-1]`` token rows in
every per-token array, ``attn_offsets[-1]`` values in every attention array. A file cut short
fails to map, a rewritten or garbled one breaks those sizes, and NaN logits (read whole by every
run) are refused too. Per-token arrays are too large to scan on every run; ``TeacherOutputs``
checks the rows it gathers instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

PER_TOKEN = re.compile(r"^(hidden|q|k|v)\d+$")
ATTENTION = re.compile(r"^attn\d+$")


def split_files(folder: Path, split: str) -> dict[str, Path]:
    """The split's cache files by array name (``logits``, ``hidden3``, ...)."""
    prefix = f"{split}."
    return {
        p.name[len(prefix) : -len(".npy")]: p
        for p in sorted(folder.glob(f"{split}.*.npy"))
        if p.name.startswith(prefix) and "." not in p.name[len(prefix) : -len(".npy")]
    }


def _load(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _offsets_problem(offsets: np.ndarray) -> str | None:
    if offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer):
        return f"it holds a {offsets.dtype} array of shape {offsets.shape}, not a list of offsets"
    values = np.asarray(offsets)
    if values[0] != 0 or (np.diff(values) < 0).any():
        return "its offsets do not start at 0 and rise"
    return None


def split_problem(folder: Path, split: str, enc: Any = None) -> tuple[Path, str] | None:
    """The first damaged file of ``split`` and what is wrong with it, or None.

    ``enc`` (the split's encoding, optional): the examples and token counts the cache must match."""
    files = split_files(folder, split)
    if not files:
        return None
    arrays: dict[str, np.ndarray] = {}
    for name, path in files.items():
        try:
            arrays[name] = _load(path)
        except (OSError, ValueError, EOFError) as err:  # cut short, garbled header, not an .npy
            return path, f"it cannot be read ({err})"
    if "offsets" not in arrays:
        some = next(iter(files.values()))
        return some, f"the split's offsets file ({split}.offsets.npy) is missing"
    offsets = arrays["offsets"]
    problem = _offsets_problem(offsets)
    if problem:
        return files["offsets"], problem
    n, tokens = len(offsets) - 1, int(offsets[-1])
    lengths = np.diff(np.asarray(offsets))
    if enc is not None and (n != len(enc.lengths) or not np.array_equal(lengths, enc.lengths)):
        return files["offsets"], f"it describes {n} examples that do not match the {len(enc.lengths)} of the data"
    for name, arr in arrays.items():
        if name == "logits":
            if arr.ndim != 2 or arr.shape[0] != n:
                return files[name], f"it has shape {arr.shape}, where the split has {n} examples"
            if not np.isfinite(np.asarray(arr, dtype=np.float32)).all():
                return files[name], "it holds NaN or infinite values"
        elif PER_TOKEN.match(name) and (arr.ndim != 2 or arr.shape[0] != tokens):
            return files[name], f"it has shape {arr.shape}, where the split has {tokens} tokens"
    attention = [name for name in arrays if ATTENTION.match(name)]
    if attention or "attn_offsets" in arrays:
        if "attn_offsets" not in arrays:
            return files[attention[0]], f"the split's attention offsets file ({split}.attn_offsets.npy) is missing"
        attn_offsets = arrays["attn_offsets"]
        problem = _offsets_problem(attn_offsets)
        squares = int((lengths.astype(np.int64) ** 2).sum())
        heads = int(attn_offsets[-1]) // max(1, squares) if not problem else 0
        expected = np.concatenate([[0], np.cumsum(lengths.astype(np.int64) ** 2 * heads)])
        if problem or not np.array_equal(np.asarray(attn_offsets), expected):
            return files["attn_offsets"], problem or "its attention offsets do not match the split's token counts"
        for name in attention:
            arr = arrays[name]
            if arr.ndim != 1 or arr.shape[0] != int(attn_offsets[-1]):
                size = int(attn_offsets[-1])
                return files[name], f"it has shape {arr.shape}, where the split's attention maps take {size}"
    return None
