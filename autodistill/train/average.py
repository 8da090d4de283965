"""An exponential moving average of a model's weights: ``distill.ema`` evaluates and keeps it, and
``self_kl`` with ``source: average`` distils from it (:mod:`autodistill.train.self_teacher`)."""

from __future__ import annotations

import contextlib

import torch


class WeightAverage:
    """An exponential moving average of a model's trainable weights (``distill.ema``).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the first steps
    do not hold the average at the starting weights. ``swapped()`` puts the average into the model
    for an evaluation and restores the trained weights after. ``into``: a copy of the model (same
    parameter names and values) whose own parameters hold the average, updated in place, so that
    copy runs as the averaged model; by default the average is a private copy.
    """

    def __init__(self, model: torch.nn.Module, decay: float, into: torch.nn.Module | None = None) -> None:
        self.decay = decay
        self.updates = 0
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if into is None:
            self.average = {n: p.detach().clone() for n, p in self.params.items()}
        else:
            held = dict(into.named_parameters())
            self.average = {n: held[n].detach() for n in self.params}  # shares storage with ``into``

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for n, p in self.params.items():
            self.average[n].lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for n, p in self.params.items():
            p.copy_(self.average[n])

    @contextlib.contextmanager
    def swapped(self):
        kept = {n: p.detach().clone() for n, p in self.params.items()}
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(kept[n])
