"""Values of the ``self_kl`` term: the student's KL to its own earlier self."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autodistill.errors import ConfigError
from autodistill.losses import LOSSES, DistillBatch, LossDims

DIMS = LossDims(16, 16, num_labels=3)


def batch(student: torch.Tensor, own: torch.Tensor, t: float = 2.0) -> DistillBatch:
    mask = torch.ones(student.shape[0], 5, dtype=torch.long)
    return DistillBatch(
        labels=torch.zeros(student.shape[0], dtype=torch.long),
        attention_mask=mask,
        student_logits=student,
        self_logits=own,
        temperature=t,
    )


def self_kl(**options):
    return LOSSES.get("self_kl")(DIMS, key="distill.loss.terms[1]", **options)


def test_zero_when_the_earlier_self_agrees():
    z = torch.randn(4, 3)
    assert float(self_kl()(batch(z, z.clone()))) == pytest.approx(0.0, abs=1e-6)


def test_temperature_scaled_kl_from_the_earlier_self_otherwise():
    gen = torch.Generator().manual_seed(0)
    z_s, z_self = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    value = float(self_kl()(batch(z_s, z_self, t=2.0)))
    p = F.softmax(z_self / 2, -1)
    expected = 4.0 * (p * (p.log() - F.log_softmax(z_s / 2, -1))).sum(-1).mean()
    assert value > 0 and value == pytest.approx(float(expected), rel=1e-5)


def test_gradient_reaches_the_student_logits_only():
    gen = torch.Generator().manual_seed(1)
    z_s = torch.randn(4, 3, generator=gen).requires_grad_(True)
    z_self = torch.randn(4, 3, generator=gen).requires_grad_(True)
    self_kl()(batch(z_s, z_self)).backward()
    assert z_s.grad is not None and z_s.grad.abs().sum() > 0
    assert z_self.grad is None


def test_zero_until_start_share_of_the_steps():
    gen = torch.Generator().manual_seed(2)
    z_s = torch.randn(4, 3, generator=gen).requires_grad_(True)
    z_self = torch.randn(4, 3, generator=gen)
    loss = self_kl(start=0.25)
    loss.start(8)
    values = []
    for step in range(8):  # the forward of each step, then its end
        values.append(float(loss(batch(z_s, z_self)).detach()))
        loss.step_end(step + 1)
    assert values[:2] == [0.0, 0.0] and all(v > 0 for v in values[2:])


@pytest.mark.parametrize(
    ("options", "key"), [({"source": "best"}, "source"), ({"decay": 0}, "decay"), ({"start": -0.1}, "start")]
)
def test_bad_options_name_their_key(options, key):
    with pytest.raises(ConfigError, match=rf"'distill.loss.terms\[1\].{key}'"):
        self_kl(**options)
