"""The Pareto front of quality (up) against size or latency (down), its hypervolume and knee.

Points are given as rows of objective values with a direction per column; everything here is
plain numpy so the front, the pick and the benchmark all use the same definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_minimise(values: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    v = np.asarray(values, dtype=float).copy()
    for j, up in enumerate(maximise):
        if up:
            v[:, j] = -v[:, j]
    return v


def non_dominated(values: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    """Indices of the rows that no other row dominates (duplicates are all kept)."""
    v = to_minimise(values, maximise)
    keep = []
    for i in range(len(v)):
        dominated = np.any(np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1))
        if not dominated:
            keep.append(i)
    return np.asarray(keep, dtype=int)


def hypervolume_2d(values: np.ndarray, maximise: Sequence[bool], reference: Sequence[float]) -> float:
    """Area dominated by the points and bounded by ``reference`` (two objectives)."""
    v = to_minimise(values, maximise)
    ref = to_minimise(np.asarray([reference], dtype=float), maximise)[0]
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    v = v[np.argsort(v[:, 0])]
    area, best_y = 0.0, ref[1]
    for x, y in v:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def knee(values: np.ndarray, maximise: Sequence[bool]) -> int:
    """The knee of a two-objective front: with both objectives scaled to [0, 1] over the front,
    the point farthest from the line through its two extremes. Returns a row index."""
    v = to_minimise(values, maximise)[:, :2]
    if len(v) <= 2:
        return int(np.argmin(v[:, 0])) if len(v) else -1
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    z = (v - lo) / span
    a, b = z[np.argmin(z[:, 0])], z[np.argmin(z[:, 1])]
    d = b - a
    norm = np.hypot(*d)
    if norm == 0:
        return int(np.argmin(z[:, 0]))
    dist = np.abs(d[0] * (z[:, 1] - a[1]) - d[1] * (z[:, 0] - a[0])) / norm
    return int(np.argmax(dist))
