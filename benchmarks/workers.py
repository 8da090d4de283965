"""Issue 24: trials per hour for 1, 2 and 3 worker processes sharing one study on PostgreSQL, on
this machine, in one run. Each arm gets a new study database (and an MLflow database on the same
server, standing in for an MLflow server's backend store); its workers start together with
`autodistill search CONFIG --storage postgresql://...`, one torch thread each unless told, and
share one teacher home (filled before the first arm, so no arm pays for it).

The tiny assets of the tests (a 4-layer BERT classifier with hidden size 32, a 300-row sentiment
CSV, their space with 600 proxy steps: a few seconds a trial): the point is what sharing a study
costs and gains, not a model. Throughput counts trained trials between the first trial's start and the last one's
end, so the workers' start-up (imports, loading the teacher), a one-off per worker, is left out;
the wall time with start-up is printed beside it, and the transactions each database committed
per trained trial (what the model of 10 and 100 workers in the README scales up). The server runs
with fsync on, as a real one does.

    .venv/bin/python benchmarks/workers.py [--trials 12] [--steps 600] [--workers 1,2,3] [--threads 1]
        [--two-thread-single]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "search")]

from helpers import sentiment_rows, tiny_classifier_dir, write_csv  # noqa: E402
from pg import postgres  # noqa: E402
from test_search_tiny import SPACE  # noqa: E402


def assets(folder: Path, steps: int) -> Path:
    """The tiny run config (and its teacher, data and space of ``steps`` proxy steps) in ``folder``."""
    teacher = tiny_classifier_dir(folder / "teacher")
    data = write_csv(folder / "reviews.csv", sentiment_rows(300))
    space = folder / "slower.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "name": "slower", "proxy_steps": steps}))
    cfg = {
        "output_dir": str(folder / "out"),
        "teacher": {"model": str(teacher)},
        "data": {"source": str(data), "max_length": 32},
        "distill": {"batch_size": 16, "eval_batch_size": 64},
        "evaluate": {"repeats": 2, "warmup": 1},
        "search": {"space": str(space), "startup_trials": 2, "sampler": "tpe", "pruning": {"enabled": False}},
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def arm(config: Path, server, name: str, workers: int, trials: int, threads: int, env: dict) -> dict:
    from mlflow.tracking import MlflowClient

    storage = server.create_database(f"{name}_study")
    mlflow = server.create_database(f"{name}_mlflow")
    MlflowClient(tracking_uri=mlflow).search_experiments()  # its schema, made once as a server would
    out = config.parent / name
    cmd = [sys.executable, "-m", "autodistill", "search", str(config), "--storage", storage, "--quiet"]
    cmd += ["--n-trials", str(trials), "--set", f"output_dir={out}", "--set", f"tracking.uri={mlflow}"]
    env = {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    time.sleep(1.0)
    before = {db: transactions(server, f"{name}_{db}") for db in ("study", "mlflow")}
    start = time.time()
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    errs = [p.communicate()[1] for p in procs]
    wall = time.time() - start
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker of arm {name} failed:\n" + "\n".join(e[-2000:] for e in errs))
    time.sleep(1.0)  # PostgreSQL publishes a finished connection's counts within a moment
    queries = {db: transactions(server, f"{name}_{db}") - before[db] for db in ("study", "mlflow")}
    study = optuna.load_study(study_name=name, storage=storage)  # output_dir's name
    done = [t for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)) if t.user_attrs.get("trained")]
    first = min(t.datetime_start for t in done).timestamp()
    last = max(t.datetime_complete for t in done).timestamp()
    return {
        "arm": name,
        "workers": workers,
        "threads": threads,
        "trained": len(done),
        "by_worker": len({t.user_attrs["worker"] for t in done}),
        "seconds": last - first,
        "per_hour": 3600 * len(done) / (last - first),
        "mean_trial_s": sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done) / len(done),
        "wall_s": wall,
        "study_tx": queries["study"] / len(done),
        "mlflow_tx": queries["mlflow"] / len(done),
    }


def transactions(server, database: str) -> int:
    """Transactions the server committed in ``database`` (each worker's reads and writes)."""
    import psycopg2

    con = psycopg2.connect(server.url("postgres"))
    try:
        with con.cursor() as cur:
            cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database,))
            return int(cur.fetchone()[0])
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--steps", type=int, default=600, help="proxy steps per trial (seconds-long trials)")
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--two-thread-single", action="store_true", help="also one worker with 2 threads")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp, postgres(fast=False) as server:
        folder = Path(tmp)
        config = assets(folder, args.steps)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTODISTILL_HOME": str(folder / "home")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        # fills the teacher home (the teacher-output cache) before the arms
        subprocess.run([sys.executable, "-m", "autodistill", "plan", str(config), "--quiet"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        plan = [(f"w{n}", n, args.threads) for n in map(int, args.workers.split(","))]
        if args.two_thread_single:
            plan.insert(1, ("w1t2", 1, 2))
        rows = [arm(config, server, name, n, args.trials, threads, env) for name, n, threads in plan]
    base = rows[0]["per_hour"]
    print(
        f"{os.cpu_count()} cores; {args.trials} trained trials of {args.steps} steps per arm; one PostgreSQL study each"
    )
    print("workers threads trained by trials/h ratio trial_s window_s wall_s study_tx/trial mlflow_tx/trial")
    for r in rows:
        print(
            f"{r['workers']:>7} {r['threads']:>7} {r['trained']:>7} {r['by_worker']:>2} {r['per_hour']:>8.0f}"
            f" {r['per_hour'] / base:>5.2f} {r['mean_trial_s']:>7.1f} {r['seconds']:>8.1f} {r['wall_s']:>6.1f}"
            f" {r['study_tx']:>14.0f} {r['mlflow_tx']:>15.0f}"
        )


if __name__ == "__main__":
    main()
