"""The contract every loss keeps, as functions over a registered name and its options: the
contract tests (tests/losses/test_loss_contract.py) run them over every registered loss, and
tests/test_extending.py over a loss added as docs/EXTENDING.md says.

Batches are synthetic: random student/teacher internals, with padding."""

from __future__ import annotations

import copy
from typing import Any

import torch

from autodistill.losses import LOSSES, DistillBatch, LossDims, resolve_layer_map
from autodistill.losses.base import CACHED, Loss

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
        self_logits=torch.randn(B, C, generator=gen),
        temperature=2.0,
    )
    dims = LossDims(student_hidden=d_s, teacher_hidden=d_t, student_heads=(h_s,) * n_s, teacher_heads=h_t, num_labels=C)
    return batch, dims


def identical_batch(n: int = 2, d: int = 16, h: int = 2, seed: int = 1) -> tuple[DistillBatch, LossDims]:
    """Teacher internals equal to the student's (same depth, width and heads)."""
    batch, dims = make_batch(n_s=n, n_t=n, d_s=d, d_t=d, h_s=h, h_t=h, seed=seed)
    batch.teacher_logits = batch.student_logits.detach().clone()
    batch.self_logits = batch.student_logits.detach().clone()
    batch.teacher_hidden = {i: x.detach().clone() for i, x in enumerate(batch.student_hidden)}
    batch.teacher_attentions = {j: x.detach().clone() for j, x in enumerate(batch.student_attentions)}
    batch.teacher_qkv = {j: tuple(t.detach().clone() for t in v) for j, v in batch.student_qkv.items()}
    return batch, dims


def batch_for(name: str, **kwargs: Any) -> tuple[DistillBatch, LossDims]:
    # TinyBERT attention MSE needs equal head counts; everything else runs with differing ones
    heads = {"h_s": 4, "h_t": 4} if name == "attention_mse" else {}
    return make_batch(**heads, **kwargs)


def build(name: str, options: dict[str, Any], dims: LossDims, n_s: int, n_t: int) -> Loss:
    return LOSSES.get(name)(dims, resolve_layer_map("uniform", n_s, n_t), **options)


def restricted(batch: DistillBatch, loss: Loss) -> DistillBatch:
    """Only what the loss declares: fields outside ``needs`` and unlisted teacher layers removed,
    so a loss that reads anything undeclared fails here (this is what the cache will hold)."""
    b = copy.copy(batch)
    needs = loss.needs
    if "teacher_logits" not in needs:
        b.teacher_logits = None
    if "self_logits" not in needs:
        b.self_logits = None
    if "hidden" not in needs:
        b.student_hidden = b.teacher_hidden = None
    else:
        b.teacher_hidden = {i: batch.teacher_hidden[i] for i in loss.teacher_hidden_layers()}
    if "attentions" not in needs:
        b.student_attentions = b.teacher_attentions = None
    else:
        b.teacher_attentions = {j: batch.teacher_attentions[j] for j in loss.teacher_attention_layers()}
    if "qkv" not in needs:
        b.student_qkv = b.teacher_qkv = None
    else:
        b.teacher_qkv = {j: batch.teacher_qkv[j] for j in loss.teacher_qkv_layers()}
    return b


def scalar(value: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(value)).sum() if isinstance(value, list) else value


def check_shape_and_declared_inputs(name: str, options: dict[str, Any]) -> None:
    """A scalar (or one per mapped pair), finite and >= 0, from only the inputs it declares."""
    batch, dims = batch_for(name)
    loss = build(name, options, dims, 2, 4)
    assert loss.needs <= {"teacher_logits", "hidden", "attentions", "qkv", "self_logits"}
    value = loss(restricted(batch, loss))
    if loss.per_layer:
        assert isinstance(value, list) and len(value) == len(loss.pairs()) >= 1
        assert all(v.shape == () for v in value)
    else:
        assert isinstance(value, torch.Tensor) and value.shape == ()
    assert torch.isfinite(scalar(value))
    assert float(scalar(value).detach()) >= 0


def check_cached_needs(name: str, options: dict[str, Any]) -> None:
    """What the class says the cache must hold for these options, before building, is what the
    built loss reads."""
    _, dims = batch_for(name)
    loss = build(name, options, dims, 2, 4)
    assert LOSSES.get(name).cached_needs(options) == set(loss.needs) & CACHED


def check_finite_gradients(name: str, options: dict[str, Any]) -> None:
    batch, dims = batch_for(name)
    loss = build(name, options, dims, 2, 4)
    scalar(loss(batch)).backward()
    leaves = [batch.student_logits, *batch.student_hidden, *batch.student_attentions]
    leaves += [t for v in batch.student_qkv.values() for t in v]
    leaves += list(loss.parameters())
    grads = [x.grad for x in leaves if x.grad is not None]
    assert grads, "no gradient reached the student"
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def check_zero_on_identical_inputs(name: str, options: dict[str, Any]) -> None:
    """Only for losses that declare ``zero_on_identical``."""
    batch, dims = identical_batch()
    loss = build(name, options, dims, 2, 2)
    value = scalar(loss(batch))
    assert abs(float(value.detach())) < 1e-5


def check_padded_positions_do_not_count(name: str, options: dict[str, Any]) -> None:
    batch, dims = batch_for(name, grad=False)
    loss = build(name, options, dims, 2, 4)
    before = scalar(loss(batch))
    pad = batch.attention_mask == 0  # [B, L]
    gen = torch.Generator().manual_seed(7)

    def scramble_tokens(x: torch.Tensor) -> torch.Tensor:  # [B, L, ...]: new values at padded tokens
        noise = 50 * torch.randn(x.shape, generator=gen)
        return torch.where(pad.reshape(*pad.shape, *([1] * (x.dim() - 2))), noise, x)

    def scramble_attention(a: torch.Tensor) -> torch.Tensor:  # [B, H, L, L]: padded query rows and key columns
        p = pad[:, None, :, None] | pad[:, None, None, :]
        return torch.where(p, torch.rand(a.shape, generator=gen), a)

    batch.student_hidden = tuple(scramble_tokens(h) for h in batch.student_hidden)
    batch.teacher_hidden = {i: scramble_tokens(h) for i, h in batch.teacher_hidden.items()}
    batch.student_attentions = tuple(scramble_attention(a) for a in batch.student_attentions)
    batch.teacher_attentions = {j: scramble_attention(a) for j, a in batch.teacher_attentions.items()}
    batch.student_qkv = {j: tuple(scramble_tokens(t) for t in v) for j, v in batch.student_qkv.items()}
    batch.teacher_qkv = {j: tuple(scramble_tokens(t) for t in v) for j, v in batch.teacher_qkv.items()}
    after = scalar(loss(batch))
    assert pad.any()
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def check_teacher_layers_come_from_the_map(name: str, options: dict[str, Any]) -> None:
    _, dims = batch_for(name)
    loss = build(name, options, dims, 2, 4)
    mapped_t = {t for _, t in loss.pairs()} | {t for _, t in loss.layer_map}
    assert set(loss.teacher_hidden_layers()) <= mapped_t | {0}
    assert set(loss.teacher_attention_layers()) <= {t - 1 for t in mapped_t}
    assert set(loss.teacher_qkv_layers()) <= {t - 1 for t in mapped_t}


CHECKS = (
    check_shape_and_declared_inputs,
    check_cached_needs,
    check_finite_gradients,
    check_padded_positions_do_not_count,
    check_teacher_layers_come_from_the_map,
)


def check_loss(name: str, options: dict[str, Any]) -> None:
    """Every check above (the zero-on-identical one where the loss declares it holds)."""
    for check in CHECKS:
        check(name, options)
    if LOSSES.get(name).zero_on_identical:
        check_zero_on_identical_inputs(name, options)
