"""What a study spent and what it found for it: proxy steps per checkpoint (rung), and the front's
hypervolume against another study's at the same steps (``autodistill search --compare-random``).

A trial's steps are read from its stored checkpoints (``checkpoints``: validation by step), so a
stopped trial counts the steps it trained up to where it stopped, and a resumed study counts the
trials of earlier runs too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autodistill.search.pareto import hypervolume_2d


def trial_steps(trial: Any) -> int:
    """The steps a trial trained: its last checkpoint (0 when it recorded none)."""
    seen = trial.user_attrs.get("checkpoints") or {}
    return max((int(s) for s in seen), default=0)


def effort(trials: list[Any]) -> dict[str, Any]:
    """Proxy steps in all, and per rung: how many trials reached that checkpoint, and the steps they
    spent between it and the one before."""
    last = [trial_steps(t) for t in trials]
    rungs = sorted({int(s) for t in trials for s in (t.user_attrs.get("checkpoints") or {})})
    rows, previous = [], 0
    for step in rungs:
        reached = sum(1 for n in last if n >= step)
        rows.append({"step": step, "trials": reached, "steps": reached * (step - previous)})
        previous = step
    return {"steps": int(sum(last)), "trials": len(trials), "rungs": rows}


def hypervolumes(fronts: list[list[dict[str, Any]]], objectives: list[str]) -> list[float]:
    """Each front's hypervolume over the first two objectives (quality up, the other down), on
    values scaled to [0, 1] over all the fronts given, with the reference just beyond their worst
    corner (1% of the range), so the numbers compare and read as shares of that box. With one
    objective: the best quality's place in its range."""
    names = objectives[:2]
    points = [
        np.array([[r["objectives"][o] for o in names] for r in f], dtype=float).reshape(-1, len(names)) for f in fronts
    ]
    joined = np.concatenate(points)
    if not len(joined):
        return [0.0 for _ in fronts]
    lo, span = joined.min(axis=0), np.ptp(joined, axis=0)
    span[span == 0] = 1.0
    up = [o == "quality" for o in names]
    scaled = [(p - lo) / span for p in points]
    if len(names) == 1:
        return [float(p[:, 0].max()) if len(p) else 0.0 for p in scaled]
    reference = [-0.01 if u else 1.01 for u in up]
    return [hypervolume_2d(p, up, reference) if len(p) else 0.0 for p in scaled]
