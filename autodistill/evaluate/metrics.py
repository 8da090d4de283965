"""Task metrics (scikit-learn), registered by the names that ``data.metric`` accepts.

Every metric takes ``(labels, preds)`` as integer class ids and returns a float, higher is better,
so the search can maximise any of them as "quality".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from autodistill.registry import Registry

Metric = Callable[[np.ndarray, np.ndarray], float]
METRICS: Registry[Metric] = Registry("metric")


def _quiet(fn: Metric) -> Metric:
    # scikit-learn warns when a class is never predicted (or never true): common for weak proxy
    # students on imbalanced data; the value (0 for that class) is what we want, the noise is not.
    def wrapped(labels: np.ndarray, preds: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(labels, preds))

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


@METRICS.register("accuracy")
@_quiet
def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    """Fraction of examples predicted right. Misleading on imbalanced sets (majority class wins)."""
    return skm.accuracy_score(labels, preds)


@METRICS.register("macro_f1")
@_quiet
def macro_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """Unweighted mean of per-class F1: the minority class counts as much as the majority."""
    return skm.f1_score(labels, preds, average="macro", zero_division=0)


@METRICS.register("weighted_f1")
@_quiet
def weighted_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """Per-class F1 weighted by class frequency (close to accuracy on imbalanced sets)."""
    return skm.f1_score(labels, preds, average="weighted", zero_division=0)


@METRICS.register("balanced_accuracy")
@_quiet
def balanced_accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean per-class recall: a majority-class predictor scores 1 / n_classes."""
    return skm.balanced_accuracy_score(labels, preds)


@METRICS.register("mcc")
@_quiet
def mcc(labels: np.ndarray, preds: np.ndarray) -> float:
    """Matthews correlation in [-1, 1]: 0 for constant or random predictions, whatever the balance."""
    return skm.matthews_corrcoef(labels, preds)


def _as_ids(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"The '{name}' argument must be a 1-d array of class ids. Got shape {arr.shape} instead.")
    return arr


def task_metrics(labels: np.ndarray, preds: np.ndarray, metric: str) -> dict[str, float]:
    """Accuracy, macro-F1 and balanced accuracy (mean per-class recall, the class-balanced measure a
    search and a final training watch beside their metric) always, the chosen metric under its name,
    and ``quality`` = its value."""
    fn = METRICS.get(metric)
    y, p = _as_ids(labels, "labels"), _as_ids(preds, "preds")
    if len(y) != len(p):
        raise ValueError(f"labels and preds must have the same length. Got {len(y)} and {len(p)} instead.")
    if len(y) == 0:
        raise ValueError("Cannot compute task metrics on an empty set of examples.")
    out = {"accuracy": accuracy(y, p), "macro_f1": macro_f1(y, p), "balanced_accuracy": balanced_accuracy(y, p)}
    out[metric] = out[metric] if metric in out else fn(y, p)
    out["quality"] = out[metric]
    return out


def per_class_recall(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> list[float | None]:
    """Recall of each class id in ``range(n_classes)``: the share of its examples predicted as it
    (None for a class with no example in ``labels``)."""
    y, p = _as_ids(labels, "labels"), _as_ids(preds, "preds")
    out: list[float | None] = []
    for c in range(n_classes):
        mask = y == c
        out.append(float(np.mean(p[mask] == c)) if mask.any() else None)
    return out


# a class the teacher recalls at least this well is one it handles
HANDLED = 0.5


def dropped_classes(student: list[float | None], teacher: list[float | None], names: list[str]) -> list[str]:
    """Classes the teacher handles (recall >= ``HANDLED``) that the student recalls at under half
    the teacher's recall: the minority classes a student gives up first."""
    return [
        name
        for name, s, t in zip(names, student, teacher)
        if s is not None and t is not None and t >= HANDLED and s < 0.5 * t
    ]


def agreement(preds_a: np.ndarray, preds_b: np.ndarray) -> float:
    """Fraction of examples on which two models predict the same class (e.g. student vs teacher)."""
    a, b = _as_ids(preds_a, "preds_a"), _as_ids(preds_b, "preds_b")
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"agreement needs two non-empty arrays of equal length. Got {len(a)} and {len(b)} instead.")
    return float(np.mean(a == b))
