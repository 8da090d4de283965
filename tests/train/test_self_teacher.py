"""The self-teacher of ``self_kl`` inside the loop: a frozen copy of the student that follows its
moving average or its best checkpoint, whose logits reach the loss as ``batch.self_logits``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_training_set

from autodistill.data import collate
from autodistill.losses import CompositeLoss, LossDims
from autodistill.specs import LossSpec, Step, TrainSpec
from autodistill.train.loop import train
from autodistill.train.self_teacher import SelfTeacher


class Recorder(torch.nn.Module):
    """The composite loss, keeping each step's student and self-teacher logits."""

    def __init__(self, inner: CompositeLoss) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def needs(self):
        return self.inner.needs

    @property
    def terms(self):
        return self.inner.terms

    def start(self, total_steps: int) -> None:
        self.inner.start(total_steps)

    def step_end(self, step: int) -> None:
        self.inner.step_end(step)

    def forward(self, batch):
        self.seen.append((batch.student_logits.detach().clone(), batch.self_logits.detach().clone()))
        return self.inner(batch)


@pytest.fixture
def tiny(tmp_path):
    return tiny_training_set(tmp_path / "tok", 80)


def self_kl_loss(**options) -> CompositeLoss:
    spec = LossSpec((Step("ce"), Step("self_kl", {"weight": 0.5, **options})))
    return CompositeLoss(spec, LossDims(32, 32))


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=0, atol=1e-5)


def test_the_average_copy_follows_the_students_steps(tiny):
    model, enc, pad = tiny
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    teacher = SelfTeacher(model, "average", decay=0.5)
    name = "classifier.weight"
    expected = start[name].clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    batch = {k: v for k, v in collate(enc, np.arange(8), pad).items() if k in ("input_ids", "attention_mask")}
    for n in range(1, 5):
        opt.zero_grad()
        model(**batch).logits.square().mean().backward()
        opt.step()
        teacher.update()
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * model.get_parameter(name).detach()
    held = teacher.model.get_parameter(name)
    torch.testing.assert_close(held, expected)
    assert not held.requires_grad and not teacher.model.training
    assert not torch.equal(held, model.get_parameter(name)) and not torch.equal(held, start[name])
    assert not same(teacher.logits(batch), model.eval()(**batch).logits)


def test_the_loop_feeds_the_average_and_switches_the_term_on_after_start(tiny):
    model, enc, pad = tiny
    loss = Recorder(self_kl_loss(start=0.5))
    spec = TrainSpec(steps=6, batch_size=8, lr=3e-3, dropout=0.0, bf16=False, device="cpu")
    res = train(model, loss, enc, np.arange(60), spec, pad, progress=False)
    assert len(loss.seen) == 6
    student, own = loss.seen[0]
    assert same(student, own)  # the copy starts as the student
    assert all(not same(s, o) for s, o in loss.seen[1:])  # then trails it
    parts = [h["self_kl"] for h in res.history]
    assert parts[:3] == [0.0, 0.0, 0.0] and all(p > 0 for p in parts[3:])


def test_the_checkpoint_copy_takes_the_best_checkpoints_weights(tiny):
    model, enc, pad = tiny
    loss = Recorder(self_kl_loss(source="checkpoint", start=0.0))
    quality = {2: 0.5, 4: 0.9, 6: 0.1, 8: 0.2}
    spec = TrainSpec(steps=8, batch_size=8, lr=3e-3, eval_every=2, dropout=0.0, bf16=False, device="cpu")
    res = train(model, loss, enc, np.arange(60), spec, pad, evaluate=quality.__getitem__, progress=False)
    assert res.best_step == 4
    equal = [same(s, o) for s, o in loss.seen]
    # step 1: starting weights; 3 and 5 follow the best checkpoints at 2 and 4; 7 follows the
    # checkpoint at 6, which was worse, so the copy keeps step 4's weights and the two differ
    assert equal == [True, False, True, False, True, False, False, False]
