"""Distillation losses: one file per family, each registered by name in ``LOSSES``; the composite
loss sums them with a weighting scheme from :mod:`autodistill.weighting`."""

from autodistill.losses import attention, contrastive, hidden, logits, self_distill  # noqa: F401  (registers)
from autodistill.losses.base import LOSSES, DistillBatch, Loss, LossDims, cached_needs
from autodistill.losses.capture import capture_qkv
from autodistill.losses.composite import CompositeLoss
from autodistill.losses.layer_map import resolve_layer_map

__all__ = [
    "LOSSES",
    "CompositeLoss",
    "DistillBatch",
    "Loss",
    "LossDims",
    "cached_needs",
    "capture_qkv",
    "resolve_layer_map",
]
