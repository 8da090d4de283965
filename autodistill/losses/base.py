"""The loss extension point. A loss is an ``nn.Module`` (it may own projections) that reads what
it needs from a :class:`DistillBatch` and returns a scalar, or one scalar per mapped layer for
the per-layer families (hidden, attention), which the weighting scheme then reweights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from autodistill.registry import Registry


@dataclass
class DistillBatch:
    """Everything a loss may read for one batch. Teacher internals come from the cache.

    hidden states: index 0 is the embedding output, index i the output of layer i (HF layout);
    ``teacher_hidden`` / ``teacher_attentions`` hold only the teacher layers the losses need,
    keyed by teacher hidden-state index. ``layer_map`` pairs (student index, teacher index).
    """

    labels: torch.Tensor
    attention_mask: torch.Tensor
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    student_hidden: tuple[torch.Tensor, ...] | None = None
    teacher_hidden: dict[int, torch.Tensor] | None = None
    student_attentions: tuple[torch.Tensor, ...] | None = None
    teacher_attentions: dict[int, torch.Tensor] | None = None
    layer_map: list[tuple[int, int]] = field(default_factory=list)
    temperature: float = 1.0


@dataclass(frozen=True)
class LossDims:
    """Sizes a loss may need to build its own parameters (e.g. a projection)."""

    student_hidden: int
    teacher_hidden: int
    student_heads: tuple[int, ...] = ()
    teacher_heads: int = 0
    num_labels: int = 2


class Loss(nn.Module):
    name: ClassVar[str]
    # what the loss reads: "teacher_logits", "hidden", "attentions"
    needs: ClassVar[frozenset[str]] = frozenset({"teacher_logits"})
    per_layer: ClassVar[bool] = False

    def __init__(self, dims: LossDims, **options: Any) -> None:
        super().__init__()
        self.dims = dims
        if options:
            raise TypeError(f"unexpected options: {', '.join(sorted(options))}")

    def forward(self, batch: DistillBatch) -> torch.Tensor | list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


LOSSES: Registry[type[Loss]] = Registry("loss")


def register(cls: type[Loss]) -> type[Loss]:
    return LOSSES.register(cls.name)(cls)
