"""Issue 5: how much search time the early stopping of hopeless trials saves on the demo.

Runs the demo's search as it was measured (configs/demo.yaml on the fast space without a budget,
TPE, 12 trained trials) twice with the same seed, with pruning on and off, each in its own output
folder and study, and prints the wall time of each, the trials pruned, the front and its
hypervolume (validation quality against parameters; reference: quality 0.5 and the teacher's
parameter count). The teacher-output cache is
filled for every teacher layer first, so neither run pays for it.

    .venv/bin/python benchmarks/pruning_saving.py [--trials 12] [--order on,off] [--out runs/bench-pruning]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from common import FAST_SEARCH

from autodistill.config import load_config
from autodistill.search.pareto import hypervolume_2d
from autodistill.search.run import Search
from autodistill.search.study import open_existing, trained_trials
from autodistill.tasks.sequence_classification.prepare import prepare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--order", default="on,off", help="which run goes first")
    ap.add_argument("--out", default="runs/bench-pruning")
    args = ap.parse_args()

    base = load_config(args.config, FAST_SEARCH)
    prep = prepare(base, progress=False)
    layers = prep.teacher_model().config.num_hidden_layers
    prep.ensure_outputs(hidden=list(range(1, layers + 1)), attention=[])  # every layer once, before timing

    rows = {}
    for mode in args.order.split(","):
        out = Path(args.out) / mode
        shutil.rmtree(out, ignore_errors=True)  # a fresh study each time: the same command, timed
        enabled = "true" if mode == "on" else "false"
        cfg = load_config(args.config, [*FAST_SEARCH, f"output_dir={out}", f"search.pruning.enabled={enabled}"])
        search = Search(cfg, progress=False)
        res = search.run(n_trials=args.trials)
        study = open_existing(search.s.storage, search.s.study_name)
        pruned = sum(1 for t in trained_trials(study) if t.state.name == "PRUNED")
        t_params = search.teacher_meas["parameters"]
        pts = np.array([[r["objectives"]["quality"], r["objectives"]["parameters"]] for r in res["front"]])
        hv = hypervolume_2d(pts, (True, False), (0.5, t_params)) / t_params if len(pts) else 0.0
        best = max((r["objectives"]["quality"] for r in res["front"]), default=float("nan"))
        rows[mode] = {"seconds": res["seconds"], "pruned": pruned, "front": len(res["front"]), "hv": hv, "best": best}
        print(
            f"pruning {mode:<3}: {res['trained']} trained trials ({pruned} pruned) in {res['seconds']:.0f}s; "
            f"front {len(res['front'])}, hypervolume {hv:.4f}, best validation quality {best:.4f}",
            flush=True,
        )
    if {"on", "off"} <= rows.keys():
        on, off = rows["on"], rows["off"]
        print(
            f"pruning saves {off['seconds'] - on['seconds']:.0f}s of {off['seconds']:.0f}s "
            f"({100 * (1 - on['seconds'] / off['seconds']):.0f}%); "
            f"hypervolume {on['hv']:.4f} with vs {off['hv']:.4f} without"
        )


if __name__ == "__main__":
    main()
