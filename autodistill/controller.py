"""The search: joins the search space, the pipeline, evaluation and tracking. Kept thin; the
Optuna parts live in search/study.py and search/front.py, MLflow in tracking/."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState
from tqdm.auto import tqdm

from autodistill.commands import latency_seq_len, validate_components
from autodistill.config.run import RunConfig
from autodistill.errors import AutodistillError, BudgetError, ConfigError
from autodistill.pipeline import Prepared, distill_student, prepare, train_spec
from autodistill.search.budget import RandomPoint, measured_violation, predicted_size_mb, predicted_violation
from autodistill.search.front import pareto_front, write_front
from autodistill.search.space import SearchSpace, check_components, load_space
from autodistill.search.study import (
    WORKER_ATTR,
    Heartbeat,
    default_storage,
    fail_stale_trials,
    open_study,
    running_elsewhere,
    study_identity,
    trained_trials,
    worker_id,
)
from autodistill.specs import Step
from autodistill.train.loop import StopTraining


@dataclass
class SearchSetup:
    cfg: RunConfig
    space: SearchSpace
    storage: str
    study_name: str


def setup(cfg: RunConfig, storage: str | None = None, study_name: str | None = None) -> SearchSetup:
    validate_components(cfg)
    space = load_space(cfg.search.space)
    check_components(space)
    storage = storage or cfg.search.storage or default_storage(cfg.output_dir)
    name = study_name or cfg.search.study_name or Path(cfg.output_dir).name
    return SearchSetup(cfg, space, storage, name)


def predicted_parameters(prep: Prepared, sample: Any) -> int:
    from autodistill.student.arch import shape_from_config
    from autodistill.student.build import predict_parameters

    return predict_parameters(shape_from_config(prep.teacher_model().config), sample.student, prep.token_context())


def plan(cfg: RunConfig, n_points: int = 300, progress: bool = True, probe_steps: int = 5) -> dict[str, Any]:
    """What a search would do, without searching: space size, cache size now and at most after the
    search, the students' parameter range, budget feasibility, and the cost of a trial, from a timed
    probe of ``probe_steps`` steps of the largest sampled student (0: no probe)."""
    s = setup(cfg)
    prep = prepare(cfg, progress=progress)
    tconf = prep.teacher_model().config
    teacher_params = sum(p.numel() for p in prep.teacher_model().parameters())
    rng = RandomPoint(cfg.seed)
    sizes, refused, errors, needs, largest = [], 0, 0, set(), None
    for _ in range(n_points):
        sample = s.space.sample(rng, cfg.student.require_stock_architecture)
        try:
            n = predicted_parameters(prep, sample)
        except ConfigError:
            errors += 1
            continue
        sizes.append(n)
        refused += predicted_violation(cfg.budget, n, teacher_params) > 0
        needs |= {x for t in sample.loss.terms for x in cached_needs(t)}
        if predicted_violation(cfg.budget, n, teacher_params) <= 0 and (largest is None or n > largest[0]):
            largest = (n, sample)
    sizes_arr = np.array(sizes) if sizes else np.array([0])
    cache_mb = sum(Path(p).stat().st_size for p in prep.cache.folder.glob("*.npy")) / 1e6
    layers = list(range(1, tconf.num_hidden_layers + 1))
    growth = prep.cache.estimate_bytes(
        tconf,
        prep.encoded,
        layers if {"hidden", "qkv"} & needs else [],
        layers if "attentions" in needs else [],
        layers if "qkv" in needs else [],
    )
    out = {
        "space": s.space.name,
        "space_size": s.space.size(),
        "storage": s.storage,
        "study_name": s.study_name,
        "proxy_steps": s.space.spec.proxy_steps,
        "proxy_examples": s.space.spec.proxy_examples,
        "n_trials": cfg.search.n_trials,
        "teacher_parameters": teacher_params,
        "cache_mb": round(cache_mb, 2),
        "cache_growth_mb_max": round(growth / 1e6, 1),
        "cache_folder": str(prep.cache.folder),
        "sampled_points": n_points,
        "predicted_parameters_min": int(sizes_arr.min()),
        "predicted_parameters_max": int(sizes_arr.max()),
        "predicted_refused_fraction": refused / max(1, len(sizes)),
        "invalid_points": errors,
        "budget_feasible": bool(sizes) and refused < len(sizes),
    }
    if probe_steps > 0 and largest is not None:
        out.update(trial_cost(cfg, s.space.spec, prep, largest[1], probe_steps))
        out["estimated_search_seconds_max"] = round(out["trial_seconds_max"] * cfg.search.n_trials)
    return out


def cached_needs(term: Step) -> set[str]:
    """The teacher-output arrays beyond logits that a loss term reads (hidden, attentions, qkv)."""
    from autodistill.losses import LOSSES

    if term.name == "attention_relation":  # decided by its options, not its class
        return {"qkv"} if term.options.get("source", "qkv") == "qkv" else {"hidden", "attentions"}
    return set(LOSSES.get(term.name).needs) & {"hidden", "attentions", "qkv"}


def trial_cost(cfg: RunConfig, space: Any, prep: Prepared, sample: Any, probe_steps: int) -> dict[str, Any]:
    """Seconds one trial of this student takes: a timed probe of a few proxy steps (logit terms
    only, so the probe never fills the teacher-output cache), scaled to the proxy length, plus the
    build and validation time the probe also paid. Weights are thrown away."""
    from dataclasses import replace

    from autodistill.data import stratified_subset

    terms = tuple(t for t in sample.loss.terms if not cached_needs(t)) or (Step("kl"),)
    labels = prep.encoded["train"].labels
    indices = stratified_subset(labels, min(space.proxy_examples, len(labels)), cfg.seed)
    spec = replace(train_spec(cfg, len(indices)), steps=probe_steps, eval_every=None)
    spec = replace(spec, **{k: v for k, v in sample.train.items() if k != "lr"})
    start = time.perf_counter()
    run = distill_student(
        prep,
        sample.student,
        replace(sample.loss, terms=terms),
        spec,
        indices,
        evaluate=None,
        keep_best=False,
        augment=cfg.distill.augment.in_search,
        calibration_examples=cfg.search.calibration_examples,
    )
    total = time.perf_counter() - start
    per_step = run.train.seconds / probe_steps
    return {
        "probe_steps": probe_steps,
        "step_seconds": round(per_step, 4),
        "trial_seconds_max": round(total - run.train.seconds + per_step * space.proxy_steps, 1),
    }


class Search:
    """One search run: ``Search(cfg).run(n_trials)``; running it again continues the study."""

    def __init__(
        self, cfg: RunConfig, storage: str | None = None, study_name: str | None = None, progress: bool = True
    ) -> None:
        self.s = setup(cfg, storage, study_name)
        self.cfg = cfg
        self.progress = progress
        self.out = Path(cfg.output_dir)
        self.objectives = list(cfg.search.objectives)

    def run(self, n_trials: int | None = None, timeout: float | None = None) -> dict[str, Any]:
        cfg = self.cfg
        n_trials = n_trials or cfg.search.n_trials
        timeout = timeout or cfg.search.timeout
        start = time.perf_counter()
        prep = prepare(cfg, progress=self.progress)
        self.prep = prep
        self._check_feasible(prep)
        identity = study_identity(cfg, self.s.space.fingerprint_dict(), prep.teacher.fingerprint, prep.data.fingerprint)
        study = open_study(cfg, self.s.storage, self.s.study_name, identity)
        self._study_ref = study
        stale = fail_stale_trials(study, cfg.search.stale_after)
        tracker = self._tracker()
        if tracker is not None:
            tracker.fail_stale({t.number for t in running_elsewhere(study)})
            tracker.log_study(
                {
                    "space": self.s.space.name,
                    "objectives": self.objectives,
                    "sampler": cfg.search.sampler,
                    "proxy_steps": self.s.space.spec.proxy_steps,
                    "teacher": str(prep.teacher.path),
                }
            )
        self.teacher_meas = self._measure_teacher(prep)
        done = len(trained_trials(study))
        bar = tqdm(
            total=n_trials, initial=min(done, n_trials), desc="search", disable=not self.progress, dynamic_ncols=True
        )
        if stale and self.progress:
            print(f"resumed: {len(stale)} stale trial(s) of a killed run marked FAILED: {stale}")
        refusals = 0
        try:
            # other workers' trials in flight count too, so that workers sharing a study stop at n_trials
            while len(trained_trials(study)) + len(running_elsewhere(study)) < n_trials:
                if timeout is not None and time.perf_counter() - start > timeout:
                    break
                trial = study.ask()
                trial.set_user_attr(WORKER_ATTR, worker_id())
                with Heartbeat(trial, interval=min(30.0, cfg.search.stale_after / 4)):
                    outcome = self._trial(study, trial, prep, tracker)
                if outcome == "refused":
                    refusals += 1
                    if refusals > cfg.search.max_refusals_per_trial:
                        raise BudgetError(
                            f"The search refused {refusals} students in a row for breaking the budget; the space "
                            f"{self.s.space.name!r} rarely meets it. Loosen 'budget' or choose a smaller space."
                        )
                    continue
                refusals = 0
                bar.update(1)
                front = self._update_front(study, tracker)
                bar.set_postfix(front=len(front), refresh=True)
        finally:
            bar.close()
        front = self._update_front(study, tracker)
        if tracker is not None:
            tracker.end_study("FINISHED")
        return {
            "study": self.s.study_name,
            "storage": self.s.storage,
            "trained": len(trained_trials(study)),
            "front": front,
            "seconds": round(time.perf_counter() - start, 1),
            "objectives": self.objectives,
        }

    # -- pieces --------------------------------------------------------------------------
    def _tracker(self) -> Any:
        if not self.cfg.tracking.enabled:
            return None
        from autodistill.tracking.mlflow_tracker import Tracker, default_uri

        uri = self.cfg.tracking.uri or default_uri(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        return Tracker(uri, self.cfg.tracking.experiment, self.s.study_name, self.out / "mlartifacts")

    def _check_feasible(self, prep: Prepared) -> None:
        """A budget that no student in the space can meet is reported before any training."""
        b = self.cfg.budget
        if b.max_parameters is None and b.max_parameter_share is None and b.max_size_mb is None:
            return
        from autodistill.evaluate import parameter_counts

        teacher_params = parameter_counts(prep.teacher_model())["total"]
        rng = RandomPoint(self.cfg.seed)
        best = math.inf
        for _ in range(300):
            try:
                best = min(
                    best,
                    predicted_parameters(prep, self.s.space.sample(rng, self.cfg.student.require_stock_architecture)),
                )
            except ConfigError:
                continue
            if predicted_violation(b, int(best), teacher_params) <= 0:
                return
        raise BudgetError(
            f"No student in search space {self.s.space.name!r} meets the budget: the smallest of 300 sampled has "
            f"{int(best):,} parameters ({predicted_size_mb(int(best)):.1f} MB); budget.max_parameters is "
            f"{b.max_parameters}, budget.max_parameter_share is {b.max_parameter_share} (of the teacher's "
            f"{teacher_params:,}), budget.max_size_mb is {b.max_size_mb}."
        )

    def _measure_teacher(self, prep: Prepared) -> dict[str, Any]:
        from autodistill.evaluate import parameter_counts

        self.seq_len = latency_seq_len(self.cfg, prep.encoded["test"].lengths)
        model = prep.teacher_model()
        # its latency is measured beside each student (_train), not here, so that the ratio sees one load
        return {"parameters": parameter_counts(model)["total"]}

    def _trial(self, study: Any, trial: Any, prep: Prepared, tracker: Any) -> str:
        cfg = self.cfg
        sample = self.s.space.sample(trial, cfg.student.require_stock_architecture)
        trial.set_user_attr("student", sample.student.to_dict())
        trial.set_user_attr("loss", sample.loss.to_dict())
        trial.set_user_attr("train", sample.train)
        try:
            n_params = predicted_parameters(prep, sample)
        except ConfigError as err:  # e.g. a non-stock student when stock is required
            trial.set_user_attr("refused", str(err))
            trial.set_constraint("budget", 1.0)
            study.tell(trial, self._worst())
            return "refused"
        violation = predicted_violation(cfg.budget, n_params, self.teacher_meas["parameters"])
        trial.set_user_attr("predicted_parameters", n_params)
        if violation > 0:  # refused before anything is built; the sampler learns from the constraint
            trial.set_user_attr("refused", f"predicted {n_params:,} parameters break the budget")
            trial.set_constraint("budget", violation)
            study.tell(trial, self._worst(n_params))
            return "refused"
        why = self._shape_breaks_budget(trial, prep, sample)
        if why is not None:  # timed on the untrained shape: no proxy is spent on a student too slow to pick
            trial.set_user_attr("refused", why[0])
            trial.set_constraint("budget", why[1])
            study.tell(trial, self._worst(n_params))
            return "refused"
        trial.set_user_attr("trained", True)
        run_id = (
            tracker.start_trial(trial.number, {**trial.params, "predicted_parameters": n_params}) if tracker else None
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        try:
            metrics, resolved, history = self._train(trial, prep, sample, n_params)
        except StopTraining as stop:
            trial.set_user_attr("pruned", str(stop))
            study.tell(trial, state=TrialState.PRUNED)
            if tracker:
                tracker.finish_trial(run_id, {}, None, "KILLED")
            return "pruned"
        except (Exception, KeyboardInterrupt) as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            study.tell(trial, state=TrialState.FAIL)
            if tracker:
                tracker.finish_trial(run_id, {}, None, "FAILED")
            if isinstance(err, (KeyboardInterrupt, MemoryError)) or not isinstance(err, AutodistillError):
                raise
            return "failed"
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("resolved", resolved)
        trial.set_constraint(
            "budget",
            measured_violation(
                cfg.budget,
                metrics.get("latency_ms_b1"),
                metrics.get("peak_memory_mb"),
                metrics.get("teacher_latency_ms_b1"),
            ),
        )
        values = [metrics[o] for o in self.objectives]
        study.tell(trial, values)
        if tracker:
            tracker.log_history(run_id, history["loss"], history["weights"])
            tracker.finish_trial(run_id, metrics, resolved, "FINISHED")
        return "complete"

    def _shape_breaks_budget(self, trial: Any, prep: Prepared, sample: Any) -> tuple[str, float] | None:
        """With a latency, speedup or memory budget: time the student's planned shape (random
        weights; latency and memory depend on the shape alone) beside the teacher before any
        training. Returns why and by how much it breaks the budget, or None. Shapes that a plan only
        bounds (e.g. low-rank by energy) are measured after training instead."""
        from autodistill.evaluate import peak_memory_mb
        from autodistill.student.arch import build_model, shape_from_config
        from autodistill.student.build import plan_student

        b = self.cfg.budget
        if b.max_latency_ms is None and b.min_speedup is None and b.max_memory_mb is None:
            return None
        teacher = prep.teacher_model()
        shape, exactness = plan_student(shape_from_config(teacher.config), sample.student, prep.token_context())
        if exactness == "bound":
            return None
        model = build_model(shape, teacher.config)
        lat, teacher_now = self._latency_b1(model, teacher)
        memory = peak_memory_mb(model, 1, self.seq_len) if b.max_memory_mb is not None else None
        trial.set_user_attr("shape_latency_ms_b1", lat)
        trial.set_user_attr("shape_teacher_latency_ms_b1", teacher_now)
        violation = measured_violation(b, lat, memory, teacher_now)
        if violation <= 0:
            return None
        memory_text = f", peak memory {memory:.1f} MB" if memory is not None else ""
        return (
            f"its shape runs batch 1 in {lat:.2f} ms against the teacher's {teacher_now:.2f} ms "
            f"({teacher_now / lat:.2f}x){memory_text}, which breaks the budget",
            violation,
        )

    def _worst(self, n_params: int | None = None) -> list[float]:
        worst = {
            "quality": 0.0,
            "parameters": float(n_params or self.teacher_meas["parameters"] * 10),
            "latency": 100.0,
            "size": predicted_size_mb(n_params or self.teacher_meas["parameters"] * 10),
        }
        return [worst[o] for o in self.objectives]

    def _train(self, trial: Any, prep: Prepared, sample: Any, n_params: int) -> tuple[dict, dict, dict]:
        from dataclasses import replace

        from autodistill.data import stratified_subset
        from autodistill.evaluate import peak_memory_mb

        cfg, sp = self.cfg, self.s.space.spec
        labels = prep.encoded["train"].labels
        indices = stratified_subset(labels, min(sp.proxy_examples, len(labels)), cfg.seed)
        checkpoints = cfg.search.pruning.checkpoints
        spec = replace(
            train_spec(cfg, len(indices)), steps=sp.proxy_steps, eval_every=max(1, sp.proxy_steps // checkpoints)
        )
        spec = replace(spec, **{k: v for k, v in sample.train.items()})
        started = time.perf_counter()
        bucket = math.floor(math.log2(max(2, n_params)) / cfg.search.pruning.bucket_log2_width)
        trial.set_user_attr("bucket", bucket)
        seen: dict[str, float] = {}

        def on_checkpoint(step: int, quality: float) -> None:
            seen[str(step)] = quality
            trial.set_user_attr("checkpoints", dict(seen))
            if step >= spec.steps:
                return
            if cfg.search.trial_timeout and time.perf_counter() - started > cfg.search.trial_timeout:
                raise StopTraining(f"trial time over {cfg.search.trial_timeout}s at step {step}")
            if cfg.search.pruning.enabled:
                peers = [
                    t.user_attrs["checkpoints"][str(step)]
                    for t in self._finished(bucket)
                    if str(step) in t.user_attrs.get("checkpoints", {})
                ]
                if len(peers) >= cfg.search.pruning.min_trials and quality < float(np.median(peers)):
                    raise StopTraining(
                        f"validation {quality:.4f} below the median {np.median(peers):.4f} of "
                        f"{len(peers)} similar-size trials at step {step}"
                    )

        run = distill_student(
            prep,
            sample.student,
            sample.loss,
            spec,
            indices,
            evaluate=on_checkpoint,
            keep_best=False,
            augment=cfg.distill.augment.in_search,
            calibration_examples=cfg.search.calibration_examples,
        )
        if run.train.stopped_early:  # the loop ends the run quietly; the trial is PRUNED, not COMPLETE
            raise StopTraining(run.train.stop_reason or f"stopped at step {run.train.steps}")
        model = run.build.export_model().eval()
        lat, teacher_now = self._latency_b1(model, prep.teacher_model())  # interleaved: one machine load
        n_real = sum(p.numel() for p in model.parameters())
        metrics = {
            "quality": run.validation["quality"],
            "accuracy": run.validation["accuracy"],
            "macro_f1": run.validation["macro_f1"],
            "teacher_agreement": run.validation["teacher_agreement"],
            "parameters": float(n_real),
            "parameter_ratio": n_real / self.teacher_meas["parameters"],
            "latency_ms_b1": lat,
            "teacher_latency_ms_b1": teacher_now,
            "latency": lat / teacher_now,
            "size": predicted_size_mb(n_real),
            "peak_memory_mb": peak_memory_mb(model, 1, self.seq_len),
            "train_seconds": run.train.seconds,
        }
        history = {"loss": run.train.history[:: max(1, len(run.train.history) // 200)], "weights": run.train.weights}
        return metrics, run.build.resolved, history

    def _latency_b1(self, student: Any, teacher: Any) -> tuple[float, float]:
        """Batch-1 milliseconds of the student and the teacher, their passes interleaved."""
        from autodistill.evaluate import measure_latencies

        ev = self.cfg.evaluate
        both = measure_latencies(
            [student, teacher],
            batch_sizes=(1,),
            seq_len=self.seq_len,
            threads=ev.threads,
            warmup=ev.warmup,
            repeats=ev.repeats,
        )
        return both[0]["latency_ms_b1"], both[1]["latency_ms_b1"]

    def _finished(self, bucket: int) -> list[Any]:
        study = self._study_ref
        return [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("trained") and t.user_attrs.get("bucket") == bucket
        ]

    def _update_front(self, study: Any, tracker: Any) -> list[dict[str, Any]]:
        files = write_front(study, self.objectives, self.out)
        front = pareto_front(study, self.objectives)
        if tracker is not None:
            on_front = {r["mlflow_run_id"] for r in front if r["mlflow_run_id"]}
            all_ids = [
                t.user_attrs["mlflow_run_id"] for t in trained_trials(study) if t.user_attrs.get("mlflow_run_id")
            ]
            tracker.mark_front(on_front, all_ids)
            tracker.log_front_files(files)
        return front
