"""The distillation loop, shared by proxy runs, full runs and teacher fine-tuning.

AdamW with linear warm-up and decay, gradient clipping, seeded batch order, bf16 autocast on
CUDA. A non-finite loss stops the run with the step and the terms that went bad.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from autodistill.data import Encoded, batch_indices, collate
from autodistill.data.augment import stack
from autodistill.errors import TrainingError
from autodistill.losses.base import DistillBatch
from autodistill.losses.capture import capture_qkv
from autodistill.specs import TrainSpec
from autodistill.train.average import WeightAverage
from autodistill.train.device import autocast, resolve_device
from autodistill.train.qat import fake_quantised
from autodistill.train.self_teacher import SelfTeacher
from autodistill.train.stopping import Patience
from autodistill.train.teacher_signal import TeacherSignal, explain_non_finite, stack_targets

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class StopTraining(Exception):
    """Raised by an ``evaluate`` callback to end a run early (e.g. a pruned search trial)."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # logged loss terms per step
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, validation quality)
    weights: list[dict[str, float]] = field(default_factory=list)  # loss/layer weights over time
    best_step: int | None = None
    best_quality: float | None = None
    stopped_early: bool = False
    stop_reason: str | None = None  # the StopTraining message when stopped early
    # distill.qat: the first step trained fake-quantised (None: none was); the best checkpoint is then
    # the best of the checkpoints from that step on, each judged fake-quantised
    qat_from_step: int | None = None


def steps_for_epochs(n_examples: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * math.ceil(n_examples / batch_size)))


def optimizer_for(groups: list[dict[str, Any]], spec: TrainSpec) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over ``groups`` and its schedule: linear warm-up over ``spec.warmup_ratio`` of the
    steps, then linear decay to zero at ``spec.steps`` (every task's training loop uses these)."""
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=spec.lr)
    warmup = int(spec.warmup_ratio * spec.steps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (spec.steps - step) / max(1, spec.steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def qat_start(spec: TrainSpec, step_offset: int = 0) -> int | None:
    """The first step (counted as ``train`` counts them, from ``step_offset``) that trains with
    fake quantisation (``distill.qat``): the last ``ceil(qat * total)`` of the run's
    ``total = step_offset + spec.steps`` steps, but none before this call's first step (steps trained
    in an earlier stage are not requantised); None when ``spec.qat`` is 0."""
    if spec.qat <= 0:
        return None
    total = step_offset + spec.steps
    return max(step_offset + 1, math.floor((1 - spec.qat) * total + 1e-9) + 1)


def param_groups(params: list[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def checkpoint(
    model: torch.nn.Module,
    evaluate: Callable[[int], float],
    step: int,
    result: TrainResult,
    keep_best: bool,
    best_state: dict[str, torch.Tensor] | None,
    swap: contextlib.AbstractContextManager | None = None,
) -> dict[str, torch.Tensor] | None:
    """One validation checkpoint of a training loop: ``evaluate(step)`` in eval mode (inside ``swap``,
    e.g. the weight average swapped in), recorded in ``result``; returns the kept best weights (a
    copy of them when this checkpoint is the best and ``keep_best``). On a tie the later checkpoint
    is the best (``train.stopping`` says why)."""
    model.eval()
    with swap or contextlib.nullcontext():
        quality = float(evaluate(step))
        if result.best_quality is None or quality >= result.best_quality:
            result.best_quality, result.best_step = quality, step
            if keep_best:
                best_state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
    model.train()
    result.evals.append((step, quality))
    return best_state


def set_dropout(model: torch.nn.Module, rate: float) -> None:
    """``distill.dropout``: every dropout layer of ``model`` drops at ``rate`` (attention dropout
    included: transformers' attention reads its module's ``dropout.p``)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate


def _epochs(indices: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int):
    epoch = 0
    while True:
        for local in batch_indices(lengths[indices], batch_size, shuffle=True, seed=seed + epoch):
            yield indices[local]
        epoch += 1


def train(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    encoded: Encoded,
    indices: np.ndarray,
    spec: TrainSpec,
    pad_id: int,
    teacher: TeacherSignal | None = None,
    layer_map: list[tuple[int, int]] | None = None,
    temperature: float = 1.0,
    token_id_map: torch.Tensor | None = None,
    evaluate: Callable[[int], float] | None = None,
    keep_best: bool = False,
    progress: bool = True,
    desc: str = "distill",
    augment: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]] | None = None,
    augment_teacher: TeacherSignal | None = None,
    step_offset: int = 0,
) -> TrainResult:
    """Train ``model`` for ``spec.steps`` optimiser steps on ``encoded[indices]``.

    ``evaluate(step) -> quality`` runs every ``spec.eval_every`` steps and at the end; with
    ``keep_best`` the weights of the best evaluation are restored at the end.
    ``augment(batch, step)`` (optional) adds copies of each batch that ``augment_teacher`` labels
    (``data.augment``); the step count is unchanged, each step sees the copies as well.
    ``spec.patience``: the run ends after that many evaluations without a gain (``train.stopping``;
    ``result.stopped_early`` and ``stop_reason`` record why), ``spec.steps`` being the cap.
    ``step_offset``: steps already trained in an earlier stage of the same run (``distill.prune_after``);
    evaluations, history and batch order count on from there, the learning-rate schedule restarts.
    ``spec.qat`` (``distill.qat``): from step ``qat_start(spec, step_offset)`` to the end, the model's
    Linear layers and embeddings compute fake-quantised as the int8 export will (``train.qat``), in
    training steps and at validation checkpoints alike. The float steps before never stop early
    (``patience`` counts the quantised checkpoints only) and the checkpoint kept is the best quantised
    one, so the student shipped is the one that scored best as it will run in int8. The model is
    plain again when this returns.
    """
    if augment is not None and (augment_teacher is None or teacher is None):
        raise ValueError("train(augment=...) needs teacher and augment_teacher (the copies' labeller).")
    torch.manual_seed(spec.seed)
    device = resolve_device(spec.device)
    model.to(device).train()
    if spec.dropout is not None:
        set_dropout(model, spec.dropout)
    loss_fn.to(device).train()
    if hasattr(loss_fn, "start"):  # schedules over the run (progressive weighting, self_kl's start)
        loss_fn.start(spec.steps)
    needs = getattr(loss_fn, "needs", frozenset())
    want_hidden, want_attn = "hidden" in needs, "attentions" in needs
    params = list(model.named_parameters())
    groups = param_groups(params, spec.weight_decay)
    if hasattr(loss_fn, "param_groups"):  # projections like the student; learned weights at their own lr
        groups += loss_fn.param_groups(spec.lr, spec.weight_decay)
    else:
        groups += param_groups([(f"loss.{n}", p) for n, p in loss_fn.named_parameters()], spec.weight_decay)
    params += [(f"loss.{n}", p) for n, p in loss_fn.named_parameters()]
    optimizer, scheduler = optimizer_for(groups, spec)
    qkv_layers = loss_fn.student_qkv_layers() if "qkv" in needs else []
    trainable = [p for _, p in params if p.requires_grad]
    id_map = token_id_map.to(device) if token_id_map is not None else None
    result = TrainResult(steps=0, seconds=0.0)
    stop = Patience(spec.patience) if spec.patience else None
    best_state: dict[str, torch.Tensor] | None = None
    average = WeightAverage(model, spec.ema) if spec.ema > 0 else None
    self_teacher = SelfTeacher.for_loss(model, loss_fn, average)  # None unless a term needs self_logits
    batches = _epochs(np.asarray(indices), encoded.lengths, spec.batch_size, spec.seed + step_offset)
    qat_from, quantised = qat_start(spec, step_offset), contextlib.ExitStack()
    start = time.perf_counter()
    bar = tqdm(total=spec.steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for local in range(1, spec.steps + 1):
            step = local + step_offset
            if step == qat_from:  # the float checkpoints are not compared with the quantised ones
                quantised.enter_context(fake_quantised(model))
                result.qat_from_step, result.best_step, result.best_quality, best_state = step, None, None, None
            idx = next(batches)
            batch = collate(encoded, idx, pad_id)
            targets = teacher.targets(idx, batch, device) if teacher is not None else {}
            sources = [(teacher, targets)]
            if augment is not None:
                extra = augment(batch, step)
                sources.append((augment_teacher, augment_teacher.targets(None, extra, device)))
                targets = stack_targets(targets, sources[-1][1])
                batch = stack(batch, extra)
            inputs = {k: v.to(device) for k, v in batch.items() if k in MODEL_INPUTS}
            if id_map is not None:
                inputs["input_ids"] = id_map[inputs["input_ids"]]
            with (
                autocast(device, spec.bf16),
                capture_qkv(model, qkv_layers) if qkv_layers else contextlib.nullcontext({}) as sqkv,
            ):
                out = model(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
                dbatch = DistillBatch(
                    labels=batch["labels"].to(device),
                    attention_mask=inputs["attention_mask"],
                    student_logits=out.logits,
                    student_hidden=out.hidden_states if want_hidden else None,
                    student_attentions=out.attentions if want_attn else None,
                    student_qkv=sqkv or None,
                    layer_map=list(layer_map or []),
                    temperature=temperature,
                    self_logits=self_teacher.logits(inputs) if self_teacher is not None else None,
                    **targets,
                )
                loss, parts = loss_fn(dbatch)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                bad = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
                blame = explain_non_finite(sources) or (
                    "Lower 'distill.lr' or the loss weights, or raise 'distill.max_grad_norm' clipping."
                )
                raise TrainingError(f"The loss became {loss_value} at step {step} of {desc} ({bad}). {blame}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update()
            if self_teacher is not None:
                self_teacher.update()
            if hasattr(loss_fn, "step_end"):
                loss_fn.step_end(local)
            result.steps = local
            result.history.append({"step": step, "loss": loss_value, **parts})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            at_eval = spec.eval_every is not None and step % spec.eval_every == 0
            if evaluate is not None and (at_eval or local == spec.steps):
                swap = average.swapped() if average is not None else contextlib.nullcontext()
                best_state = checkpoint(model, evaluate, step, result, keep_best, best_state, swap)
                if self_teacher is not None and result.best_step == step:
                    self_teacher.at_best_checkpoint()
                judged = result.evals if qat_from is None else [e for e in result.evals if e[0] >= qat_from]
                if stop is not None and (why := stop.check(judged)):
                    raise StopTraining(why)
    except StopTraining as stop:
        result.stopped_early, result.stop_reason = True, str(stop)
    finally:
        quantised.close()
        bar.close()
        result.seconds = time.perf_counter() - start
        model.eval()
    if hasattr(loss_fn, "weight_history"):
        result.weights = loss_fn.weight_history()
    if average is not None:
        average.copy_to_model()
    if keep_best and best_state is not None and result.best_step != result.steps + step_offset:
        model.load_state_dict(best_state)
    return result
