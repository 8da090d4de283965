"""Small frames and configs for the data tests."""

from __future__ import annotations

import pandas as pd

from autodistill.config.run import DataConfig


def make_frame(n: int = 200, classes: tuple[str, ...] = ("neg", "pos"), weights: tuple[int, ...] | None = None):
    """n rows of unique texts with labels cycling through ``classes`` (repeated per ``weights``)."""
    weights = weights or (1,) * len(classes)
    cycle = [c for c, w in zip(classes, weights) for _ in range(w)]
    labels = [cycle[i % len(cycle)] for i in range(n)]
    texts = [f"example number {i} " + "word " * (i % 17) for i in range(n)]
    return pd.DataFrame({"text": texts, "label": labels})


def cfg_for(source, **kw) -> DataConfig:
    return DataConfig(source=str(source), **kw)
