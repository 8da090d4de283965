"""When a training run stops: validation patience over its checkpoints.

One rule for every loop that validates (teacher fine-tuning and adaptation, final training): stop
after ``patience`` checkpoints in a row that fail to beat the best quality so far by more than
``min_delta``. The loop keeps the best checkpoint's weights (``keep_best``), so the run ends on them,
and the step count it was given is the cap. Of checkpoints with equal quality the later is the best:
a validation split small enough for ties (on the built-in SMS spam set one message moves macro-F1
by about half a point) cannot tell them apart, and the later one has trained longer on the same
signal. A tie is still no gain, so it does not put off the stop. Written here rather than taken
from a trainer library: the loops are this package's own (``train.loop``,
``tasks.causal_lm.train``), and the rule is a few lines over their recorded ``(step, quality)``
checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Patience:
    patience: int  # checkpoints in a row without a gain before the run stops
    min_delta: float = 0.0  # a gain of at most this much is no gain

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")

    def check(self, evals: list[tuple[int, float]]) -> str | None:
        """Why the run should stop after these ``(step, quality)`` checkpoints, or None to go on."""
        if not evals:
            return None
        best = evals[0][1]  # the quality a checkpoint must beat by more than min_delta
        kept_step, kept = evals[0]  # the checkpoint the loop keeps (train.loop.checkpoint's rule)
        since = 0
        for step, quality in evals[1:]:
            if quality >= kept:  # a gain, a gain within min_delta, or a tie: the loop keeps this one
                kept_step, kept = step, quality
            if quality > best + self.min_delta:
                best, since = quality, 0
            else:
                since += 1
        if since < self.patience:
            return None
        return (
            f"validation did not improve for {since} checkpoint{'s' if since > 1 else ''} "
            f"(best {kept:.4f} at step {kept_step})"
        )
