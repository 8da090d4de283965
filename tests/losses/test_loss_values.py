"""Hand-computed values for each loss family."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from autodistill.losses import LOSSES, DistillBatch, LossDims

DIMS2 = LossDims(student_hidden=2, teacher_hidden=2, student_heads=(1,), teacher_heads=1)


def logits_batch(s, t, temperature=1.0):
    s, t = torch.tensor([s]), torch.tensor([t])
    return DistillBatch(
        labels=torch.tensor([0]),
        attention_mask=torch.ones(1, 2),
        student_logits=s,
        teacher_logits=t,
        temperature=temperature,
    )


def test_kl_matches_torch_kl_div():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    batch = DistillBatch(
        labels=torch.zeros(8, dtype=torch.long),
        attention_mask=torch.ones(8, 3),
        student_logits=s,
        teacher_logits=t,
        temperature=3.0,
    )
    expected = F.kl_div(F.log_softmax(s / 3, -1), F.softmax(t / 3, -1), reduction="batchmean") * 9
    torch.testing.assert_close(LOSSES.get("kl")(DIMS2)(batch), expected)


def test_logit_divergences_by_hand():
    # teacher p = (3/4, 1/4), student q = (1/2, 1/2)
    batch = logits_batch([0.0, 0.0], [math.log(3.0), 0.0])
    p, q = (0.75, 0.25), (0.5, 0.5)
    kl = sum(a * math.log(a / b) for a, b in zip(p, q))
    rkl = sum(b * math.log(b / a) for a, b in zip(p, q))
    m = tuple(0.5 * a + 0.5 * b for a, b in zip(p, q))
    jsd = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m)) + 0.5 * sum(b * math.log(b / c) for b, c in zip(q, m))
    assert math.isclose(float(LOSSES.get("kl")(DIMS2)(batch)), kl, rel_tol=1e-5)
    assert math.isclose(float(LOSSES.get("reverse_kl")(DIMS2)(batch)), rkl, rel_tol=1e-5)
    assert math.isclose(float(LOSSES.get("jsd")(DIMS2, beta=0.5)(batch)), jsd, rel_tol=1e-5)
    assert math.isclose(float(LOSSES.get("ce")(DIMS2)(batch)), math.log(2.0), rel_tol=1e-6)


def test_temperature_scaling_is_t_squared():
    batch = logits_batch([0.0, 0.0], [math.log(3.0), 0.0], temperature=2.0)
    p = torch.softmax(torch.tensor([math.log(3.0), 0.0]) / 2, -1)
    kl = float((p * (p / 0.5).log()).sum()) * 4
    assert math.isclose(float(LOSSES.get("kl")(DIMS2)(batch)), kl, rel_tol=1e-5)


def test_jsd_small_beta_approaches_beta_times_forward_kl():
    gen = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    batch = DistillBatch(
        labels=torch.zeros(6, dtype=torch.long), attention_mask=torch.ones(6, 2), student_logits=s, teacher_logits=t
    )
    beta = 1e-3
    jsd = float(LOSSES.get("jsd")(DIMS2, beta=beta)(batch))
    kl = float(LOSSES.get("kl")(DIMS2)(batch))
    assert math.isclose(jsd / beta, kl, rel_tol=2e-2)


def layer_batch(h_s, h_t, att_s=None, att_t=None, mask=None):
    h_s, h_t = torch.tensor(h_s)[None], torch.tensor(h_t)[None]  # [1, L, d]
    n = h_s.shape[1]
    return DistillBatch(
        labels=torch.tensor([0]),
        attention_mask=torch.ones(1, n) if mask is None else torch.tensor([mask]),
        student_logits=torch.zeros(1, 2),
        student_hidden=(h_s, h_s),
        teacher_hidden={1: h_t},
        student_attentions=None if att_s is None else (torch.tensor(att_s)[None, None],),
        teacher_attentions=None if att_t is None else {0: torch.tensor(att_t)[None, None]},
    )


def test_hidden_mse_and_cosine_by_hand():
    # two real tokens and one padded one whose teacher value is far off
    batch = layer_batch([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 1.0], [9.0, 9.0]], mask=[1, 1, 0])
    mse = LOSSES.get("hidden_mse")(DIMS2, [(1, 1)])(batch)
    # token 0: ((0-1)^2 + (0-1)^2) / 2 = 1; token 1: (1 + 1) / 2 = 1
    assert math.isclose(float(mse[0]), 1.0, rel_tol=1e-6)
    cos = LOSSES.get("hidden_cosine")(DIMS2, [(1, 1)])(batch)
    # token 0: zero vector -> cos 0 -> 1; token 1: orthogonal -> 1
    assert math.isclose(float(cos[0]), 1.0, rel_tol=1e-6)


def test_hidden_projection_only_when_widths_differ():
    same = LOSSES.get("hidden_mse")(DIMS2, [(1, 1)])
    assert len(list(same.parameters())) == 0
    wide = LOSSES.get("hidden_mse")(LossDims(student_hidden=2, teacher_hidden=3), [(1, 1), (2, 2)])
    assert [tuple(p.shape) for p in wide.parameters()] == [(3, 2), (3,)]  # one shared W_h
    per = LOSSES.get("hidden_mse")(
        LossDims(student_hidden=2, teacher_hidden=3), [(1, 1), (2, 2)], shared_projection=False
    )
    assert len(list(per.parameters())) == 4


def test_attention_mse_by_hand():
    batch = layer_batch(
        [[0.0, 0.0]] * 2, [[0.0, 0.0]] * 2, att_s=[[1.0, 0.0], [0.0, 1.0]], att_t=[[0.5, 0.5], [0.5, 0.5]]
    )
    value = LOSSES.get("attention_mse")(DIMS2, [(1, 1)])(batch)
    # squared differences sum to 4 * 0.25 = 1 over H = 1 head and N = 2 query rows
    assert math.isclose(float(value[0]), 0.5, rel_tol=1e-6)


def test_relation_by_hand():
    # student relation rows softmax([1/sqrt2, 0]) and reversed; teacher all-zero -> uniform rows
    batch = layer_batch([[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]])
    loss = LOSSES.get("attention_relation")(DIMS2, [(1, 1)], source="hidden", relations=["hh"], relation_heads=1)
    a = 1 / math.sqrt(2)
    q = (math.exp(a) / (math.exp(a) + 1), 1 / (math.exp(a) + 1))
    expected = sum(0.5 * math.log(0.5 / x) for x in q)  # KL(uniform || q), same for both rows
    assert math.isclose(float(loss(batch)[0]), expected, rel_tol=1e-5)


def test_relation_with_different_head_counts_and_widths(batch_factory):
    batch, dims = batch_factory(d_s=16, d_t=24, h_s=2, h_t=12)
    loss = LOSSES.get("attention_relation")(dims, [(1, 2), (2, 4)], relation_heads=4, layers="all")
    values = loss(batch)
    assert len(values) == 2 and all(torch.isfinite(v) and v > 0 for v in values)
    assert loss.teacher_qkv_layers() == [1, 3]


def test_contrastive_by_hand():
    b, d = 3, 3
    h = torch.eye(d)[:b, None, :].expand(b, 2, d).clone()  # each sentence one basis vector, two tokens
    batch = DistillBatch(
        labels=torch.zeros(b, dtype=torch.long),
        attention_mask=torch.ones(b, 2),
        student_logits=torch.zeros(b, 2),
        student_hidden=(h, h),
        teacher_hidden={1: h.clone()},
    )
    loss = LOSSES.get("contrastive")(
        LossDims(student_hidden=d, teacher_hidden=d), [(1, 1)], proj_dim=d, temperature=1.0
    )
    with torch.no_grad():
        for head in (loss.head_s, loss.head_t):
            head.weight.copy_(torch.eye(d))
            head.bias.zero_()
    # cosine 1 with its own teacher, 0 with the others
    expected = -math.log(math.e / (math.e + (b - 1)))
    assert math.isclose(float(loss(batch).detach()), expected, rel_tol=1e-5)
