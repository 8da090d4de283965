"""Seeded, stratified subsets and splits.

Written here rather than taken from scikit-learn so that two guarantees hold: a subset keeps
every class, and identical texts never land on both sides of a split (the SMS Spam Collection
holds 403 repeated messages; scattering them would leak test examples into training).
"""

from __future__ import annotations

import numpy as np

from autodistill.errors import DataError


def _quotas(counts: np.ndarray, n: int, min_one: np.ndarray) -> np.ndarray:
    """How many of each class a sample of ``n`` takes: proportional, largest remainder first,
    at least one of each class flagged in ``min_one``, never more than the class holds."""
    counts = counts.astype(np.int64)
    raw = counts * (n / max(int(counts.sum()), 1))
    q = np.minimum(np.floor(raw).astype(np.int64), counts)
    q = np.where(min_one & (counts > 0), np.maximum(q, 1), q)
    while q.sum() < n:
        room = np.where(q < counts, raw - q, -np.inf)
        if not np.isfinite(room.max()):
            break
        q[int(np.argmax(room))] += 1  # argmax breaks ties by the lower class id: deterministic
    floor = np.where(min_one & (counts > 0), 1, 0)
    while q.sum() > n:
        over = np.where(q > floor, q - raw, -np.inf)
        if not np.isfinite(over.max()):
            break
        q[int(np.argmax(over))] -= 1
    return q


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``n`` examples that keeps the class proportions and
    holds every class. All indices when ``n`` covers the data."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    classes, inverse = np.unique(labels, return_inverse=True)
    if n < len(classes):
        raise DataError(
            f"A stratified subset of {n} examples cannot hold all {len(classes)} classes. "
            f"Ask for at least {len(classes)} examples."
        )
    counts = np.bincount(inverse, minlength=len(classes))
    quotas = _quotas(counts, n, np.ones(len(classes), dtype=bool))
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(inverse == c))[: quotas[c]] for c in range(len(classes))]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def stratified_split(
    labels: np.ndarray, keys: list[str], fractions: list[float], seed: int, what: str = "the data"
) -> list[np.ndarray]:
    """Split rows into a remainder and one part per fraction (of the whole), seeded and stratified.

    Rows with equal ``keys`` (the text, or text + pair) move together as one unit; a unit's class
    is that of its first row. A class with at least ``len(fractions) + 1`` units appears in every
    part. Returns sorted row indices: ``[rest, part_1, part_2, ...]``.
    """
    labels = np.asarray(labels)
    key_arr = np.asarray(keys, dtype=object)
    _, first, unit_of_row = np.unique(key_arr, return_index=True, return_inverse=True)
    unit_labels = labels[first]
    n_units = len(first)
    sizes = [max(1, int(round(f * n_units))) for f in fractions]
    if n_units - sum(sizes) < 1:
        raise DataError(
            f"{what} has {n_units} distinct texts, too few to carve {len(fractions)} more split(s) of "
            f"{', '.join(str(s) for s in sizes)} and keep a training split. Add data or give the splits explicitly."
        )
    classes, unit_class = np.unique(unit_labels, return_inverse=True)
    counts = np.bincount(unit_class, minlength=len(classes))
    min_one = counts >= len(fractions) + 1
    rng = np.random.default_rng(seed)
    order = [rng.permutation(np.flatnonzero(unit_class == c)) for c in range(len(classes))]
    taken = np.zeros(len(classes), dtype=np.int64)
    remaining = counts.copy()
    part_units = []
    for size in sizes:
        q = _quotas(remaining, size, min_one)
        part_units.append(np.concatenate([order[c][taken[c] : taken[c] + q[c]] for c in range(len(classes))]))
        taken += q
        remaining -= q
    parts = []
    assigned = np.zeros(len(labels), dtype=bool)
    for units in part_units:
        rows = np.isin(unit_of_row, units)
        assigned |= rows
        parts.append(np.flatnonzero(rows))
    return [np.flatnonzero(~assigned), *parts]
