"""The search end to end on tiny in-process assets: a 4-layer classifier teacher, a toy CSV,
a small space. Real Optuna on SQLite and real MLflow on SQLite."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from helpers import sentiment_rows, tiny_classifier_dir, write_csv
from optuna.trial import TrialState

from autodistill.config import load_config
from autodistill.errors import BudgetError, ConfigError

SPACE = {
    "name": "tiny",
    "proxy_steps": 6,
    "proxy_examples": 120,
    "transforms": [
        {"name": "vocab"},
        {"name": "depth", "layers": {"int": [1, 3]}, "choice": "uniform"},
        {"name": "ffn", "optional": True, "ratio": {"float": [0.25, 0.75]}},
    ],
    "loss": {
        "temperature": {"float": [1.0, 4.0]},
        "terms": [{"name": "kl"}, {"name": "ce", "optional": True, "weight": {"float": [0.1, 1.0]}}],
    },
    "train": {"lr": {"float": [1e-4, 1e-3], "log": True}},
}


@pytest.fixture
def tiny_search(tmp_path):
    teacher = tiny_classifier_dir(tmp_path / "teacher")
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(300))
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    cfg = {
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(teacher)},
        "data": {"source": str(data), "max_length": 32},
        "distill": {"batch_size": 16, "eval_batch_size": 64},
        "evaluate": {"repeats": 2, "warmup": 1},
        "search": {
            "space": str(space),
            "n_trials": 3,
            "startup_trials": 2,
            "sampler": "tpe",
            "pruning": {"enabled": False},
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp_path


def _created(db: Path) -> bool:
    """The search has finished creating its study in ``db`` (a read-only look, no schema writes)."""
    import sqlite3

    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute("SELECT COUNT(*) FROM studies").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _study(tmp: Path) -> optuna.Study:
    return optuna.load_study(study_name="out", storage=f"sqlite:///{tmp / 'out' / 'study.db'}")


def _slower_space(tmp: Path) -> Path:
    space = tmp / "slower.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "name": "slower", "proxy_steps": 150}))
    return space


def _trained(tmp: Path, state: TrialState, pid: int) -> list:
    """Trained trials in `state` run by the worker process `pid`."""
    if not _created(tmp / "out" / "study.db"):  # opening the storage mid-creation races its migration
        return []
    try:
        trials = _study(tmp).get_trials(states=(state,))
    except Exception:  # the study is not made yet
        return []
    return [t for t in trials if t.user_attrs.get("trained") and t.user_attrs.get("worker", "").endswith(f":{pid}")]


def _stderr_tail(proc: subprocess.Popen) -> str:
    """The end of an exited worker's stderr, so a failure in CI says why (empty while it runs)."""
    return "" if proc.poll() is None else proc.stderr.read()[-3000:]


def _pause_between_writes(proc: subprocess.Popen, dbs: list[Path]) -> None:
    """SIGSTOP ``proc`` at a moment it holds no lock on any of ``dbs`` (a worker stopped inside a
    SQLite read or write would keep every other writer from committing until it is continued)."""
    import sqlite3

    for _ in range(200):
        proc.send_signal(signal.SIGSTOP)
        free = True
        for db in (d for d in dbs if d.exists()):
            with contextlib.closing(sqlite3.connect(str(db), timeout=0.2)) as con:
                try:
                    con.execute("BEGIN EXCLUSIVE")  # fails while it holds any lock, a reader's too
                    con.rollback()
                except sqlite3.OperationalError:
                    free = False
        if free:
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the first worker always held a database lock")


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 240) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.3)
    return bool(condition())


def test_search_writes_front_matching_optuna_and_mlflow(tiny_search):
    from mlflow.tracking import MlflowClient

    from autodistill.search.run import Search

    path, tmp = tiny_search
    out = Search(load_config(path), progress=False).run()
    assert out["trained"] == 3
    study = _study(tmp)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    pareto = json.loads((tmp / "out" / "pareto.json").read_text())
    feasible_best = sorted(t.number for t in study.best_trials if all(v <= 0 for v in (t.constraints or {}).values()))
    assert sorted(r["number"] for r in pareto["front"]) == feasible_best
    for r in pareto["front"]:
        assert set(r["objectives"]) == {"quality", "parameters"} and r["params"] and r["mlflow_run_id"]
        t = study.trials[r["number"]]
        assert r["objectives"]["quality"] == t.values[0] and r["params"] == t.params
        assert t.user_attrs["resolved"]["transforms"]  # the resolved form is stored with the trial
        m = t.user_attrs["metrics"]  # latency: a ratio to the teacher measured right after the student
        assert m["teacher_latency_ms_b1"] > 0 and m["latency"] == pytest.approx(
            m["latency_ms_b1"] / m["teacher_latency_ms_b1"]
        )
    assert (tmp / "out" / "pareto.csv").read_text().count("\n") == len(pareto["front"]) + 1
    assert (tmp / "out" / "pareto.png").stat().st_size > 1000
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'out' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("autodistill")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.data.tags.get("autodistill.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]
    assert len(parent) == 1 and len(trials) == 3
    assert all(r.info.status == "FINISHED" for r in trials)
    tagged = {r.info.run_id for r in trials if r.data.tags.get("autodistill.pareto") == "true"}
    assert tagged == {r["mlflow_run_id"] for r in pareto["front"]}
    arts = {a.path for a in client.list_artifacts(parent[0].info.run_id, "pareto")}
    assert {"pareto/pareto.json", "pareto/pareto.csv", "pareto/pareto.png"} <= arts
    some = trials[0]
    assert any(k.startswith("train.") for k in some.data.metrics) and "quality" in some.data.metrics


def test_refused_students_are_never_built_and_recorded(tiny_search, monkeypatch):
    import autodistill.student.build as build
    from autodistill.search.run import Search

    path, tmp = tiny_search
    built: list[int] = []
    real = build.build_student

    def spy(teacher, spec, ctx=None):
        b = real(teacher, spec, ctx)
        built.append(sum(p.numel() for p in b.model.parameters()))
        return b

    monkeypatch.setattr(build, "build_student", spy)
    cfg = load_config(path, ["budget.max_parameters=16000", "search.n_trials=2"])
    Search(cfg, progress=False).run()
    study = _study(tmp)
    refused = [t for t in study.trials if t.user_attrs.get("refused")]
    trained = [t for t in study.trials if t.user_attrs.get("trained")]
    assert refused, "the budget should refuse the bigger students"
    assert all(t.constraints["budget"] > 0 for t in refused)
    assert all(t.constraints["budget"] <= 0 for t in trained)
    assert len(built) == len(trained) == 2
    assert all(n <= 16000 for n in built)


def test_teacher_relative_budgets(tiny_search):
    """budget.max_parameter_share refuses by the teacher's count; budget.min_speedup judges each
    trained trial by the latency ratio measured beside the teacher."""
    from autodistill.search.run import Search
    from autodistill.tasks.sequence_classification.prepare import prepare

    path, tmp = tiny_search
    cfg = load_config(path, ["budget.max_parameter_share=0.5", "budget.min_speedup=1", "search.n_trials=2"])
    Search(cfg, progress=False).run()
    study = _study(tmp)
    teacher = sum(p.numel() for p in prepare(cfg, progress=False).teacher_model().parameters())
    by_size = [t for t in study.trials if "parameters break" in t.user_attrs.get("refused", "")]
    trained = [t for t in study.trials if t.user_attrs.get("trained")]
    assert len(trained) == 2 and by_size
    assert all(t.user_attrs["predicted_parameters"] > 0.5 * teacher for t in by_size)
    assert all(t.user_attrs["predicted_parameters"] <= 0.5 * teacher for t in trained)
    for t in trained:  # timed as a shape first, then judged on the trained student's own timing
        m = t.user_attrs["metrics"]
        assert t.user_attrs["shape_latency_ms_b1"] <= t.user_attrs["shape_teacher_latency_ms_b1"]
        expected = max(0.0, m["latency_ms_b1"] / m["teacher_latency_ms_b1"] - 1)
        assert t.constraints["budget"] == pytest.approx(expected)


def test_too_slow_shapes_are_refused_before_training(tiny_search, monkeypatch):
    import autodistill.student.build as build
    from autodistill.search.run import Search

    path, tmp = tiny_search
    built: list[int] = []
    real = build.build_student
    monkeypatch.setattr(build, "build_student", lambda *a, **k: built.append(1) or real(*a, **k))
    cfg = load_config(path, ["budget.min_speedup=50", "search.max_refusals_per_trial=3"])
    with pytest.raises(BudgetError, match="refused 4 students in a row"):
        Search(cfg, progress=False).run()
    refused = [t for t in _study(tmp).trials if t.user_attrs.get("refused")]
    assert len(refused) == 4 and not built, "no student too slow to pick is distilled"
    for t in refused:
        assert "its shape runs batch 1 in" in t.user_attrs["refused"]
        ratio = t.user_attrs["shape_latency_ms_b1"] / t.user_attrs["shape_teacher_latency_ms_b1"]
        assert t.constraints["budget"] == pytest.approx(50 * ratio - 1)


def test_infeasible_budget_is_reported_before_training(tiny_search):
    from autodistill.search.run import Search

    path, tmp = tiny_search
    with pytest.raises(BudgetError, match="No student in search space 'tiny' meets the budget"):
        Search(load_config(path, ["budget.max_parameters=100"]), progress=False).run()
    assert not (tmp / "out" / "study.db").exists() or not _study(tmp).trials


def test_resume_checks_objectives(tiny_search):
    from autodistill.search.run import Search

    path, tmp = tiny_search
    Search(load_config(path, ["search.n_trials=1"]), progress=False).run()
    with pytest.raises(ConfigError, match="different search.objectives"):
        Search(load_config(path, ["search.objectives=[quality, latency]"]), progress=False).run()
    # trials store their constraints: another budget would mix feasibility under two budgets
    with pytest.raises(ConfigError, match=r"different budget \(budget: \{\}, now \{'min_speedup': 2.0\}\)"):
        Search(load_config(path, ["budget.min_speedup=2"]), progress=False).run()
    # proxies prune on search.calibration_examples: trials scored on another number would not compare
    with pytest.raises(ConfigError, match=r"different search.calibration_examples \(calibration_examples: 256"):
        Search(load_config(path, ["search.calibration_examples=64"]), progress=False).run()
    assert len(_study(tmp).trials) == 1, "the refused resume loses nothing and adds nothing"


@pytest.mark.subprocess
def test_sigkill_then_rerun_finishes_the_study(tiny_search):
    path, tmp = tiny_search
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "autodistill", "search", str(path), "--n-trials", "4", "--quiet"]
    cmd += ["--set", f"search.space={_slower_space(tmp)}"]  # trials long enough for the poll to see one running
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = tmp / "out" / "study.db"
    deadline = time.time() + 240
    killed_mid_trial = False
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if not _created(db):  # opening the storage while the search creates it races its migration
            continue
        try:
            st = _study(tmp)
        except Exception:
            continue
        done = [t for t in st.trials if t.state == TrialState.COMPLETE and t.user_attrs.get("trained")]
        running = [t for t in st.trials if t.state == TrialState.RUNNING and t.user_attrs.get("trained")]
        if done and running:
            proc.send_signal(signal.SIGKILL)
            killed_mid_trial = True
            break
    proc.wait(timeout=30)
    assert killed_mid_trial, f"search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    assert _study(tmp).get_trials(states=(TrialState.RUNNING,))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    st = _study(tmp)
    assert not st.get_trials(states=(TrialState.RUNNING,))
    trained = [
        t for t in st.trials if t.user_attrs.get("trained") and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    assert len(trained) == 4
    failed = st.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1  # the one the kill interrupted, failed at restart, not rerun under its number
    numbers = [t.number for t in st.trials]
    assert len(numbers) == len(set(numbers))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'out' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("autodistill")
    statuses = [
        r.info.status for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("autodistill.role") == "trial"
    ]
    assert "RUNNING" not in statuses and statuses.count("FAILED") == 1 and statuses.count("FINISHED") == 4
    assert np.isfinite([t.values[0] for t in trained if t.state == TrialState.COMPLETE]).all()


def test_plan_and_cli_search_then_pareto(tiny_search, capsys):
    from autodistill.cli import main

    path, tmp = tiny_search
    assert main(["plan", str(path), "--quiet", "--set", "budget.max_parameters=16000"]) == 0
    out = capsys.readouterr().out
    assert "search space 'tiny'" in out and "would be refused by the budget" in out and "budget feasible" in out
    assert "per trial for the largest student" in out
    assert main(["plan", str(path), "--quiet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trial_seconds_max"] > 0 and info["step_seconds"] > 0 and info["n_trials"] == 3
    assert info["estimated_search_seconds_max"] == pytest.approx(3 * info["trial_seconds_max"], abs=1)
    assert info["cache_growth_mb_max"] == 0  # the tiny space maps no hidden states
    assert not (tmp / "out" / "study.db").exists()  # plan trains nothing and opens no study
    for cmd in (["pareto"], ["export", "--no-retrain"]):  # before any search: said plainly, nothing created
        assert main([*cmd, str(path), "--quiet", "--set", "output_dir=" + str(tmp / "none" / "out")]) == 2
        assert "No study database at" in capsys.readouterr().err and not (tmp / "none").exists()
    assert main(["pareto", str(path), "--quiet"]) == 2 and not (tmp / "out" / "study.db").exists()
    assert "Run `autodistill search CONFIG` first" in capsys.readouterr().err
    assert main(["search", str(path), "--quiet", "--n-trials", "2", "--set", "tracking.enabled=false"]) == 0
    out = capsys.readouterr().out
    assert "2 trained trials" in out
    (tmp / "out" / "pareto.json").unlink()
    assert main(["pareto", str(path), "--quiet"]) == 0
    assert "on the front" in capsys.readouterr().out and (tmp / "out" / "pareto.json").exists()
    assert main(["pareto", str(path), "--quiet", "--study-name", "nope"]) == 2
    assert "No study named 'nope'" in capsys.readouterr().err


@pytest.mark.subprocess
def test_two_workers_share_one_study(tiny_search):
    """Two processes on the same storage: together they train exactly n_trials, none left RUNNING,
    and the second one's start does not fail the first one's trial in flight (Optuna or MLflow).
    The first worker is paused (SIGSTOP) inside a trial while the second starts and trains, so the
    overlap does not depend on how fast this machine is."""
    path, tmp = tiny_search
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "autodistill", "search", str(path), "--n-trials", "4", "--quiet"]
    cmd += ["--set", f"search.space={_slower_space(tmp)}"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        started = _wait_for(lambda: _trained(tmp, TrialState.RUNNING, first.pid), first)
        assert started, f"first worker never trained (exit {first.poll()}): {_stderr_tail(first)}"
        _pause_between_writes(first, [tmp / "out" / "study.db", tmp / "out" / "mlflow.db"])
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = _wait_for(lambda: _trained(tmp, TrialState.COMPLETE, second.pid), second)
        assert done, f"second worker never trained (exit {second.poll()}): {_stderr_tail(second)}"
    finally:
        first.send_signal(signal.SIGCONT)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, [o[1][-2000:] for o in outs]
    st = _study(tmp)
    assert not st.get_trials(states=(TrialState.RUNNING,)) and not st.get_trials(states=(TrialState.FAIL,))
    trained = [t for t in st.trials if t.user_attrs.get("trained")]
    assert len(trained) == 4
    spans = sorted((t.datetime_start.timestamp(), t.user_attrs["worker"]) for t in trained)
    assert len({t.user_attrs["worker"] for t in trained}) == 2, spans  # both did some of the work
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'out' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("autodistill")
    runs = client.search_runs([exp.experiment_id])
    trial_runs = [r for r in runs if r.data.tags.get("autodistill.role") == "trial"]
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED"] * 4
    assert len([r for r in runs if r.data.tags.get("autodistill.role") == "study"]) == 1


def test_hopeless_trials_are_pruned(tiny_search):
    """A trial below the median of finished similar-size trials at a checkpoint stops there and is
    PRUNED (not COMPLETE with its partial quality); it still counts as trained, and its MLflow run
    ends KILLED. Two recorded peers that scored above any possible accuracy make it certain."""
    from mlflow.tracking import MlflowClient

    from autodistill.search.run import Search

    path, tmp = tiny_search
    sets = ["search.pruning.enabled=true", "search.pruning.min_trials=2", "search.pruning.bucket_log2_width=100"]
    cfg = load_config(path, sets)
    Search(cfg, progress=False).run(n_trials=1)
    study = _study(tmp)
    steps = [str(s) for s in (2, 4, 6)]  # proxy_steps 6 over 3 checkpoints
    assert sorted(study.trials[0].user_attrs["checkpoints"]) == steps
    for _ in range(2):
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.01, 1e9],
                user_attrs={"trained": True, "bucket": 0, "checkpoints": {s: 1.01 for s in steps}},
            )
        )
    out = Search(cfg, progress=False).run(n_trials=5)
    assert out["trained"] == 5
    new = [t for t in _study(tmp).trials if t.number > 2]
    assert [t.state for t in new] == [TrialState.PRUNED, TrialState.PRUNED]
    for t in new:
        assert list(t.user_attrs["checkpoints"]) == ["2"] and "below the median" in t.user_attrs["pruned"]
        assert "metrics" not in t.user_attrs
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'out' / 'mlflow.db'}")
    assert [client.get_run(t.user_attrs["mlflow_run_id"]).info.status for t in new] == ["KILLED", "KILLED"]


def test_halving_counts_stopped_trials_at_a_rung_and_keeps_them_off_the_front(tiny_search):
    """search.pruning.rule: halving. Two recorded trials stopped at the first rung (PRUNED, so the
    median rule would not count them) scored above any possible accuracy with fewer parameters than
    any student: every new trial ranks below them there and stops, saying its rank. A resumed study
    keeps every trial's rungs, and the front holds only trials that finished every rung."""
    from autodistill.search.run import Search

    path, tmp = tiny_search
    sets = ["search.pruning.enabled=true", "search.pruning.rule=halving", "search.pruning.min_trials=2",
            "search.pruning.eta=2"]  # fmt: skip
    cfg = load_config(path, sets)
    Search(cfg, progress=False).run(n_trials=1)
    study = _study(tmp)
    first = study.trials[0]
    assert first.state == TrialState.COMPLETE, first.user_attrs
    assert sorted(first.user_attrs["checkpoints"]) == ["2", "4", "6"]
    for _ in range(2):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED,
                user_attrs={"trained": True, "predicted_parameters": 1, "checkpoints": {"2": 1.01}},
            )
        )
    out = Search(cfg, progress=False).run(n_trials=5)
    assert out["trained"] == 5
    trials = _study(tmp).trials
    new = [t for t in trials if t.number > 2]
    assert [t.state for t in new] == [TrialState.PRUNED, TrialState.PRUNED]
    for t in new:
        assert list(t.user_attrs["checkpoints"]) == ["2"] and "go on" in t.user_attrs["pruned"]
        rank, n = map(int, re.match(r"rank (\d+) of (\d+) at step 2", t.user_attrs["pruned"]).groups())
        assert rank > n // 2  # outside the top half (eta 2) of the trials at the rung, itself included
    # the rungs live in the storage: a fresh load sees each stopped trial's last rung
    assert [sorted(t.user_attrs["checkpoints"]) for t in trials] == [["2", "4", "6"], ["2"], ["2"], ["2"], ["2"]]
    assert [row["number"] for row in out["front"]] == [0]


def test_proxies_score_pruning_on_search_calibration_examples(tiny_search, monkeypatch):
    """Search proxies score FFN pruning on search.calibration_examples, not the final runs' number."""
    from autodistill.search.run import Search
    from autodistill.student import importance

    path, tmp = tiny_search
    space = {**SPACE, "transforms": [*SPACE["transforms"][:2], {"name": "ffn", "ratio": {"float": [0.25, 0.75]}}]}
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(space))
    scored: list[int] = []
    real = importance.ffn_scores
    monkeypatch.setattr(
        importance,
        "ffn_scores",
        lambda m, b, *a: scored.append(sum(int(x["input_ids"].shape[0]) for x in b)) or real(m, b, *a),
    )
    cfg = load_config(path, ["search.n_trials=2", "search.calibration_examples=48", "student.calibration_examples=64"])
    Search(cfg, progress=False).run()
    assert scored and set(scored) == {48}
