"""Issue 27: below how many training rows do teacher-labelled copies (``distill.augment``) pay?

The teacher is the config's (the demo's: fine-tuned on the whole training split, as a user who
brings a strong teacher has one); the student trains on a stratified subset of N training rows,
at full length as ``distill`` and export train it (``distill.epochs`` the cap, validation
``patience``, best checkpoint kept), once with no copies and once with one teacher-labelled copy
per example, same seed and subset. Validation is the whole validation split; test the whole test
split. Prints, per N, the median test quality of each arm over the seeds with its range, and the
gain; the README's ``distill.augment.small_train`` default rests on where the gain ends.

    .venv/bin/python benchmarks/augment_threshold.py configs/demo.yaml --sizes 1000,4000 --seeds 0,1,2
        [--set key=value ...] [--out runs/augment-threshold.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from common import prepared

from autodistill.data import stratified_subset
from autodistill.specs import LossSpec, StudentSpec
from autodistill.tasks.sequence_classification.distill import distill_student, shipped_quality
from autodistill.tasks.sequence_classification.prepare import train_spec


def one(prep, n: int, seed: int, ratio: float) -> dict:
    cfg = prep.cfg
    cfg = replace(cfg, seed=seed, distill=replace(cfg.distill, augment=replace(cfg.distill.augment, ratio=ratio)))
    arm = replace(prep, cfg=cfg)
    labels = prep.encoded["train"].labels
    indices = stratified_subset(labels, n, seed) if n < len(labels) else None
    student, loss = StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss)
    n_rows = len(indices) if indices is not None else len(labels)
    start = time.perf_counter()
    run = distill_student(arm, student, loss, train_spec(cfg, n_rows), indices=indices)
    return {
        "n": n_rows,
        "seed": seed,
        "ratio": ratio,
        "validation": run.validation["quality"],
        "test": shipped_quality(arm, run.build, "test")["quality"],
        "steps": run.train.steps,
        "stopped": run.train.stop_reason or "the cap",
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--sizes", default="1000,4000")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--out", default="runs/augment-threshold.json")
    args = ap.parse_args()
    prep = prepared(args.config, ["tracking.enabled=false", "distill.mode=full", *args.overrides])
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        for seed in (int(x) for x in args.seeds.split(",")):
            for ratio in (0.0, 1.0):
                rows.append(one(prep, n, seed, ratio))
                print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"\n{'rows':>6} {'no copies (test)':>28} {'one copy each (test)':>28} {'gain':>7}")
    for n in sorted({r["n"] for r in rows}):
        arms = [[r["test"] for r in rows if r["n"] == n and r["ratio"] == ratio] for ratio in (0.0, 1.0)]
        med = [statistics.median(a) for a in arms]
        text = [f"{m:.4f} ({min(a):.4f}-{max(a):.4f})" for m, a in zip(med, arms)]
        print(f"{n:>6} {text[0]:>28} {text[1]:>28} {med[1] - med[0]:>+7.4f}")


if __name__ == "__main__":
    main()
