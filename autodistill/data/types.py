"""The plain values the data stage hands on: labelled text splits and the task that holds them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make field-wise == ambiguous
class TextSplit:
    """One split: texts (and optional second texts) with integer label ids."""

    texts: tuple[str, ...]
    text_pairs: tuple[str, ...] | None
    labels: np.ndarray  # int64 label ids

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        if self.text_pairs is not None:
            object.__setattr__(self, "text_pairs", tuple(self.text_pairs))
            if len(self.text_pairs) != len(self.texts):
                raise ValueError(f"text_pairs has {len(self.text_pairs)} items but texts has {len(self.texts)}.")
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(self.texts):
            raise ValueError(f"labels has {len(labels)} items but texts has {len(self.texts)}.")
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices: np.ndarray) -> TextSplit:
        """The examples at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        pairs = None if self.text_pairs is None else tuple(self.text_pairs[i] for i in idx)
        return TextSplit(tuple(self.texts[i] for i in idx), pairs, self.labels[idx])


@dataclass(frozen=True, eq=False)
class TaskData:
    """Train / validation / test splits with the label map that goes with every artefact.

    Training reads ``train``; every choice (early stopping, search, picking) reads ``validation``;
    ``test`` is read only for final reports.
    """

    train: TextSplit
    validation: TextSplit
    test: TextSplit
    label_names: tuple[str, ...]  # id -> name
    fingerprint: str
    source: str

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> TextSplit:
        if name not in SPLITS:
            raise KeyError(f"Unknown split {name!r}. Valid names: {', '.join(SPLITS)}.")
        return getattr(self, name)


def _put(h: hashlib._Hash, data: bytes) -> None:
    # Length prefix so that ("ab", "c") and ("a", "bc") hash differently.
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def data_fingerprint(splits: dict[str, TextSplit], label_names: tuple[str, ...]) -> str:
    """sha256 of the split contents and the label map; the source's name or path is left out so
    the same data read from another place shares its teacher and cache entries."""
    h = hashlib.sha256(b"autodistill-data-v1")
    _put(h, "\x1f".join(label_names).encode())
    for name in SPLITS:
        split = splits[name]
        _put(h, name.encode())
        _put(h, str(len(split)).encode())
        for text in split.texts:
            _put(h, text.encode("utf-8", "surrogatepass"))
        if split.text_pairs is None:
            _put(h, b"<no pairs>")
        else:
            for text in split.text_pairs:
                _put(h, text.encode("utf-8", "surrogatepass"))
        _put(h, np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
    return h.hexdigest()
