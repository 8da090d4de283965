"""Many workers on one study in a real PostgreSQL server (tests/pg.py, on 127.0.0.1): worker
processes started together share the trial count, a worker killed mid-trial has its trial failed
by Optuna's heartbeat and retried with its parameters, and MLflow (on the same server, as an
MLflow server's backend store would be) gets one run per trial. The tiny assets of
test_search_tiny."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_search_tiny import _slower_space, tiny_search  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]


def _start_workers(path: Path, tmp: Path, storage: str, mlflow: str, n_trials: int, n: int) -> list:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # 3 workers on 2 cores
    cmd = [sys.executable, "-m", "autodistill", "search", str(path), "--storage", storage, "--quiet"]
    cmd += ["--n-trials", str(n_trials), "--set", f"search.space={_slower_space(tmp)}"]
    cmd += ["--set", f"tracking.uri={mlflow}", "--set", "search.stale_after=10"]
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]


def _finish(workers: list, seconds: float = 420) -> list[str]:
    """Each worker's stderr once it has ended; a worker still running after ``seconds`` is killed."""
    deadline, errs = time.time() + seconds, []
    for w in workers:
        try:
            errs.append(w.communicate(timeout=max(1.0, deadline - time.time()))[1])
        except subprocess.TimeoutExpired:
            w.kill()
            errs.append(w.communicate()[1])
    return errs


def _failures(procs: list, errs: list[str]) -> list[str]:
    """The traceback (or the end of stderr) of each process that failed, for the assertion message."""
    return [e[max(e.rfind("Traceback"), len(e) - 3000) :] for p, e in zip(procs, errs) if p.returncode]


def _databases(postgres_server, name: str) -> tuple[str, str]:
    """A study database, and an MLflow database made ready the way an MLflow server makes its
    backend store before any client connects (its schema created once, not by racing workers)."""
    from mlflow.tracking import MlflowClient

    storage = postgres_server.create_database(f"{name}_study")
    mlflow = postgres_server.create_database(f"{name}_mlflow")
    MlflowClient(tracking_uri=mlflow).search_experiments()
    return storage, mlflow


def _study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="out", storage=storage)


def _trained(study: optuna.Study) -> list:
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return [t for t in study.get_trials(states=done) if t.user_attrs.get("trained")]


def _trial_runs(mlflow: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow)
    runs = client.search_runs([client.get_experiment_by_name("autodistill").experiment_id])
    assert len([r for r in runs if r.data.tags.get("autodistill.role") == "study"]) == 1
    return [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]


def _params(t) -> str:
    return json.dumps(t.params, sort_keys=True)


OPEN_AT = """
import sys, time
from autodistill.search.study import open_storage
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
open_storage(sys.argv[1])
"""


@pytest.mark.subprocess
def test_workers_opening_an_empty_database_together_all_get_in(postgres_server):
    """Each worker creates Optuna's tables in an empty database at the same instant: PostgreSQL
    refuses all but one CREATE with a duplicate key (with Optuna alone, most of them failed)."""
    url = postgres_server.create_database("empty_together")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    at = str(time.time() + 8)  # after every process has imported Optuna
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_AT, url, at], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, _failures(procs, errs)
    optuna.create_study(storage=url, study_name="usable")  # the tables are whole


@pytest.mark.subprocess
def test_three_workers_share_one_postgres_study(tiny_search, postgres_server):  # noqa: F811
    path, tmp = tiny_search
    storage, mlflow = _databases(postgres_server, "three")
    workers = _start_workers(path, tmp, storage, mlflow, n_trials=6, n=3)
    errs = _finish(workers)
    assert [w.returncode for w in workers] == [0, 0, 0], _failures(workers, errs)
    study = _study(storage)
    trained = _trained(study)
    assert len(trained) == 6, "the trial count is the study's, not each worker's"
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len({_params(t) for t in trained}) == 6, "no parameter set trained twice"
    assert len({t.user_attrs["worker"] for t in trained}) >= 2, "the workers shared the work"
    runs = _trial_runs(mlflow)
    numbers = [int(r.data.tags["autodistill.trial"]) for r in runs]
    assert sorted(numbers) == sorted(t.number for t in trained), "one MLflow run per trained trial, none twice"
    assert {r.info.run_id for r in runs} == {t.user_attrs["mlflow_run_id"] for t in trained}
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs)


@pytest.mark.subprocess
def test_a_killed_worker_trial_is_failed_and_retried(tiny_search, postgres_server):  # noqa: F811
    path, tmp = tiny_search
    storage, mlflow = _databases(postgres_server, "kill")
    workers = _start_workers(path, tmp, storage, mlflow, n_trials=5, n=3)
    victim, complete_then, killed = None, set(), None
    try:
        deadline = time.time() + 300
        while victim is None and time.time() < deadline and all(w.poll() is None for w in workers):
            time.sleep(0.3)
            try:
                trials = _study(storage).get_trials()
            except KeyError:  # the study is not made yet
                continue
            complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
            running = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("trained")]
            by_pid = {w.pid: w for w in workers}
            for t in running:
                pid = int(t.user_attrs["worker"].rpartition(":")[2])
                if complete and pid in by_pid:
                    victim, complete_then, killed = by_pid[pid], complete, t
                    victim.send_signal(signal.SIGKILL)
                    break
        assert victim is not None, f"no trial was seen running beside a finished one: {_finish(workers, 1)}"
    finally:
        errs = _finish(workers)
    survivors = [w for w in workers if w is not victim]
    assert [w.returncode for w in survivors] == [0, 0], _failures(workers, errs)  # the victim's too
    study = _study(storage)
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed.number].state == TrialState.FAIL, "Optuna's heartbeat failed the dead worker's trial"
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params, "retried once, with its parameters"
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED) and retries[0].user_attrs["trained"]
    assert all(by_number[n].state == TrialState.COMPLETE for n in complete_then), "no finished trial lost"
    assert len(_trained(study)) == 5 and not study.get_trials(states=(TrialState.RUNNING,))
    statuses = {int(r.data.tags["autodistill.trial"]): r.info.status for r in _trial_runs(mlflow)}
    assert statuses[killed.number] == "FAILED" and statuses[retries[0].number] in ("FINISHED", "KILLED")


def test_workers_started_together_keep_one_mlflow_experiment_and_parent_run(tmp_path, monkeypatch):
    """A worker that looked for the experiment and the study's parent run just before another
    worker made them makes its own: it then takes the other's experiment, and deletes its own
    parent run for the first one made."""
    from mlflow.tracking import MlflowClient

    from autodistill.tracking.mlflow_tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = Tracker(uri, "autodistill", "s", tmp_path / "art")
    looked: list[str] = []
    real_parents, real_get = Tracker._parents, MlflowClient.get_experiment_by_name

    def late_parents(self):
        looked.append("parents")
        return [] if looked.count("parents") == 1 else real_parents(self)

    def late_get(self, name):
        looked.append("experiment")
        return None if looked.count("experiment") == 1 else real_get(self, name)

    monkeypatch.setattr(Tracker, "_parents", late_parents)
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", late_get)
    second = Tracker(uri, "autodistill", "s", tmp_path / "art")
    assert looked.count("experiment") == 2 and looked.count("parents") == 2, "both raced"
    assert (second.experiment_id, second.parent_id) == (first.experiment_id, first.parent_id)
    parents = MlflowClient(tracking_uri=uri).search_runs([first.experiment_id])
    assert [r.info.run_id for r in parents] == [first.parent_id]
