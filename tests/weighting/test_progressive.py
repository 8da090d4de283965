"""The ``progressive`` weighting's schedule on a hand-made unit list: lower student layers first,
higher ones later, the logit terms last; weights positive, finite, mean 1."""

from __future__ import annotations

import pytest
import torch

from autodistill.errors import ConfigError
from autodistill.losses import CompositeLoss, LossDims
from autodistill.specs import LossSpec, Step
from autodistill.weighting import WEIGHTINGS

# two terms over student layers 1 and 2 (listed out of order), two logit terms
UNITS = ["hidden_mse/s2_t4", "hidden_mse/s1_t2", "attention_relation/s1_t2", "kl", "ce"]
LOW, HIGH, LOGITS = [1, 2], [0], [3, 4]


def weights_at(step: int, total: int = 30, **options) -> torch.Tensor:
    scheme = WEIGHTINGS.get("progressive")(UNITS, scope="all", **options)
    scheme.start(total)
    if step:
        scheme.step_end(step)
    return scheme.weights()


def mean(w: torch.Tensor, idx: list[int]) -> float:
    return float(w[idx].mean())


@pytest.mark.parametrize("step", [0, 5, 10, 15, 20, 25, 30])
def test_weights_are_positive_finite_and_average_one(step):
    w = weights_at(step)
    assert torch.isfinite(w).all() and (w >= 0.05 - 1e-6).all()
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-5)


def test_the_focus_moves_from_the_lowest_layer_to_the_logits():
    start, middle, end = weights_at(0), weights_at(15), weights_at(30)
    # step 0: the lowest layer (stage 0 of 3) holds all the weight above the floor
    assert mean(start, LOW) > 1 and start[HIGH + LOGITS].tolist() == pytest.approx([0.05] * 3)
    # middle: the next layer (stage 1, peaking at half the run) leads
    assert mean(middle, HIGH) > mean(middle, LOW) and mean(middle, HIGH) > mean(middle, LOGITS)
    # end: the logit terms hold all the weight above the floor
    assert mean(end, LOGITS) > 1 and end[LOW + HIGH].tolist() == pytest.approx([0.05] * 3)
    # lower layers heavier early than late, the logits heavier late than early
    assert mean(start, LOW) > mean(middle, LOW) > mean(end, LOW) - 1e-6
    assert mean(end, LOGITS) > mean(middle, LOGITS) - 1e-6 and mean(end, LOGITS) > mean(start, LOGITS)


def test_the_documented_formula():
    # step 10 of 30 with G = 3 stages: x = 1; focus b = (0.5, 0.5, 0) for stages 0, 1, 2
    w = weights_at(10, floor=0.1)
    b = torch.tensor([0.5, 0.5, 0.5, 0.0, 0.0])  # units: s2, s1, s1, kl, ce
    torch.testing.assert_close(w, 0.1 + 0.9 * 5 * b / b.sum())


def test_a_pure_function_of_step_and_total():
    scheme = WEIGHTINGS.get("progressive")(UNITS, scope="all")
    torch.testing.assert_close(scheme.weights(), torch.ones(5))  # no total yet: equal weights
    scheme.start(30)
    for step in range(1, 21):
        scheme.observe(torch.rand(5))  # the losses play no part
        scheme.step_end(step)
    torch.testing.assert_close(scheme.weights(), weights_at(20))
    scheme.start(30)  # a new run starts the schedule again
    torch.testing.assert_close(scheme.weights(), weights_at(0))


@pytest.mark.parametrize(
    ("options", "key"), [({"floor": 0.0}, "floor"), ({"floor": 1.5}, "floor"), ({"width": 2}, "width")]
)
def test_bad_options_name_their_key(options, key):
    spec = LossSpec((Step("hidden_mse"), Step("kl")), weighting=Step("progressive", options))
    with pytest.raises(ConfigError, match=rf"'distill.loss.weighting.{key}'"):
        CompositeLoss(spec, LossDims(16, 16), [(1, 2), (2, 4)])


def test_the_composite_loss_starts_the_schedule_and_weights_layers_by_stage():
    spec = LossSpec((Step("hidden_mse"), Step("kl")), weighting=Step("progressive", {"scope": "all"}))
    loss = CompositeLoss(spec, LossDims(16, 16), [(1, 2), (2, 4)])
    loss.start(10)
    w = loss.current_weights()
    assert list(w) == ["hidden_mse/s1_t2", "hidden_mse/s2_t4", "kl"]
    assert w["hidden_mse/s1_t2"] > 1 > w["hidden_mse/s2_t4"] == pytest.approx(w["kl"])
