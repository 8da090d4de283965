"""The budget before training: a sampled student is refused when its predicted size breaks the
budget (nothing built), or when its untrained shape, timed beside the teacher, is too slow or
too large in memory (nothing trained). ``scan`` is the sampling loop that ``plan`` and the
search's feasibility check share."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from autodistill.config import to_dict
from autodistill.config.run import RunConfig
from autodistill.errors import BudgetError, ConfigError
from autodistill.search.budget import RandomPoint, measured_violation, predicted_size_mb, predicted_violation
from autodistill.search.space import Sample, SearchSpace
from autodistill.search.timings import Timing, shape_key, timing_book


@dataclass(frozen=True)
class Refusal:
    """Why a student is not trained, and by how much it breaks the budget (Optuna's constraint)."""

    reason: str
    violation: float
    parameters: int | None = None


class BudgetGate:
    """Decides, before training, whether a sampled student may be trained."""

    def __init__(self, cfg: RunConfig, space: SearchSpace, task: Any, prep: Any, teacher_parameters: int) -> None:
        self.cfg = cfg
        self.space = space
        self.task = task
        self.prep = prep
        self.teacher_parameters = teacher_parameters
        self.book = timing_book(cfg, prep.teacher.fingerprint)

    def timed(self, model: Any) -> Timing:
        """Batch-1 milliseconds of ``model`` and the teacher, timed together (``Task.latency_b1``), or
        as this machine recorded them for the same shape (``search.timings``)."""
        cfg, b = self.cfg, self.cfg.budget
        timing_settings = {k: v for k, v in to_dict(cfg.evaluate).items() if k not in ("energy", "reuse_timings")}
        extra = {"task": self.task.name, "teacher": self.prep.teacher.fingerprint, "runtime": b.runtime,
                 "evaluate": timing_settings}  # fmt: skip
        return self.book.time(
            shape_key(model, extra),
            lambda: self.task.latency_b1(cfg, self.prep, model, self.prep.teacher_model()),
            b.min_speedup,
            b.max_latency_ms,
        )

    def scan(self, n_points: int) -> Iterator[tuple[Sample, int | None]]:
        """``n_points`` seeded uniform samples of the space with their predicted parameters (None
        for a student the config refuses, e.g. a non-stock one when stock is required)."""
        rng = RandomPoint(self.cfg.seed)
        for _ in range(n_points):
            sample = self.space.sample(rng, self.cfg.student.require_stock_architecture)
            try:
                yield sample, self.task.predicted_parameters(self.prep, sample.student)
            except ConfigError:
                yield sample, None

    def violation(self, parameters: int) -> float:
        return predicted_violation(self.cfg.budget, parameters, self.teacher_parameters)

    def check_feasible(self, n_points: int = 300) -> None:
        """A budget that no student of the space can meet is reported before any training."""
        b = self.cfg.budget
        if b.max_parameters is None and b.max_parameter_share is None and b.max_size_mb is None:
            return
        best = math.inf
        for _, n in self.scan(n_points):
            if n is not None:
                best = min(best, n)
                if self.violation(n) <= 0:
                    return
        smallest = "none could be built" if best == math.inf else f"the smallest has {int(best):,} parameters"
        size = "" if best == math.inf else f" ({predicted_size_mb(int(best)):.1f} MB)"
        raise BudgetError(
            f"No student in search space {self.space.name!r} meets the budget: of {n_points} sampled, "
            f"{smallest}{size}; "
            f"budget.max_parameters is {b.max_parameters}, budget.max_parameter_share is {b.max_parameter_share} (of "
            f"the teacher's {self.teacher_parameters:,}), budget.max_size_mb is {b.max_size_mb}."
        )

    def before_build(self, sample: Sample) -> tuple[int | None, Refusal | None]:
        """The predicted parameters, and a refusal when the size budget (or the config) rules it out."""
        try:
            n = self.task.predicted_parameters(self.prep, sample.student)
        except ConfigError as err:
            return None, Refusal(str(err), 1.0)
        v = self.violation(n)
        return n, (Refusal(f"predicted {n:,} parameters break the budget", v, n) if v > 0 else None)

    def before_training(self, sample: Sample, parameters: int) -> tuple[dict[str, float], Refusal | None]:
        """With a latency, speedup or memory budget: time the untrained shape beside the teacher.
        Returns what was measured (recorded on the trial) and a refusal when it breaks the budget.
        Shapes that a plan only bounds (e.g. low-rank by energy) are measured after training."""
        b = self.cfg.budget
        if b.max_latency_ms is None and b.min_speedup is None and b.max_memory_mb is None:
            return {}, None
        model = self.task.untrained_model(self.prep, sample.student)
        if model is None:
            return {}, None
        timing = self.timed(model)
        lat, teacher_now = timing.latency_ms, timing.teacher_latency_ms
        memory = self.task.peak_memory_mb(self.cfg, self.prep, model) if b.max_memory_mb is not None else None
        seen = {"shape_latency_ms_b1": lat, "shape_teacher_latency_ms_b1": teacher_now, "shape_timing": timing.record()}
        v = measured_violation(b, lat, memory, teacher_now)
        if v <= 0:
            return seen, None
        memory_text = f", peak memory {memory:.1f} MB" if memory is not None else ""
        why = (
            f"its shape runs batch 1 in {lat:.2f} ms against the teacher's {teacher_now:.2f} ms "
            f"({teacher_now / lat:.2f}x){memory_text}, which breaks the budget"
        )
        return seen, Refusal(why, v, parameters)
