"""The causal-LM losses on top-k targets: hand-computed values, agreement with the full-distribution
formulas when k == V, the label mask, gradients, extreme logits and the composite's config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.losses import LM_LOSSES, build_lm_loss, loss_mask
from autodistill.tasks.causal_lm.topk import compress

DIVERGENCES = ["fkl", "rkl", "jsd", "skl", "srkl", "tv"]


def loss(name: str, **options):
    return LM_LOSSES.get(name)(**options)


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    e = np.exp((z - z.max(-1, keepdims=True)) / temperature)
    return e / e.sum(-1, keepdims=True)


def kl(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * np.log(a / b)).sum())


def expected(name: str, p: np.ndarray, q: np.ndarray, temperature: float, **options) -> float:
    """One position's value, straight from the formula (p: teacher, q: student)."""
    t2 = temperature**2
    if name == "fkl":
        return kl(p, q) * t2
    if name == "rkl":
        return kl(q, p) * t2
    if name == "jsd":
        beta = options.get("beta", 0.5)
        m = beta * p + (1 - beta) * q
        return (beta * kl(p, m) + (1 - beta) * kl(q, m)) * t2
    if name == "skl":
        alpha = options.get("alpha", 0.1)
        return kl(p, alpha * p + (1 - alpha) * q) * t2
    if name == "srkl":
        alpha = options.get("alpha", 0.1)
        return kl(q, alpha * q + (1 - alpha) * p) * t2
    assert name == "tv"
    return 0.5 * float(np.abs(p - q).sum())


def one_position(teacher: list[float], student: list[float], k: int):
    """B = 1, L = 2: position 0 predicts label[1] and counts; position 1 (the last) never does."""
    s = torch.tensor([[student, [9.0] * len(student)]], dtype=torch.float32)
    t = compress(torch.tensor([[teacher, [0.0] * len(teacher)]], dtype=torch.float32), k)
    return s, t, torch.tensor([[0, 1]])


def test_registered_names():
    assert LM_LOSSES.names() == ["ce", "fkl", "hidden_cos", "hidden_mse", "jsd", "rkl", "skl", "srkl", "tv"]


def test_loss_mask_excludes_exactly_the_position_before_a_minus_100():
    labels = torch.tensor([[1, 2, -100, 3, -100], [-100, 4, 5, 6, 7]])
    assert loss_mask(labels).tolist() == [[True, False, True, False, False], [True, True, True, True, False]]


def test_divergences_by_hand():
    # teacher p = (1/2, 1/4, 1/8, 1/8), k = 2: buckets (1/2, 1/4, 1/4); uniform student: (1/4, 1/4, 1/2)
    s, t, labels = one_position([math.log(4), math.log(2), 0.0, 0.0], [0.0] * 4, 2)
    ln2 = math.log(2)
    m = (3 / 8, 1 / 4, 3 / 8)  # beta = 1/2
    jsd = 0.5 * (0.5 * math.log(0.5 / m[0]) + 0.25 * math.log(0.25 / m[2])) + 0.5 * (
        0.25 * math.log(0.25 / m[0]) + 0.5 * math.log(0.5 / m[2])
    )
    hand = {"fkl": 0.5 * ln2 - 0.25 * ln2, "rkl": -0.25 * ln2 + 0.5 * ln2, "tv": 0.25, "jsd": jsd}
    for name, value in hand.items():
        assert math.isclose(float(loss(name)(s, t, labels, 1.0)), value, rel_tol=1e-5), name


@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize(
    ("name", "options"),
    [("fkl", {}), ("rkl", {}), ("jsd", {"beta": 0.3}), ("skl", {}), ("srkl", {"alpha": 0.25}), ("tv", {})],
)
def test_each_divergence_against_its_formula_on_the_buckets(name, options, temperature):
    """V = 5, k = 2, a uniform teacher tail (so the tail model is exact at T = 2 as well)."""
    teacher = np.array([-0.7, 2.0, -0.7, 1.2, -0.7])  # kept: 1 (2.0), 3 (1.2); tail: 0, 2, 4 all equal
    student = np.array([0.5, -0.4, 1.5, 0.1, -2.0])
    s, t, labels = one_position(teacher.tolist(), student.tolist(), 2)
    p = softmax(teacher, temperature)
    q = softmax(student, temperature)
    p = np.append(p[[1, 3]], p[[0, 2, 4]].sum())
    q = np.append(q[[1, 3]], q[[0, 2, 4]].sum())
    got = float(loss(name, **options)(s, t, labels, temperature))
    assert math.isclose(got, expected(name, p, q, temperature, **options), rel_tol=1e-4)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_with_k_equal_to_v_the_loss_is_the_full_distribution_divergence(name):
    gen = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(2, 4, 5, generator=gen) * 2, torch.randn(2, 4, 5, generator=gen) * 2
    labels = torch.tensor([[1, 2, -100, 3], [4, -100, 0, 1]])  # counted: (0,0), (0,2), (1,1), (1,2)
    temperature = 1.5
    got = float(loss(name)(student, compress(teacher, 5), labels, temperature))
    counted = [(0, 0), (0, 2), (1, 1), (1, 2)]
    values = [
        expected(name, softmax(teacher[b, i].numpy(), temperature), softmax(student[b, i].numpy(), temperature), 1.5)
        for b, i in counted
    ]
    assert math.isclose(got, sum(values) / len(values), rel_tol=1e-4)


def test_skew_with_alpha_zero_is_the_plain_kl():
    gen = torch.Generator().manual_seed(2)
    s, t = torch.randn(1, 3, 6, generator=gen), compress(torch.randn(1, 3, 6, generator=gen), 3)
    labels = torch.tensor([[0, 1, 2]])
    torch.testing.assert_close(loss("skl", alpha=0.0)(s, t, labels, 2.0), loss("fkl")(s, t, labels, 2.0))
    torch.testing.assert_close(loss("srkl", alpha=0.0)(s, t, labels, 2.0), loss("rkl")(s, t, labels, 2.0))


def test_ce_is_the_next_token_cross_entropy_of_counted_positions():
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(2, 3, 4, generator=gen)
    labels = torch.tensor([[3, 1, -100], [0, 2, 3]])  # counted: (0,0) -> 1, (1,0) -> 2, (1,1) -> 3
    nll = [-math.log(softmax(s[b, i].numpy())[y]) for b, i, y in [(0, 0, 1), (1, 0, 2), (1, 1, 3)]]
    got = float(loss("ce")(s, None, labels, 4.0))  # neither teacher nor T matters
    assert math.isclose(got, sum(nll) / 3, rel_tol=1e-5)


@pytest.mark.parametrize("name", [*DIVERGENCES, "ce"])
def test_uncounted_positions_do_not_matter_and_counted_ones_do(name):
    gen = torch.Generator().manual_seed(4)
    s, t = torch.randn(1, 4, 6, generator=gen), compress(torch.randn(1, 4, 6, generator=gen), 2)
    labels = torch.tensor([[5, 1, -100, 2]])  # position 1 and the last do not count
    base = loss(name)(s, t, labels, 1.0)
    for position, counts in [(1, False), (3, False), (0, True), (2, True)]:
        changed = s.clone()
        changed[0, position] = torch.tensor([4.0, -3.0, 0.0, 2.0, 1.0, -1.0])
        moved = not torch.allclose(loss(name)(changed, t, labels, 1.0), base)
        assert moved == counts, (name, position)


def test_no_counted_position_gives_zero():
    s, t = torch.randn(1, 3, 5), compress(torch.randn(1, 3, 5), 2)
    labels = torch.tensor([[1, -100, -100]])
    for name in [*DIVERGENCES, "ce"]:
        assert float(loss(name)(s, t, labels, 1.0)) == 0.0


@pytest.mark.parametrize("name", [*DIVERGENCES, "ce"])
def test_gradients_reach_the_student_and_not_the_targets(name):
    gen = torch.Generator().manual_seed(5)
    s = torch.randn(2, 3, 6, generator=gen).requires_grad_()
    teacher = torch.randn(2, 3, 6, generator=gen).requires_grad_()
    t = compress(teacher, 3)
    t.values.requires_grad_()
    t.rest_lse.requires_grad_()
    labels = torch.tensor([[1, 2, 3], [4, -100, 5]])
    loss(name)(s, t, labels, 2.0).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    counted = loss_mask(labels)
    assert s.grad[counted].abs().sum() > 0
    assert s.grad[~counted].abs().sum() == 0
    assert teacher.grad is None and t.values.grad is None and t.rest_lse.grad is None


@pytest.mark.parametrize("k", [2, 6])
@pytest.mark.parametrize("temperature", [0.25, 1.0, 8.0])
def test_extreme_logits_stay_finite_and_non_negative(k, temperature):
    s = torch.tensor([[[1e4, -1e4, 0.0, 3e4, -3e4, 5.0], [0.0] * 6, [-1e4] * 5 + [1e4]]]).requires_grad_()
    teacher = torch.tensor([[[-3e4, 3e4, 0.0, -1e4, 1e4, 0.0], [6e4] + [0.0] * 5, [1e4] * 5 + [-1e4]]])
    t = compress(teacher.half(), k)  # values as they come off disk
    t.values = t.values.half()
    labels = torch.tensor([[0, 1, 2]])
    for name in [*DIVERGENCES, "ce"]:
        s.grad = None
        value = loss(name)(s, t, labels, temperature)
        value.backward()
        assert torch.isfinite(value) and float(value.detach()) >= 0, (name, float(value.detach()))
        assert torch.isfinite(s.grad).all(), name


@pytest.mark.parametrize("name", DIVERGENCES)
def test_identical_distributions_give_zero(name):
    z = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(6)) * 5
    labels = torch.ones(2, 3, dtype=torch.long)
    assert float(loss(name)(z, compress(z, 7), labels, 2.0)) < 1e-6


def test_the_composite_sums_weighted_terms():
    gen = torch.Generator().manual_seed(7)
    s, t = torch.randn(2, 4, 6, generator=gen), compress(torch.randn(2, 4, 6, generator=gen), 3)
    labels = torch.tensor([[1, 2, 3, 4], [5, 0, -100, 1]])
    composite = build_lm_loss([{"name": "fkl", "weight": 0.5}, {"name": "jsd", "beta": 0.2}, {"name": "ce"}], 2.0)
    total, logged = composite(s, t, labels)
    fkl = float(loss("fkl")(s, t, labels, 2.0))
    jsd = float(loss("jsd", beta=0.2)(s, t, labels, 2.0))
    ce = float(loss("ce")(s, t, labels, 2.0))
    assert set(logged) == {"fkl", "jsd", "ce", "total"}
    assert math.isclose(logged["fkl"], fkl, rel_tol=1e-6) and math.isclose(logged["jsd"], jsd, rel_tol=1e-6)
    assert math.isclose(float(total), 0.5 * fkl + jsd + ce, rel_tol=1e-6)
    assert math.isclose(logged["total"], float(total), rel_tol=1e-6)
    assert composite.uses_teacher and not build_lm_loss([{"name": "ce"}], 1.0).uses_teacher


@pytest.mark.parametrize(
    ("terms", "temperature", "message"),
    [
        (
            [{"name": "fkl"}, {"name": "kl"}],
            1,
            r"'distill\.loss\.terms\[1\]\.name'.*ce, fkl, hidden_cos, hidden_mse, jsd, rkl, skl, srkl, tv",
        ),
        ([{"name": "jsd", "beta": 1.0}], 1.0, r"'distill\.loss\.terms\[0\]\.beta'.*must be in \(0, 1\)"),
        ([{"name": "skl", "alpha": 1.0}], 1.0, r"'distill\.loss\.terms\[0\]\.alpha'.*must be in \[0, 1\)"),
        ([{"name": "fkl", "gamma": 2}], 1.0, r"'distill\.loss\.terms\[0\]\.gamma'.*not a known key"),
        ([{"name": "tv", "beta": 0.5}], 1.0, r"'distill\.loss\.terms\[0\]\.beta'"),
        ([{"name": "rkl", "weight": -1}], 1.0, r"'distill\.loss\.terms\[0\]\.weight'.*>= 0"),
        ([{"name": "rkl"}, {"name": "rkl"}], 1.0, r"'distill\.loss\.terms\[1\]\.name'.*repeats"),
        ([{"weight": 1.0}], 1.0, r"'distill\.loss\.terms\[0\]'.*'name'"),
        ([], 1.0, r"'distill\.loss\.terms'.*non-empty"),
        ([{"name": "fkl"}], 0.0, r"'distill\.loss\.temperature'.*> 0"),
    ],
)
def test_build_lm_loss_errors_name_the_key(terms, temperature, message):
    with pytest.raises(ConfigError, match=message):
        build_lm_loss(terms, temperature)


def test_wrong_inputs_are_reported():
    s, t = torch.randn(1, 3, 5), compress(torch.randn(1, 2, 5), 2)
    with pytest.raises(ValueError, match="fkl"):
        loss("fkl")(s, t, torch.ones(1, 3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="top-k targets"):
        loss("rkl")(s, None, torch.ones(1, 3, dtype=torch.long), 1.0)
