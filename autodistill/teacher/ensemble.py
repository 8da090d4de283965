"""Several teachers as one target (``teacher.extra``, ``distill.combine``), and cached outputs whose
logits come from elsewhere (combined teachers, a teacher assistant).

Teachers are combined as a mixture of their predicted distributions, ``p(y|x) = sum_i w_i(x)
p_i(y|x)``, whose log is the target logits (softmax of it gives the mixture back at T = 1, and
the loss's temperature softens it like any teacher's): ``mean`` with fixed weights, ``confidence``
with each example's weights proportional to each teacher's top probability on it, ``learned``
with the weights that maximise the likelihood of the validation labels (EM for mixture weights:
each step is a closed form that never lowers the likelihood, and the problem is convex, so the
optimum is found without a learning rate to tune). Only logits are combined, so the teachers may
use different tokenizers: each is run on the texts with its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

COMBINES = ("mean", "confidence", "learned")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def mixture(logits: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``log sum_i w_i p_i`` per example: ``weights`` ``[K]`` (one per teacher) or ``[K, N]``."""
    lp = np.stack([log_softmax(x) for x in logits])  # [K, N, C]
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64).reshape(len(logits), -1), lp.shape[:2])
    with np.errstate(divide="ignore"):  # a weight of 0 drops its teacher
        scored = lp + np.log(w)[..., None]
    top = scored.max(0)
    return (top + np.log(np.exp(scored - top).sum(0))).astype(np.float32)


def confidence_weights(logits: list[np.ndarray]) -> np.ndarray:
    """``[K, N]``: each example's weights, proportional to each teacher's top probability on it."""
    conf = np.stack([np.exp(log_softmax(x).max(-1)) for x in logits])
    return conf / conf.sum(0, keepdims=True)


def fit_weights(logits: list[np.ndarray], labels: np.ndarray, iterations: int = 200) -> np.ndarray:
    """The mixture weights ``[K]`` that maximise the likelihood of ``labels`` (EM, from equal weights)."""
    labels = np.asarray(labels, dtype=np.int64)
    # p_i(y_n | x_n) for each teacher i and example n
    p = np.stack([np.exp(log_softmax(x))[np.arange(len(labels)), labels] for x in logits])
    w = np.full(len(logits), 1.0 / len(logits))
    for _ in range(iterations):
        resp = w[:, None] * p
        resp /= np.maximum(resp.sum(0, keepdims=True), 1e-300)
        w = resp.mean(1)
    return w


def combine(
    logits: list[np.ndarray], how: str, weights: list[float] | None = None, fitted: np.ndarray | None = None
) -> np.ndarray:
    """The target logits of several teachers' logits on one split, combined ``how``
    (``COMBINES``): ``weights`` for ``mean`` (None: equal), ``fitted`` (``fit_weights`` on
    validation) for ``learned``."""
    if how == "confidence":
        return mixture(logits, confidence_weights(logits))
    if how == "learned":
        if fitted is None:
            raise ValueError("combine(how='learned') needs the fitted weights (fit_weights on validation).")
        return mixture(logits, fitted)
    if how != "mean":
        raise ValueError(f"unknown combination {how!r}; valid: {', '.join(COMBINES)}")
    w = np.full(len(logits), 1.0) if weights is None else np.asarray(weights, dtype=np.float64)
    return mixture(logits, w / w.sum())


class Retargeted:
    """Cached teacher outputs (``teacher.cache.TeacherOutputs``) with their logits replaced, split by
    split; every feature (hidden states, attention) still comes from the teacher's cache. ``origin``
    says where the logits come from, for error messages."""

    def __init__(self, outputs: Any, logits: dict[str, np.ndarray], origin: str) -> None:
        self.outputs = outputs
        self.splits = outputs.splits
        self.cache = outputs.cache
        self._logits = logits
        self.origin = origin

    def logits(self, split: str) -> np.ndarray:
        return np.asarray(self._logits[split], dtype=np.float32)

    def batch(self, split: str, indices: np.ndarray, seq_len: int, device: Any = "cpu") -> dict[str, Any]:
        out = self.outputs.batch(split, indices, seq_len, device)
        out["teacher_logits"] = torch.from_numpy(self.logits(split)[indices]).to(device)
        return out
