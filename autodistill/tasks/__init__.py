"""Tasks: what differs between kinds of model (``base.Task``). Each task is a folder that registers
itself in ``TASKS``; every one is imported here, eagerly, so a missing module is an error."""

from __future__ import annotations

from autodistill.tasks import (
    causal_lm,  # noqa: F401  (registers "causal-lm")
    sequence_classification,  # noqa: F401  (registers "sequence-classification")
)
from autodistill.tasks.base import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "get_task"]
