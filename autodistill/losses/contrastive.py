"""Contrastive representation distillation: the student's sentence representation should pick out
its own teacher's among the other sentences of the batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.config.schema import require
from autodistill.errors import ConfigError
from autodistill.losses.base import DistillBatch, LayerMap, Loss, LossDims, register, require_input, token_mask


@dataclass(frozen=True)
class ContrastiveOptions:
    temperature: float = 0.1
    # sentence representation: mean over real tokens, or the first ([CLS]) token
    pool: Literal["mean", "cls"] = "mean"
    # width of the shared embedding space both projection heads map into
    proj_dim: int = 128
    # also score each teacher against all students (the InfoNCE of both directions, averaged)
    symmetric: bool = False

    def __post_init__(self) -> None:
        require(self.temperature > 0, "temperature", "must be > 0", self.temperature)
        require(self.proj_dim >= 1, "proj_dim", "must be >= 1", self.proj_dim)


@register
class Contrastive(Loss):
    """InfoNCE with in-batch negatives, CRD-style (Tian, Krishnan and Isola 2020, "Contrastive
    Representation Distillation"). With pooled representations of the last mapped layer pair,
    learned heads ``g_s``, ``g_t`` into a shared ``proj_dim`` space and unit-normalised
    ``z_s = g_s(h_s) / |.|``, ``z_t = g_t(h_t) / |.|``:

        ``-(1/B) * sum_b log( exp(z_s[b] . z_t[b] / tau) / sum_c exp(z_s[b] . z_t[c] / tau) )``

    Deviation from CRD: negatives are the other sentences of the batch, not a memory bank of
    16k samples, and the NCE critic is replaced by the softmax (InfoNCE) form, as most later work does.
    Never 0: it is bounded below by 0 only as tau -> 0 with perfectly separated pairs.
    """

    name = "contrastive"
    Options = ContrastiveOptions
    needs = frozenset({"hidden"})
    zero_on_identical = False

    def __init__(self, dims: LossDims, layer_map: LayerMap | None = None, **kwargs) -> None:
        super().__init__(dims, layer_map, **kwargs)
        if not self.layer_map:
            raise ConfigError(f"The loss {self.name!r} ({self.key}) needs a non-empty 'distill.loss.layer_map'.")
        self.pair = self.layer_map[-1]
        self.head_s = nn.Linear(dims.student_hidden, self.options.proj_dim)
        self.head_t = nn.Linear(dims.teacher_hidden, self.options.proj_dim)

    def pairs(self) -> LayerMap:
        return [self.pair]

    def teacher_hidden_layers(self) -> list[int]:
        return [self.pair[1]]

    def _pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.options.pool == "cls":
            return h[:, 0]
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        s, t = self.pair
        mask = token_mask(batch)
        h_s = require_input(batch.student_hidden, self, "student_hidden")[s].float()
        h_t = require_input(batch.teacher_hidden, self, "teacher_hidden")[t].float()
        z_s = F.normalize(self.head_s(self._pool(h_s, mask)), dim=-1)
        z_t = F.normalize(self.head_t(self._pool(h_t, mask)), dim=-1)
        logits = z_s @ z_t.T / self.options.temperature
        target = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, target)
        if self.options.symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
        return loss
