"""Read a ``data.source`` into pandas frames: built-in sets, files, folders and Hugging Face datasets.

Each reader returns :class:`Raw`: the source's own splits when it has them (a DatasetDict, a
folder with one file per split) or a single table that the loader splits itself.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autodistill.config.run import DataConfig
from autodistill.data.builtin import is_builtin, read_builtin
from autodistill.errors import DataError

FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SINGLE = "<all>"  # the key of the one table of a source without splits
CLIP = 200  # characters of a value from the data that a message quotes


def clip(text: str, limit: int = CLIP) -> str:
    """``text`` cut to ``limit`` characters: a message quotes data (a header, a cell, a line)
    without echoing megabytes of it."""
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Raw:
    tables: dict[str, pd.DataFrame]
    has_splits: bool
    class_names: tuple[str, ...] | None = None  # from a Hugging Face ClassLabel feature


def _format_of(path: Path, cfg: DataConfig) -> str:
    if cfg.format != "auto":
        return cfg.format
    suffix = path.suffix.lower()
    if suffix == ".gz":  # e.g. data.csv.gz: pandas reads it; the format is the inner suffix
        suffix = Path(path.stem).suffix.lower()
    if suffix not in FILE_FORMATS:
        raise DataError(
            f"The 'data.format' parameter is 'auto' but the file {str(path)!r} has no known extension. "
            f"Known: {', '.join(sorted(FILE_FORMATS))}; or set data.format to one of csv, tsv, jsonl, parquet."
        )
    return FILE_FORMATS[suffix]


def read_file(path: Path, cfg: DataConfig) -> pd.DataFrame:
    fmt = _format_of(path, cfg)
    # Text columns stay as the strings written: no "123" -> 123, so the text check only flags blanks.
    text_cols = {c: object for c in (cfg.text_column, cfg.text_pair_column) if c}
    try:
        if fmt in ("csv", "tsv"):
            sep = "," if fmt == "csv" else "\t"
            _check_header(path, sep, cfg)
            return pd.read_csv(path, sep=sep, dtype=text_cols)
        if fmt == "jsonl":
            try:
                return pd.read_json(path, lines=True, dtype=False)
            except (ValueError, TypeError) as err:  # a line that is not a JSON object raises TypeError
                raise DataError(
                    _jsonl_problem(path) or f"The data file {str(path)!r} cannot be read as jsonl: {clip(str(err))}"
                ) from None
        if fmt == "parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"The data file {str(path)!r} cannot be read as {fmt}: {clip(str(err))}") from None
    raise DataError(f"The 'data.format' parameter {fmt!r} does not apply to the file {str(path)!r}.")


def _check_header(path: Path, sep: str, cfg: DataConfig) -> None:
    """Refuse a header that names a column the config uses twice: pandas reads the second as
    ``name.1`` and the first would be used without a word. Repeats of other columns are left alone
    (nothing reads them)."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    counts = Counter(header)
    used = [c for c in (cfg.text_column, cfg.text_pair_column, cfg.label_column) if c and counts[c] > 1]
    if used:
        name = used[0]
        where = [i + 1 for i, h in enumerate(header) if h == name]
        raise DataError(
            f"The data file {str(path)!r} has {len(where)} columns named {clip(repr(name))} (columns "
            f"{', '.join(map(str, where))} of its header), the column data.{_key_of(name, cfg)} names; only the "
            "first would be read, without a word. Rename the others so that one column has that name."
        )


def _key_of(column: str, cfg: DataConfig) -> str:
    keys = {"text_column": cfg.text_column, "text_pair_column": cfg.text_pair_column, "label_column": cfg.label_column}
    return next(k for k, c in keys.items() if c == column)


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _jsonl_problem(path: Path) -> str | None:
    """The first line of a JSONL file that is not a JSON object, as "FILE line N: why" (pandas
    reports a byte position instead); None when every line is one."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return (
                    f"The data file {str(path)!r} line {number}: not valid JSON ({err.msg} at column {err.colno}): "
                    f"{clip(line.rstrip())}. Each line of a JSONL file must be one JSON object, e.g. "
                    '{"text": "...", "label": "..."}.'
                )
            if not isinstance(value, dict):
                return (
                    f"The data file {str(path)!r} line {number}: a JSON {_JSON_KINDS.get(type(value), 'value')}, "
                    f"not an object: "
                    f"{clip(line.rstrip())}. Each line of a JSONL file must be one JSON object, e.g. "
                    '{"text": "...", "label": "..."}.'
                )
    return None


def _hf_to_raw(obj: Any, cfg: DataConfig, where: str) -> Raw:
    import datasets

    if isinstance(obj, (datasets.DatasetDict, dict)):
        items = dict(obj.items())
        has_splits = True
    elif isinstance(obj, datasets.Dataset):
        items = {SINGLE: obj}
        has_splits = False
    else:
        raise DataError(f"The data source {where!r} is a {type(obj).__name__}; expected a Dataset or DatasetDict.")
    class_names = None
    for ds in items.values():
        feature = ds.features.get(cfg.label_column)
        if isinstance(feature, datasets.ClassLabel):
            class_names = tuple(feature.names)
            break
    return Raw({name: ds.to_pandas() for name, ds in items.items()}, has_splits, class_names)


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _split_files(folder: Path) -> dict[str, Path]:
    """A folder holding train.csv, validation.csv, ... (one file per split, any known format)."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in FILE_FORMATS:
            found.setdefault(p.stem, p)
    return found


def _looks_like_path(source: str) -> bool:
    p = Path(source)
    return source.startswith((".", "/", "~")) or p.suffix.lower() in FILE_FORMATS or p.suffix.lower() == ".gz"


def read_source(cfg: DataConfig) -> Raw:
    source = cfg.source
    if is_builtin(source):
        return Raw({SINGLE: read_builtin(source)}, has_splits=False)
    path = Path(source).expanduser()
    if path.is_file():
        return Raw({SINGLE: read_file(path, cfg)}, has_splits=False)
    if path.is_dir():
        if _is_saved_dataset(path):
            import datasets

            try:
                obj = datasets.load_from_disk(str(path))
            except Exception as err:  # datasets raises many kinds; report it plainly
                msg = f"The dataset folder {str(path)!r} cannot be loaded with load_from_disk: {err}"
                raise DataError(msg) from None
            return _hf_to_raw(obj, cfg, source)
        files = _split_files(path)
        if files:
            return Raw({name: read_file(p, cfg) for name, p in files.items()}, has_splits=True)
        raise DataError(
            f"The data folder {str(path)!r} is neither a datasets save_to_disk folder (no dataset_dict.json or "
            f"state.json) nor a folder of split files (train.csv, validation.csv, ...)."
        )
    if cfg.format in ("csv", "tsv", "jsonl", "parquet") or (_looks_like_path(source) and cfg.format != "hf"):
        raise DataError(f"The data file {source!r} (data.source) does not exist (looked in {path.resolve().parent}).")
    return _load_hub(cfg)


def _load_hub(cfg: DataConfig) -> Raw:
    import datasets

    try:
        obj = datasets.load_dataset(cfg.source, cfg.config_name)
    except Exception as err:  # offline, unknown name, gated: all become one clear error
        raise DataError(
            f"The 'data.source' parameter {cfg.source!r} is not a local file or folder, and loading it from the "
            f"Hugging Face hub failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            f"Without a network, use a builtin (builtin:rotten_tomatoes, builtin:sms_spam), a data file, or a "
            f"folder written by Dataset.save_to_disk."
        ) from None
    return _hf_to_raw(obj, cfg, cfg.source)
