"""Workers sharing one MLflow database write the study's parent run at the same instant (its
parameters on start, its totals when the study ends together): the second insert of a row is
refused with a unique-key violation, and the tracker writes again instead of failing the worker.
The real race is run by tests/search/test_postgres_workers.py."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from autodistill.tracking import mlflow_tracker
from autodistill.tracking.mlflow_tracker import _shared

RACED = 'psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "metric_pk"'


def _flaky(failures: list[str]):
    calls = []

    def write() -> None:
        calls.append(1)
        if len(calls) <= len(failures):
            raise MlflowException(failures[len(calls) - 1])

    return write, calls


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(mlflow_tracker.time, "sleep", lambda s: None)


def test_a_write_refused_for_a_duplicate_key_is_written_again():
    write, calls = _flaky([RACED, "UNIQUE constraint failed: latest_metrics.key"])
    _shared(write)
    assert len(calls) == 3


def test_any_other_refusal_is_raised_at_once():
    write, calls = _flaky(["Changing param values is not allowed"])
    with pytest.raises(MlflowException, match="Changing param values"):
        _shared(write)
    assert len(calls) == 1


def test_a_write_that_keeps_racing_is_raised_after_the_last_try():
    write, calls = _flaky([RACED] * 9)
    with pytest.raises(MlflowException, match="duplicate key"):
        _shared(write, tries=4)
    assert len(calls) == 4


def test_study_figures_logged_twice_with_one_timestamp_keep_one_row(tmp_path, monkeypatch):
    """What a second worker does after its first try was refused: the same figures again."""
    tracker = mlflow_tracker.Tracker(f"sqlite:///{tmp_path / 'm.db'}", "e", "s", tmp_path / "art")
    monkeypatch.setattr(mlflow_tracker.time, "time", lambda: 1_800_000_000.0)
    tracker.log_study_metrics({"proxy_steps": 100})
    tracker.log_study_metrics({"proxy_steps": 100})
    history = tracker.client.get_metric_history(tracker.parent_id, "proxy_steps")
    assert [(m.value, m.timestamp) for m in history] == [(100.0, 1_800_000_000_000)]
