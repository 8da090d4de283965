"""The study's feasible Pareto front as plain records, and its files: pareto.json, .csv, .png."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from autodistill.files import open_replacing, write_json
from autodistill.search.pareto import non_dominated
from autodistill.search.study import feasible


def candidates(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete, trained, feasible trials: what the front is drawn from."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("trained") and feasible(t) and t.values is not None
    ]


def record(t: optuna.trial.FrozenTrial, objectives: list[str]) -> dict[str, Any]:
    return {
        "number": t.number,
        "params": dict(t.params),
        "objectives": dict(zip(objectives, t.values)),
        "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
        "metrics": t.user_attrs.get("metrics", {}),
        "student": t.user_attrs.get("student"),
        "loss": t.user_attrs.get("loss"),
        "train": t.user_attrs.get("train"),
    }


def pareto_front(study: optuna.Study, objectives: list[str]) -> list[dict[str, Any]]:
    trials = candidates(study)
    if not trials:
        return []
    values = np.array([t.values for t in trials], dtype=float)
    keep = non_dominated(values, [o == "quality" for o in objectives])
    front = [record(trials[i], objectives) for i in keep]
    return sorted(
        front,
        key=lambda r: r["objectives"].get(objectives[1], 0) if len(objectives) > 1 else -r["objectives"]["quality"],
    )


def write_front(study: optuna.Study, objectives: list[str], out_dir: Path, pick: int | None = None) -> list[Path]:
    """Write pareto.json, pareto.csv and pareto.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    front = pareto_front(study, objectives)
    js, cs, png = out_dir / "pareto.json", out_dir / "pareto.csv", out_dir / "pareto.png"
    write_json(js, {"study": study.study_name, "objectives": objectives, "front": front})
    rows = [
        {
            "number": r["number"],
            **r["objectives"],
            "mlflow_run_id": r["mlflow_run_id"],
            "params": json.dumps(r["params"], default=str),
        }
        for r in front
    ]
    with open_replacing(cs, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["number", *objectives, "mlflow_run_id", "params"])
        w.writeheader()
        w.writerows(rows)
    plot_front(study, objectives, front, png, pick)
    return [js, cs, png]


def plot_front(
    study: optuna.Study, objectives: list[str], front: list[dict[str, Any]], path: Path, pick: int | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name = objectives[1] if len(objectives) > 1 else "parameters"
    pts = [
        (t.user_attrs.get("metrics", {}).get(x_name, t.values[1] if len(t.values) > 1 else 0), t.values[0])
        for t in candidates(study)
    ]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    if pts:
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, c="#bbbbbb", s=18, label="trials")
    if front:
        fx = [r["objectives"].get(x_name, r["metrics"].get(x_name)) for r in front]
        fy = [r["objectives"]["quality"] for r in front]
        order = np.argsort(fx)
        ax.plot(np.array(fx)[order], np.array(fy)[order], "-o", c="#1f77b4", label="Pareto front")
        for r, x, y in zip(front, fx, fy):
            ax.annotate(str(r["number"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if pick is not None:
            for r, x, y in zip(front, fx, fy):
                if r["number"] == pick:
                    ax.scatter([x], [y], marker="*", s=220, c="#d62728", zorder=5, label=f"pick (trial {pick})")
    ax.set_xlabel(x_name + (" (ratio to teacher)" if x_name in ("latency", "energy") else ""))
    ax.set_ylabel("validation quality")
    ax.set_title(f"study {study.study_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with open_replacing(path, "wb") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
