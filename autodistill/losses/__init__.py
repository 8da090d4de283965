"""Distillation losses: one file per family, each registered by name in ``LOSSES``."""

from autodistill.losses import logits  # noqa: F401  (registers)
from autodistill.losses.base import LOSSES, DistillBatch, Loss, LossDims

__all__ = ["LOSSES", "DistillBatch", "Loss", "LossDims"]
