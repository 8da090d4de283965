"""Faults inside a trial never end the study on their own: the trial ends FAIL with its reason,
its memory is freed and the next trial starts. Only the same failure three times in a row stops
the search, since then the next trial would most likely fail the same way too."""

from __future__ import annotations

import gc
import re
import traceback

from autodistill.errors import SearchError


def describe(err: BaseException) -> tuple[str, str]:
    """The reason a trial failed (type and message) and the end of its traceback, for the record."""
    reason = f"{type(err).__name__}: {err}"
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return reason[:2000], trace[-4000:]


def free_memory() -> None:
    """Release what a failed trial held: its model, optimiser and activations (CPU, and GPU caches)."""
    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def same_way(reason: str) -> str:
    """A failure's kind: its reason with numbers blanked, so "nan at step 12" and "nan at step 7" match."""
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", reason)


class FailureStreak:
    """Counts trials in a row that failed the same way; ``limit`` of them raise SearchError."""

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.kind = ""
        self.count = 0

    def add(self, state: str, reason: str = "") -> None:
        if state != "failed":
            self.kind, self.count = "", 0
            return
        kind = same_way(reason)
        self.count = self.count + 1 if kind == self.kind else 1
        self.kind = kind
        if self.count >= self.limit:
            raise SearchError(
                f"The search stopped: {self.count} trials in a row failed the same way ({reason}). Each is "
                "recorded FAILED with its reason and traceback in the study (user attribute 'error') and in "
                "MLflow; fix the cause and run the same command again to continue the study."
            )
