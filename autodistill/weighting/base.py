"""The weighting extension point: a scheme turns K per-unit loss values (one per mapped layer of
each per-layer term, or one per term with ``scope: all``) into K weighted values.

Weights are positive, finite and start at 1 (mean 1 for the normalised schemes), so switching
scheme does not change the scale of the total loss at the start of training. The composite loss
calls ``combine`` in each forward, ``observe`` with the detached values of training forwards, and
``step_end`` once per optimiser step (several forwards may feed one step under accumulation), and
``start(total_steps)`` once before training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from autodistill.config.schema import parse, require
from autodistill.registry import Registry

KEY = "distill.loss.weighting"


@dataclass(frozen=True)
class WeightingOptions:
    """Options every scheme takes (read by the composite loss); schemes subclass this."""

    # "layers": weight the per-layer units only; "all": every term's units (ce, kl, ... too)
    scope: Literal["layers", "all"] = "layers"
    # record the weights every this many optimiser steps (and at the first)
    log_every: int = 10

    def __post_init__(self) -> None:
        require(self.log_every >= 1, "log_every", "must be >= 1", self.log_every)


class WeightingScheme(nn.Module):
    name: ClassVar[str]
    Options: ClassVar[type] = WeightingOptions

    def __init__(self, units: list[str], *, key: str = KEY, **options: Any) -> None:
        super().__init__()
        self.units = list(units)
        self.key = key
        self.options = parse(self.Options, options, path=key)
        self._sum = torch.zeros(len(self.units), dtype=torch.float64)
        self._count = 0

    def start(self, total_steps: int) -> None:
        """Called once before training with the number of optimiser steps it will take (the loop
        calls ``CompositeLoss.start``). Default: nothing; a schedule over the run reads it."""

    def weights(self) -> torch.Tensor:
        """Current weights ``[K]`` (detached, float32, CPU)."""
        return torch.ones(len(self.units))

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        """Weighted per-unit values ``[K]``; differentiable in ``losses`` (and in learned weights)."""
        return self.weights().to(losses) * losses

    def observe(self, losses: torch.Tensor) -> None:
        """Record the detached per-unit values of one training forward."""
        self._sum += losses.detach().to("cpu", torch.float64)
        self._count += 1

    def step_end(self, step: int) -> None:
        """Fold the values observed since the last step into the scheme's state."""
        if self._count:
            self.update(step, (self._sum / self._count).to(torch.float32))
        self._sum.zero_()
        self._count = 0

    def update(self, step: int, losses: torch.Tensor) -> None:
        """Adaptive schemes move their weights here, from the step's mean per-unit losses."""


WEIGHTINGS: Registry[type[WeightingScheme]] = Registry("weighting scheme")


def register(cls: type[WeightingScheme]) -> type[WeightingScheme]:
    """Class decorator: ``@register`` on a WeightingScheme subclass with a ``name``."""
    return WEIGHTINGS.register(cls.name)(cls)


def normalised(scores: torch.Tensor) -> torch.Tensor:
    """``K * softmax(scores)``: positive weights with mean 1."""
    return scores.numel() * torch.softmax(scores, dim=0)
