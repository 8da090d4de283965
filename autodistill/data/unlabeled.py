"""``data.unlabeled``: extra texts without labels, a transfer set the teacher labels during training.

A small student learns the teacher's function better from more real inputs than the labelled set
holds (Hinton et al. 2015: a transfer set; DistilBERT and TinyBERT train on more text than the
task's). Each source is ``builtin:NAME`` (its texts; its labels are never read), a ``.txt`` file
(one text per line) or a csv / tsv / jsonl / parquet file read like ``data.source`` with its
``data.text_column``. Texts that also occur in the task's splits (compared case- and
space-insensitively) are dropped, so no validation or test text reaches training, and repeats are
kept once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from autodistill.config.run import DataConfig
from autodistill.data.builtin import is_builtin, read_builtin
from autodistill.data.sources import read_file
from autodistill.data.types import TaskData
from autodistill.errors import DataError


@dataclass(frozen=True)
class Unlabeled:
    texts: tuple[str, ...]
    read: int  # texts read from every source, before dropping blanks, repeats and split overlaps
    overlap: int  # dropped because a task split holds the same text


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def _read(source: str, cfg: DataConfig) -> list[str]:
    if is_builtin(source):
        try:
            frame = read_builtin(source)
        except DataError as err:
            raise DataError(str(err).replace("'data.source'", "'data.unlabeled'")) from None
        return frame["text"].tolist()
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(
            f"The 'data.unlabeled' parameter names {source!r}, which is not a file here and not a "
            "built-in set (builtin:NAME)."
        )
    if path.suffix.lower() == ".txt":
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise DataError(f"The 'data.unlabeled' file {str(path)!r} is not UTF-8 text: {err}") from None
    frame = read_file(path, replace(cfg, text_pair_column=None))
    if cfg.text_column not in frame.columns:
        cols = ", ".join(repr(str(c)) for c in frame.columns)
        raise DataError(
            f"The 'data.unlabeled' file {str(path)!r} has no column {cfg.text_column!r} (data.text_column). "
            f"Columns: {cols}."
        )
    return frame[cfg.text_column].tolist()


def load_unlabeled(cfg: DataConfig, data: TaskData) -> Unlabeled:
    """The texts of ``cfg.unlabeled``, without blanks, repeats or any text of the task's splits."""
    if cfg.unlabeled and cfg.text_pair_column is not None:
        raise DataError(
            "The 'data.unlabeled' parameter is set, but the task pairs two texts (data.text_pair_column): "
            "unlabeled texts are single texts. Remove data.unlabeled for pair tasks."
        )
    in_splits = {_key(t) for split in (data.train, data.validation, data.test) for t in split.texts}
    seen: set[str] = set()
    texts: list[str] = []
    read = overlap = 0
    for source in cfg.unlabeled:
        for text in _read(source, cfg):
            read += 1
            if not isinstance(text, str) or not text.strip():
                continue
            key = _key(text)
            if key in in_splits:
                overlap += 1
            elif key not in seen:
                seen.add(key)
                texts.append(text)
    if cfg.unlabeled and not texts:
        raise DataError(
            f"The 'data.unlabeled' sources {list(cfg.unlabeled)} hold no text that the task's splits do not "
            f"already hold ({read} read, {overlap} in the splits)."
        )
    return Unlabeled(tuple(texts), read, overlap)
