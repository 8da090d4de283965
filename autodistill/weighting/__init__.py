"""Adaptive (and static) weighting of per-layer loss terms, each registered in ``WEIGHTINGS``."""

from autodistill.weighting import dwa, lag, progressive, static, uncertainty  # noqa: F401  (registers)
from autodistill.weighting.base import WEIGHTINGS, WeightingScheme

__all__ = ["WEIGHTINGS", "WeightingScheme"]
