"""The loss extension point. A loss is an ``nn.Module`` (it may own projections) that reads what
it needs from a :class:`DistillBatch` and returns a scalar, or one scalar per mapped layer for
the per-layer families (hidden, attention), which the weighting scheme then reweights.

Options: each loss declares a frozen ``Options`` dataclass; the options written in the config
(``distill.loss.terms[i]``) are parsed into it with :func:`autodistill.config.schema.parse`, so
an unknown key, a wrong type or a bad value is a ConfigError that names the full key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from autodistill.config.schema import parse
from autodistill.registry import Registry
from autodistill.specs import Step

LayerMap = list[tuple[int, int]]  # (student hidden index, teacher hidden index), HF layout
# what the teacher cache stores beyond logits; a loss that reads any of them needs it filled first
CACHED = frozenset({"hidden", "attentions", "qkv"})


@dataclass
class DistillBatch:
    """Everything a loss may read for one batch. Teacher internals come from the cache, padded to
    the batch length, fp32, on the student's device.

    Hidden states use the HF ``hidden_states`` layout: index 0 is the embedding output, index i the
    output of layer i. Attentions use the HF ``attentions`` layout: index j is layer j (0-based),
    probabilities ``[B, heads, L, L]``; so hidden index i pairs with attention index i - 1.

    - ``student_hidden`` / ``student_attentions``: the full HF tuples from the student.
    - ``teacher_hidden``: teacher hidden index -> ``[B, L, d]`` (only the indices the loss asked for).
    - ``teacher_attentions``: teacher attention (0-based layer) index -> ``[B, H, L, L]``.
    - ``student_qkv`` / ``teacher_qkv``: 0-based layer index -> ``(q, k, v)``, each ``[B, L, width]``,
      the outputs of the attention's query/key/value projections before the head split (see
      :mod:`autodistill.losses.capture`); only the MiniLMv2 relation loss with ``source: qkv`` reads them.
    - ``self_logits``: the logits of the student's own earlier self on the same inputs (a frozen copy
      the loop keeps, :mod:`autodistill.train.self_teacher`); only ``self_kl`` reads them.
    - ``layer_map`` is informational; losses use the map they were built with.
    """

    labels: torch.Tensor
    attention_mask: torch.Tensor
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    student_hidden: tuple[torch.Tensor, ...] | None = None
    teacher_hidden: dict[int, torch.Tensor] | None = None
    student_attentions: tuple[torch.Tensor, ...] | None = None
    teacher_attentions: dict[int, torch.Tensor] | None = None
    student_qkv: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    teacher_qkv: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    self_logits: torch.Tensor | None = None
    layer_map: LayerMap = field(default_factory=list)
    temperature: float = 1.0


@dataclass(frozen=True)
class LossDims:
    """Sizes a loss may need to build its own parameters (e.g. a projection).

    ``student_heads``: heads per student layer (0-based layer order); ``teacher_heads``: heads per
    teacher layer (teachers here have the same count in every layer)."""

    student_hidden: int
    teacher_hidden: int
    student_heads: tuple[int, ...] = ()
    teacher_heads: int = 0
    num_labels: int = 2


@dataclass(frozen=True)
class NoOptions:
    """For losses that take no options."""


class Loss(nn.Module):
    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    # what the loss reads: "teacher_logits", "hidden", "attentions", "qkv", "self_logits" (the
    # loop then keeps a frozen copy of the student); an instance may narrow it
    needs: frozenset[str] = frozenset({"teacher_logits"})
    per_layer: ClassVar[bool] = False
    # contract tests: is the loss exactly 0 when student and teacher inputs are identical?
    zero_on_identical: ClassVar[bool] = True

    def __init__(self, dims: LossDims, layer_map: LayerMap | None = None, *, key: str = "", **options: Any) -> None:
        super().__init__()
        self.dims = dims
        self.key = key or f"distill.loss.terms[{self.name}]"
        self.layer_map: LayerMap = [(int(s), int(t)) for s, t in (layer_map or [])]
        self.options = parse(self.Options, options, path=self.key)

    @classmethod
    def cached_needs(cls, options: dict[str, Any]) -> set[str]:
        """The teacher outputs beyond logits (hidden, attentions, qkv) this loss reads with these
        options, known before it is built: the search sizes and fills the teacher cache from it.
        Default: the class's ``needs``. A loss whose options change what it reads overrides this."""
        return set(cls.needs) & CACHED

    def forward(self, batch: DistillBatch) -> torch.Tensor | list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def start(self, total_steps: int) -> None:
        """Called once before training with the number of optimiser steps it will take
        (``CompositeLoss.start``). Default: nothing; a loss with a schedule over the run reads it."""

    def step_end(self, step: int) -> None:
        """Called after each optimiser step (``CompositeLoss.step_end``). Default: nothing."""

    # which layers the loss reads; per-layer losses override
    def pairs(self) -> LayerMap:
        """The (student, teacher) hidden-index pairs this loss compares, one value each."""
        return []

    def teacher_hidden_layers(self) -> list[int]:
        return []

    def teacher_attention_layers(self) -> list[int]:
        return []

    def teacher_qkv_layers(self) -> list[int]:
        return []


LOSSES: Registry[type[Loss]] = Registry("loss")


def register(cls: type[Loss]) -> type[Loss]:
    """Class decorator: ``@register`` on a Loss subclass with a ``name``."""
    return LOSSES.register(cls.name)(cls)


def cached_needs(term: Step) -> set[str]:
    """The teacher outputs beyond logits that one loss term (``distill.loss.terms[i]``) reads."""
    return LOSSES.get(term.name).cached_needs(dict(term.options))


def token_mask(batch: DistillBatch) -> torch.Tensor:
    """``[B, L]`` float mask of real (non-padding) tokens."""
    return batch.attention_mask.to(torch.float32)


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, L]`` over the real tokens only."""
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def require_input(value: Any, loss: Loss, what: str) -> Any:
    """A loss was called without the data it needs: say which and why (a wiring bug, not a user one)."""
    if value is None:
        raise ValueError(f"The loss {loss.name!r} ({loss.key}) needs batch.{what}, which is missing.")
    return value
