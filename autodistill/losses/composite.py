"""A weighted sum of named loss terms (the torchdistill pattern, one small class)."""

from __future__ import annotations

import torch
from torch import nn

from autodistill.errors import ConfigError
from autodistill.losses.base import LOSSES, DistillBatch, LossDims
from autodistill.specs import LossSpec


class CompositeLoss(nn.Module):
    """``sum_k w_k * L_k``. Per-layer terms return one value per mapped layer; they are summed
    here with equal weights (the weighting schemes reweight them)."""

    def __init__(self, spec: LossSpec, dims: LossDims) -> None:
        super().__init__()
        self.spec = spec
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for i, step in enumerate(spec.terms):
            opts = {k: v for k, v in step.options.items() if k != "weight"}
            cls = LOSSES.get(step.name)
            try:
                self.terms[step.name] = cls(dims, **opts)
            except TypeError as err:
                raise ConfigError(f"The 'distill.loss.terms[{i}]' ({step.name!r}) options are wrong: {err}.") from None
            self.weights[step.name] = float(step.options.get("weight", 1.0))

    @property
    def needs(self) -> frozenset[str]:
        out: set[str] = set()
        for term in self.terms.values():
            out |= term.needs
        return frozenset(out)

    def forward(self, batch: DistillBatch) -> tuple[torch.Tensor, dict[str, float]]:
        total = batch.student_logits.new_zeros((), dtype=torch.float32)
        parts: dict[str, float] = {}
        for name, term in self.terms.items():
            value = term(batch)
            if isinstance(value, (list, tuple)):
                value = torch.stack(list(value)).mean()
            parts[name] = float(value.detach())
            total = total + self.weights[name] * value
        return total, parts
