"""One trial of the search: sample a student, let the budget gate admit it, train its proxy and
measure it. Returns plain outcomes; the loop (``run.py``) tells Optuna and the tracker."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from autodistill.config.run import RunConfig
from autodistill.evaluate.energy import metered
from autodistill.search.budget import predicted_size_mb
from autodistill.search.early_stop import Halving, MedianInBucket
from autodistill.search.faults import describe, free_memory
from autodistill.search.gate import BudgetGate, Refusal
from autodistill.search.space import Sample, SearchSpace
from autodistill.train.loop import StopTraining

# the trials that reached a checkpoint, for the early-stopping rule
Peers = Callable[[int], list[Any]]  # step -> early_stop.Peer of the trials that reached it


@dataclass
class Outcome:
    """How a trained trial ended: "complete" (with metrics), "pruned" or "failed" (with a reason)."""

    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    resolved: dict[str, Any] | None = None
    history: dict[str, list] = field(default_factory=lambda: {"loss": [], "weights": []})
    reason: str = ""
    trace: str = ""
    interrupted: bool = False  # a KeyboardInterrupt: recorded, then the search ends


def proxy_plan(
    task: Any, prep: Any, cfg: RunConfig, proxy_steps: int, proxy_examples: int, train: dict[str, Any]
) -> tuple[Any, Any]:
    """A trial's proxy run (its training spec and example subset): what the search trains, and what
    export's ``--no-retrain`` and the benchmarks replay exactly."""
    indices = task.proxy_indices(prep, proxy_examples, cfg.seed)
    every = max(1, proxy_steps // cfg.search.pruning.checkpoints)
    # a proxy runs its fixed length: only the search's early-stopping rule ends it sooner, never
    # the full runs' validation patience
    spec = replace(task.train_spec(cfg, len(indices)), steps=proxy_steps, eval_every=every, patience=None)
    return replace(spec, **train), indices


class ProxyObjective:
    """Samples, admits and trains one student at the space's proxy length."""

    def __init__(
        self,
        cfg: RunConfig,
        space: SearchSpace,
        task: Any,
        prep: Any,
        gate: BudgetGate,
        stop_rule: MedianInBucket | Halving,
        peers: Peers,
    ) -> None:
        self.cfg = cfg
        self.space = space
        self.task = task
        self.prep = prep
        self.gate = gate
        self.stop_rule = stop_rule
        self.peers = peers
        self.teacher_parameters = gate.teacher_parameters
        self._teacher_energy: dict[str, Any] | None = None

    def admit(self, trial: Any) -> tuple[Sample, int] | Refusal:
        """Sample the trial's student and decide, before training, whether it may be trained."""
        sample = self.space.sample(trial, self.cfg.student.require_stock_architecture)
        trial.set_user_attr("student", sample.student.to_dict())
        trial.set_user_attr("loss", sample.loss.to_dict())
        trial.set_user_attr("train", sample.train)
        n_params, refusal = self.gate.before_build(sample)
        if n_params is not None:
            trial.set_user_attr("predicted_parameters", n_params)
        if refusal is not None:
            return refusal
        seen, refusal = self.gate.before_training(sample, n_params)
        for key, value in seen.items():
            trial.set_user_attr(key, value)
        return refusal if refusal is not None else (sample, n_params)

    def worst(self, parameters: int | None = None) -> list[float]:
        """Objective values told for a refused student: worse than any trained one."""
        n = parameters or self.teacher_parameters * 10
        worst = {
            "quality": 0.0,
            "parameters": float(n),
            "latency": 100.0,
            "size": predicted_size_mb(n),
            "energy": 100.0,
        }
        return [worst[o] for o in self.cfg.search.objectives]

    def train(self, trial: Any, sample: Sample, n_params: int) -> Outcome:
        """Distil the proxy, stopping early by the rule; a failure is an outcome, not an escape."""
        try:
            return self._train(trial, sample, n_params)
        except StopTraining as stop:
            return Outcome("pruned", reason=str(stop))
        except (Exception, KeyboardInterrupt) as err:  # MemoryError and torch's OutOfMemoryError included
            reason, trace = describe(err)
            interrupted = isinstance(err, KeyboardInterrupt)
        # freed after the except block, which drops the error and its traceback (the trial's frames,
        # holding its model, optimiser and batches)
        free_memory()
        return Outcome("failed", reason=reason, trace=trace, interrupted=interrupted)

    def _train(self, trial: Any, sample: Sample, n_params: int) -> Outcome:
        cfg, sp, prep = self.cfg, self.space.spec, self.prep
        spec, indices = proxy_plan(self.task, prep, cfg, sp.proxy_steps, sp.proxy_examples, sample.train)
        bucket = self.stop_rule.bucket(n_params)
        if bucket is not None:
            trial.set_user_attr("bucket", bucket)
        with metered(cfg.evaluate.energy) as train_energy:
            run = self.task.distill(
                prep,
                sample.student,
                sample.loss,
                spec=spec,
                indices=indices,
                evaluate=self._checkpoint_hook(trial, n_params, spec.steps),
                keep_best=False,
                augment=cfg.distill.augment.in_search,
                calibration_examples=cfg.search.calibration_examples,
            )
        if run.train.stopped_early:  # the loop ends the run quietly; the trial is PRUNED, not COMPLETE
            raise StopTraining(run.train.stop_reason or f"stopped at step {run.train.steps}")
        model = run.build.export_model().eval()
        timing = self.gate.timed(model)
        trial.set_user_attr("timing", timing.record())
        lat, teacher_now = timing.latency_ms, timing.teacher_latency_ms
        n_real = sum(p.numel() for p in model.parameters())
        metrics = {
            **self.task.trial_metrics(run),
            "parameters": float(n_real),
            "parameter_ratio": n_real / self.teacher_parameters,
            "latency_ms_b1": lat,
            "teacher_latency_ms_b1": teacher_now,
            "latency": lat / teacher_now,
            "size": predicted_size_mb(n_real),
            "peak_memory_mb": self.task.peak_memory_mb(cfg, prep, model),
            "train_seconds": run.train.seconds,
            **self._energy(model, train_energy),
        }
        history = {"loss": run.train.history[:: max(1, len(run.train.history) // 200)], "weights": run.train.weights}
        return Outcome("complete", metrics, run.build.resolved, history)

    def _energy(self, model: Any, train: Any) -> dict[str, float]:
        """The proxy training's joules, and with an energy objective or budget the student's energy
        per prediction over the teacher's (``energy``), the teacher's measured once per search."""
        cfg = self.cfg
        out = {"train_energy_j": train.joules} if train.method != "unavailable" else {}
        if "energy" not in cfg.search.objectives and cfg.budget.max_energy_share is None:
            return out
        if self._teacher_energy is None:
            self._teacher_energy = self.task.prediction_energy(cfg, self.prep, self.prep.teacher_model())
        student = self.task.prediction_energy(cfg, self.prep, model)
        teacher = max(1e-12, self._teacher_energy["joules_per_1000"])
        return {**out, "energy_j_per_1000": student["joules_per_1000"], "energy": student["joules_per_1000"] / teacher}

    def _checkpoint_hook(self, trial: Any, n_params: int, steps: int) -> Callable[[int, float], None]:
        """Records each checkpoint's validation on the trial and stops the run by the rule, or when
        ``search.trial_timeout`` has passed."""
        started, seen = time.perf_counter(), {}
        timeout = self.cfg.search.trial_timeout

        def on_checkpoint(step: int, quality: float) -> None:
            seen[str(step)] = quality
            trial.set_user_attr("checkpoints", dict(seen))
            if step >= steps:
                return
            if timeout and time.perf_counter() - started > timeout:
                raise StopTraining(f"trial time over {timeout}s at step {step}")
            why = self.stop_rule.reason_to_stop(step, quality, n_params, self.peers(step))
            if why is not None:
                raise StopTraining(why)

        return on_checkpoint
