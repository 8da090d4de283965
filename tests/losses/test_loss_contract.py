"""Contract tests run over every registered loss (and the option variants that change what it reads)."""

from __future__ import annotations

import copy

import pytest
import torch

from autodistill.losses import LOSSES, resolve_layer_map

# (registered name, options); every registered name must appear at least once
CASES = [
    ("ce", {}),
    ("kl", {}),
    ("reverse_kl", {}),
    ("jsd", {"beta": 0.3}),
    ("hidden_mse", {}),
    ("hidden_mse", {"shared_projection": False, "include_embeddings": True}),
    ("hidden_cosine", {}),
    ("attention_mse", {}),
    ("attention_relation", {}),
    ("attention_relation", {"source": "hidden", "layers": "all"}),
    ("attention_relation", {"source": "qkv", "relations": ["vv"], "relation_heads": 8}),
    ("contrastive", {}),
    ("contrastive", {"pool": "cls", "symmetric": True, "temperature": 0.5}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


def test_every_registered_loss_is_covered():
    assert {n for n, _ in CASES} == set(LOSSES.names())


def build(name, options, dims, n_s, n_t):
    return LOSSES.get(name)(dims, resolve_layer_map("uniform", n_s, n_t), **options)


def restricted(batch, loss):
    """Only what the loss declares: fields outside ``needs`` and unlisted teacher layers removed,
    so a loss that reads anything undeclared fails here (this is what the cache will hold)."""
    b = copy.copy(batch)
    needs = loss.needs
    if "teacher_logits" not in needs:
        b.teacher_logits = None
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


def scalar(value):
    return torch.stack(list(value)).sum() if isinstance(value, list) else value


def dims_for(name):
    # TinyBERT attention MSE needs equal head counts; everything else runs with differing ones
    return {"h_s": 4, "h_t": 4} if name == "attention_mse" else {}


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_shape_and_declared_inputs(batch_factory, name, options):
    batch, dims = batch_factory(**dims_for(name))
    loss = build(name, options, dims, 2, 4)
    assert loss.needs <= {"teacher_logits", "hidden", "attentions", "qkv"}
    value = loss(restricted(batch, loss))
    if loss.per_layer:
        assert isinstance(value, list) and len(value) == len(loss.pairs()) >= 1
        assert all(v.shape == () for v in value)
    else:
        assert isinstance(value, torch.Tensor) and value.shape == ()
    assert torch.isfinite(scalar(value))
    assert float(scalar(value).detach()) >= 0


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_finite_gradients(batch_factory, name, options):
    batch, dims = batch_factory(**dims_for(name))
    loss = build(name, options, dims, 2, 4)
    scalar(loss(batch)).backward()
    leaves = [batch.student_logits, *batch.student_hidden, *batch.student_attentions]
    leaves += [t for v in batch.student_qkv.values() for t in v]
    leaves += list(loss.parameters())
    grads = [x.grad for x in leaves if x.grad is not None]
    assert grads, "no gradient reached the student"
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    ("name", "options"),
    [c for c in CASES if LOSSES.get(c[0]).zero_on_identical],
    ids=[i for i, c in zip(IDS, CASES) if LOSSES.get(c[0]).zero_on_identical],
)
def test_zero_on_identical_inputs(identical_factory, name, options):
    batch, dims = identical_factory()
    loss = build(name, options, dims, 2, 2)
    value = scalar(loss(batch))
    assert abs(float(value.detach())) < 1e-5


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_padded_positions_do_not_count(batch_factory, name, options):
    batch, dims = batch_factory(**dims_for(name), grad=False)
    loss = build(name, options, dims, 2, 4)
    before = scalar(loss(batch))
    pad = batch.attention_mask == 0  # [B, L]
    gen = torch.Generator().manual_seed(7)

    def scramble_tokens(x):  # [B, L, ...]: new values at padded tokens
        noise = 50 * torch.randn(x.shape, generator=gen)
        return torch.where(pad.reshape(*pad.shape, *([1] * (x.dim() - 2))), noise, x)

    def scramble_attention(a):  # [B, H, L, L]: padded query rows and key columns
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


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_teacher_layers_come_from_the_map(batch_factory, name, options):
    _, dims = batch_factory(**dims_for(name))
    loss = build(name, options, dims, 2, 4)
    mapped_t = {t for _, t in loss.pairs()} | {t for _, t in loss.layer_map}
    assert set(loss.teacher_hidden_layers()) <= mapped_t | {0}
    assert set(loss.teacher_attention_layers()) <= {t - 1 for t in mapped_t}
    assert set(loss.teacher_qkv_layers()) <= {t - 1 for t in mapped_t}
