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
        best_step, best = evals[0]
        since = 0
        for step, quality in evals[1:]:
            if quality > best + self.min_delta:
                best_step, best, since = step, quality, 0
                continue
            since += 1
            if quality == best:  # a tie: the later checkpoint is the one kept (see above)
                best_step = step
        if since < self.patience:
            return None
        return (
            f"validation did not improve for {since} checkpoint{'s' if since > 1 else ''} "
            f"(best {best:.4f} at step {best_step})"
        )
