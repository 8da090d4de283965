"""Many workers on one study: the storage they share, how a worker shows its trial is alive, how
the trials of dead workers are failed and retried, and the deadline all of them stop at.

On PostgreSQL (or any RDB storage but SQLite) this is Optuna's own machinery: ``RDBStorage`` with
``heartbeat_interval`` and ``grace_period`` (a heartbeat row per running trial, stamped with the
database server's clock, so machines whose clocks disagree still agree on who fell silent),
``optuna.storages.fail_stale_trials`` and its retry callback, which re-queues a dead worker's trial
as a WAITING trial with the same parameters; ``study.ask`` hands that trial out before sampling.

On SQLite the tool keeps its own liveness check (``study.fail_stale_trials``): SQLite is one
machine, where a dead worker is known at once and for certain from its process id, while Optuna's
heartbeat would leave the trial RUNNING for a grace period after a kill; and Optuna's heartbeat
thread ends for good at its first storage error, which SQLite's single write lock ("database is
locked") makes likely under several workers, so a live trial would later be failed as dead.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from autodistill.search.study import (
    WARM_START_ATTR,
    WORKER_ATTR,
    Heartbeat,
    fail_stale_trials,
    open_storage,
    trained_trials,
    worker_id,
)

# A worker killed twice on the same parameters (the kernel's out-of-memory killer, say) is not
# preempted by chance: its trial is then left FAIL instead of killing a third worker.
MAX_RETRIES = 2
RETRY_ATTR = "retry_of"  # on a retried trial: the number of the dead worker's trial it repeats
DEADLINE_ATTR = "deadline"  # wall-clock seconds at which the study's workers stop starting trials


def heartbeat_timing(stale_after: float) -> tuple[int, int]:
    """Optuna's heartbeat interval and grace period, in the whole seconds it takes, for
    ``search.stale_after`` (the grace period): a few beats fit in it, one every 30 s at most."""
    grace = max(2, math.ceil(stale_after))
    return max(1, min(30, grace // 4)), grace


class RetryDeadWorkersTrial:
    """Optuna's retry callback (``RetryHeartbeatStaleTrialCallback``, ``RetryFailedTrialCallback``
    before Optuna 4.9), handed the dead trial with its parameters but not its user attributes:
    Optuna copies those into the retry, which would then start out marked trained, with the dead
    run's MLflow id and checkpoints."""

    def __init__(self, max_retry: int = MAX_RETRIES) -> None:
        cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or (
            optuna.storages.RetryFailedTrialCallback
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            self.retry = cls(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        bare = copy.copy(trial)
        bare.user_attrs = {RETRY_ATTR: trial.number}
        self.retry(study, bare)


def _storage_kwargs(stale_after: float) -> dict[str, Any]:
    interval, grace = heartbeat_timing(stale_after)
    callback = RetryDeadWorkersTrial()
    key = (
        "heartbeat_stale_trial_callback"
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
        else "failed_trial_callback"
    )
    return {"heartbeat_interval": interval, "grace_period": grace, key: callback}


def make_storage(storage: str, stale_after: float) -> str | optuna.storages.RDBStorage:
    """A searching worker's storage: SQLite URLs as they are; other databases with Optuna's
    heartbeat, its grace period ``stale_after`` and the retry of dead workers' trials."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return open_storage(storage, **_storage_kwargs(stale_after))


class Liveness:
    """This worker's side of sharing a study: it marks and keeps alive the trials it runs, and it
    fails (then retries, with their parameters) the running trials of workers that died."""

    def __init__(self, study: optuna.Study, storage: str | optuna.storages.BaseStorage, stale_after: float) -> None:
        self.study = study
        self.stale_after = stale_after
        self.rdb = storage if isinstance(storage, optuna.storages.RDBStorage) else None
        self.retry = RetryDeadWorkersTrial()
        self.interval, self.grace = heartbeat_timing(stale_after)
        # how often a worker waiting for the others' last trials looks again: one cheap query
        self.poll = min(2.0, float(self.interval))
        self._study_id: int | None = None

    def ask(self) -> optuna.Trial:
        """The next trial, marked with this worker's name: a retried trial first (``study.ask``
        pops WAITING trials before sampling a new one)."""
        with warnings.catch_warnings():
            # Optuna warns that its heartbeat is meant for Study.optimize; this loop is its own ask/tell
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = self.study.ask()
        if self.rdb is not None:  # beating before the name is written: a trial with a name has a heartbeat
            self.rdb.record_heartbeat(self._trial_id(trial))
        trial.set_user_attr(WORKER_ATTR, worker_id())
        return trial

    def beat(self, trial: optuna.Trial) -> AbstractContextManager[Any]:
        """Keeps ``trial`` alive while the block runs. On RDB storages this records Optuna's
        heartbeat through the storage's public ``record_heartbeat`` from the tool's own thread:
        Optuna's thread is reached only through Study.optimize, and stops at the first storage error
        (a network blip), after which the live trial would be failed as dead."""
        if self.rdb is None:
            return Heartbeat(trial, interval=min(30.0, self.stale_after / 4))
        rdb, trial_id = self.rdb, self._trial_id(trial)
        return Heartbeat(trial, interval=float(self.interval), beat=lambda: rdb.record_heartbeat(trial_id))

    def _trial_id(self, trial: optuna.Trial) -> int:
        assert self.rdb is not None
        if self._study_id is None:
            self._study_id = self.rdb.get_study_id_from_name(self.study.study_name)
        return self.rdb.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)

    def fail_dead(self) -> list[int]:
        """Fail the RUNNING trials of dead workers and queue their retries; their numbers."""
        if self.rdb is None:
            failed = fail_stale_trials(self.study, self.stale_after)
            self._retry(failed)
            return failed
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # fails, then calls the retry callback
        # Optuna passes over a trial with no heartbeat at all: a worker killed between asking for
        # it and its first beat (it has no name yet either). Judged by its start instead.
        now = time.time()
        orphans = [
            t.number
            for t in running
            if WORKER_ATTR not in t.user_attrs
            and t.datetime_start is not None
            and now - t.datetime_start.timestamp() > self.grace
        ]
        for number in orphans:
            try:
                self.study.tell(number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):  # told meanwhile: its worker was alive after all
                continue
            self._retry([number])
        states = {t.number: t.state for t in self.study.get_trials(deepcopy=False)}
        return [t.number for t in running if states.get(t.number) == TrialState.FAIL]

    def _retry(self, numbers: list[int]) -> None:
        if numbers:
            by_number = {t.number: t for t in self.study.get_trials(deepcopy=False)}
            for n in numbers:
                self.retry(self.study, by_number[n])


def _queued(trial: optuna.Trial | FrozenTrial) -> bool:
    """Whether the trial was queued with its parameters: a dead worker's retry or a warm start."""
    return RETRY_ATTR in trial.user_attrs or WARM_START_ATTR in trial.user_attrs


def surplus(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether ``trial``, just asked for, would take the study past ``n_trials`` trained trials.

    A worker asks only while the trained trials and those in flight are fewer than ``n_trials``,
    but two workers can pass that check at the same moment (Optuna's ``MaxTrialsCallback`` has
    the same race and lets the study overshoot). So a freshly sampled trial yields after asking:
    to every queued trial (a dead worker's retry, a warm start), waiting or running, and to the
    fresh trials numbered before it; of two racers, exactly one goes on. A queued trial never yields."""
    if _queued(trial):
        return False
    ahead = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        if t.number != trial.number and (t.state == TrialState.WAITING or t.number < trial.number or _queued(t))
    ]
    return len(trained_trials(study)) + len(ahead) >= n_trials


def study_deadline(study: optuna.Study, timeout: float | None, now: Callable[[], float] = time.time) -> float | None:
    """When the study's workers stop starting trials: the deadline of a run in progress, which a
    worker joining it takes over (with or without a timeout of its own), else ``timeout`` seconds
    from now, recorded for the workers that join later. Wall-clock time: machines sharing a study
    are assumed to keep their clocks in step (NTP)."""
    current = study.user_attrs.get(DEADLINE_ATTR)
    t = now()
    if current is not None and current > t:
        return float(current)
    if timeout is None:
        return None
    study.set_user_attr(DEADLINE_ATTR, t + timeout)
    return t + timeout


def end_deadline(study: optuna.Study) -> None:
    """The study's run is over (its trial count reached, nothing in flight): the next run starts
    a deadline of its own."""
    if study.user_attrs.get(DEADLINE_ATTR) is not None:
        study.set_user_attr(DEADLINE_ATTR, None)
