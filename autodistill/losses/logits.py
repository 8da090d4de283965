"""Losses on the output logits. ``T`` is ``distill.loss.temperature`` (``batch.temperature``);
logits are ``[B, C]`` and every divergence is averaged over the batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autodistill.config.schema import require
from autodistill.losses.base import DistillBatch, Loss, register, require_input


def log_probs(batch: DistillBatch, loss: Loss, target: str = "teacher_logits") -> tuple[torch.Tensor, torch.Tensor]:
    """Student and target (``batch.<target>``) log-probabilities at temperature T."""
    t = batch.temperature
    teacher = require_input(getattr(batch, target), loss, target)
    log_p_s = F.log_softmax(batch.student_logits.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher.float() / t, dim=-1)
    return log_p_s, log_p_t


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` per row, from log-probabilities (0 * log 0 counts as 0)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


@register
class CrossEntropy(Loss):
    """Hard-label cross-entropy: ``CE(y, softmax(z_s))``."""

    name = "ce"
    needs = frozenset()
    zero_on_identical = False

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        return F.cross_entropy(batch.student_logits.float(), batch.labels)


@register
class KLDivergence(Loss):
    """Soft-label (forward) KL at temperature T, scaled by T^2 so gradients keep their size as T
    changes: ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`` (Hinton, Vinyals and Dean 2015,
    "Distilling the Knowledge in a Neural Network"). Mode-covering: the student spreads mass over
    everything the teacher allows."""

    name = "kl"

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        return scaled_kl(*log_probs(batch, self), batch.temperature)


def scaled_kl(log_p_s: torch.Tensor, log_p_t: torch.Tensor, t: float) -> torch.Tensor:
    """``T^2 * KL(p_t || p_s)`` averaged over the batch, from log-probabilities."""
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


@register
class ReverseKL(Loss):
    """Reverse KL at temperature T: ``T^2 * KL(softmax(z_s / T) || softmax(z_t / T))``. Mode-seeking:
    the student puts its mass where the teacher is confident (MiniLLM, Gu et al. 2024; used as a
    GKD divergence by Agarwal et al. 2024)."""

    name = "reverse_kl"

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        log_p_s, log_p_t = log_probs(batch, self)
        t = batch.temperature
        return _kl(log_p_s, log_p_t).mean() * (t * t)


@dataclass(frozen=True)
class JSDOptions:
    beta: float = 0.5

    def __post_init__(self) -> None:
        require(0 < self.beta < 1, "beta", "must be in (0, 1) (0 and 1 make the divergence vanish)", self.beta)


@register
class GeneralisedJSD(Loss):
    """Generalised Jensen-Shannon divergence with mixing ``beta`` (GKD, Agarwal et al. 2024,
    "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes"), with
    P = teacher, Q = student at temperature T and ``M = beta * P + (1 - beta) * Q``:

        ``T^2 * [beta * KL(P || M) + (1 - beta) * KL(Q || M)]``

    beta = 0.5 is the symmetric JSD; small beta behaves like beta * forward KL, beta near 1 like
    (1 - beta) * reverse KL. Bounded, so robust to a teacher that is confidently wrong.
    """

    name = "jsd"
    Options = JSDOptions

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        log_q, log_p = log_probs(batch, self)  # q: student, p: teacher
        beta = self.options.beta
        log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), dim=0)
        t = batch.temperature
        jsd = beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m)
        return jsd.mean() * (t * t)
