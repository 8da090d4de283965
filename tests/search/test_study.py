"""Stale trials of dead workers, here and on other machines, on a real Optuna SQLite study."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from autodistill.search.study import HEARTBEAT_ATTR, WORKER_ATTR, Heartbeat, fail_stale_trials, running_elsewhere


def _study(tmp_path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", directions=["maximize"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_workers_are_failed_and_live_ones_left(tmp_path):
    study = _study(tmp_path)
    host, now = socket.gethostname(), time.time()
    workers = {
        "silent elsewhere": ("other-machine:11", now - 1000),
        "beating elsewhere": ("other-machine:12", now - 5),
        "dead here": (f"{host}:{_dead_pid()}", now),
        "alive here": (f"{host}:{os.getpid()}", now - 1000),  # a live pid needs no heartbeat
    }
    numbers = {}
    for name, (worker, beat) in workers.items():
        trial = study.ask()
        trial.set_user_attr(WORKER_ATTR, worker)
        trial.set_user_attr(HEARTBEAT_ATTR, beat)
        numbers[name] = trial.number
    failed = fail_stale_trials(study, stale_after=600)
    assert sorted(failed) == sorted([numbers["silent elsewhere"], numbers["dead here"]])
    running = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))}
    assert running == {numbers["beating elsewhere"], numbers["alive here"]}
    # trials of another live worker are in flight; this process's own are not "elsewhere"
    assert {t.number for t in running_elsewhere(study)} == {numbers["beating elsewhere"]}


def test_a_trial_without_a_worker_is_judged_by_its_start(tmp_path):
    study = _study(tmp_path)
    fresh = study.ask()  # another worker has just asked for it and not yet written its name
    assert fail_stale_trials(study, stale_after=600) == []
    assert fail_stale_trials(study, stale_after=1e-9) == [fresh.number]


def test_heartbeat_keeps_a_trial_alive_and_stops_with_it(tmp_path):
    study = _study(tmp_path)
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, "other-machine:1")
    with Heartbeat(trial, interval=0.05) as hb:
        first = study.trials[0].user_attrs[HEARTBEAT_ATTR]
        time.sleep(0.4)
        later = study.trials[0].user_attrs[HEARTBEAT_ATTR]
        assert later > first
        assert fail_stale_trials(study, stale_after=0.3) == []
        study.tell(trial, 1.0)  # the trial ends inside the block: the beat must not break
        time.sleep(0.15)
    assert not hb._thread.is_alive()
    assert study.trials[0].state == TrialState.COMPLETE
