"""Dynamic weight average (Liu, Johns and Davison 2019)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from autodistill.config.schema import require
from autodistill.weighting.base import WeightingOptions, WeightingScheme, normalised, register


@dataclass(frozen=True)
class DWAOptions(WeightingOptions):
    temperature: float = 2.0
    # optimiser steps averaged into one "epoch" loss; the paper averages over a whole epoch
    window: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.temperature > 0, "temperature", "must be > 0", self.temperature)
        require(self.window >= 1, "window", "must be >= 1", self.window)


@register
class DWA(WeightingScheme):
    """Dynamic Weight Average (Liu, Johns and Davison 2019, "End-to-End Multi-Task Learning with
    Attention", MTAN): with ``Lbar_k(n)`` the mean loss of unit k over window n,

        ``r_k = Lbar_k(n-1) / Lbar_k(n-2)``,  ``w_k = K * exp(r_k / T) / sum_i exp(r_i / T)``

    so a unit whose loss falls slowly (r near or above 1) gains weight. Weights are 1 until two
    windows have been seen. Scale-free: only ratios of a unit's own losses enter.
    """

    name = "dwa"
    Options = DWAOptions

    def __init__(self, units: list[str], **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        k = len(self.units)
        self._w = torch.ones(k)
        self._acc = torch.zeros(k)
        self._n = 0
        self._means: list[torch.Tensor] = []

    def weights(self) -> torch.Tensor:
        return self._w.clone()

    def update(self, step: int, losses: torch.Tensor) -> None:
        self._acc += losses
        self._n += 1
        if self._n < self.options.window:
            return
        self._means = (self._means + [self._acc / self._n])[-2:]
        self._acc = torch.zeros_like(self._acc)
        self._n = 0
        if len(self._means) == 2:
            ratio = self._means[1] / self._means[0].clamp_min(1e-12)
            ratio = torch.nan_to_num(ratio, nan=1.0, posinf=1e3).clamp(0.0, 1e3)
            self._w = normalised(ratio / self.options.temperature)
