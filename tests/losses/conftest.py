"""Synthetic distillation batches: random student/teacher internals with padding."""

from __future__ import annotations

import pytest
import torch

from autodistill.losses import DistillBatch, LossDims

B, L, C = 4, 6, 3
LENGTHS = (6, 4, 3, 6)  # rows 1 and 2 are padded


def _attn(b: int, heads: int, n: int, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    scores = torch.randn(b, heads, n, n, generator=gen)
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    return scores.softmax(-1)


def make_batch(
    n_s: int = 2,
    n_t: int = 4,
    d_s: int = 16,
    d_t: int = 24,
    h_s: int = 2,
    h_t: int = 4,
    seed: int = 0,
    grad: bool = True,
) -> tuple[DistillBatch, LossDims]:
    """A batch with every field filled; student tensors are leaves that require grad."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, L, dtype=torch.long)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1

    def leaf(x: torch.Tensor) -> torch.Tensor:
        return x.requires_grad_(grad)

    batch = DistillBatch(
        labels=torch.randint(0, C, (B,), generator=gen),
        attention_mask=mask,
        student_logits=leaf(torch.randn(B, C, generator=gen)),
        teacher_logits=torch.randn(B, C, generator=gen),
        student_hidden=tuple(leaf(torch.randn(B, L, d_s, generator=gen)) for _ in range(n_s + 1)),
        teacher_hidden={i: torch.randn(B, L, d_t, generator=gen) for i in range(n_t + 1)},
        student_attentions=tuple(leaf(_attn(B, h_s, L, mask, gen)) for _ in range(n_s)),
        teacher_attentions={j: _attn(B, h_t, L, mask, gen) for j in range(n_t)},
        student_qkv={j: tuple(leaf(torch.randn(B, L, d_s, generator=gen)) for _ in range(3)) for j in range(n_s)},
        teacher_qkv={j: tuple(torch.randn(B, L, d_t, generator=gen) for _ in range(3)) for j in range(n_t)},
        temperature=2.0,
    )
    dims = LossDims(student_hidden=d_s, teacher_hidden=d_t, student_heads=(h_s,) * n_s, teacher_heads=h_t, num_labels=C)
    return batch, dims


def identical_batch(n: int = 2, d: int = 16, h: int = 2, seed: int = 1) -> tuple[DistillBatch, LossDims]:
    """Teacher internals equal to the student's (same depth, width and heads)."""
    batch, dims = make_batch(n_s=n, n_t=n, d_s=d, d_t=d, h_s=h, h_t=h, seed=seed)
    batch.teacher_logits = batch.student_logits.detach().clone()
    batch.teacher_hidden = {i: x.detach().clone() for i, x in enumerate(batch.student_hidden)}
    batch.teacher_attentions = {j: x.detach().clone() for j, x in enumerate(batch.student_attentions)}
    batch.teacher_qkv = {j: tuple(t.detach().clone() for t in v) for j, v in batch.student_qkv.items()}
    return batch, dims


@pytest.fixture
def batch_factory():
    return make_batch


@pytest.fixture
def identical_factory():
    return identical_batch
