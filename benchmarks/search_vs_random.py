"""Issue 5: the configured sampler (TPE) against random search on the fast space, 20 trained
trials each, 3 seeds, on the built-in Rotten Tomatoes set with the fine-tuned MiniLM teacher.
Prints the hypervolume of each front (validation quality against parameters; reference point:
quality 0.5 and the teacher's parameter count), the best quality under 40% of the teacher's
parameters, and the wall time. Each run gets its own study and output folder.

    .venv/bin/python benchmarks/search_vs_random.py [--trials 20] [--seeds 3] [--out runs/bench-search]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from common import FAST_SEARCH

from autodistill.config import load_config
from autodistill.search.pareto import hypervolume_2d
from autodistill.search.run import Search


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed+seeds-1")
    ap.add_argument("--samplers", default="tpe,random")
    ap.add_argument("--out", default="runs/bench-search")
    ap.add_argument("--no-pruning", action="store_true")
    args = ap.parse_args()
    rows: dict[str, list[dict]] = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for sampler in args.samplers.split(","):
            out = Path(args.out) / f"{sampler}-s{seed}"
            overrides = [
                f"seed={seed}",
                f"search.sampler={sampler}",
                f"output_dir={out}",
                "tracking.enabled=false",
                *FAST_SEARCH,
            ]
            if args.no_pruning:
                overrides.append("search.pruning.enabled=false")
            search = Search(load_config(args.config, overrides), progress=False)
            res = search.run(n_trials=args.trials)
            teacher_params = search.teacher_meas["parameters"]
            front = res["front"]
            pts = (
                np.array([[r["objectives"]["quality"], r["objectives"]["parameters"]] for r in front])
                if front
                else np.zeros((0, 2))
            )
            hv = hypervolume_2d(pts, (True, False), (0.5, teacher_params)) / teacher_params if len(pts) else 0.0
            under = [r["objectives"]["quality"] for r in front if r["objectives"]["parameters"] <= 0.4 * teacher_params]
            row = {
                "hv": hv,
                "best40": max(under) if under else float("nan"),
                "seconds": res["seconds"],
                "front": len(front),
            }
            rows.setdefault(sampler, []).append(row)
            print(
                f"seed {seed} {sampler:<7} hypervolume {hv:.4f}  best quality under 40% {row['best40']:.4f}  "
                f"front {len(front)}  {res['seconds']:.0f}s",
                flush=True,
            )
    print(f"\n{'sampler':<8}{'median HV':>11}{'median best<40%':>17}{'median s':>10}")
    for sampler, rs in rows.items():
        print(
            f"{sampler:<8}{statistics.median(r['hv'] for r in rs):>11.4f}"
            f"{statistics.median(r['best40'] for r in rs):>17.4f}{statistics.median(r['seconds'] for r in rs):>10.0f}"
        )


if __name__ == "__main__":
    main()
