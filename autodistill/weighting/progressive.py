"""Layer-wise progressive distillation: the weight moves up the student over the run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from autodistill.config.schema import require
from autodistill.weighting.base import WeightingOptions, WeightingScheme, register

_LAYER = re.compile(r"/s(\d+)_t\d+$")  # the student layer of a per-layer unit, "hidden_mse/s2_t4"


@dataclass(frozen=True)
class ProgressiveOptions(WeightingOptions):
    # the least weight of any unit at any step (the focus never silences a unit)
    floor: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.floor <= 1, "floor", "must be in (0, 1]", self.floor)


def stages(units: list[str]) -> list[int]:
    """Each unit's stage: the rank of its student layer among the units' layers (lowest first),
    and one last stage for the units with no layer (the logit terms ``kl``, ``ce``, ...)."""
    layers = [int(m.group(1)) if (m := _LAYER.search(u)) else None for u in units]
    order = sorted({i for i in layers if i is not None})
    return [order.index(i) if i is not None else len(order) for i in layers]


def schedule(stage: list[int], step: int, total: int, floor: float) -> torch.Tensor:
    """The weights at ``step`` of ``total`` (see :class:`Progressive`)."""
    if not stage:
        return torch.ones(0)
    n = max(stage) + 1
    x = n * min(max(step / max(total, 1), 0.0), 1.0)
    centres = torch.tensor(stage, dtype=torch.float64) + 0.5
    bump = (1.0 - (x - centres).abs()).clamp_min(0.0)
    w = floor + (1.0 - floor) * len(stage) * bump / bump.sum()
    return w.to(torch.float32)


@register
class Progressive(WeightingScheme):
    """Layer-wise progressive distillation (in the spirit of the stage-wise training of FitNets,
    Romero et al. 2015, and of progressive module-by-module distillation): the lower student layers
    are matched first, the higher ones later, and the logit terms last.

    The units fall into ``G`` stages: one per distinct student layer ``s<i>`` of the per-layer units
    (lowest first), then one for the units with no layer index (``kl``, ``ce``, ... with
    ``scope: all``). With progress ``x = G * step / total_steps`` (in ``[0, G]``), stage ``g`` has
    the triangular focus ``b_g = max(0, 1 - |x - (g + 1/2)|)``, and unit ``k`` of stage ``g(k)``

        ``w_k = floor + (1 - floor) * K * b_g(k) / sum_j b_g(j)``

    so the weights are at least ``floor``, their mean is exactly 1 at every step, and the focus
    slides from stage 0 (the whole extra weight at step 0) through each stage in turn (stage g
    peaks at ``(g + 1/2) / G`` of the run, sharing with its neighbours in between) to the logit
    stage (the whole extra weight at the last step). A pure function of the step and the total;
    equal weights (1) until ``start(total_steps)`` gives the total. With ``distill.prune_after`` each
    stage of training runs the schedule over its own steps.
    """

    name = "progressive"
    Options = ProgressiveOptions

    def __init__(self, units: list[str], **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.stage = stages(self.units)
        self.total: int | None = None
        self.steps_done = 0

    def start(self, total_steps: int) -> None:
        self.total, self.steps_done = int(total_steps), 0

    def step_end(self, step: int) -> None:
        super().step_end(step)
        self.steps_done = int(step)

    def weights(self) -> torch.Tensor:
        if self.total is None:
            return torch.ones(len(self.units))
        return schedule(self.stage, self.steps_done, self.total, self.options.floor)
