"""Issue 25: how well the search's proxies rank students as full-length training does.

Samples N students uniformly from the config's search space (seeded, skipping those the budget
refuses, as ``autodistill plan`` samples), trains each as a search trial does at the proxy length,
at half and at a quarter of it, and at full length as ``autodistill export`` retrains, then prints
Spearman's and Kendall's rank correlation between each fidelity's validation quality and the
full-length one, with a bootstrap 95% interval (students resampled, 1,000 draws, seeded).

The result is written as JSON (--out) and, unless --no-record, recorded in the teacher home under
the (space, teacher) fingerprints, where ``autodistill plan`` reports it.

    .venv/bin/python benchmarks/proxy_fidelity.py configs/demo.yaml [--n 12] [--seed 0]
        [--set search.space=fast] [--full-steps 200] [--out runs/proxy-fidelity.json] [--no-record]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from autodistill.config import load_config
from autodistill.errors import AutodistillError, BudgetError, ConfigError
from autodistill.export.retrain import full_plan
from autodistill.files import write_json
from autodistill.search.objective import proxy_plan
from autodistill.search.plan import fidelity_path
from autodistill.search.run import prepared_gate, setup

# cheaper fidelities as fractions of the proxy length, with how the plan line names each
FIDELITIES = ((1.0, "proxy", "the proxy length"), (0.5, "half", "half of it"), (0.25, "quarter", "a quarter of it"))
DRAWS = 1000
SCAN_PER_STUDENT = 50  # uniform samples scanned per student wanted, before giving up on the budget


def spearman(x: Any, y: Any) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties share their mean rank)."""
    return float(stats.spearmanr(x, y).statistic)


def kendall(x: Any, y: Any) -> float:
    """Kendall's tau-b, which corrects for ties in either ranking."""
    return float(stats.kendalltau(x, y).statistic)


def bootstrap(fn: Any, x: Any, y: Any, seed: int, draws: int = DRAWS) -> dict[str, float]:
    """``fn(x, y)`` and its 95% percentile interval over ``draws`` resamples of the students.
    A resample whose ranking is constant has no correlation; such draws are left out, and the
    value is None when the students' own scores are constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            values.append(fn(x[i], y[i]))
    point = fn(x, y) if np.ptp(x) > 0 and np.ptp(y) > 0 else None  # JSON null: undefined, not a number
    if not values:
        return {"value": point, "low": None, "high": None}
    low, high = np.percentile(values, [2.5, 97.5])
    return {"value": point, "low": float(low), "high": float(high)}


def shown(ci: dict[str, float | None]) -> str:
    """``0.81 [0.50, 0.95]``; n/a where every student scored alike (no ranking to compare)."""
    if ci["value"] is None:
        return "n/a (scores tied)"
    return f"{ci['value']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]"


def admitted(gate: Any, n: int) -> list[tuple[Any, int]]:
    """The first ``n`` seeded uniform samples of the space that the budget admits."""
    out, scanned = [], n * SCAN_PER_STUDENT
    for sample, params in gate.scan(scanned):
        if params is None or gate.violation(params) > 0:
            continue
        if gate.before_training(sample, params)[1] is not None:
            continue
        out.append((sample, params))
        if len(out) == n:
            return out
    raise BudgetError(
        f"Only {len(out)} of {scanned} students sampled from search space {gate.space.name!r} meet the budget; "
        f"the '--n' flag asks for {n}. Lower '--n', or loosen the budget with --set budget.<key>=..."
    )


def train_at(task: Any, prep: Any, sample: Any, spec: Any, indices: Any, full: bool) -> float:
    """Validation quality of ``sample`` trained by ``spec``: as a search proxy, or as export's
    retrain (best checkpoint kept, augmentation on)."""
    cfg = prep.cfg
    run = task.distill(
        prep,
        sample.student,
        sample.loss,
        spec=spec,
        indices=indices,
        keep_best=full,
        augment=full or cfg.distill.augment.in_search,
        calibration_examples=None if full else cfg.search.calibration_examples,
    )
    return float(task.trial_metrics(run)["quality"])


def measure(task: Any, prep: Any, space: Any, sample: Any, full_steps: int | None) -> dict[str, Any]:
    """One student at each proxy fidelity and at full length (capped at ``full_steps``)."""
    cfg, sp = prep.cfg, space.spec
    row: dict[str, Any] = {"student": sample.student.to_dict(), "loss": sample.loss.to_dict(), "train": sample.train}
    for fraction, name, _ in FIDELITIES:
        steps = max(1, round(sp.proxy_steps * fraction))
        spec, indices = proxy_plan(task, prep, cfg, steps, sp.proxy_examples, sample.train)
        row[name] = {"steps": steps, "validation": train_at(task, prep, sample, spec, indices, full=False)}
    indices = np.arange(len(prep.encoded["train"]))  # the whole training split, as export retrains
    spec = full_plan(task, cfg, sample.train, len(indices))
    capped = full_steps is not None and spec.steps > full_steps
    if capped:
        spec = replace(spec, steps=full_steps, eval_every=min(spec.eval_every, full_steps))
    quality = train_at(task, prep, sample, spec, indices, full=True)
    row["full"] = {"steps": spec.steps, "capped": capped, "validation": quality}
    return row


def summarize(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    full = [r["full"]["validation"] for r in rows]
    out = []
    for _, name, label in FIDELITIES:
        cheap = [r[name]["validation"] for r in rows]
        out.append(
            {
                "name": name,
                "label": label,
                "steps": rows[0][name]["steps"],
                "spearman": bootstrap(spearman, cheap, full, seed),
                "kendall": bootstrap(kendall, cheap, full, seed),
            }
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--n", type=int, default=12, help="students to sample (at least 2)")
    ap.add_argument("--seed", type=int, default=None, help="sampling and bootstrap seed (default: the config's seed)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--full-steps", type=int, default=None, help="cap on the full-length steps (quick runs)")
    ap.add_argument("--out", default=None, help="result JSON (default: OUTPUT_DIR/proxy_fidelity.json)")
    ap.add_argument("--no-record", action="store_true", help="do not record the result for `autodistill plan`")
    args = ap.parse_args(argv)
    if args.n < 2:
        raise ConfigError(f"The '--n' flag must be >= 2 (a rank correlation needs two students). Got {args.n} instead.")
    if args.full_steps is not None and args.full_steps < 1:
        raise ConfigError(f"The '--full-steps' flag must be >= 1. Got {args.full_steps} instead.")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(2)
    overrides = [*([f"seed={args.seed}"] if args.seed is not None else []), *args.set]
    s = setup(load_config(args.config, overrides))
    task, prep, gate = prepared_gate(s, progress=False)
    out_path = Path(args.out or f"{s.cfg.output_dir}/proxy_fidelity.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"space": s.space.name, "seed": s.cfg.seed, "students": []}
    start = time.perf_counter()
    for k, (sample, params) in enumerate(admitted(gate, args.n)):
        row = {"predicted_parameters": params, **measure(task, prep, s.space, sample, args.full_steps)}
        result["students"].append(row)
        write_json(out_path, result)  # students measured so far survive a stop
        cells = "  ".join(f"{name} {row[name]['validation']:.4f}" for _, name, _ in FIDELITIES)
        print(f"student {k + 1}/{args.n}: {params:,} parameters  {cells}  full {row['full']['validation']:.4f}")
    result["fidelities"] = summarize(result["students"], s.cfg.seed)
    result["seconds"] = time.perf_counter() - start
    write_json(out_path, result)
    _report(result)
    if not args.no_record:
        _record(result, s.space, prep.teacher.fingerprint)
    return result


def _report(result: dict[str, Any]) -> None:
    print(f"\n{'fidelity':<10}{'steps':>7}   {'Spearman [95%]':<22}Kendall [95%]")
    for f in result["fidelities"]:
        print(f"{f['name']:<10}{f['steps']:>7}   {shown(f['spearman']):<22}{shown(f['kendall'])}")


def _record(result: dict[str, Any], space: Any, teacher_fingerprint: str) -> None:
    """The summary ``autodistill plan`` reads for this space and teacher (the last measurement wins)."""
    full = [r["full"] for r in result["students"]]
    path = fidelity_path(space, teacher_fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        path,
        {
            "measured": datetime.date.today().isoformat(),
            "space": result["space"],
            "students": len(result["students"]),
            "seed": result["seed"],
            "full_steps": max(f["steps"] for f in full),
            "full_steps_capped": any(f["capped"] for f in full),
            "fidelities": result["fidelities"],
        },
    )
    print(f"recorded for `autodistill plan` in {path}")


if __name__ == "__main__":
    try:
        main()
    except AutodistillError as err:
        sys.exit(f"error: {err}")
