"""The picked trial's student, trained for shipping.

The student is rebuilt from the trial's stored resolved record with ``rebuild_student`` (the same
build code the search used) and distilled by its task (``Task.distill``):

- retrain (default): at full length on the whole training split, with the config's full-mode
  settings (``distill.epochs`` or ``distill.max_steps``, best validation checkpoint kept) and the
  trial's loss spec and train overrides (lr, batch size, ...);
- ``--no-retrain``: the search does not keep proxy weights (a search of many trials would store
  a model per trial), so the trial's proxy distillation is run again exactly: same spec, seed,
  proxy subset and steps. Training is deterministic on CPU, so it reproduces the trial's student;
  the reproduced validation quality is reported next to the recorded one so any drift shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from autodistill.config.run import LossConfig, RunConfig
from autodistill.config.schema import parse
from autodistill.errors import AutodistillError
from autodistill.search.objective import proxy_plan
from autodistill.specs import LossSpec, TrainSpec
from autodistill.tasks import Task


def loss_spec(d: dict[str, Any]) -> LossSpec:
    """The LossSpec a trial stored as ``LossSpec.to_dict()``."""
    return LossSpec.from_config(parse(LossConfig, dict(d), "loss"))


def full_plan(task: Task, cfg: RunConfig, train: dict[str, Any], n_examples: int) -> TrainSpec:
    """Full length on the whole train split: ``distill.max_steps``, else ``distill.epochs`` at the
    trial's batch size; evaluated once an epoch (or every ``distill.eval_every``) to keep the best."""
    from autodistill.train.loop import steps_for_epochs

    d = cfg.distill
    full = replace(cfg, distill=replace(d, mode="full"))
    spec = replace(task.train_spec(full, n_examples), **train)
    steps = d.max_steps or steps_for_epochs(n_examples, spec.batch_size, d.epochs)
    per_epoch = steps_for_epochs(n_examples, spec.batch_size, 1.0)
    return replace(spec, steps=steps, eval_every=d.eval_every or max(1, min(per_epoch, steps)))


@dataclass
class FinalStudent:
    run: Any  # the task's distilled student (``Task.distill``)
    mode: str  # "retrained" or "proxy"
    spec: TrainSpec
    n_examples: int
    test: dict[str, float]
    proxy_validation: float  # the search's estimate (recorded on the trial)
    reproduced_validation: float | None = None  # --no-retrain: the rerun's validation quality
    augment: dict[str, Any] | None = None  # distill.augment's options when its copies were used
    energy: dict[str, Any] | None = None  # the final training's joules and how they were found


def final_student(
    prep: Any,
    trial: dict[str, Any],
    proxy: dict[str, int],
    retrain: bool = True,
    seed: int | None = None,
    task: Task | None = None,
) -> FinalStudent:
    """``trial``: the picked record with its ``resolved`` form; ``proxy``: the study's
    ``proxy_steps`` and ``proxy_examples``. ``seed`` overrides the config's (benchmarks). ``task``:
    the config's (``get_task``) unless given."""
    from autodistill.tasks import get_task

    task = task or get_task(prep.cfg)

    resolved = trial.get("resolved")
    if not resolved:
        raise AutodistillError(f"Trial {trial['number']} has no stored resolved student form; it cannot be rebuilt.")
    cfg = prep.cfg if seed is None else replace(prep.cfg, seed=seed)
    built = task.rebuild(prep, resolved)
    loss = loss_spec(trial["loss"])
    overrides = dict(trial.get("train") or {})
    if retrain:
        indices = np.arange(len(prep.encoded["train"]))
        spec = full_plan(task, cfg, overrides, len(indices))
        keep_best = True
    else:
        spec, indices = proxy_plan(task, prep, cfg, proxy["proxy_steps"], proxy["proxy_examples"], overrides)
        keep_best = False
    if seed is not None:
        spec = replace(spec, seed=seed)
    # --no-retrain reruns the proxy as the search ran it (its copies, its calibration examples)
    augment = retrain or cfg.distill.augment.in_search
    calibration = None if retrain else cfg.search.calibration_examples
    run = task.distill(
        prep,
        None,
        loss,
        spec=spec,
        indices=indices,
        keep_best=keep_best,
        built=built,
        augment=augment,
        calibration_examples=calibration,
    )
    test = task.shipped_quality(prep, run.build, "test")  # as `autodistill evaluate` on the export will see it
    recorded = float(trial["objectives"]["quality"])
    return FinalStudent(
        run,
        "retrained" if retrain else "proxy",
        spec,
        len(indices),
        test,
        recorded,
        None if retrain else float(run.validation["quality"]),
        augment_record(prep) if augment else None,
    )


def augment_record(prep: Any) -> dict[str, Any] | None:
    """distill.augment's options as the run used them (the ratio decided, and why), and
    data.unlabeled's sources and text count when it is set; None when no copies were made."""
    decide = getattr(prep, "augment", None)  # a task that makes no copies (causal LMs) has none
    if decide is None:
        return None
    options, why = decide()
    if not options.ratio:
        return None
    out: dict[str, Any] = {**asdict(options), "why": why}
    if prep.cfg.data.unlabeled:
        found = prep.unlabeled()[0]
        out["unlabeled"] = {"sources": list(prep.cfg.data.unlabeled), "texts": len(found.texts)}
    return out
