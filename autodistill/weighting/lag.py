"""Lag weighting: more weight where the student lags the teacher most (autodistill's own scheme)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from autodistill.config.schema import require
from autodistill.weighting.base import WeightingOptions, WeightingScheme, normalised, register


@dataclass(frozen=True)
class LagOptions(WeightingOptions):
    # sharpness: 0 gives equal weights, larger moves weight harder toward the laggards
    alpha: float = 1.0
    # smoothing of the per-step losses (exponential moving average factor)
    ema: float = 0.9
    # steps whose mean loss is each unit's starting reference; weights stay 1 until then
    warmup: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.alpha >= 0, "alpha", "must be >= 0", self.alpha)
        require(0 <= self.ema < 1, "ema", "must be in [0, 1)", self.ema)
        require(self.warmup >= 1, "warmup", "must be >= 1", self.warmup)


@register
class Lag(WeightingScheme):
    """Lag weighting. A unit's lag is how much of its starting gap to the teacher remains:

        ``g_k = Lema_k(t) / Lref_k``,  ``w_k = K * g_k^alpha / sum_i g_i^alpha``

    where ``Lref_k`` is the mean loss of the first ``warmup`` steps and ``Lema`` an exponential
    moving average. Layers the student has matched least, relative to where they started, get
    more weight; weights have mean 1. Relative rather than raw losses, because deep layers have
    larger hidden norms and raw MSE would always favour them. It is the inverse training rate of
    GradNorm (Chen et al. 2018) used directly as a weight, without gradient norms (no extra
    backward passes), and slower-moving than DWA (a running average against a fixed start, not
    the ratio of two recent windows).
    """

    name = "lag"
    Options = LagOptions

    def __init__(self, units: list[str], **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        k = len(self.units)
        self._w = torch.ones(k)
        self._ref = torch.zeros(k)
        self._ema = torch.zeros(k)
        self._n = 0

    def weights(self) -> torch.Tensor:
        return self._w.clone()

    def update(self, step: int, losses: torch.Tensor) -> None:
        losses = torch.nan_to_num(losses, nan=0.0, posinf=1e12)
        self._n += 1
        if self._n <= self.options.warmup:
            self._ref += losses / self.options.warmup
            self._ema = self._ref * self.options.warmup / self._n  # mean so far
            return
        self._ema = self.options.ema * self._ema + (1 - self.options.ema) * losses
        gap = (self._ema / self._ref.clamp_min(1e-12)).clamp(1e-6, 1e6)
        self._w = normalised(self.options.alpha * gap.log())
