"""The validation patience rule on hand-made curves, and the causal-LM loop honouring it: it stops
at patience, ends on the best checkpoint's weights, and runs to the cap when nothing stops it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from autodistill.specs import TrainSpec
from autodistill.tasks.causal_lm.data import LMSplit
from autodistill.tasks.causal_lm.losses import build_lm_loss
from autodistill.tasks.causal_lm.train import train_lm
from autodistill.train.stopping import Patience


def curve(*qualities: float) -> list[tuple[int, float]]:
    return [(10 * (i + 1), q) for i, q in enumerate(qualities)]


def test_stops_after_patience_checkpoints_without_a_gain_and_names_the_best():
    rule = Patience(2)
    assert rule.check(curve(0.5, 0.6, 0.59)) is None  # one checkpoint without a gain
    why = rule.check(curve(0.5, 0.6, 0.59, 0.58))
    assert why is not None and "2 checkpoints" in why and "0.6000 at step 20" in why


def test_a_new_best_resets_the_count():
    rule = Patience(2)
    assert rule.check(curve(0.5, 0.4, 0.6, 0.55)) is None
    assert rule.check(curve(0.5, 0.4, 0.3)) is not None


def test_gains_within_min_delta_are_not_gains():
    assert Patience(2, min_delta=0.01).check(curve(0.5, 0.505, 0.509)) is not None
    assert Patience(2, min_delta=0.01).check(curve(0.5, 0.52, 0.509)) is None
    assert Patience(1).check(curve(0.5, 0.5)) is not None  # equal is no gain


def test_a_gain_within_min_delta_is_no_gain_but_is_the_checkpoint_named():
    """The loop keeps any checkpoint at least as good as the best so far; the stop names that one."""
    why = Patience(2, min_delta=0.01).check(curve(0.5, 0.505, 0.503))
    assert why is not None and "0.5050 at step 20" in why


def test_a_tie_is_no_gain_but_names_the_later_checkpoint():
    why = Patience(2).check(curve(0.5, 0.6, 0.6, 0.58))
    assert why is not None and "0.6000 at step 30" in why


def test_empty_and_bad_rules():
    assert Patience(1).check([]) is None
    with pytest.raises(ValueError, match="patience"):
        Patience(0)
    with pytest.raises(ValueError, match="min_delta"):
        Patience(1, min_delta=-1)


def _tiny() -> tuple[torch.nn.Module, LMSplit]:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=32,
    )  # fmt: skip
    ids = torch.randint(0, 50, (16, 8)).numpy()
    split = LMSplit(input_ids=ids, attention_mask=np.ones_like(ids), labels=ids.copy(), documents=16)
    return LlamaForCausalLM(config), split


class _NoTargets:
    def batch(self, rows, block, device="cpu"):
        return None


def _run(qualities: list[float], patience: int | None, steps: int = 10):
    model, split = _tiny()
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def evaluate(step: int) -> float:
        seen[step] = {k: v.clone() for k, v in model.state_dict().items()}
        return qualities[len(seen) - 1]

    spec = TrainSpec(steps=steps, batch_size=4, lr=1e-2, eval_every=1, seed=0, patience=patience)
    result = train_lm(
        model, build_lm_loss([{"name": "ce", "weight": 1.0}], 1.0), split, _NoTargets(), np.arange(16), spec,
        evaluate=evaluate, keep_best=True, progress=False,
    )  # fmt: skip
    return model, result, seen


@pytest.mark.parametrize(
    "qualities, best",
    [
        ([0.1, 0.3, 0.2, 0.25, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], 2),  # a falling curve: the best kept
        ([0.1, 0.3, 0.3, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], 3),  # of two equal checkpoints, the later
    ],
)
def test_the_loop_stops_at_patience_and_ends_on_the_best_weights(qualities, best):
    model, result, seen = _run(qualities, patience=2)
    assert result.stopped_early and result.steps == 4 and result.best_step == best
    assert f"best 0.3000 at step {best}" in result.stop_reason
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[best][k]), k
    assert any(not torch.equal(v, seen[2][k]) for k, v in seen[3].items())  # the two 0.3s differ


def test_the_loop_runs_to_the_cap_when_validation_keeps_improving():
    _, result, _ = _run([0.1 * i for i in range(1, 11)], patience=1)
    assert not result.stopped_early and result.steps == 10 and result.best_step == 10
    _, result, _ = _run([0.5] * 10, patience=None)
    assert not result.stopped_early and result.steps == 10


def test_full_runs_take_distill_patience_and_proxies_never_do():
    from autodistill.config.run import RunConfig
    from autodistill.config.schema import parse
    from autodistill.tasks.base import train_spec

    cfg = parse(RunConfig, {"distill": {"patience": 3, "mode": "full"}}, "")
    assert train_spec(cfg, 100).patience == 3
    proxy = parse(RunConfig, {"distill": {"patience": 3, "mode": "proxy"}}, "")
    assert train_spec(proxy, 100).patience is None
