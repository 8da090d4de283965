"""Losses on the output logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autodistill.losses.base import DistillBatch, Loss, register


@register
class CrossEntropy(Loss):
    """Hard-label cross-entropy: ``CE(y, softmax(z_s))``."""

    name = "ce"
    needs = frozenset()

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        return F.cross_entropy(batch.student_logits.float(), batch.labels)


@register
class KLDivergence(Loss):
    """Soft-label KL at temperature T, scaled by T^2 so gradients keep their size as T changes:
    ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`` (Hinton, Vinyals and Dean 2015,
    "Distilling the Knowledge in a Neural Network"), averaged over the batch."""

    name = "kl"

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        t = batch.temperature
        log_p_s = F.log_softmax(batch.student_logits.float() / t, dim=-1)
        log_p_t = F.log_softmax(batch.teacher_logits.float() / t, dim=-1)
        return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)
