from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import sentiment_split, tiny_bert_config, tiny_tokenizer

from autodistill.data import encode
from autodistill.errors import TrainingError
from autodistill.losses import CompositeLoss, LossDims
from autodistill.specs import LossSpec, Step, TrainSpec
from autodistill.train.loop import StopTraining, train
from autodistill.train.qat import is_fake_quantised


@pytest.fixture
def tiny(tmp_path):
    from transformers import BertForSequenceClassification

    tok = tiny_tokenizer(tmp_path / "tok")
    split = sentiment_split(120)
    enc = encode(split, tok, 32)
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok), layers=2))
    ce = CompositeLoss(LossSpec((Step("ce"),)), LossDims(32, 32))
    return model, ce, enc, tok.pad_token_id


def test_training_lowers_the_loss_and_is_seeded(tiny):
    model, ce, enc, pad = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    spec = TrainSpec(steps=40, batch_size=16, lr=3e-3, seed=3)
    res = train(model, ce, enc, np.arange(len(enc.labels)), spec, pad, progress=False)
    first = np.mean([h["loss"] for h in res.history[:5]])
    last = np.mean([h["loss"] for h in res.history[-5:]])
    assert res.steps == 40 and last < first
    model.load_state_dict(state)
    again = train(model, ce, enc, np.arange(len(enc.labels)), spec, pad, progress=False)
    assert [h["loss"] for h in again.history] == pytest.approx([h["loss"] for h in res.history], rel=1e-5)


def test_warmup_then_linear_decay(tiny):
    model, ce, enc, pad = tiny
    lrs = []
    orig = torch.optim.AdamW.step

    def spy(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.AdamW.step = spy
    try:
        train(
            model,
            ce,
            enc,
            np.arange(60),
            TrainSpec(steps=10, batch_size=8, lr=1e-3, warmup_ratio=0.2),
            pad,
            progress=False,
        )
    finally:
        torch.optim.AdamW.step = orig
    assert lrs[0] < lrs[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] < 2e-4


class NaNAfter(torch.nn.Module):
    needs = frozenset()

    def __init__(self, inner, at):
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0

    def forward(self, batch):
        self.calls += 1
        loss, parts = self.inner(batch)
        if self.calls >= self.at:
            loss = loss * float("nan")
        return loss, parts


def test_non_finite_loss_stops_with_a_clear_reason(tiny):
    model, ce, enc, pad = tiny
    with pytest.raises(TrainingError, match="became nan at step 3 .*distill.lr"):
        train(model, NaNAfter(ce, 3), enc, np.arange(60), TrainSpec(steps=10, batch_size=8), pad, progress=False)


def test_evaluate_callback_keep_best_and_stop(tiny):
    model, ce, enc, pad = tiny
    scores = iter([0.9, 0.5, 0.4])

    def evaluate(step):
        return next(scores)

    res = train(
        model,
        ce,
        enc,
        np.arange(60),
        TrainSpec(steps=6, batch_size=8, eval_every=2),
        pad,
        evaluate=evaluate,
        keep_best=True,
        progress=False,
    )
    assert res.evals == [(2, 0.9), (4, 0.5), (6, 0.4)] and res.best_step == 2

    def stop(step):
        raise StopTraining("hopeless")

    res = train(
        model,
        ce,
        enc,
        np.arange(60),
        TrainSpec(steps=6, batch_size=8, eval_every=2),
        pad,
        evaluate=stop,
        progress=False,
    )
    assert res.stopped_early and res.steps == 2


def test_keep_best_restores_the_best_weights(tiny):
    model, ce, enc, pad = tiny
    snapshots = []

    def evaluate(step):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return 1.0 if step == 2 else 0.1

    train(
        model,
        ce,
        enc,
        np.arange(60),
        TrainSpec(steps=6, batch_size=8, lr=1e-2, eval_every=2),
        pad,
        evaluate=evaluate,
        keep_best=True,
        progress=False,
    )
    best = snapshots[0]
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())


class Spy(torch.nn.Module):
    """CE + KL that records what each step's loss saw."""

    needs = frozenset()

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, batch):
        self.seen.append((batch.labels.clone(), batch.teacher_logits.clone(), batch.student_logits.shape[0]))
        ce = torch.nn.functional.cross_entropy(batch.student_logits, batch.labels)
        kl = torch.nn.functional.kl_div(
            batch.student_logits.log_softmax(-1),
            batch.teacher_logits.log_softmax(-1),
            reduction="batchmean",
            log_target=True,
        )
        return ce + kl, {"ce": float(ce.detach()), "kl": float(kl.detach())}


def test_augmented_copies_join_each_step_labelled_by_the_teacher_alone(tiny, tmp_path):
    from transformers import BertForSequenceClassification

    from autodistill.config.run import AugmentConfig
    from autodistill.data import token_counts
    from autodistill.data.augment import IGNORE, Augmenter
    from autodistill.train.teacher_signal import LiveTeacher

    model, _, enc, pad = tiny
    tok = tiny_tokenizer(tmp_path / "tok2")
    teacher = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok), layers=2)).eval()
    copies = []

    def augment(batch, step):
        out = Augmenter(AugmentConfig(ratio=0.5), token_counts(enc, len(tok)), tuple(tok.all_special_ids), 4, pad, 0)(
            batch, step
        )
        copies.append(out)
        return out

    spy = Spy()
    live = LiveTeacher(teacher)
    spec = TrainSpec(steps=3, batch_size=8, lr=1e-3)
    res = train(
        model, spy, enc, np.arange(40), spec, pad, teacher=live, augment=augment, augment_teacher=live, progress=False
    )
    assert res.steps == 3 and len(spy.seen) == 3
    for (labels, teacher_logits, rows), extra in zip(spy.seen, copies):
        assert rows == 12 and (labels[8:] == IGNORE).all() and (labels[:8] != IGNORE).all()
        with torch.no_grad():
            expected = teacher(input_ids=extra["input_ids"], attention_mask=extra["attention_mask"]).logits
        assert torch.allclose(teacher_logits[8:], expected, atol=1e-5)
    assert all(np.isfinite(h["loss"]) for h in res.history)
    with pytest.raises(ValueError, match="augment_teacher"):
        train(model, spy, enc, np.arange(40), spec, pad, teacher=live, augment=augment, progress=False)


def test_stacked_targets_keep_what_the_live_teacher_gives_and_drop_extra_cached_layers():
    from autodistill.train.teacher_signal import stack_targets

    cached = {
        "teacher_logits": torch.zeros(2, 2),
        "teacher_hidden": {2: torch.zeros(2, 5, 4), 6: torch.zeros(2, 5, 4)},  # layer 6: an earlier run's
        "teacher_qkv": {1: tuple(torch.zeros(2, 5, 4) for _ in range(3))},  # not read by this loss
    }
    live = {"teacher_logits": torch.ones(3, 2), "teacher_hidden": {2: torch.ones(3, 5, 4)}}
    out = stack_targets(cached, live)
    assert set(out) == {"teacher_logits", "teacher_hidden"} and set(out["teacher_hidden"]) == {2}
    assert out["teacher_logits"].shape == (5, 2) and out["teacher_logits"][2:].eq(1).all()
    assert out["teacher_hidden"][2].shape == (5, 5, 4) and out["teacher_hidden"][2][:2].eq(0).all()
    qkv = stack_targets(cached, {"teacher_qkv": {1: tuple(torch.ones(3, 5, 4) for _ in range(3))}})
    assert [t.shape[0] for t in qkv["teacher_qkv"][1]] == [5, 5, 5]


def test_weight_average_follows_the_warm_started_decay():
    from autodistill.train.loop import WeightAverage

    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    avg = WeightAverage(lin, decay=0.5)
    expected = 0.0
    for n, w in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            lin.weight.fill_(w)
        avg.update()
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * w
    assert float(avg.average["weight"]) == pytest.approx(expected)
    with avg.swapped():
        assert float(lin.weight) == pytest.approx(expected)
    assert float(lin.weight) == 4.0  # the trained weight is back after the evaluation
    avg.copy_to_model()
    assert float(lin.weight) == pytest.approx(expected)


def test_ema_evaluates_and_keeps_the_average_not_the_last_weights(tiny):
    model, ce, enc, pad = tiny
    start = {k: v.clone() for k, v in model.state_dict().items()}
    name = "classifier.weight"
    seen = []

    def evaluate(step):
        seen.append(model.state_dict()[name].clone())
        return 0.5

    spec = TrainSpec(steps=12, batch_size=8, lr=3e-3, eval_every=6, seed=1)
    plain = train(model, ce, enc, np.arange(60), spec, pad, progress=False)
    last = model.state_dict()[name].clone()
    model.load_state_dict(start)
    seen.clear()
    averaged = train(model, ce, enc, np.arange(60), replace(spec, ema=0.9), pad, evaluate=evaluate, progress=False)
    # the same optimisation (the average does not feed back into training)
    assert [h["loss"] for h in averaged.history] == pytest.approx([h["loss"] for h in plain.history], rel=1e-5)
    final = model.state_dict()[name]
    assert not torch.allclose(final, last)  # the model ends at the average, not at the last step
    assert torch.allclose(seen[-1], final)  # and that average is what the last evaluation saw
    assert not torch.allclose(seen[0], seen[-1])


def test_dropout_sets_every_dropout_layer_while_training(tiny):
    from transformers import BertForSequenceClassification

    model, ce, enc, pad = tiny
    start = {k: v.clone() for k, v in model.state_dict().items()}
    spec = TrainSpec(steps=6, batch_size=8, lr=3e-3, seed=2)
    with_default = train(model, ce, enc, np.arange(60), spec, pad, progress=False)
    model.load_state_dict(start)
    off = train(model, ce, enc, np.arange(60), replace(spec, dropout=0.0), pad, progress=False)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    # the same run as a model whose config has no dropout at all, attention dropout included
    bare = BertForSequenceClassification(
        tiny_bert_config(
            vocab_size=model.config.vocab_size, layers=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
    )
    bare.load_state_dict(start)
    none = train(bare, ce, enc, np.arange(60), spec, pad, progress=False)
    losses = [h["loss"] for h in off.history]
    assert losses == pytest.approx([h["loss"] for h in none.history], rel=1e-5)
    assert losses != pytest.approx([h["loss"] for h in with_default.history], rel=1e-5)


def test_patience_ends_the_run_at_the_rule_and_the_cap_otherwise(tiny):
    model, ce, enc, pad = tiny
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])
    res = train(
        model, ce, enc, np.arange(60), TrainSpec(steps=12, batch_size=8, eval_every=2, patience=2), pad,
        evaluate=lambda step: next(scores), keep_best=True, progress=False,
    )  # fmt: skip
    assert res.stopped_early and res.steps == 8 and res.best_step == 4
    assert res.stop_reason == "validation did not improve for 2 checkpoints (best 0.7000 at step 4)"
    rising = iter([0.1, 0.2, 0.3])
    res = train(
        model, ce, enc, np.arange(60), TrainSpec(steps=6, batch_size=8, eval_every=2, patience=1), pad,
        evaluate=lambda step: next(rising), keep_best=True, progress=False,
    )  # fmt: skip
    assert not res.stopped_early and res.steps == 6 and res.stop_reason is None


def _watch(model) -> list[tuple[bool, bool]]:
    """(training, fake-quantised) of every forward of the classifier head."""
    seen: list[tuple[bool, bool]] = []
    head = model.classifier
    head.register_forward_pre_hook(lambda m, _: seen.append((m.training, is_fake_quantised(m))))
    return seen


@pytest.mark.parametrize("qat", [0.0, 0.5])
def test_the_loop_fake_quantises_exactly_the_last_share_of_its_steps(tiny, qat):
    model, ce, enc, pad = tiny
    keys = list(model.state_dict())
    seen = _watch(model)
    spec = TrainSpec(steps=10, batch_size=16, lr=1e-3, qat=qat)
    res = train(model, ce, enc, np.arange(len(enc.labels)), spec, pad, progress=False)
    quantised = [q for training, q in seen if training]
    assert len(quantised) == 10
    if qat:
        assert quantised == [False] * 5 + [True] * 5 and res.qat_from_step == 6
    else:
        assert not any(quantised) and res.qat_from_step is None
    assert not any("forward" in m.__dict__ for m in model.modules()) and list(model.state_dict()) == keys


def test_quantised_checkpoints_alone_pick_the_best_and_count_for_patience(tiny):
    """A falling curve: without qat patience 1 would stop at step 4 with step 2 kept; with qat 0.5 the
    float checkpoints (2, 4) neither stop the run nor compete, the best quantised one (6) is kept."""
    model, ce, enc, pad = tiny
    curve = iter([0.9, 0.8, 0.7, 0.6, 0.5])
    states, modes = {}, []

    def evaluate(step: int) -> float:
        modes.append(is_fake_quantised(model.classifier))
        states[step] = {k: v.clone() for k, v in model.state_dict().items()}
        return next(curve)

    spec = TrainSpec(steps=10, batch_size=16, lr=1e-3, eval_every=2, patience=1, qat=0.5)
    res = train(
        model, ce, enc, np.arange(len(enc.labels)), spec, pad, evaluate=evaluate, keep_best=True, progress=False
    )
    assert modes == [False, False, True, True]
    assert res.stopped_early and res.steps == 8 and res.qat_from_step == 6
    assert res.best_step == 6 and res.best_quality == pytest.approx(0.7)
    assert [s for s, _ in res.evals] == [2, 4, 6, 8]
    for k, v in model.state_dict().items():
        assert torch.equal(v, states[6][k]), k
