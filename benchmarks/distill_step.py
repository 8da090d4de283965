"""Distillation step time: from the teacher cache, with the teacher run live, and a plain
fine-tuning step of the same student (the floor), side by side in one run, for a 2-layer and a
3-layer student of the MiniLM teacher on the built-in Rotten Tomatoes set.

Target (issue 2): the cached step within 10% of the floor.

    .venv/bin/python benchmarks/distill_step.py [--steps 30] [--config configs/demo.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from autodistill.config import load_config
from autodistill.losses import CompositeLoss, LossDims
from autodistill.specs import LossSpec, Step, StudentSpec, TrainSpec
from autodistill.student.build import build_student
from autodistill.tasks.sequence_classification.prepare import prepare
from autodistill.train.loop import train
from autodistill.train.teacher_signal import CachedTeacher, LiveTeacher


def step_time(prep, layers: int, mode: str, steps: int, seed: int) -> float:
    """Median seconds per optimiser step (after 3 warm-up steps) of one arm."""
    tmodel = prep.teacher_model()
    spec = StudentSpec((Step("depth", {"layers": layers, "choice": "uniform"}),))
    built = build_student(tmodel, spec, prep.build_context())
    terms = (Step("ce"),) if mode == "floor" else (Step("ce", {"weight": 0.5}), Step("kl", {"weight": 0.5}))
    loss_spec = LossSpec(terms=terms, temperature=2.0)
    dims = LossDims(built.shape.hidden, tmodel.config.hidden_size)
    loss = CompositeLoss(loss_spec, dims, [])
    teacher = {
        "floor": None,
        "cached": CachedTeacher(prep.outputs),
        "live": LiveTeacher(tmodel, label_order=prep.teacher.label_order),
    }[mode]
    idx = np.arange(len(prep.encoded["train"].labels))
    times: list[float] = []

    class Timer(torch.nn.Module):  # wraps the loss to timestamp each step boundary
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.needs = inner.needs

        def forward(self, batch):
            return self.inner(batch)

        def step_end(self, step):
            times.append(time.perf_counter())

    train(
        built.model,
        Timer(loss),
        prep.encoded["train"],
        idx,
        TrainSpec(steps=steps + 3, batch_size=32, seed=seed),
        prep.pad_id,
        teacher=teacher,
        temperature=2.0,
        progress=False,
    )
    deltas = np.diff(times)[2:]
    return float(statistics.median(deltas))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per arm (median taken)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    prep = prepare(load_config(args.config), progress=False)
    print(f"teacher {prep.teacher.path}; batch 32, {args.steps} timed steps per arm, {args.rounds} interleaved rounds")
    print(f"{'student':<10}{'floor s/step':>14}{'cached':>10}{'live':>10}{'cached/floor':>14}{'live/floor':>12}")
    for layers in (2, 3):
        res: dict[str, list[float]] = {"floor": [], "cached": [], "live": []}
        for r in range(args.rounds):
            for mode in ("floor", "cached", "live"):
                res[mode].append(step_time(prep, layers, mode, args.steps, seed=r))
        med = {k: statistics.median(v) for k, v in res.items()}
        print(
            f"{layers}-layer{'':<3}{med['floor']:>14.4f}{med['cached']:>10.4f}{med['live']:>10.4f}"
            f"{med['cached'] / med['floor']:>14.3f}{med['live'] / med['floor']:>12.3f}"
        )


if __name__ == "__main__":
    main()
