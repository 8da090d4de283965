"""Faults inside a trial never end the study: the trial ends FAIL with its reason (study and
MLflow), the next trial starts, and only the same failure three times in a row stops the search."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState
from test_search_tiny import tiny_search  # noqa: F401  (the fixture)

from autodistill.config import load_config
from autodistill.errors import SearchError
from autodistill.search.faults import FailureStreak, same_way


def test_three_failures_of_one_kind_in_a_row_stop_the_search():
    streak = FailureStreak(limit=3)
    streak.add("failed", "TrainingError: The loss became nan at step 12")
    streak.add("failed", "TrainingError: The loss became nan at step 7")
    with pytest.raises(
        SearchError, match=r"3 trials in a row failed the same way \(TrainingError: The loss became nan"
    ):
        streak.add("failed", "TrainingError: The loss became nan at step 3")


def test_a_success_or_another_failure_starts_the_count_again():
    streak = FailureStreak(limit=3)
    for state, reason in [
        ("failed", "ValueError: boom"),
        ("failed", "ValueError: boom"),
        ("complete", ""),
        ("failed", "ValueError: boom"),
        ("failed", "MemoryError: "),
        ("failed", "ValueError: boom"),
        ("pruned", "below the median"),
        ("failed", "ValueError: boom"),
        ("failed", "ValueError: boom"),
    ]:
        streak.add(state, reason)
    assert streak.count == 2
    assert same_way("nan at step 12 (lr 1.5e-3)") == same_way("nan at step 7 (lr 2e-4)")
    assert same_way("ValueError: boom") != same_way("MemoryError: ")


def _study(tmp):
    return optuna.load_study(study_name="out", storage=f"sqlite:///{tmp / 'out' / 'study.db'}")


def test_failing_trials_are_recorded_and_the_search_goes_on(tiny_search, monkeypatch):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from autodistill.search.objective import ProxyObjective
    from autodistill.search.run import Search

    path, tmp = tiny_search
    real = ProxyObjective._train
    faults = iter([MemoryError("out of memory in a student's forward"), RuntimeError("a loss raised")])

    def flaky(self, trial, sample, n_params):
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return real(self, trial, sample, n_params)

    monkeypatch.setattr(ProxyObjective, "_train", flaky)
    out = Search(load_config(path, ["search.n_trials=2"]), progress=False).run()
    assert out["trained"] == 2
    st = _study(tmp)
    failed = st.get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs["error"] for t in failed] == [
        "MemoryError: out of memory in a student's forward",
        "RuntimeError: a loss raised",
    ]
    assert all("Traceback" in t.user_attrs["traceback"] for t in failed)
    assert len(st.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert not st.get_trials(states=(TrialState.RUNNING,))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'out' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("autodistill")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("autodistill.role") == "trial"]
    reasons = sorted(r.data.tags.get("autodistill.reason", "") for r in runs if r.info.status == "FAILED")
    assert reasons == ["MemoryError: out of memory in a student's forward", "RuntimeError: a loss raised"]


def test_a_real_fault_in_every_trial_stops_the_search_with_its_reason(tiny_search, monkeypatch):  # noqa: F811
    """A loss whose value is NaN: the training loop's non-finite check fails each trial the same way."""
    from autodistill.losses.logits import KLDivergence
    from autodistill.search.run import Search

    path, tmp = tiny_search
    real = KLDivergence.forward

    def nan_loss(self, *args, **kwargs):
        return real(self, *args, **kwargs) * torch.tensor(float("nan"))

    monkeypatch.setattr(KLDivergence, "forward", nan_loss)
    with pytest.raises(SearchError, match="3 trials in a row failed the same way") as err:
        Search(load_config(path, ["search.n_trials=5"]), progress=False).run()
    assert "loss became nan" in str(err.value)
    st = _study(tmp)
    assert len(st.get_trials(states=(TrialState.FAIL,))) == 3
    assert not st.get_trials(states=(TrialState.RUNNING,))
    assert not st.get_trials(states=(TrialState.COMPLETE,))


def test_a_fault_while_admitting_a_trial_leaves_it_failed_not_running(tiny_search, monkeypatch):  # noqa: F811
    from autodistill.search.objective import ProxyObjective
    from autodistill.search.run import Search

    path, tmp = tiny_search

    def broken(self, trial):
        raise RuntimeError("planning blew up")

    monkeypatch.setattr(ProxyObjective, "admit", broken)
    with pytest.raises(RuntimeError, match="planning blew up"):
        Search(load_config(path, ["search.n_trials=2"]), progress=False).run()
    st = _study(tmp)
    assert [t.user_attrs["error"] for t in st.get_trials(states=(TrialState.FAIL,))] == [
        "RuntimeError: planning blew up"
    ]
    assert not st.get_trials(states=(TrialState.RUNNING,))


def test_a_trial_another_worker_failed_meanwhile_is_dropped_and_the_worker_goes_on(tiny_search, monkeypatch):  # noqa: F811
    """A worker silent past search.stale_after has its trial failed (and retried) by another; when it
    reports, its result is dropped, not a crash."""
    from autodistill.search.objective import ProxyObjective
    from autodistill.search.run import Search

    path, tmp = tiny_search
    real = ProxyObjective._train
    stolen = []

    def slow_then_stolen(self, trial, sample, n_params):
        outcome = real(self, trial, sample, n_params)
        if not stolen:  # the first trial: another worker fails it while this one trains
            _study(tmp).tell(trial.number, state=TrialState.FAIL)
            stolen.append(trial.number)
        return outcome

    monkeypatch.setattr(ProxyObjective, "_train", slow_then_stolen)
    out = Search(load_config(path, ["search.n_trials=2"]), progress=False).run()
    assert out["trained"] == 2
    st = _study(tmp)
    assert [t.number for t in st.get_trials(states=(TrialState.FAIL,))] == stolen
    assert len(st.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert not st.get_trials(states=(TrialState.RUNNING,))
