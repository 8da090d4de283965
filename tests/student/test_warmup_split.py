"""distill.prune_after's build half: the student before its within-layer transforms, then those
transforms resolved on its own (trained) weights."""

from __future__ import annotations

import pytest
import torch
from student_helpers import build_context, tiny_teacher

from autodistill.specs import Step, StudentSpec
from autodistill.student.base import TRANSFORMS
from autodistill.student.build import (
    build_for_warmup,
    build_student,
    extend_student,
    rebuild_student,
    split_for_warmup,
)

SPEC = StudentSpec(
    (
        Step("vocab", {"min_count": 1}),
        Step("depth", {"layers": 2, "choice": "uniform"}),
        Step("heads", {"ratio": 0.5}),
        Step("ffn", {"ratio": 0.5}),
    )
)


def test_split_keeps_the_transforms_before_the_first_within_layer_one():
    teacher, ctx = tiny_teacher(), build_context()
    built = build_student(teacher, SPEC, ctx)
    first, rest = split_for_warmup(teacher, built)
    assert [r["name"] for r in first.resolved["transforms"]] == ["vocab", "depth"]
    assert [s.step.name for s in rest] == ["heads", "ffn"]
    assert first.shape.num_layers == 2 and first.shape.layers[0].heads == teacher.config.num_attention_heads
    assert first.resolved["transforms"] == built.resolved["transforms"][:2]
    only_depth = build_student(teacher, StudentSpec((Step("depth", {"layers": 2, "choice": "uniform"}),)), ctx)
    assert split_for_warmup(teacher, only_depth) is None


def test_build_for_warmup_skips_scoring_what_the_warmup_rescores(monkeypatch):
    """From a spec, the warm-up student is the same as split_for_warmup's, and the within-layer
    transforms are never resolved on the teacher (they are scored after the warm-up)."""
    teacher, ctx = tiny_teacher(), build_context()
    split = split_for_warmup(teacher, build_student(teacher, SPEC, ctx))
    resolved: list[str] = []
    for name in ("heads", "ffn"):
        cls = TRANSFORMS.get(name)
        real = cls.resolve
        monkeypatch.setattr(cls, "resolve", lambda self, *a, _n=name, _r=real: resolved.append(_n) or _r(self, *a))
    first, rest = build_for_warmup(teacher, SPEC, ctx)
    assert resolved == []
    assert first.resolved == split[0].resolved and [s.step.name for s in rest] == ["heads", "ffn"]
    assert all(torch.equal(v, split[0].model.state_dict()[k]) for k, v in first.model.state_dict().items())
    final = extend_student(teacher, first, rest, ctx)
    assert resolved == ["heads", "ffn"] and final.resolved["planned_parameters"] == final.num_parameters()
    only_depth = StudentSpec((Step("depth", {"layers": 2, "choice": "uniform"}),))
    assert build_for_warmup(teacher, only_depth, ctx) is None


def test_extend_prunes_the_trained_student_and_its_record_rebuilds_the_shape():
    teacher, ctx = tiny_teacher(), build_context()
    built = build_student(teacher, SPEC, ctx)
    first, rest = split_for_warmup(teacher, built)
    with torch.no_grad():  # stands in for the warm-up: weights the teacher does not have
        for p in first.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    final = extend_student(teacher, first, rest, ctx)
    assert final.shape == built.shape and final.num_parameters() == built.num_parameters()
    assert [r["name"] for r in final.resolved["transforms"]] == ["vocab", "depth", "heads", "ffn"]
    assert final.token_id_map is not None and (final.token_id_map == first.token_id_map).all()
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(final.model.state_dict()[emb], first.model.state_dict()[emb])  # trained, not the teacher's
    assert not torch.equal(final.model.state_dict()[emb], built.model.state_dict()[emb])
    again = rebuild_student(teacher, final.resolved)  # from the teacher alone: the same shape
    assert again.shape == final.shape


@pytest.mark.parametrize("name", [n for n in TRANSFORMS.names() if TRANSFORMS.get(n).within_layers])
def test_every_within_layer_transform_extends_a_trained_student(name):
    teacher, ctx = tiny_teacher(), build_context()
    steps = (Step("depth", {"layers": 2, "choice": "uniform"}), Step(name, dict(TRANSFORMS.get(name).example_options)))
    built = build_student(teacher, StudentSpec(steps), ctx)
    first, rest = split_for_warmup(teacher, built)
    assert [s.step.name for s in rest] == [name]
    with torch.no_grad():
        for p in first.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    final = extend_student(teacher, first, rest, ctx)
    assert final.num_parameters() <= built.num_parameters()  # the same plan; a bound for energy ranks
    assert final.num_parameters() == sum(p.numel() for p in final.model.parameters())
    batch = ctx.calibration[0]
    with torch.no_grad():
        out = final.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert out.shape == (batch["input_ids"].shape[0], 2) and torch.isfinite(out).all()
    assert rebuild_student(teacher, final.resolved).shape == final.shape


@pytest.mark.parametrize(
    "heads, ffn",
    [({"ratio": 0.5}, {"ratio": 0.25}), ({"ratio": 0.5, "scope": "global"}, {"ratio": [0.5, 0.25], "multiple_of": 4})],
)
def test_gradual_stages_end_where_the_one_shot_prune_ends(heads, ffn):
    """distill.prune_stages: heads and FFN are cut in stages, each scored on the student's own
    weights; the widths shrink at every stage and end exactly at the one-shot plan, and the record
    (stages marked) rebuilds that shape from the teacher."""
    from autodistill.student.build import prune_stages, recorded_stages

    teacher, ctx = tiny_teacher(), build_context()
    spec = StudentSpec((Step("depth", {"layers": 2, "choice": "uniform"}), Step("heads", heads), Step("ffn", ffn)))
    one_shot = build_student(teacher, spec, ctx)
    first, rest = build_for_warmup(teacher, spec, ctx)
    groups = prune_stages(first.shape, rest, 3, ctx)
    assert [[s.step.name for s in g] for g in groups] == [["heads", "ffn"]] * 3
    current, widths = first, []
    for number, group in enumerate(groups, start=1):
        current = extend_student(teacher, current, group, ctx, stage=number)
        widths.append(
            (sum(layer.heads for layer in current.shape.layers), [layer.ffn for layer in current.shape.layers])
        )
    assert current.shape == one_shot.shape or current.num_parameters() == one_shot.num_parameters()
    assert [layer.ffn for layer in current.shape.layers] == [layer.ffn for layer in one_shot.shape.layers]
    heads_left = [w[0] for w in widths]
    ffn_left = [sum(w[1]) for w in widths]
    start = (sum(layer.heads for layer in first.shape.layers), sum(layer.ffn for layer in first.shape.layers))
    assert (
        start[0] > heads_left[0] >= heads_left[1] >= heads_left[2]
        and start[1] > ffn_left[0] > ffn_left[1] > ffn_left[2]
    )
    assert [r.get("stage") for r in current.resolved["transforms"]] == [None, 1, 1, 2, 2, 3, 3]
    assert rebuild_student(teacher, current.resolved).shape == current.shape
    _, recorded = split_for_warmup(teacher, current)
    again = recorded_stages(current, recorded)
    assert [[s.step.options for s in g] for g in again] == [[s.step.options for s in g] for g in groups]
    assert prune_stages(first.shape, rest, 1, ctx) == [rest]  # one stage: the steps as they are
    assert recorded_stages(one_shot, split_for_warmup(teacher, one_shot)[1]) is None  # no stages recorded


def test_transforms_without_stages_apply_whole_at_the_last_stage():
    from autodistill.student.build import prune_stages

    teacher, ctx = tiny_teacher(), build_context()
    steps = (
        Step("depth", {"layers": 2, "choice": "uniform"}),
        Step("ffn", {"ratio": 0.5}),
        Step("hidden", {"ratio": 0.5}),
    )
    first, rest = build_for_warmup(teacher, StudentSpec(steps), ctx)
    groups = prune_stages(first.shape, rest, 2, ctx)
    assert [[s.step.name for s in g] for g in groups] == [["ffn"], ["ffn", "hidden"]]
    assert groups[1][1] is rest[1]  # unchanged options
    only_hidden = (Step("depth", {"layers": 2, "choice": "uniform"}), Step("hidden", {"ratio": 0.5}))
    first, rest = build_for_warmup(teacher, StudentSpec(only_hidden), ctx)
    assert prune_stages(first.shape, rest, 3, ctx) == [rest]  # nothing to cut gradually: one stage


@pytest.mark.parametrize("name", [n for n in TRANSFORMS.names() if TRANSFORMS.get(n).within_layers])
def test_every_within_layer_transform_staged_ends_where_its_one_shot_plan_ends(name):
    """The stage_options contract: cut in two stages (or whole at the last one, for a transform
    without stages), every within-layer transform ends at the parameter count of its one-shot plan
    (at most it, for a plan that is a bound), and the staged record rebuilds that shape."""
    from autodistill.student.build import prune_stages

    teacher, ctx = tiny_teacher(), build_context()
    cls = TRANSFORMS.get(name)
    steps = (Step("depth", {"layers": 2, "choice": "uniform"}), Step(name, dict(cls.example_options)))
    first, rest = build_for_warmup(teacher, StudentSpec(steps), ctx)
    one_shot = extend_student(teacher, first, rest, ctx)
    current = first
    for number, group in enumerate(prune_stages(first.shape, rest, 2, ctx), start=1):
        current = extend_student(teacher, current, group, ctx, stage=number)
    if cls().plan_exactness(rest[0].options) == "bound":
        assert current.num_parameters() <= one_shot.resolved["planned_parameters"]
    else:
        assert current.num_parameters() == one_shot.num_parameters()
    assert rebuild_student(teacher, current.resolved).shape == current.shape
