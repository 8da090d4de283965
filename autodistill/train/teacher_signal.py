"""Where the teacher's targets for a batch come from: the cache (the normal path) or a live
teacher forward pass (for comparison in benchmarks, and for data that is not cached)."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import numpy as np
import torch

from autodistill.losses.capture import capture_qkv


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


class StoredOutputs(Protocol):
    """What ``CachedTeacher`` reads: ``autodistill.teacher.cache.TeacherOutputs`` (a protocol here,
    so that training does not import the teacher layer above it)."""

    def batch(self, split: str, indices: np.ndarray, seq_len: int, device: Any = "cpu") -> dict[str, Any]: ...


class CachedTeacher:
    """Targets read from the teacher-output cache (which refuses rows holding NaN or infinity)."""

    def __init__(self, outputs: StoredOutputs, split: str = "train") -> None:
        self.outputs = outputs
        self.split = split

    @property
    def origin(self) -> str:
        cache = getattr(self.outputs, "cache", None)
        where = f" ({cache.folder}); delete that folder so the next run computes it again" if cache else ""
        return f"the teacher-output cache{where}"

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
        self.origin = "the teacher model's own outputs on these batches; check the teacher's weights"

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


def non_finite_targets(targets: dict[str, Any]) -> list[str]:
    """Names of the targets (``teacher_hidden[3]``, ...) that hold NaN or infinity."""
    bad = []
    for key, value in targets.items():
        if isinstance(value, torch.Tensor):
            if not bool(torch.isfinite(value).all()):
                bad.append(key)
            continue
        for j, t in value.items():
            parts = t if isinstance(t, tuple) else (t,)
            if not all(bool(torch.isfinite(p).all()) for p in parts):
                bad.append(f"{key}[{j}]")
    return bad


def explain_non_finite(sources: list[tuple[TeacherSignal | None, dict[str, Any]]]) -> str | None:
    """Why a loss went non-finite when the teacher's targets, not training, hold the NaN: a
    sentence naming the targets and where they came from, or None when they are all finite."""
    for signal, targets in sources:
        bad = non_finite_targets(targets)
        if bad:
            origin = getattr(signal, "origin", type(signal).__name__)
            return (
                f"The teacher's targets {', '.join(bad)} hold NaN or infinite values, so the teacher signal is "
                f"bad, not the learning rate. They come from {origin}."
            )
    return None
