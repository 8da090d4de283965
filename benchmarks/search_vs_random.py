"""Does the search beat random sampling at equal compute (training steps, not trials)?

Random sampling trains ``--trials`` trials at the full proxy length (no early stopping); the proxy
steps it spent are the budget. Each searched arm gets the same number of steps
(``Search.run(max_steps=...)``): the config's sampler (TPE in the demo) with one early-stopping
rule (``median``: the median in a size bucket; ``halving``: successive halving) or none (``tpe``),
or Optuna's Gaussian-process sampler with none (``gp``); the two that stop early train more,
shorter trials. After every trained trial (in the order they finished) the hypervolume of the
front so far is recorded against the steps spent so far: validation quality against the second
objective, the reference at quality 0.5 and the teacher's value, normalised by the teacher's value.

Prints, per arm: the final hypervolume, the best validation quality under 40% of the teacher's
parameters, and the steps at which the arm first reached random's median final hypervolume
(target: at most half of random's steps, median of the seeds). Writes each run's curve to
``--out/<arm>-s<seed>.json`` (a run whose file exists is read, not run again, so seeds can run in
separate processes on one folder) and all curves to ``--out/search_vs_random.png``.

    .venv/bin/python benchmarks/search_vs_random.py [--space fast|config] [--trials 20] [--seeds 0,1,2]
        [--arms random,tpe,median,halving,gp] [--out runs/bench-search]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np
from common import FAST_SEARCH

from autodistill.config import load_config
from autodistill.search.effort import trial_steps
from autodistill.search.front import candidates
from autodistill.search.pareto import hypervolume_2d
from autodistill.search.run import Search
from autodistill.search.study import trained_trials

ARMS = {
    "random": ["search.sampler=random", "search.pruning.enabled=false"],
    "tpe": ["search.pruning.enabled=false"],  # the config's sampler, every trial at the full proxy length
    "median": ["search.pruning.enabled=true", "search.pruning.rule=median"],
    "halving": ["search.pruning.enabled=true", "search.pruning.rule=halving"],
    "gp": ["search.sampler=gp", "search.pruning.enabled=false"],  # Gaussian-process BO, full proxies
}
SHARE = 0.4  # "best under 40% of the teacher's parameters", the demo budget's size limit


def teacher_value(search: Search) -> float:
    """The teacher's value of the second objective: its parameter count, or 1 for the objectives
    the search records as ratios to the teacher (latency, energy)."""
    name = search.objectives[1]
    if name == "parameters":
        return float(search.gate.teacher_parameters)
    if name in ("latency", "energy"):
        return 1.0
    raise SystemExit(f"search_vs_random: no reference point for the objective {name!r}")


def curve(search: Search) -> list[dict[str, float]]:
    """Hypervolume of the front after each trained trial, in finishing order, with steps so far."""
    ref_value = teacher_value(search)
    ok = {t.number for t in candidates(search.study)}
    done = sorted(trained_trials(search.study), key=lambda t: t.datetime_complete)
    points, spent, rows = [], 0, []
    for t in done:
        spent += trial_steps(t)
        if t.number in ok:
            points.append(t.values[:2])
        pts = np.array(points, dtype=float).reshape(-1, 2)
        hv = hypervolume_2d(pts, (True, False), (0.5, ref_value)) / ref_value if len(pts) else 0.0
        rows.append({"steps": spent, "hv": hv, "trial": t.number})
    return rows


def best_under(search: Search) -> float:
    """The best validation quality of a trained, feasible student under ``SHARE`` of the teacher's
    parameters (read from the trial's recorded student size, whatever the objectives)."""
    cap = SHARE * float(search.gate.teacher_parameters)
    best = [
        float(t.values[0])
        for t in candidates(search.study)
        if float((t.user_attrs.get("metrics") or {}).get("parameters", math.inf)) <= cap
    ]
    return max(best, default=float("nan"))


def one_run(config: str, base: list[str], arm: str, seed: int, trials: int, budget: int | None, out: Path) -> dict:
    path = out / f"{arm}-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    sets = [*base, *ARMS[arm], f"seed={seed}", f"output_dir={out / f'{arm}-s{seed}'}", "tracking.enabled=false"]
    search = Search(load_config(config, sets), progress=False)
    res = search.run(n_trials=trials) if budget is None else search.run(n_trials=10**6, max_steps=budget)
    row = {
        "arm": arm,
        "seed": seed,
        "curve": curve(search),
        "best_under": best_under(search),
        "trained": res["trained"],
        "stopped_early": sum(1 for t in trained_trials(search.study) if t.state.name == "PRUNED"),
        "seconds": res["seconds"],
    }
    path.write_text(json.dumps(row, indent=2))
    return row


def reached(row: dict, level: float) -> float:
    """Steps at which the run's front first reached ``level`` (inf: never)."""
    return next((p["steps"] for p in row["curve"] if p["hv"] >= level - 1e-12), math.inf)


def plot(rows: list[dict], level: float, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "random": "tab:grey",
        "tpe": "tab:green",
        "median": "tab:blue",
        "halving": "tab:orange",
        "gp": "tab:purple",
    }
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        xs = [0] + [p["steps"] for p in r["curve"]]
        ys = [0.0] + [p["hv"] for p in r["curve"]]
        label = r["arm"] if r["seed"] == min(x["seed"] for x in rows if x["arm"] == r["arm"]) else None
        ax.step(xs, ys, where="post", color=colours.get(r["arm"]), alpha=0.8, label=label)
    ax.axhline(level, color="black", linestyle="--", linewidth=0.8, label="random's median final")
    ax.axvline(budget / 2, color="black", linestyle=":", linewidth=0.8, label="half of random's steps")
    later = [p["hv"] for r in rows for p in r["curve"][1:]]  # the first trial's front is one point
    if later:
        ax.set_ylim(bottom=0.97 * min(later))
    ax.set_xlabel("proxy training steps spent")
    ax.set_ylabel("hypervolume of the front")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(rows: list[dict], out: Path) -> None:
    rows = sorted(rows, key=lambda r: (list(ARMS).index(r["arm"]), r["seed"]))
    randoms = [r for r in rows if r["arm"] == "random"]
    level = statistics.median(r["curve"][-1]["hv"] for r in randoms)
    budget = statistics.median(r["curve"][-1]["steps"] for r in randoms)
    print(f"\nrandom: median final hypervolume {level:.4f} after a median {budget:.0f} steps")
    if level <= 0:
        raise SystemExit("random's fronts have no hypervolume above the reference (quality 0.5): nothing to compare")
    print(f"{'arm':<9}{'final HV per seed':>28}{'median':>8}{'best<40%':>10}{'steps to random HV':>26}{'median s':>10}")
    for arm in dict.fromkeys(r["arm"] for r in rows):
        rs = [r for r in rows if r["arm"] == arm]
        finals = [r["curve"][-1]["hv"] for r in rs]
        steps = [reached(r, level) for r in rs]
        shown = ", ".join("never" if math.isinf(s) else f"{s:.0f}" for s in steps)
        print(
            f"{arm:<9}{', '.join(f'{h:.4f}' for h in finals):>28}{statistics.median(finals):>8.4f}"
            f"{statistics.median(r['best_under'] for r in rs):>10.4f}{shown:>26}"
            f"{statistics.median(r['seconds'] for r in rs):>10.0f}"
        )
        if arm != "random":
            need = statistics.median(steps)
            verdict = "met" if need <= budget / 2 else "not met"
            half = f"half of random's {budget / 2:.0f}"
            print(f"  {arm}: median steps to random's hypervolume {need:.0f} against {half}: {verdict}")
    plot(rows, level, budget, out / "search_vs_random.png")
    print(f"curves: {out / 'search_vs_random.png'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    what = "fast: the fast space, quality against parameters, no budget; config: the config's own search"
    ap.add_argument("--space", choices=("fast", "config"), default="fast", help=what)
    ap.add_argument("--trials", type=int, default=20, help="random's trials at the full proxy length")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default="random,tpe,median,halving")
    ap.add_argument("--out", default="runs/bench-search")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = FAST_SEARCH if args.space == "fast" else []
    arms = args.arms.split(",")
    if arms[0] != "random" or any(a not in ARMS for a in arms):
        ap.error(f"--arms must start with random and name only {', '.join(ARMS)}; got {args.arms!r}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        first = one_run(args.config, base, "random", seed, args.trials, None, out)
        rows.append(first)
        for arm in arms[1:]:
            rows.append(one_run(args.config, base, arm, seed, args.trials, first["curve"][-1]["steps"], out))
        r = rows[-len(arms) :]
        print(
            " | ".join(f"seed {seed} {x['arm']} HV {x['curve'][-1]['hv']:.4f} ({x['trained']} trained)" for x in r),
            flush=True,
        )
    seen = {(r["arm"], r["seed"]) for r in rows}
    for path in sorted(out.glob("*-s*.json")):  # runs of other processes on the same folder
        other = json.loads(path.read_text())
        if (other["arm"], other["seed"]) not in seen:
            rows.append(other)
    report(rows, out)


if __name__ == "__main__":
    main()
