"""The composite loss: the sum, the parts, what it asks the loop and the cache for, and a run with
tiny BERT student and teacher models wired the way the training loop will wire them."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from autodistill.losses import CompositeLoss, DistillBatch, LossDims, capture_qkv, resolve_layer_map
from autodistill.losses.capture import attention_projections
from autodistill.specs import LossSpec, Step


def spec(*terms, weighting=None, temperature=2.0):
    return LossSpec(
        terms=tuple(Step.from_dict(t) for t in terms),
        temperature=temperature,
        weighting=Step.from_dict(weighting or {"name": "static"}),
    )


def test_needs_and_teacher_layers(batch_factory):
    _, dims = batch_factory()
    loss = CompositeLoss(
        spec(
            {"name": "ce"},
            {"name": "kl"},
            {"name": "hidden_mse"},
            {"name": "attention_relation", "source": "hidden"},
            {"name": "contrastive"},
        ),
        dims,
        resolve_layer_map("uniform", 2, 4),
    )
    assert loss.needs == {"teacher_logits", "hidden", "attentions"}
    assert loss.teacher_hidden_layers() == [2, 4]
    assert loss.teacher_attention_layers() == [3]  # relation: last pair only; 0-based layer
    assert loss.teacher_qkv_layers() == []
    logits_only = CompositeLoss(spec({"name": "ce"}), dims)
    assert logits_only.needs == frozenset() and logits_only.teacher_hidden_layers() == []


def test_total_is_the_weighted_sum_and_parts_have_every_layer(batch_factory):
    batch, dims = batch_factory()
    lm = resolve_layer_map("uniform", 2, 4)
    loss = CompositeLoss(
        spec(
            {"name": "kl", "weight": 0.5},
            {"name": "hidden_mse", "weight": 2.0},
            weighting={"name": "static", "weights": {"hidden_mse/s2_t4": 3.0}},
        ),
        dims,
        lm,
    )
    total, parts = loss(batch)
    kl = loss.terms["kl"](DistillBatch(**{**batch.__dict__, "temperature": 2.0}))
    h1, h2 = loss.terms["hidden_mse"](batch)
    expected = 0.5 * kl + 2.0 * (1.0 * h1 + 3.0 * h2) / 2
    torch.testing.assert_close(total, expected)
    assert set(parts) == {"kl", "hidden_mse", "hidden_mse/s1_t2", "hidden_mse/s2_t4", "total"}
    assert math.isclose(parts["hidden_mse"], float((h1 + h2).detach()) / 2, rel_tol=1e-5)
    assert math.isclose(parts["total"], float(total.detach()), rel_tol=1e-6)


def test_temperature_comes_from_the_spec(batch_factory):
    batch, dims = batch_factory()
    batch.temperature = 1.0
    t2, _ = CompositeLoss(spec({"name": "kl"}, temperature=2.0), dims)(batch)
    t1, _ = CompositeLoss(spec({"name": "kl"}, temperature=1.0), dims)(batch)
    assert not torch.isclose(t1, t2)


def test_learned_weights_are_parameters_and_history_is_json(batch_factory):
    batch, dims = batch_factory()
    loss = CompositeLoss(
        spec(
            {"name": "ce"}, {"name": "hidden_cosine"}, weighting={"name": "uncertainty", "scope": "all", "log_every": 2}
        ),
        dims,
        resolve_layer_map("uniform", 2, 4),
    )
    assert loss.weighted_units == ["ce", "hidden_cosine/s1_t2", "hidden_cosine/s2_t4"]
    log_var = loss.scheme.log_var
    assert any(p is log_var for p in loss.parameters())
    groups = loss.param_groups(1e-4, 0.01)
    assert groups[-1]["params"][0] is log_var and groups[-1]["weight_decay"] == 0.0
    opt = torch.optim.SGD(loss.param_groups(1e-4, 0.0), lr=0.1)
    for step in range(1, 5):
        total, _ = loss(batch)
        opt.zero_grad()
        total.backward()
        assert log_var.grad is not None and torch.isfinite(log_var.grad).all()
        opt.step()
        loss.step_end(step)
    history = loss.weight_history()
    assert [h["step"] for h in history] == [1, 2, 4]
    assert set(history[-1]) == {"step", *loss.weighted_units}
    assert history[-1] != history[0]  # learned weights moved
    json.dumps(history)


def test_eval_forwards_do_not_feed_adaptive_schemes(batch_factory):
    batch, dims = batch_factory()
    loss = CompositeLoss(
        spec({"name": "hidden_mse"}, weighting={"name": "lag", "warmup": 1}), dims, resolve_layer_map("uniform", 2, 4)
    )
    with torch.no_grad():
        loss(batch)
    assert loss.scheme._count == 0
    loss(batch)
    assert loss.scheme._count == 1


def tiny_bert(layers: int, hidden: int, heads: int, seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=99,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        num_labels=2,
    )
    cfg._attn_implementation = "eager"  # output_attentions needs the eager path
    return BertForSequenceClassification(cfg)


def test_capture_qkv_shapes_and_gradients():
    model = tiny_bert(2, 32, 4, 0)
    assert len(attention_projections(model)) == 2
    ids = torch.randint(0, 99, (3, 7))
    with capture_qkv(model, [1]) as qkv:
        model(input_ids=ids)
    assert set(qkv) == {1} and [tuple(t.shape) for t in qkv[1]] == [(3, 7, 32)] * 3
    qkv[1][2].sum().backward()
    assert model.bert.encoder.layer[1].attention.self.value.weight.grad is not None
    assert not model.bert.encoder.layer[1].attention.self.value._forward_hooks  # hooks removed


@pytest.mark.parametrize("source", ["qkv", "hidden"])
def test_student_learns_from_a_cached_teacher(source):
    """Student 2 x 32 (4 heads), teacher 4 x 48 (6 heads): widths and head counts differ."""
    teacher, student = tiny_bert(4, 48, 6, 1).eval(), tiny_bert(2, 32, 4, 2)
    dims = LossDims(student_hidden=32, teacher_hidden=48, student_heads=(4, 4), teacher_heads=6)
    layer_map = resolve_layer_map("uniform", 2, 4)
    terms = [
        {"name": "ce", "weight": 0.2},
        {"name": "kl", "weight": 0.5},
        {"name": "hidden_mse"},
        {"name": "attention_relation", "source": source, "relation_heads": 4},
        {"name": "contrastive"},
    ]
    loss = CompositeLoss(spec(*terms, weighting={"name": "dwa", "window": 2}), dims, layer_map)
    ids = torch.randint(1, 99, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 4:] = 0
    labels = torch.tensor([0, 1, 1, 0])
    # the teacher cache: only the listed layers, stored fp16, served fp32
    with torch.no_grad(), capture_qkv(teacher, loss.teacher_qkv_layers()) as t_qkv:
        out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    half = lambda x: x.half().float()  # noqa: E731
    cache = {
        "logits": half(out.logits),
        "hidden": {i: half(out.hidden_states[i]) for i in loss.teacher_hidden_layers()},
        "attentions": {j: half(out.attentions[j]) for j in loss.teacher_attention_layers()},
        "qkv": {j: tuple(half(t) for t in t_qkv[j]) for j in loss.teacher_qkv_layers()},
    }
    assert ("qkv" in loss.needs) == (source == "qkv")
    opt = torch.optim.Adam(list(student.parameters()), lr=3e-3)
    for group in loss.param_groups(3e-3, 0.0):
        opt.add_param_group(group)
    totals = []
    for step in range(1, 9):
        with capture_qkv(student, loss.student_qkv_layers()) as s_qkv:
            s_out = student(
                input_ids=ids,
                attention_mask=mask,
                output_hidden_states="hidden" in loss.needs,
                output_attentions="attentions" in loss.needs,
            )
        batch = DistillBatch(
            labels=labels,
            attention_mask=mask,
            student_logits=s_out.logits,
            teacher_logits=cache["logits"],
            student_hidden=s_out.hidden_states,
            teacher_hidden=cache["hidden"],
            student_attentions=s_out.attentions,
            teacher_attentions=cache["attentions"],
            student_qkv=dict(s_qkv) or None,
            teacher_qkv=cache["qkv"] or None,
        )
        total, parts = loss(batch)
        assert math.isfinite(parts["total"]) and "attention_relation/s2_t4" in parts
        opt.zero_grad()
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
        opt.step()
        loss.step_end(step)
        totals.append(parts["total"])
    assert totals[-1] < totals[0]
    weights = loss.weight_history()[-1]
    assert all(0 < v < math.inf for k, v in weights.items() if k != "step")
