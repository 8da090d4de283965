"""Self-distillation: the student learns from its own earlier self as well as from the teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from autodistill.config.schema import require
from autodistill.losses.base import DistillBatch, Loss, register
from autodistill.losses.logits import log_probs, scaled_kl


@dataclass(frozen=True)
class SelfKLOptions:
    # "average": an exponential moving average of the student's weights; "checkpoint": the weights
    # of its best validation checkpoint so far (its starting weights before any)
    source: Literal["average", "checkpoint"] = "average"
    # the average's decay (ramped up over the first updates like distill.ema); source: average only
    decay: float = 0.99
    # share of the run's optimiser steps before the term switches on (it is 0 until then)
    start: float = 0.1

    def __post_init__(self) -> None:
        require(0 < self.decay < 1, "decay", "must be in (0, 1)", self.decay)
        require(0 <= self.start < 1, "start", "must be in [0, 1)", self.start)


@register
class SelfKL(Loss):
    """KL from the student's own earlier self to the student at temperature T, scaled by T^2 like
    ``kl``: ``T^2 * KL(softmax(z_self / T) || softmax(z_s / T))``, with ``z_self`` the logits of a
    frozen copy of the student on the same batch (``batch.self_logits``, kept by
    :class:`autodistill.train.self_teacher.SelfTeacher`). With ``source: average`` the copy is a
    moving average of the student's weights (mean-teacher style self-distillation, Tarvainen and
    Valpola 2017); with ``source: checkpoint`` the best checkpoint so far (Yang et al. 2019,
    "Snapshot Distillation"). The copy starts equal to the student, so the term switches on only
    after ``start`` of the run's steps (known from ``start(total_steps)``; without it, at once).
    """

    name = "self_kl"
    Options = SelfKLOptions
    needs = frozenset({"self_logits"})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.total_steps: int | None = None
        self.steps_done = 0

    def start(self, total_steps: int) -> None:
        self.total_steps, self.steps_done = int(total_steps), 0

    def step_end(self, step: int) -> None:
        self.steps_done = int(step)

    @property
    def active(self) -> bool:
        """Has the run gone past ``start`` of its steps (always, when the total is unknown)?"""
        return self.total_steps is None or self.steps_done >= self.options.start * self.total_steps

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        if not self.active:  # 0, still attached to the graph so the total stays differentiable
            return batch.student_logits.float().sum() * 0.0
        log_p_s, log_p_self = log_probs(batch, self, "self_logits")
        return scaled_kl(log_p_s, log_p_self.detach(), batch.temperature)  # the student's past is a target
