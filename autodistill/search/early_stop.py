"""Early stopping of proxy trials: the median rule within a size bucket.

Optuna's ``MedianPruner`` compares a trial with every earlier trial; here students of very
different sizes share a study, and a small student's early validation is naturally below a large
one's, so the median is taken only over finished trials whose parameter count lies in the same
log2 bucket (``search.pruning.bucket_log2_width``). That is why the rule is ours, not Optuna's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autodistill.config.run import PruningConfig


@dataclass(frozen=True)
class MedianInBucket:
    enabled: bool = True
    min_trials: int = 5
    bucket_log2_width: float = 1.0

    @classmethod
    def from_config(cls, pruning: PruningConfig) -> MedianInBucket:
        return cls(pruning.enabled, pruning.min_trials, pruning.bucket_log2_width)

    def bucket(self, parameters: int) -> int:
        """The size bucket of a student: floor(log2(parameters) / width)."""
        return math.floor(math.log2(max(2, parameters)) / self.bucket_log2_width)

    def reason_to_stop(self, step: int, quality: float, peers: list[float]) -> str | None:
        """Why a trial at ``quality`` after ``step`` steps should stop, given the qualities that
        finished trials of its bucket had at the same step; None to go on."""
        if not self.enabled or len(peers) < self.min_trials:
            return None
        median = float(np.median(peers))
        if quality >= median:
            return None
        return (
            f"validation {quality:.4f} below the median {median:.4f} of {len(peers)} similar-size trials at step {step}"
        )
