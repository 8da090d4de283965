"""Contract and direction tests over every registered weighting scheme, on constructed two-term cases."""

from __future__ import annotations

import math

import pytest
import torch

from autodistill.weighting import WEIGHTINGS

UNITS = ["a", "b"]


def run(scheme, losses_per_step, learn: bool = False):
    """Feed per-step losses [(L_a, L_b), ...]; optimise learned weights like the loop would."""
    params = list(scheme.parameters())
    opt = torch.optim.Adam(params, lr=0.05) if learn and params else None
    for step, values in enumerate(losses_per_step, start=1):
        vec = torch.tensor(values, dtype=torch.float32)
        scheme.observe(vec)
        if opt is not None:
            opt.zero_grad()
            scheme.combine(vec).sum().backward()
            opt.step()
        scheme.step_end(step)
    return scheme.weights()


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_weights_start_at_one(name):
    torch.testing.assert_close(WEIGHTINGS.get(name)(UNITS).weights(), torch.ones(2))


@pytest.mark.parametrize("name", WEIGHTINGS.names())
@pytest.mark.parametrize("case", ["random", "zeros", "huge", "one_vanishes"])
def test_weights_stay_positive_and_finite(name, case):
    gen = torch.Generator().manual_seed(0)
    steps = {
        "random": [tuple(torch.rand(2, generator=gen).tolist()) for _ in range(80)],
        "zeros": [(0.0, 0.0)] * 80,
        "huge": [(1e30, 1e-30)] * 80,
        "one_vanishes": [(1.0, 10.0 ** -(i // 4)) for i in range(80)],
    }[case]
    scheme = WEIGHTINGS.get(name)(UNITS, **({"window": 2} if name == "dwa" else {}))
    w = run(scheme, steps, learn=True)
    assert w.shape == (2,) and torch.isfinite(w).all() and (w > 0).all(), w
    out = scheme.combine(torch.tensor(steps[-1]))
    assert torch.isfinite(out).all()


def static_case():
    w = run(WEIGHTINGS.get("static")(UNITS, weights={"b": 2.5}), [(1.0, 5.0)] * 10)
    torch.testing.assert_close(w, torch.tensor([1.0, 2.5]))  # configured weights, never moved


def uncertainty_case():
    # Kendall et al.: optimum s_k = log L_k, so the larger-loss term gets the smaller weight exp(-s_k)
    w = run(WEIGHTINGS.get("uncertainty")(UNITS), [(10.0, 0.1)] * 400, learn=True)
    assert w[0] < 1 < w[1]
    assert math.isclose(float(w[0]), 0.1, rel_tol=0.15) and math.isclose(float(w[1]), 10.0, rel_tol=0.15)


def dwa_case():
    # Liu et al.: the term whose loss descends slower (b: flat) gains weight over the fast one (a: halves)
    steps = [(0.5**i, 1.0) for i in range(8)]
    w = run(WEIGHTINGS.get("dwa")(UNITS, window=2, temperature=2.0), steps)
    assert w[1] > 1 > w[0]
    # last two windows: a's mean falls by 1/4, b's ratio is 1
    expected = 2 * torch.softmax(torch.tensor([0.25 / 2, 1.0 / 2]), 0)
    torch.testing.assert_close(w, expected)


def lag_case():
    # a closes 90% of its gap to the teacher, b none of it: b is where the student lags, b gains weight
    steps = [(1.0, 1.0)] * 5 + [(0.1, 1.0)] * 60
    w = run(WEIGHTINGS.get("lag")(UNITS, warmup=5, ema=0.5, alpha=1.0), steps)
    assert w[1] > 1 > w[0]
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))
    torch.testing.assert_close(w, 2 * torch.tensor([0.1, 1.0]) / 1.1, rtol=1e-3, atol=1e-4)


def progressive_case():
    # the focus moves up the student: its lower layer first, the logit term (no layer) last
    units = ["hidden_mse/s1_t2", "hidden_mse/s2_t4", "kl"]
    scheme = WEIGHTINGS.get("progressive")(units, scope="all")
    scheme.start(30)
    early = run(scheme, [(1.0, 1.0, 1.0)] * 1)
    late = run(scheme, [(1.0, 1.0, 1.0)] * 29)
    assert early[0] > early[1] and early[0] > early[2]
    assert late[2] > late[0] and late[2] > late[1]


DIRECTION = {
    "static": static_case,
    "uncertainty": uncertainty_case,
    "dwa": dwa_case,
    "lag": lag_case,
    "progressive": progressive_case,
}


def test_every_scheme_has_a_direction_test():
    assert set(DIRECTION) == set(WEIGHTINGS.names())


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_scheme_moves_weights_the_way_its_paper_says(name):
    DIRECTION[name]()


def test_lag_alpha_zero_keeps_equal_weights():
    steps = [(1.0, 1.0)] * 3 + [(0.1, 1.0)] * 20
    torch.testing.assert_close(run(WEIGHTINGS.get("lag")(UNITS, warmup=3, alpha=0.0), steps), torch.ones(2))


def test_accumulated_forwards_average_into_one_step():
    scheme = WEIGHTINGS.get("dwa")(UNITS, window=1)
    for values in [(2.0, 1.0), (4.0, 1.0)]:  # two forwards, one optimiser step: mean (3, 1)
        scheme.observe(torch.tensor(values))
    scheme.step_end(1)
    scheme.observe(torch.tensor([3.0, 2.0]))
    scheme.step_end(2)
    torch.testing.assert_close(scheme.weights(), 2 * torch.softmax(torch.tensor([1.0 / 2, 2.0 / 2]), 0))
