"""``load_task_data``: a DataConfig in, checked and split :class:`TaskData` out."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd

from autodistill.config.run import DataConfig
from autodistill.data.sources import SINGLE, Raw, clip, read_source
from autodistill.data.splits import stratified_split, stratified_subset
from autodistill.data.types import SPLITS, TaskData, TextSplit, data_fingerprint
from autodistill.errors import DataError

_DEFAULT_SPLIT_NAMES = {"validation": "validation", "test": "test"}


def _where(split: str) -> str:
    return "the data" if split == SINGLE else f"split {split!r}"


def _check_columns(df: pd.DataFrame, cfg: DataConfig, split: str) -> None:
    for key, col in (
        ("text_column", cfg.text_column),
        ("text_pair_column", cfg.text_pair_column),
        ("label_column", cfg.label_column),
    ):
        if col is not None and col not in df.columns:
            cols = clip(", ".join(clip(repr(str(c))) for c in df.columns), 1000)  # a broken header can be megabytes
            raise DataError(
                f"The 'data.{key}' parameter names column {clip(repr(col))}, which {_where(split)} of "
                f"{cfg.source!r} does not have. Columns: {cols}."
            )


def _texts(df: pd.DataFrame, column: str, cfg: DataConfig, split: str) -> tuple[str, ...]:
    values = df[column].tolist()
    for row, v in enumerate(values):
        if not isinstance(v, str):
            what = (
                "is missing (empty)"
                if v is None or (isinstance(v, float) and np.isnan(v))
                else (f"holds {clip(repr(v))} ({type(v).__name__}), not text")
            )
            raise DataError(
                f"Row {row} (0-based, header not counted) of {_where(split)} of {cfg.source!r}, column "
                f"{column!r}, {what}. Every value of a text column must be a string."
            )
    return tuple(values)


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _label_values(df: pd.DataFrame, cfg: DataConfig, split: str, class_label: bool) -> list:
    values = df[cfg.label_column].tolist()
    missing = [i for i, v in enumerate(values) if _is_missing(v) or (class_label and v == -1)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(
            f"{_where(split).capitalize()} of {cfg.source!r} has missing labels in column {cfg.label_column!r}: "
            f"row {missing[0]}{more}. A split without labels (such as a benchmark's hidden test set) cannot be "
            f"used; set data.test_split or data.validation_split to null to carve that split from train instead."
        )
    return values


def _label_map(raw_labels: dict[str, list], cfg: DataConfig, class_names: tuple[str, ...] | None):
    """Label names (id order) and a value -> id mapping. Strings sort by name; integers keep
    their numeric order; a Hugging Face ClassLabel keeps its own names and ids."""
    if class_names is not None:
        return class_names, {i: i for i in range(len(class_names))}
    values = {v for vals in raw_labels.values() for v in vals}
    if all(isinstance(v, str) for v in values):
        names = sorted(values)
        return tuple(names), {v: i for i, v in enumerate(names)}
    ints = {}
    for v in values:
        ok = isinstance(v, numbers.Integral) or (isinstance(v, numbers.Real) and float(v).is_integer())
        if not ok or isinstance(v, str):
            raise DataError(
                f"The label column {cfg.label_column!r} (data.label_column) of {cfg.source!r} must hold class "
                f"labels, all strings or all integers. Found {clip(repr(v))} ({type(v).__name__}) among "
                f"{clip(', '.join(clip(repr(x), 40) for x in sorted(map(repr, values))[:6]))}."
            )
        ints[v] = int(v)
    ordered = sorted(set(ints.values()))
    ids = {n: i for i, n in enumerate(ordered)}
    return tuple(str(n) for n in ordered), {v: ids[n] for v, n in ints.items()}


def _resolve(raw: Raw, cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str]]:
    """Which source table becomes which split (and its name in the source, for messages), and
    which splits must be carved from train."""
    if not raw.has_splits:
        return {"train": raw.tables[SINGLE]}, {"train": SINGLE}, ["validation", "test"]
    available = ", ".join(repr(s) for s in raw.tables)
    if cfg.train_split not in raw.tables:
        raise DataError(
            f"The 'data.train_split' parameter names split {cfg.train_split!r}, which {cfg.source!r} does not "
            f"have. Splits: {available}."
        )
    chosen = {"train": raw.tables[cfg.train_split]}
    names = {"train": cfg.train_split}
    carve = []
    for role, key in (("validation", cfg.validation_split), ("test", cfg.test_split)):
        if key is not None and key in raw.tables and key != cfg.train_split:
            chosen[role] = raw.tables[key]
            names[role] = key
        elif key is None or key == _DEFAULT_SPLIT_NAMES[role]:
            carve.append(role)  # none named, or the default name is absent: carve it from train
        else:
            raise DataError(
                f"The 'data.{role}_split' parameter names split {key!r}, which {cfg.source!r} does not have. "
                f"Splits: {available}. Set it to null to carve it from train."
            )
    return chosen, names, carve


def _warn_unseen_labels(
    raw_labels: dict[str, list], names: dict[str, str], label_names: tuple, label_ids: dict, cfg: DataConfig
) -> None:
    """A label in the source's validation or test split that training never shows. It still
    becomes a class of the teacher and the student (the label map spans every split), but neither
    can learn it, so its rows count as errors. Warned, not refused: an official test split with a
    rare class is still worth scoring, and refusing (or dropping the rows) would hide that the
    score includes examples no model could get right."""
    seen = set(raw_labels["train"])
    for role in ("validation", "test"):
        if role not in raw_labels:  # carved from train: every label in it is one train has
            continue
        unseen = sorted({v for v in raw_labels[role] if v not in seen}, key=str)
        if unseen:
            rows = sum(1 for v in raw_labels[role] if v not in seen)
            shown = clip(", ".join(clip(repr(label_names[label_ids[v]]), 40) for v in unseen[:10]))
            warnings.warn(
                f"The {role} split ({names[role]!r}) of {cfg.source!r} has label(s) {shown} in column "
                f"{cfg.label_column!r} that the training split ({names['train']!r}) never shows ({rows} row(s)). "
                "No model can learn them, so those rows will count as errors. Add training examples of them, "
                f"or remove those rows from the {role} split.",
                stacklevel=3,
            )


def _to_split(df: pd.DataFrame, cfg: DataConfig, split: str, labels: list, label_ids: dict) -> TextSplit:
    texts = _texts(df, cfg.text_column, cfg, split)
    pairs = _texts(df, cfg.text_pair_column, cfg, split) if cfg.text_pair_column else None
    return TextSplit(texts, pairs, np.fromiter((label_ids[v] for v in labels), dtype=np.int64, count=len(labels)))


def load_task_data(cfg: DataConfig) -> TaskData:
    """Read ``cfg.source``, check it, and return train / validation / test with the label map."""
    raw = read_source(cfg)
    frames, names, carve = _resolve(raw, cfg)
    for role, df in frames.items():
        _check_columns(df, cfg, names[role])
        if len(df) == 0:
            raise DataError(f"{_where(names[role]).capitalize()} of {cfg.source!r} is empty (0 rows).")
    class_label = raw.class_names is not None
    raw_labels = {role: _label_values(df, cfg, names[role], class_label) for role, df in frames.items()}
    label_names, label_ids = _label_map(raw_labels, cfg, raw.class_names)
    _warn_unseen_labels(raw_labels, names, label_names, label_ids, cfg)
    splits = {role: _to_split(df, cfg, names[role], raw_labels[role], label_ids) for role, df in frames.items()}
    train = splits["train"]
    present = np.unique(train.labels)
    if len(present) < 2:
        only = label_names[int(present[0])]
        raise DataError(
            f"The training data of {cfg.source!r} holds only one class ({only!r}, column {cfg.label_column!r}); "
            f"a classifier needs at least two."
        )
    if carve:
        fractions = [cfg.validation_size if r == "validation" else cfg.test_size for r in carve]
        pairs = train.text_pairs or ("",) * len(train)
        keys = [t + "\x00" + p for t, p in zip(train.texts, pairs)]
        what = f"The training data of {cfg.source!r}"
        parts = stratified_split(train.labels, keys, fractions, cfg.split_seed, what=what)
        splits["train"] = train.select(parts[0])
        for role, idx in zip(carve, parts[1:]):
            splits[role] = train.select(idx)
    if cfg.max_train_examples is not None and cfg.max_train_examples < len(splits["train"]):
        keep = stratified_subset(splits["train"].labels, cfg.max_train_examples, cfg.split_seed)
        splits["train"] = splits["train"].select(keep)
    for role in SPLITS:
        if len(splits[role]) == 0:
            raise DataError(f"The {role} split of {cfg.source!r} is empty after splitting.")
    return TaskData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=tuple(label_names),
        fingerprint=data_fingerprint(splits, tuple(label_names)),
        source=cfg.source,
    )
