"""Hard budgets on a student: predicted before building (parameters, size) and measured after
(latency, memory). A positive violation means the budget is broken (Optuna's constraint sign)."""

from __future__ import annotations

import random
from typing import Any

from autodistill.config.run import BudgetConfig

BYTES_PER_PARAM = 4  # fp32 safetensors


def predicted_size_mb(parameters: int) -> float:
    return parameters * BYTES_PER_PARAM / 1e6


def predicted_violation(budget: BudgetConfig, parameters: int, teacher_parameters: int) -> float:
    """Relative excess over the parameter and size budgets (0 when they hold)."""
    worst = 0.0
    if budget.max_parameters is not None:
        worst = max(worst, parameters / budget.max_parameters - 1)
    if budget.max_parameter_share is not None:
        worst = max(worst, parameters / (budget.max_parameter_share * teacher_parameters) - 1)
    if budget.max_size_mb is not None:
        worst = max(worst, predicted_size_mb(parameters) / budget.max_size_mb - 1)
    return worst


def measured_violation(
    budget: BudgetConfig,
    latency_ms: float | None,
    memory_mb: float | None,
    teacher_latency_ms: float | None,
    energy_share: float | None = None,
) -> float:
    """Relative excess over the latency, speedup, memory and energy budgets (0 when they hold); the
    speedup compares batch-1 latencies measured together (``teacher_latency_ms`` beside ``latency_ms``),
    ``energy_share`` the student's energy per prediction over the teacher's, measured together."""
    worst = 0.0
    if budget.max_energy_share is not None and energy_share is not None:
        worst = max(worst, energy_share / budget.max_energy_share - 1)
    if budget.max_latency_ms is not None and latency_ms is not None:
        worst = max(worst, latency_ms / budget.max_latency_ms - 1)
    if budget.min_speedup is not None and latency_ms is not None and teacher_latency_ms:
        worst = max(worst, budget.min_speedup * latency_ms / teacher_latency_ms - 1)
    if budget.max_memory_mb is not None and memory_mb is not None:
        worst = max(worst, memory_mb / budget.max_memory_mb - 1)
    return worst


class RandomPoint:
    """A seeded stand-in for a trial that samples uniformly (for planning, no study needed)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return low + step * self.rng.randint(0, (high - low) // step)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        if log:
            import math

            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.rng.choice(list(choices))
