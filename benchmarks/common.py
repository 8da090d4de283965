"""Shared by the arm benchmarks: prepare once, run named arms, print a table of medians."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from autodistill.config import load_config
from autodistill.specs import LossSpec, Step, StudentSpec
from autodistill.tasks.sequence_classification.distill import distill_student, shipped_quality
from autodistill.tasks.sequence_classification.prepare import Prepared, prepare, train_spec

# the search the search benchmarks measured (README, Search): the `fast` space, quality against
# parameters, no budget; the demo config has since moved to the `speed` space under a budget
FAST_SEARCH = ["search.space=fast", "search.objectives=[quality, parameters]", "budget={}"]


def prepared(config: str, overrides: list[str]) -> Prepared:
    torch.set_num_threads(2)
    return prepare(load_config(config, overrides), progress=False)


def run_arm(
    prep: Prepared,
    transforms: list[dict[str, Any]],
    terms: list[dict[str, Any]],
    steps: int,
    seed: int,
    weighting: str = "static",
    temperature: float = 2.0,
    layer_map: str = "uniform",
) -> dict[str, Any]:
    """Distill one student for ``steps`` on the full train split; quality on validation and test."""
    from dataclasses import replace

    student = StudentSpec(tuple(Step.from_dict(t) for t in transforms))
    loss = LossSpec(
        tuple(Step.from_dict(t) for t in terms), temperature=temperature, layer_map=layer_map, weighting=Step(weighting)
    )
    spec = replace(train_spec(prep.cfg, len(prep.encoded["train"].labels)), steps=steps, seed=seed, eval_every=None)
    start = time.perf_counter()
    run = distill_student(prep, student, loss, spec, evaluate=None, keep_best=False)
    test = shipped_quality(prep, run.build, "test")
    return {
        "validation": run.validation["quality"],
        "test": test["quality"],
        "parameters": sum(p.numel() for p in run.build.export_model().parameters()),
        "seconds": time.perf_counter() - start,
    }


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)
