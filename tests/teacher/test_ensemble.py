"""Several teachers as one target: the mixture, its per-example and fitted weights, and cached
outputs whose logits are replaced while their features stay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autodistill.teacher.ensemble import (
    Retargeted,
    combine,
    confidence_weights,
    fit_weights,
    log_softmax,
    mixture,
)


def _nll(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


def test_mixture_of_equal_teachers_is_that_teacher():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 3))
    np.testing.assert_allclose(mixture([a, a], np.array([0.5, 0.5])), log_softmax(a), atol=1e-6)


def test_mixture_is_the_weighted_average_of_probabilities():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got = np.exp(mixture([a, b], np.array([0.25, 0.75])))
    want = 0.25 * np.exp(log_softmax(a)) + 0.75 * np.exp(log_softmax(b))
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
    # a weight of 0 drops its teacher entirely
    np.testing.assert_allclose(mixture([a, b], np.array([1.0, 0.0])), log_softmax(a), atol=1e-6)


def test_confidence_weights_favour_the_sure_teacher_per_example():
    sure = np.array([[8.0, 0.0], [0.0, 0.0]])  # sure on the first example, undecided on the second
    unsure = np.array([[0.0, 0.0], [0.0, 8.0]])
    w = confidence_weights([sure, unsure])
    np.testing.assert_allclose(w.sum(0), 1.0)
    assert w[0, 0] > 0.6 and w[1, 1] > 0.6  # each teacher leads where it is sure
    out = np.exp(combine([sure, unsure], "confidence"))
    assert out[0, 0] > 0.8 and out[1, 1] > 0.8


def test_learned_weights_find_the_teacher_that_is_right():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=200)
    right = np.eye(3)[labels] * 4.0  # confident and right
    noise = rng.normal(size=(200, 3)) * 2.0  # confident-ish and random
    w = fit_weights([right, noise], labels)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.8
    fitted = combine([right, noise], "learned", fitted=w)
    equal = combine([right, noise], "mean")
    assert _nll(fitted, labels) < _nll(equal, labels)


def test_fixed_weights_are_normalised_and_learned_needs_its_weights():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(combine([a, b], "mean", [2.0, 6.0]), mixture([a, b], np.array([0.25, 0.75])), atol=1e-6)
    with pytest.raises(ValueError, match="fitted weights"):
        combine([a, b], "learned")


class _Stored:
    """Stand-in for ``TeacherOutputs`` with one hidden layer (the protocol ``Retargeted`` wraps)."""

    cache = None

    def __init__(self) -> None:
        self.splits = {"train": object()}
        self.hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)

    def logits(self, split):
        return np.zeros((2, 2), dtype=np.float32)

    def batch(self, split, indices, seq_len, device="cpu"):
        return {"teacher_logits": torch.zeros(len(indices), 2), "teacher_hidden": {1: self.hidden[indices]}}


def test_retargeted_replaces_logits_and_keeps_features():
    stored = _Stored()
    new = np.array([[1.0, -1.0], [3.0, 2.0]], dtype=np.float32)
    out = Retargeted(stored, {"train": new}, "two teachers").batch("train", np.array([1, 0]), 3)
    torch.testing.assert_close(out["teacher_logits"], torch.from_numpy(new[[1, 0]]))
    torch.testing.assert_close(out["teacher_hidden"][1], stored.hidden[[1, 0]])
