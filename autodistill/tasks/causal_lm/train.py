"""The causal-LM training loop: fixed-length token blocks, targets from the top-k cache, the
classifier loop's optimiser and schedule (``train.loop.optimizer_for``), validation at checkpoints
and the best checkpoint kept. When a loss reads hidden states the student runs with
``output_hidden_states`` and the teacher's come from the cache; the loss's own parameters (a
hidden-state projection) are trained beside the student's.

A loop of its own rather than ``train.loop.train``: that loop pads variable-length examples per
batch and feeds a ``DistillBatch`` of classifier targets (hidden states, attention maps, an
augmentation path); here every row is a full block and the targets are a ``TopK``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from autodistill.errors import TrainingError
from autodistill.specs import TrainSpec
from autodistill.train.device import autocast, resolve_device
from autodistill.train.loop import (
    StopTraining,
    TrainResult,
    checkpoint,
    optimizer_for,
    param_groups,
    set_dropout,
)
from autodistill.train.stopping import Patience


def _batches(indices: np.ndarray, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    epoch = 0
    while True:
        order = np.random.default_rng(seed + epoch).permutation(indices)
        for start in range(0, len(order), batch_size):
            yield np.sort(order[start : start + batch_size])
        epoch += 1


def train_lm(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    split: Any,
    targets: Any,
    indices: np.ndarray,
    spec: TrainSpec,
    evaluate: Callable[[int], float] | None = None,
    keep_best: bool = False,
    progress: bool = True,
    desc: str = "distill",
    vocab: int | None = None,
    on_policy: Any = None,
) -> TrainResult:
    """Train ``model`` for ``spec.steps`` steps on the rows ``indices`` of ``split`` (an ``LMSplit``)
    against ``targets`` (its ``TopKStore``) with ``loss_fn`` (a ``losses.CompositeLMLoss``, which holds the
    temperature). ``evaluate(step) -> quality`` runs every
    ``spec.eval_every`` steps and at the end; it may raise ``StopTraining``. ``vocab``: the logit
    columns that are real tokens (a padded vocabulary's extra columns are left out). A loss with
    hidden-state terms needs ``targets`` to hold the teacher's states at
    ``loss_fn.teacher_hidden_layers()`` (``TopKStore.hidden_batch``). ``on_policy`` (an
    ``on_policy.OnPolicy``) swaps a share of the batches for the student's own continuations,
    scored by the live teacher. ``spec.patience``: the run ends after that many evaluations without a gain
    (``train.stopping.Patience``), ``spec.steps`` being the cap."""
    from tqdm.auto import tqdm

    from autodistill.tasks.causal_lm.losses import HiddenInputs

    torch.manual_seed(spec.seed)
    device = resolve_device(spec.device)
    model.to(device).train()
    if spec.dropout is not None:
        set_dropout(model, spec.dropout)
    loss_fn.to(device).train()
    params = list(model.named_parameters())
    extra = [(f"loss.{n}", p) for n, p in loss_fn.named_parameters()]  # projections learn with the student
    groups = param_groups(params, spec.weight_decay) + param_groups(extra, spec.weight_decay)
    optimizer, scheduler = optimizer_for(groups, spec)
    trainable = [p for _, p in params + extra if p.requires_grad]
    layers = loss_fn.teacher_hidden_layers() if getattr(loss_fn, "needs_hidden", False) else []
    want = {"output_hidden_states": True} if layers else {}
    result = TrainResult(steps=0, seconds=0.0)
    stop = Patience(spec.patience) if spec.patience else None
    best_state: dict[str, torch.Tensor] | None = None
    batches = _batches(np.asarray(indices), spec.batch_size, spec.seed)
    block = split.input_ids.shape[1]
    start = time.perf_counter()
    bar = tqdm(total=spec.steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for step in range(1, spec.steps + 1):
            rows = next(batches)
            ids = torch.as_tensor(np.asarray(split.input_ids[rows]), dtype=torch.long, device=device)
            mask = torch.as_tensor(np.asarray(split.attention_mask[rows]), dtype=torch.long, device=device)
            labels = torch.as_tensor(np.asarray(split.labels[rows]), dtype=torch.long, device=device)
            own = on_policy.batch(model, ids, mask) if on_policy is not None else None
            if own is not None:
                ids, mask, labels, target = own[0], own[1], own[2], own[3].to(device)
            else:
                target = targets.batch(rows, block, device)
            with autocast(device, spec.bf16):
                out = model(input_ids=ids, attention_mask=mask, **want)
            hidden = None
            if layers:
                hidden = HiddenInputs(out.hidden_states, targets.hidden_batch(rows, block, layers, device), mask)
            loss, parts = loss_fn(out.logits[..., :vocab].float(), target, labels, hidden)
            value = float(loss.detach())
            if not math.isfinite(value):
                bad = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
                raise TrainingError(
                    f"The loss became {value} at step {step} of {desc} ({bad}). Lower 'distill.lr' or the "
                    "loss weights, or raise 'distill.max_grad_norm' clipping."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            result.steps = step
            result.history.append({"step": step, "loss": value, **parts})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            at_eval = spec.eval_every is not None and step % spec.eval_every == 0
            if evaluate is not None and (at_eval or step == spec.steps):
                best_state = checkpoint(model, evaluate, step, result, keep_best, best_state)
                if stop is not None and (why := stop.check(result.evals)):
                    raise StopTraining(why)
    except StopTraining as stop:
        result.stopped_early, result.stop_reason = True, str(stop)
    finally:
        bar.close()
        result.seconds = time.perf_counter() - start
        model.eval()
    if keep_best and best_state is not None and result.best_step != result.steps:
        model.load_state_dict(best_state)
    return result
