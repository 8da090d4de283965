"""The search loop: ask a trial, run the objective, tell the outcome, keep the front current.

``SearchSetup`` resolves what a config's search works on (space, storage, study name);
``Search(cfg).run(n_trials)`` runs or continues the study until it holds that many trained trials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from tqdm.auto import tqdm

from autodistill.config.run import RunConfig
from autodistill.errors import BudgetError, ConfigError
from autodistill.search.budget import measured_violation
from autodistill.search.early_stop import Peer, stop_rule
from autodistill.search.effort import effort, hypervolumes
from autodistill.search.faults import FailureStreak
from autodistill.search.front import pareto_front, write_front
from autodistill.search.gate import BudgetGate, Refusal
from autodistill.search.objective import Outcome, ProxyObjective
from autodistill.search.space import SearchSpace, check_components, load_space
from autodistill.search.study import (
    default_storage,
    open_study,
    running_elsewhere,
    shown_url,
    study_identity,
    trained_trials,
    warm_start,
)
from autodistill.search.workers import Liveness, end_deadline, make_storage, study_deadline, surplus

_RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


@dataclass(frozen=True)
class SearchSetup:
    cfg: RunConfig
    space: SearchSpace
    storage: str
    study_name: str


def setup(cfg: RunConfig, storage: str | None = None, study_name: str | None = None) -> SearchSetup:
    from autodistill.components import validate_components
    from autodistill.tasks import get_task

    components = get_task(cfg).components()
    validate_components(cfg, components)
    space = load_space(cfg.search.space)
    if space.spec.task != cfg.task:
        raise ConfigError(
            f"The 'search.space' parameter names {space.name!r}, a search space for task {space.spec.task!r}, but "
            f"the config's task is {cfg.task!r}. Choose a space made for {cfg.task!r}."
        )
    check_components(space, components)
    storage = storage or cfg.search.storage or default_storage(cfg.output_dir)
    name = study_name or cfg.search.study_name or Path(cfg.output_dir).name
    return SearchSetup(cfg, space, storage, name)


def prepared_gate(s: SearchSetup, progress: bool) -> tuple[Any, Any, BudgetGate]:
    """The task, its prepared data and teacher, and the budget gate over the space."""
    from autodistill.evaluate import parameter_counts
    from autodistill.tasks import get_task

    task = get_task(s.cfg)
    prep = task.prepare(s.cfg, progress=progress)
    teacher_parameters = parameter_counts(prep.teacher_model())["total"]
    return task, prep, BudgetGate(s.cfg, s.space, task, prep, teacher_parameters)


class Search:
    """One search run: ``Search(cfg).run(n_trials)``; running it again continues the study."""

    def __init__(
        self, cfg: RunConfig, storage: str | None = None, study_name: str | None = None, progress: bool = True
    ) -> None:
        from autodistill.tracking import open_tracker

        self.s = setup(cfg, storage, study_name)
        self.cfg = cfg
        self.progress = progress
        self.objectives = list(cfg.search.objectives)
        self.task, self.prep, self.gate = prepared_gate(self.s, progress)
        self.gate.check_feasible()
        identity = study_identity(
            cfg, self.s.space.fingerprint_dict(), self.prep.teacher.fingerprint, self.prep.data.fingerprint
        )
        storage = make_storage(self.s.storage, cfg.search.stale_after)
        self.study = open_study(cfg, storage, self.s.study_name, identity)
        if cfg.search.warm_start:
            warmed = warm_start(self.study, storage, cfg.search.warm_start, identity)
            if warmed and progress:
                print(f"warm start: the front of study {cfg.search.warm_start!r} (trials {warmed}) goes first")
        self.live = Liveness(self.study, storage, cfg.search.stale_after)
        self.stop_rule = stop_rule(cfg.search.pruning)
        self.objective = ProxyObjective(cfg, self.s.space, self.task, self.prep, self.gate, self.stop_rule, self._peers)
        self.tracker = open_tracker(cfg, self.s.study_name)
        self.failures = FailureStreak(limit=3)

    def run(
        self,
        n_trials: int | None = None,
        timeout: float | None = None,
        more: int | None = None,
        max_steps: int | None = None,
    ) -> dict[str, Any]:
        """Trials until the study holds ``n_trials`` trained ones (default ``search.n_trials``), or
        ``more`` beyond those it holds now, or until its trained trials have spent ``max_steps``
        proxy steps (``--compare-random``'s equal compute)."""
        cfg, study = self.cfg, self.study
        n_trials = len(trained_trials(study)) + more if more else n_trials or cfg.search.n_trials
        # the trial count and the deadline are the study's: every worker sharing it stops at both
        deadline = study_deadline(study, timeout or cfg.search.timeout)
        start = time.perf_counter()
        self._resume()
        bar = tqdm(total=n_trials, initial=min(len(trained_trials(study)), n_trials), desc="search",
                   disable=not self.progress, dynamic_ncols=True)  # fmt: skip
        refusals = 0
        try:
            while (step := self._next_step(n_trials, deadline, max_steps)) != "stop":
                if step == "wait":
                    time.sleep(self.live.poll)
                    continue
                state = self._one_trial(n_trials)
                if state == "withdrawn":
                    continue
                if state == "refused":
                    refusals += 1
                    self._check_refusals(refusals)
                    continue
                refusals = 0
                bar.update(state != "taken over")
                bar.set_postfix(front=len(self._update_front()), refresh=True)
        finally:
            bar.close()
        if len(trained_trials(study)) >= n_trials and not running_elsewhere(study):
            end_deadline(study)
        front = self._update_front()
        spent = effort(trained_trials(study))
        self.tracker.log_study_metrics({"proxy_steps": spent["steps"], "trained_trials": spent["trials"]})
        self.tracker.end_study("FINISHED")
        return {
            "study": self.s.study_name,
            "storage": shown_url(self.s.storage),
            "trained": len(trained_trials(study)),
            "front": front,
            "seconds": round(time.perf_counter() - start, 1),
            "objectives": self.objectives,
            "effort": spent,
        }

    def _one_trial(self, n_trials: int) -> str:
        """Ask, admit, train, tell: one trial, like Optuna's own ``_run_trial``."""
        trial = self.live.ask()
        if surplus(self.study, trial, n_trials):  # another worker's trial brings the study to n_trials
            trial.set_user_attr("withdrawn", f"another worker's trial brings the study to {n_trials} trials")
            self.study.tell(trial, state=TrialState.FAIL)
            return "withdrawn"
        with self.live.beat(trial):
            try:
                admitted = self.objective.admit(trial)
            except BaseException as err:  # a fault while sampling or planning: never leave the trial RUNNING
                trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:2000])
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            if isinstance(admitted, Refusal):
                trial.set_user_attr("refused", admitted.reason)
                trial.set_constraint("budget", admitted.violation)
                self.study.tell(trial, self.objective.worst(admitted.parameters))
                return "refused"
            sample, n_params = admitted
            trial.set_user_attr("trained", True)
            run_id = self.tracker.start_trial(trial.number, {**trial.params, "predicted_parameters": n_params})
            trial.set_user_attr("mlflow_run_id", run_id)
            outcome = self.objective.train(trial, sample, n_params)
            try:
                self._tell(trial, outcome, run_id)
            except UpdateFinishedTrialError:
                # another worker failed this trial while this one was silent past search.stale_after,
                # and its retry stands: this result is dropped and the worker goes on
                why = f"trial {trial.number} was failed by another worker while this one was silent; its retry stands"
                self.tracker.finish_trial(run_id, {}, None, "FAILED", why)
                if self.progress:
                    print(why)
                return "taken over"
        if outcome.interrupted:
            raise KeyboardInterrupt
        self.failures.add(outcome.state, outcome.reason)
        return outcome.state

    def _tell(self, trial: Any, outcome: Outcome, run_id: str | None) -> None:
        if outcome.state == "complete":
            m = outcome.metrics
            trial.set_user_attr("metrics", m)
            trial.set_user_attr("resolved", outcome.resolved)
            violation = measured_violation(
                self.cfg.budget,
                m.get("latency_ms_b1"),
                m.get("peak_memory_mb"),
                m.get("teacher_latency_ms_b1"),
                m.get("energy"),
            )
            trial.set_constraint("budget", violation)
            self.study.tell(trial, [m[o] for o in self.objectives])
            self.tracker.log_history(run_id, outcome.history["loss"], outcome.history["weights"])
        elif outcome.state == "pruned":
            trial.set_user_attr("pruned", outcome.reason)
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("error", outcome.reason)
            trial.set_user_attr("traceback", outcome.trace)
            self.study.tell(trial, state=TrialState.FAIL)
        status = _RUN_STATUS[outcome.state]
        self.tracker.finish_trial(run_id, outcome.metrics, outcome.resolved, status, outcome.reason or None)

    def _next_step(self, n_trials: int, deadline: float | None, max_steps: int | None = None) -> str:
        """What to do next: "trial"; "wait" while other workers run the trials that would bring the
        study to ``n_trials`` (one of them may die, and its trial be retried here); or "stop"."""
        if deadline is not None and time.time() > deadline:
            return "stop"
        dead = self.live.fail_dead()
        if dead:
            self.tracker.fail_stale({t.number for t in self.study.get_trials(deepcopy=False)} - set(dead))
            if self.progress:
                print(f"trial(s) {dead} of a dead worker marked FAILED; their parameters are tried again")
        done = trained_trials(self.study)
        trained = len(done)
        if trained >= n_trials or (max_steps is not None and effort(done)["steps"] >= max_steps):
            return "stop"
        return "wait" if trained + len(running_elsewhere(self.study)) >= n_trials else "trial"

    def _resume(self) -> None:
        """Fail the trials a killed run left RUNNING (and their MLflow runs); record the study."""
        stale = self.live.fail_dead()
        self.tracker.fail_stale({t.number for t in running_elsewhere(self.study)})
        sp = self.s.space
        study = {"space": sp.name, "objectives": self.objectives, "sampler": self.cfg.search.sampler}
        self.tracker.log_study({**study, "proxy_steps": sp.spec.proxy_steps, "teacher": str(self.prep.teacher.path)})
        if stale and self.progress:
            print(f"resumed: {len(stale)} stale trial(s) of a killed run marked FAILED: {stale}")

    def _check_refusals(self, refusals: int) -> None:
        if refusals > self.cfg.search.max_refusals_per_trial:
            raise BudgetError(
                f"The search refused {refusals} students in a row for breaking the budget; the space "
                f"{self.s.space.name!r} rarely meets it. Loosen 'budget' or choose a smaller space."
            )

    def _peers(self, step: int) -> list[Peer]:
        """The trained trials that reached checkpoint ``step``: finished ones, and those stopped
        there or later when the rule counts them (halving's rungs)."""
        states = (TrialState.COMPLETE, TrialState.PRUNED) if self.stop_rule.counts_stopped else (TrialState.COMPLETE,)
        out = []
        for t in self.study.get_trials(deepcopy=False, states=states):
            seen = t.user_attrs.get("checkpoints", {})
            if t.user_attrs.get("trained") and str(step) in seen:
                size = t.user_attrs.get("predicted_parameters") or (t.user_attrs.get("metrics") or {}).get("parameters")
                out.append(Peer(seen[str(step)], float(size or 0), t.user_attrs.get("bucket")))
        return out

    def _update_front(self) -> list[dict[str, Any]]:
        files = write_front(self.study, self.objectives, Path(self.cfg.output_dir))
        front = pareto_front(self.study, self.objectives)
        on_front = {r["mlflow_run_id"] for r in front if r["mlflow_run_id"]}
        all_ids = [t.user_attrs.get("mlflow_run_id") for t in trained_trials(self.study)]
        all_ids = [i for i in all_ids if i]
        self.tracker.mark_front(on_front, all_ids)
        self.tracker.log_front_files(files)
        return front


def compare_random(cfg: RunConfig, main: dict[str, Any], storage: str | None, progress: bool) -> dict[str, Any]:
    """``--compare-random``: a study of the same config with the random sampler (``<study>-random``
    in the same storage; run again, it continues), trained until it has spent at least the main
    study's proxy steps; both fronts' hypervolumes on the same scale (``effort.hypervolumes``)."""
    from dataclasses import replace

    name = f"{main['study']}-random"
    # random from its first trial: no warm start from another study's front
    rcfg = replace(cfg, search=replace(cfg.search, sampler="random", study_name=name, warm_start=None))
    search = Search(rcfg, storage=storage, study_name=name, progress=progress)
    budget = max(1, main["effort"]["steps"])
    # the trial count only bounds the run: equal steps end it
    out = search.run(n_trials=10 * max(1, main["trained"]) + len(trained_trials(search.study)), max_steps=budget)
    ours, theirs = hypervolumes([main["front"], out["front"]], main["objectives"])
    return {
        "study": name,
        "trained": out["trained"],
        "steps": out["effort"]["steps"],
        "front": out["front"],
        "hypervolume": theirs,
        "main_hypervolume": ours,
        "objectives": main["objectives"][:2],
    }
