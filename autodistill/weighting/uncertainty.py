"""Homoscedastic-uncertainty weighting (Kendall, Gal and Cipolla 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autodistill.config.schema import require
from autodistill.weighting.base import WeightingOptions, WeightingScheme, register


@dataclass(frozen=True)
class UncertaintyOptions(WeightingOptions):
    # bound on |s_k| so weights stay in [e^-bound, e^bound]: positive and finite
    bound: float = 8.0
    # learning rate for the log-variances (the loop puts them in their own param group, no decay);
    # the student's rate (~1e-4) would barely move them in a short run
    lr: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.bound > 0, "bound", "must be > 0", self.bound)
        require(self.lr > 0, "lr", "must be > 0", self.lr)


@register
class Uncertainty(WeightingScheme):
    """Kendall, Gal and Cipolla 2018, "Multi-Task Learning Using Uncertainty to Weigh Losses for
    Scene Geometry and Semantics": a learned log-variance ``s_k = log sigma_k^2`` per unit,

        ``sum_k exp(-s_k) * L_k + s_k``

    (their regression form without the constant 1/2). The optimum is ``s_k = log L_k``, so a unit
    with a larger (noisier) loss gets a smaller weight ``exp(-s_k)``. ``s`` is clamped to
    ``[-bound, bound]``; it is a parameter, so the loop must optimise ``loss.parameters()``.
    """

    name = "uncertainty"
    Options = UncertaintyOptions

    def __init__(self, units: list[str], **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.log_var = nn.Parameter(torch.zeros(len(self.units)))

    def _s(self) -> torch.Tensor:
        return self.log_var.clamp(-self.options.bound, self.options.bound)

    def weights(self) -> torch.Tensor:
        return torch.exp(-self._s()).detach().float().cpu()

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        s = self._s().to(losses)
        return torch.exp(-s) * losses + s
