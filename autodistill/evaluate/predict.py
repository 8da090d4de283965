"""Run a classifier over batches and put its outputs back in example order."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from autodistill.evaluate.metrics import agreement, task_metrics

# Keys a sequence classifier's forward may take; everything else in a batch (labels, index,
# lengths, ...) is bookkeeping and must not reach the model (labels would make it compute a loss).
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def model_input_keys(model: torch.nn.Module) -> tuple[str, ...]:
    """The subset of MODEL_INPUTS this model's forward accepts (DistilBERT takes no token_type_ids)."""
    params = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        # peft wrappers and the like forward **kwargs; trust the inner model's own signature if any.
        inner = getattr(model, "get_base_model", None)
        if callable(inner) and inner() is not model:
            return model_input_keys(inner())
        return MODEL_INPUTS
    return tuple(k for k in MODEL_INPUTS if k in params)


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a transformers output, a tuple whose first item is the logits, or a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    if getattr(output, "logits", None) is not None:
        return output.logits
    return output[0]


@torch.no_grad()
def predict(
    model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]], device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (example indices, float32 logits [N, C], argmax preds), sorted by example index.

    Batches may come in any order (sorted by length to save padding); ``batch["index"]`` says
    which example each row is. Without it, rows are numbered in arrival order.
    """
    was_training = model.training
    model.eval()
    keys = model_input_keys(model)
    indices: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    seen = 0
    try:
        for batch in batches:
            inputs = {k: v.to(device) for k, v in batch.items() if k in keys}
            out = logits_of(model(**inputs)).float().cpu().numpy()
            idx = batch.get("index")
            idx = np.arange(seen, seen + len(out)) if idx is None else np.asarray(torch.as_tensor(idx).cpu())
            seen += len(out)
            indices.append(idx.astype(np.int64))
            logits.append(out)
    finally:
        model.train(was_training)
    if not indices:
        raise ValueError("predict got no batches: the split is empty.")
    index = np.concatenate(indices)
    all_logits = np.concatenate(logits).astype(np.float32, copy=False)
    if len(np.unique(index)) != len(index):
        raise ValueError("predict got the same example index twice: batch['index'] must be unique across batches.")
    order = np.argsort(index, kind="stable")
    index, all_logits = index[order], all_logits[order]
    return index, all_logits, all_logits.argmax(axis=-1)


def evaluate_model(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    labels: np.ndarray | None,
    metric: str,
    teacher_preds: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Task metrics (plus ``agreement`` with the teacher when its preds are given) and the outputs.

    ``labels`` and ``teacher_preds`` are indexed by example index (the whole split's arrays), so
    a subset of examples or any batch order is scored correctly. ``labels=None`` takes the labels
    from ``batch["labels"]``. Returns ``{"metrics": {...}, "index": ..., "logits": ..., "preds": ...}``;
    only ``metrics`` is JSON-ready, the arrays are for the caller (cache, tracking).
    """
    seen: list[tuple[np.ndarray | None, np.ndarray]] = []
    if labels is None:
        batches = _tap_labels(batches, seen)
    index, logits, preds = predict(model, batches, device=device)
    if labels is None:
        y = _labels_in_order(seen, index)
    else:
        y = np.asarray(labels)[index]
    metrics = task_metrics(y, preds, metric)
    if teacher_preds is not None:
        metrics["agreement"] = agreement(preds, np.asarray(teacher_preds)[index])
    return {"metrics": metrics, "index": index, "logits": logits, "preds": preds}


def _tap_labels(batches: Iterable[dict[str, torch.Tensor]], seen: list) -> Iterable[dict[str, torch.Tensor]]:
    for batch in batches:
        if "labels" not in batch:
            raise ValueError("evaluate_model got labels=None and a batch without a 'labels' key.")
        idx = batch.get("index")
        idx = None if idx is None else np.asarray(torch.as_tensor(idx).cpu())
        seen.append((idx, np.asarray(batch["labels"].cpu())))
        yield batch


def _labels_in_order(seen: list, index: np.ndarray) -> np.ndarray:
    """Labels gathered from the batches, reordered exactly as predict reordered the rows."""
    if any(i is None for i, _ in seen):
        return np.concatenate([y for _, y in seen])  # predict numbered rows in arrival order
    arrival = np.concatenate([i for i, _ in seen])
    y = np.concatenate([y for _, y in seen])
    order = np.argsort(arrival, kind="stable")
    return y[order]
