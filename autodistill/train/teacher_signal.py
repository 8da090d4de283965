"""Where the teacher's targets for a batch come from: the cache (the normal path) or a live
teacher forward pass (for comparison in benchmarks, and for data that is not cached)."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import numpy as np
import torch

from autodistill.losses.capture import capture_qkv
from autodistill.teacher.cache import TeacherOutputs


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module, needed: bool = True):
    """Eager attention while ``model`` must return attention maps (fused SDPA kernels return none),
    then its own implementation again: the teacher is shared, and later stages (latency above all)
    must run it as users do."""
    impl = getattr(model.config, "_attn_implementation", None)
    if not needed or impl in (None, "eager") or not hasattr(model, "set_attn_implementation"):
        yield model
        return
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(impl)


class TeacherSignal(Protocol):
    def targets(self, indices: np.ndarray, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, Any]: ...


class CachedTeacher:
    def __init__(self, outputs: TeacherOutputs, split: str = "train") -> None:
        self.outputs = outputs
        self.split = split

    def targets(self, indices: np.ndarray, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, Any]:
        return self.outputs.batch(self.split, indices, batch["input_ids"].shape[1], device)


class LiveTeacher:
    """Runs the teacher on each batch (``batch`` holds the teacher's own token ids)."""

    def __init__(
        self,
        model: torch.nn.Module,
        hidden: list[int] = (),
        attention: list[int] = (),
        label_order: list[int] | None = None,
        qkv: list[int] = (),
    ) -> None:
        self.model = model.eval()
        self.hidden = list(hidden)
        self.attention = list(attention)
        self.qkv = list(qkv)
        self.label_order = label_order

    @torch.no_grad()
    def targets(self, indices: np.ndarray, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, Any]:
        self.model.to(device)
        inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with capture_qkv(self.model, self.qkv) if self.qkv else contextlib.nullcontext({}) as captured:
            out = self.model(**inputs, output_hidden_states=bool(self.hidden), output_attentions=bool(self.attention))
        logits = out.logits.float()
        if self.label_order is not None:
            logits = logits[:, self.label_order]
        res: dict[str, Any] = {"teacher_logits": logits}
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        if self.hidden:
            res["teacher_hidden"] = {j: out.hidden_states[j].float() * mask for j in self.hidden}
        if captured:
            res["teacher_qkv"] = {j: tuple(t.float() * mask for t in qkv) for j, qkv in captured.items()}
        if self.attention:
            res["teacher_attentions"] = {j: out.attentions[j].float() for j in self.attention}
        return res


def stack_targets(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Targets of two batches of the same width, stacked along the batch (real, then augmented).

    ``second`` (the live teacher) holds exactly what the loss reads; ``first`` (the cache) may hold
    more (layers an earlier run needed), which the loss does not read and the stack leaves out."""
    out: dict[str, Any] = {}
    for key, b in second.items():
        a = first[key]
        if isinstance(b, torch.Tensor):
            out[key] = torch.cat([a, b])
        else:  # per-layer dicts of tensors, or of tuples (q, k, v)
            out[key] = {
                j: torch.cat([a[j], t]) if isinstance(t, torch.Tensor) else tuple(torch.cat(p) for p in zip(a[j], t))
                for j, t in b.items()
            }
    return out
