"""Shared by the causal-LM benchmarks: prepare a config once, distil one student for a fixed number
of steps from given targets, and score it on test (perplexity, agreement, KL with the teacher)."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from autodistill.config import load_config
from autodistill.specs import TrainSpec
from autodistill.tasks.base import train_spec
from autodistill.tasks.causal_lm.distill import split_metrics
from autodistill.tasks.causal_lm.losses import build_lm_loss
from autodistill.tasks.causal_lm.prepare import LMPrepared, prepare
from autodistill.tasks.causal_lm.student import build_student
from autodistill.tasks.causal_lm.train import train_lm


def prepared(config: str, overrides: list[str]) -> LMPrepared:
    torch.set_num_threads(2)
    return prepare(load_config(config, overrides), progress=False)


class LiveTargets:
    """Targets computed by the live teacher at every step (the same ``batch`` as a ``TopKStore``):
    the full distribution when ``k`` is the vocabulary, else its top-k form, with no cache."""

    def __init__(self, prep: LMPrepared, k: int) -> None:
        self.prep, self.k = prep, k
        self.split = prep.encoded["train"]

    def batch(self, rows: np.ndarray, block: int, device: Any = "cpu") -> Any:
        from autodistill.tasks.causal_lm.topk import compress

        ids = torch.as_tensor(np.asarray(self.split.input_ids[rows]), dtype=torch.long)
        mask = torch.as_tensor(np.asarray(self.split.attention_mask[rows]), dtype=torch.long)
        with torch.inference_mode():
            logits = self.prep.teacher_model()(input_ids=ids, attention_mask=mask).logits[..., : self.prep.vocab]
        return compress(logits.float(), self.k).to(device)


def spec_for(prep: LMPrepared, steps: int, seed: int) -> TrainSpec:
    return replace(train_spec(prep.cfg, len(prep.encoded["train"])), steps=steps, seed=seed, eval_every=None)


def run_arm(
    prep: LMPrepared,
    transforms: list[dict[str, Any]],
    terms: list[dict[str, Any]],
    steps: int,
    seed: int,
    temperature: float = 1.0,
    targets: Any = None,
    lr: float | None = None,
) -> dict[str, Any]:
    """One student built from the teacher, trained ``steps`` steps on the whole train split from
    ``targets`` (default: the cache) at learning rate ``lr`` (default: the config's), scored on test."""
    torch.manual_seed(seed)
    model, _ = build_student(prep.teacher_model(), transforms, prep.calibration())
    loss = build_lm_loss(terms, temperature)
    start = time.perf_counter()
    train = prep.encoded["train"]
    result = train_lm(
        model,
        loss,
        train,
        targets or prep.targets["train"],
        np.arange(len(train)),
        spec_for(prep, steps, seed) if lr is None else replace(spec_for(prep, steps, seed), lr=lr),
        progress=False,
        vocab=prep.vocab,
    )
    test = split_metrics(prep, model, "test")
    return {
        **test,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - start,
        "step_seconds": result.seconds / max(1, result.steps),
    }


def summary(rows: list[dict[str, Any]], key: str) -> str:
    """Median with the spread (min-max) over seeds."""
    vals = [r[key] for r in rows]
    return f"{statistics.median(vals):.3f} [{min(vals):.3f}-{max(vals):.3f}]"
