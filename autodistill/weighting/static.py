"""Fixed weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from autodistill.config.schema import require
from autodistill.errors import ConfigError
from autodistill.weighting.base import WeightingOptions, WeightingScheme, register


@dataclass(frozen=True)
class StaticOptions(WeightingOptions):
    # unit name (e.g. "hidden_mse/s2_t4") -> weight; units not named keep weight 1
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for unit, w in self.weights.items():
            require(w > 0 and w < float("inf"), f"weights.{unit}", "must be a finite number > 0", w)


@register
class Static(WeightingScheme):
    """Static weights: ``sum_k w_k L_k`` with ``w_k = 1`` unless ``weights`` names the unit."""

    name = "static"
    Options = StaticOptions

    def __init__(self, units: list[str], **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        unknown = sorted(set(self.options.weights) - set(self.units))
        if unknown:
            valid = ", ".join(self.units) or "(none)"
            raise ConfigError(
                f"The '{self.key}.weights.{unknown[0]}' parameter names no weighted loss unit. Valid units: {valid}."
            )
        self._w = torch.tensor([float(self.options.weights.get(u, 1.0)) for u in self.units])

    def weights(self) -> torch.Tensor:
        return self._w.clone()
