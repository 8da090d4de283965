"""A worker's side of sharing a study (search/workers.py), in-process: Optuna's heartbeat on a
real PostgreSQL server fails a silent worker's trial and queues its retry, which the next ask
hands out and the space samples to the same student; the tool's own check on SQLite retries a
dead process's trial the same way; the study's deadline; storage URLs that cannot be opened."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from test_search_tiny import SPACE

from autodistill.errors import ConfigError
from autodistill.search.space import load_space
from autodistill.search.study import WORKER_ATTR, default_storage, open_existing, open_storage, worker_id
from autodistill.search.workers import (
    DEADLINE_ATTR,
    RETRY_ATTR,
    Liveness,
    end_deadline,
    heartbeat_timing,
    make_storage,
    study_deadline,
    surplus,
)


def _space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return load_space(str(path))


def _create(storage, name: str = "s") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])


def _started_trained(live: Liveness, space) -> tuple[optuna.Trial, dict]:
    trial = live.ask()
    sample = space.sample(trial)
    trial.set_user_attr("trained", True)
    trial.set_user_attr("mlflow_run_id", "run-of-the-dead-worker")
    return trial, sample.params


def test_heartbeat_timing_fits_beats_in_the_grace_period():
    assert heartbeat_timing(600) == (30, 600)
    assert heartbeat_timing(10) == (2, 10)
    assert heartbeat_timing(0.5) == (1, 2)  # Optuna takes whole seconds, a grace longer than a beat


def test_optuna_heartbeat_fails_a_silent_trial_and_its_retry_trains_the_same_student(tmp_path, postgres_server):
    storage = make_storage(postgres_server.create_database("liveness"), stale_after=2)
    study = _create(storage)
    live, space = Liveness(study, storage, 2), _space(tmp_path)
    dead, params = _started_trained(live, space)  # its worker dies now: it never beats again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        orphan = study.ask()  # a worker killed between asking for a trial and its first beat
    alive = live.ask()
    with live.beat(alive):
        time.sleep(3.5)
        assert sorted(live.fail_dead()) == sorted([dead.number, orphan.number])
    states = {t.number: t.state for t in study.trials}
    assert (
        states[dead.number] == states[orphan.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    )
    retry = live.ask()  # the WAITING retries come before any new trial
    assert retry.number > alive.number and retry.params == params
    # Optuna copies the dead trial's user attributes into its retry: only which trial it repeats is kept
    assert study.trials[retry.number].user_attrs == {RETRY_ATTR: dead.number, WORKER_ATTR: worker_id()}
    assert space.sample(retry).params == params, "the space samples the retried trial's fixed parameters"


def test_a_trial_whose_worker_dies_every_time_is_retried_twice_then_left_failed(tmp_path, postgres_server):
    storage = make_storage(postgres_server.create_database("retries"), stale_after=2)
    study = _create(storage)
    live, space = Liveness(study, storage, 2), _space(tmp_path)
    first, params = _started_trained(live, space)
    numbers = [first.number]
    for _ in range(3):
        time.sleep(3.2)
        assert live.fail_dead() == [numbers[-1]]
        waiting = study.get_trials(states=(TrialState.WAITING,))
        if not waiting:
            break
        retry = live.ask()
        assert retry.params == params
        numbers.append(retry.number)
    assert len(numbers) == 3 and not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_on_sqlite_a_dead_process_trial_is_failed_at_once_and_retried(tmp_path):
    import socket

    url = default_storage(tmp_path)
    study = _create(make_storage(url, stale_after=600))
    live, space = Liveness(study, url, 600), _space(tmp_path)
    dead, params = _started_trained(live, space)
    dead.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{_dead_pid()}")
    assert live.fail_dead() == [dead.number]  # no grace period: the process is known to be gone
    retry = live.ask()
    assert retry.params == params and study.trials[retry.number].user_attrs[RETRY_ATTR] == dead.number
    assert not study.trials[retry.number].user_attrs.get("trained")


def test_of_two_workers_that_asked_at_once_for_the_last_trial_only_the_first_goes_on(tmp_path):
    study = _create(default_storage(tmp_path))
    done = study.ask()
    done.set_user_attr("trained", True)
    study.tell(done, [0.8, 1000.0])
    first, second = study.ask(), study.ask()  # both workers saw 1 trained + 0 in flight < 2
    assert not surplus(study, first, 2) and surplus(study, second, 2)
    assert not surplus(study, second, 3), "room for both"
    study.tell(second, state=TrialState.FAIL)
    # a dead worker's retry, queued after a fresh trial started, goes first: the fresh one yields
    study.enqueue_trial({}, user_attrs={RETRY_ATTR: 0})
    assert surplus(study, first, 2)
    retry = study.ask()
    assert retry.user_attrs[RETRY_ATTR] == 0 and not surplus(study, retry, 2), "a queued trial never yields"
    assert surplus(study, first, 2) and not surplus(study, first, 3)


def test_the_deadline_is_the_study_s(tmp_path):
    study = _create(default_storage(tmp_path))
    assert study_deadline(study, 100, now=lambda: 1000.0) == 1100.0  # the first worker sets it
    assert study_deadline(study, None, now=lambda: 1050.0) == 1100.0  # a worker joining takes it over
    assert study_deadline(study, 5, now=lambda: 1050.0) == 1100.0  # its own timeout does not move it
    assert study_deadline(study, None, now=lambda: 1200.0) is None  # a later run without a timeout
    assert study_deadline(study, 10, now=lambda: 1200.0) == 1210.0  # a later run starts its own
    end_deadline(study)
    assert study.user_attrs[DEADLINE_ATTR] is None and study_deadline(study, None, now=lambda: 1205.0) is None


@pytest.mark.parametrize(
    "url, said",
    [
        ("mysql://me:secret@127.0.0.1/db", "needs the database driver 'MySQLdb', which is not installed"),
        ("postgres://me:secret@127.0.0.1/db", "is not a database URL Optuna can open"),
        ("postgresql://me:secret@127.0.0.1:9/db", "cannot be opened: "),
    ],
)
def test_a_storage_that_cannot_be_opened_is_a_message_without_its_password(url, said):
    for opening in (lambda: make_storage(url, 600), lambda: open_storage(url), lambda: open_existing(url, "s")):
        with pytest.raises(ConfigError, match=said) as err:
            opening()
        assert "secret" not in str(err.value) and "--storage / search.storage" in str(err.value)
