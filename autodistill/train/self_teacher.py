"""The student's own earlier self, the teacher of the ``self_kl`` loss term
(:mod:`autodistill.losses.self_distill`).

It lives in the training layer, not with the loss, because it is training state: a frozen copy of
the student that follows the optimiser steps (a moving average) or the validation checkpoints (the
best so far), both of which only the loop sees. The loss stays a pure function of the logits the
loop puts in ``DistillBatch.self_logits``. The copy is made per ``train()`` call, so a student
whose shape changes between stages (``distill.prune_after``) gets a copy of its new shape.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from autodistill.train.average import WeightAverage


class SelfTeacher:
    """A frozen copy of ``student`` (eval mode, no gradients) that ``self_kl`` distils from.

    ``source="average"``: the copy's weights are a moving average of the student's with ``decay``
    (ramped like ``distill.ema``), moved by ``update()`` after each optimiser step.
    ``source="checkpoint"``: the copy holds the student's starting weights until
    ``at_best_checkpoint()`` copies in those of a validation checkpoint that is the best so far
    (the averaged ones when ``average``, ``distill.ema``, is what the checkpoint evaluated).
    """

    def __init__(self, student: torch.nn.Module, source: str, decay: float, average: WeightAverage | None = None):
        self.student = student
        self.source = source
        self.student_average = average
        self.model = copy.deepcopy(student).eval().requires_grad_(False)
        self.average = WeightAverage(student, decay, into=self.model) if source == "average" else None

    @classmethod
    def for_loss(
        cls, student: torch.nn.Module, loss_fn: torch.nn.Module, average: WeightAverage | None = None
    ) -> SelfTeacher | None:
        """The self-teacher the loss asks for (a term whose ``needs`` has "self_logits"), or None."""
        terms = list(getattr(loss_fn, "terms", {}).values()) or [loss_fn]
        term = next((t for t in terms if "self_logits" in getattr(t, "needs", ())), None)
        if term is None:
            return None
        return cls(student, term.options.source, term.options.decay, average)

    def update(self) -> None:
        """After each optimiser step: the average takes its step (``source: average``)."""
        if self.average is not None:
            self.average.update()

    @torch.no_grad()
    def at_best_checkpoint(self) -> None:
        """After a validation checkpoint that is the best so far (``source: checkpoint``)."""
        if self.source != "checkpoint":
            return
        self.model.load_state_dict(self.student.state_dict())
        if self.student_average is not None:
            params = dict(self.model.named_parameters())
            for name, value in self.student_average.average.items():
                params[name].copy_(value)

    @torch.no_grad()
    def logits(self, inputs: dict[str, Any]) -> torch.Tensor:
        """The copy's logits on the student's inputs for this batch."""
        return self.model(**inputs).logits.detach()
