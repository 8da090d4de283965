"""Top-k teacher targets: compression, the k + 1 buckets of teacher and student, the tail's
temperature model, and what caching top-k loses (reconstruction KL)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autodistill.tasks.causal_lm.topk import (
    TopK,
    compress,
    reconstruction_kl,
    student_log_probs,
    teacher_log_probs,
)


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    e = np.exp((z - z.max(-1, keepdims=True)) / temperature)
    return e / e.sum(-1, keepdims=True)


def buckets(probs: np.ndarray, indices: list[int]) -> np.ndarray:
    """The k kept probabilities, then the mass of every other token."""
    kept = probs[indices]
    return np.append(kept, probs.sum() - kept.sum())


LOGITS = [1.0, 3.0, -2.0, 0.5, 2.0]  # sorted: 3.0 (1), 2.0 (4), 1.0 (0), 0.5 (3), -2.0 (2)


def test_compress_keeps_the_top_k_and_the_tail_log_sum_exp():
    t = compress(torch.tensor([LOGITS]), 2)
    assert t.vocab == 5 and t.k == 2
    assert t.values.tolist() == [[3.0, 2.0]]
    assert t.indices.tolist() == [[1, 4]]
    assert t.indices.dtype == torch.long
    expected = math.log(math.exp(1.0) + math.exp(0.5) + math.exp(-2.0))
    assert t.rest_lse.shape == (1,)
    assert math.isclose(float(t.rest_lse[0]), expected, rel_tol=1e-6)


def test_compress_caps_k_at_the_vocabulary_and_the_tail_is_empty():
    t = compress(torch.tensor(LOGITS), 9)
    assert t.k == 5 and t.values.tolist() == sorted(LOGITS, reverse=True)
    assert float(t.rest_lse) == -math.inf
    with pytest.raises(ValueError, match="k >= 1"):
        compress(torch.tensor(LOGITS), 0)


def test_to_moves_every_tensor_and_keeps_the_vocabulary():
    t = compress(torch.tensor([LOGITS]), 3).to("cpu")
    assert isinstance(t, TopK) and t.vocab == 5
    assert {x.device.type for x in (t.values, t.indices, t.rest_lse)} == {"cpu"}


def test_teacher_buckets_are_exact_at_t1():
    z = np.array(LOGITS)
    got = teacher_log_probs(compress(torch.tensor(z, dtype=torch.float32), 2), 1.0).exp().numpy()
    np.testing.assert_allclose(got, buckets(softmax(z), [1, 4]), rtol=1e-5)


def test_teacher_tail_at_other_temperatures_is_exact_when_the_tail_is_uniform():
    z = np.array([4.0, 2.0, -1.0, -1.0, -1.0])
    t = compress(torch.tensor(z, dtype=torch.float32), 2)
    for temperature in (0.5, 2.0, 4.0):
        got = teacher_log_probs(t, temperature).exp().numpy()
        np.testing.assert_allclose(got, buckets(softmax(z, temperature), [0, 1]), rtol=1e-5)


def test_teacher_tail_at_other_temperatures_follows_the_uniform_model():
    """A spread tail: at T = 2 the model puts the tail at (rest_lse - log 3) / 2 + log 3, not the
    true tail's lse; the kept tokens keep their ratio."""
    z = np.array(LOGITS)
    t = compress(torch.tensor(z, dtype=torch.float32), 2)
    rest = math.log(math.exp(1.0) + math.exp(0.5) + math.exp(-2.0))
    scores = np.array([3.0 / 2, 2.0 / 2, (rest - math.log(3)) / 2 + math.log(3)])
    got = teacher_log_probs(t, 2.0).exp().numpy()
    np.testing.assert_allclose(got, softmax(scores), rtol=1e-5)
    true_tail = buckets(softmax(z, 2.0), [1, 4])[-1]
    assert got[-1] > true_tail  # for T > 1 the uniform tail is the heaviest one (Jensen)


def test_student_buckets_are_exact_at_every_temperature():
    gen = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(3, 7, generator=gen), torch.randn(3, 7, generator=gen)
    t = compress(teacher, 3)
    for temperature in (0.5, 1.0, 3.0):
        got = student_log_probs(student, t, temperature).exp().numpy()
        for row in range(3):
            expected = buckets(softmax(student[row].numpy(), temperature), t.indices[row].tolist())
            np.testing.assert_allclose(got[row], expected, rtol=1e-5)


def test_student_tail_is_finite_when_the_top_k_hold_almost_all_the_mass():
    # 1 - sum(kept) is 0 in float32 here; the masked tail is not
    student = torch.tensor([[60.0, 0.0, 0.0, 0.0, 0.0]])
    t = compress(torch.tensor([[5.0, 0.0, 0.0, 0.0, 0.0]]), 1)
    got = student_log_probs(student, t, 1.0)
    assert math.isclose(float(got[0, 1]), -60.0 + math.log(4.0), rel_tol=1e-5)


def test_with_the_whole_vocabulary_the_tail_bucket_is_empty():
    z = torch.tensor([LOGITS])
    t = compress(z, 5)
    p, q = teacher_log_probs(t, 2.0), student_log_probs(z, t, 2.0)
    assert float(p[0, -1]) == -math.inf and float(q[0, -1]) == -math.inf
    np.testing.assert_allclose(p[0, :-1].exp().numpy(), softmax(np.array(LOGITS), 2.0)[t.indices[0]], rtol=1e-5)
    torch.testing.assert_close(p, q)


def test_reconstruction_kl_by_hand():
    # the kept tokens are exact at T = 1, so only the tail (0.2, 0.05), rebuilt as (0.125, 0.125), loses
    probs = np.array([0.5, 0.25, 0.2, 0.05])
    tail = probs[2:]
    expected = float((tail * np.log(tail / (tail.sum() / 2))).sum())
    got = reconstruction_kl(torch.tensor(np.log(probs), dtype=torch.float32), 2)
    assert math.isclose(float(got), expected, rel_tol=1e-4)


def test_reconstruction_kl_is_zero_with_the_whole_vocabulary_and_falls_with_k():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3, 6, 10, generator=gen) * 2
    assert float(reconstruction_kl(z, 10)) == 0.0
    assert float(reconstruction_kl(z, 50, temperature=2.0)) == 0.0
    values = [float(reconstruction_kl(z, k)) for k in range(1, 10)]
    assert all(a > b for a, b in zip(values[:-2], values[1:-1])), values
    assert values[-1] < 1e-6  # one tail token: the uniform tail is the true one


def test_reconstruction_kl_is_zero_for_a_uniform_tail_at_any_temperature():
    z = torch.tensor([[3.0, 1.0, -0.5, -0.5, -0.5, -0.5]])
    for temperature in (0.5, 1.0, 3.0):
        assert float(reconstruction_kl(z, 2, temperature)) < 1e-6
