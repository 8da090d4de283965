from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from autodistill.config.schema import Invalid, parse
from autodistill.errors import ConfigError
from autodistill.student.base import TRANSFORMS, BuildContext
from autodistill.student.fresh import FreshOptions, default_teacher_layers
from autodistill.student.shape import LayerShape, ModelShape

PREFIX = "bert.encoder.layer"


def config(layers: int = 4, hidden: int = 32, heads: int = 4, ffn: int = 64) -> BertConfig:
    return BertConfig(
        vocab_size=99,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
        num_labels=2,
    )


def teacher() -> tuple[BertForSequenceClassification, ModelShape]:
    torch.manual_seed(0)
    shape = ModelShape("bert", 99, 32, 64, 2, 2, (LayerShape(4, 8, 64),) * 4)
    return BertForSequenceClassification(config()).eval(), shape


def build(options: dict, seed: int = 0) -> tuple[BertForSequenceClassification, ModelShape, dict]:
    t = TRANSFORMS.get("fresh")()
    model, shape = teacher()
    opts = parse(FreshOptions, options, path="fresh")
    ctx = BuildContext(seed=seed)
    planned = t.plan(shape, opts, ctx)
    resolved = t.resolve(model, shape, opts, ctx)
    state, new_shape = t.apply(model.state_dict(), shape, resolved)
    assert new_shape == planned
    first = planned.layers[0]
    student = BertForSequenceClassification(config(planned.num_layers, planned.hidden, first.heads, first.ffn))
    student.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in student.parameters()) == planned.num_parameters()
    return student.eval(), planned, resolved


def inputs() -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 99, (3, 10), generator=torch.Generator().manual_seed(2))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_plan_gives_the_requested_shape() -> None:
    _, planned, resolved = build({"layers": 2, "hidden": 16, "heads": 2, "ffn": 24})
    assert planned.num_layers == 2 and planned.hidden == 16 and planned.vocab == 99
    assert planned.layers[0] == LayerShape(2, 8, 24)
    assert resolved["init"] == "random" and resolved["teacher_layers"] is None


def test_random_init_is_the_models_own_and_seeded() -> None:
    opts = {"layers": 2, "hidden": 16, "heads": 2, "ffn": 24}
    a, _, _ = build(opts, seed=3)
    b, _, _ = build(opts, seed=3)
    c, _, _ = build(opts, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa[f"{PREFIX}.0.attention.self.query.weight"], sc[f"{PREFIX}.0.attention.self.query.weight"])
    std = sa["bert.embeddings.word_embeddings.weight"].std().item()
    assert 0.015 < std < 0.025  # BERT init: normal(0, initializer_range = 0.02)
    assert torch.equal(sa[f"{PREFIX}.1.output.LayerNorm.weight"], torch.ones(16))
    with torch.no_grad():
        assert torch.isfinite(a(**inputs()).logits).all()


def test_teacher_slices_with_the_full_shape_reproduce_the_teacher() -> None:
    model, _ = teacher()
    student, _, resolved = build(
        {"layers": 4, "hidden": 32, "heads": 4, "ffn": 64, "init": "teacher_slices", "teacher_layers": [0, 1, 2, 3]}
    )
    with torch.no_grad():
        torch.testing.assert_close(student(**inputs()).logits, model(**inputs()).logits)


def test_teacher_slices_copy_leading_heads_dims_neurons_and_chosen_layers() -> None:
    model, _ = teacher()
    t = model.state_dict()
    student, planned, resolved = build({"layers": 2, "hidden": 16, "heads": 2, "ffn": 24, "init": "teacher_slices"})
    assert resolved["teacher_layers"] == [0, 2] == default_teacher_layers(4, 2)
    s = student.state_dict()
    # student layer 1 comes from teacher layer 2; first 2 heads of 4, first 8 of 8 dims, first 16 channels
    q = t[f"{PREFIX}.2.attention.self.query.weight"].reshape(4, 8, 32)[:2, :8, :16].reshape(16, 16)
    assert torch.equal(s[f"{PREFIX}.1.attention.self.query.weight"], q)
    o = t[f"{PREFIX}.2.attention.output.dense.weight"].reshape(32, 4, 8)[:16, :2, :8].reshape(16, 16)
    assert torch.equal(s[f"{PREFIX}.1.attention.output.dense.weight"], o)
    assert torch.equal(s[f"{PREFIX}.1.intermediate.dense.weight"], t[f"{PREFIX}.2.intermediate.dense.weight"][:24, :16])
    assert torch.equal(s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"][:, :16])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"][:, :16])
    with torch.no_grad():
        assert torch.isfinite(student(**inputs()).logits).all()


def test_head_dim_slices_within_each_head() -> None:
    model, _ = teacher()
    t = model.state_dict()
    student, _, _ = build(
        {"layers": 1, "hidden": 16, "heads": 4, "ffn": 64, "init": "teacher_slices", "teacher_layers": [3]}
    )
    got = student.state_dict()[f"{PREFIX}.0.attention.self.value.bias"]
    assert torch.equal(got, t[f"{PREFIX}.3.attention.self.value.bias"].reshape(4, 8)[:, :4].reshape(16))


def test_clear_errors() -> None:
    with pytest.raises(ConfigError, match="'fresh.heads' parameter must divide hidden \\(30\\). Got 4 instead"):
        parse(FreshOptions, {"layers": 1, "hidden": 30, "heads": 4, "ffn": 8}, path="fresh")
    with pytest.raises(ConfigError, match="'fresh.layers' parameter is required"):
        parse(FreshOptions, {"hidden": 32, "heads": 4, "ffn": 8}, path="fresh")
    with pytest.raises(ConfigError, match="'fresh.teacher_layers' parameter is only used with init: teacher_slices"):
        parse(FreshOptions, {"layers": 1, "hidden": 8, "heads": 2, "ffn": 8, "teacher_layers": [0]}, path="fresh")
    _, shape = teacher()
    t = TRANSFORMS.get("fresh")()
    too_wide = FreshOptions(layers=2, hidden=64, heads=4, ffn=8, init="teacher_slices")
    with pytest.raises(Invalid, match="must be <= 32 \\(the teacher's\\) with init: teacher_slices. Got 64") as err:
        t.plan(shape, too_wide, BuildContext())
    assert err.value.key == "hidden"
    assert t.plan(shape, FreshOptions(layers=2, hidden=64, heads=4, ffn=8), BuildContext()).hidden == 64  # random: any
    with pytest.raises(Invalid, match="must hold layer indices in \\[0, 4\\)") as err:
        t.plan(
            shape,
            FreshOptions(layers=1, hidden=8, heads=2, ffn=8, init="teacher_slices", teacher_layers=[4]),
            BuildContext(),
        )
    assert err.value.key == "teacher_layers"
    with pytest.raises(Invalid, match="must be <= 4 \\(teacher layer 0\\)") as err:
        t.plan(shape, FreshOptions(layers=1, hidden=16, heads=8, ffn=8, init="teacher_slices"), BuildContext())
    assert err.value.key == "heads"


def test_build_and_rebuild_identically() -> None:
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student, rebuild_student

    model, _ = teacher()
    for init in ("random", "teacher_slices"):
        spec = StudentSpec((Step("fresh", {"layers": 2, "hidden": 16, "heads": 2, "ffn": 24, "init": init}),))
        built = build_student(model, spec, BuildContext(seed=5))
        assert built.kind == "stock" and built.num_parameters() == sum(p.numel() for p in built.model.parameters())
        again = rebuild_student(model, built.resolved)
        assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in built.model.state_dict().items())
