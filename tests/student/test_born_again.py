"""``born_again``: a same-shape student from scratch (Furlanello et al. 2018), built by ``fresh``."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import transform_contract as contract
from student_helpers import build_context, calibration_batches, logits, tiny_teacher

from autodistill.errors import ConfigError
from autodistill.specs import Step, StudentSpec
from autodistill.student.arch import shape_from_config
from autodistill.student.build import build_student, rebuild_student

BORN_AGAIN = StudentSpec((Step("born_again"),))


def test_keeps_the_transform_contract(teacher, ctx, tmp_path):
    contract.check_transform("born_again", teacher, ctx, tmp_path)


def test_the_teachers_shape_with_new_weights(ctx):
    teacher = tiny_teacher(seed=5)  # not initialised like the build's seed 0 would
    built = build_student(teacher, BORN_AGAIN, ctx)
    assert built.shape == shape_from_config(teacher.config) and built.kind == "stock"
    assert contract.renewed(teacher, built.model, matrices=True)  # every weight matrix is new
    batch = calibration_batches(n=1)[0]
    assert not torch.allclose(logits(built.model, batch), logits(teacher, batch))
    record = built.resolved["transforms"][0]
    assert record["name"] == "born_again" and record["resolved"]["init"] == "random"


def test_seeded_by_the_build_context(teacher):
    def state(seed: int) -> dict[str, torch.Tensor]:
        return build_student(teacher, BORN_AGAIN, replace(build_context(), seed=seed)).model.state_dict()

    one, again, other = state(3), state(3), state(4)
    assert all(torch.equal(one[k], again[k]) for k in one)
    assert not torch.equal(one["classifier.weight"], other["classifier.weight"])
    rebuilt = rebuild_student(teacher, build_student(teacher, BORN_AGAIN, replace(build_context(), seed=3)).resolved)
    assert all(torch.equal(rebuilt.model.state_dict()[k], one[k]) for k in one)


def test_after_a_depth_cut_it_renews_the_cut_shape(teacher, ctx):
    spec = StudentSpec((Step("depth", {"layers": 2}), Step("born_again")))
    built = build_student(teacher, spec, ctx)
    assert built.shape.num_layers == 2 and built.shape.hidden == teacher.config.hidden_size


def test_refuses_a_shape_no_stock_model_describes(teacher, ctx):
    spec = StudentSpec((Step("heads", {"ratio": [1.0, 0.5, 0.5, 0.5]}), Step("born_again")))
    with pytest.raises(ConfigError, match=r"'student.transforms\[1\].name' parameter \(born_again\) must come before"):
        build_student(teacher, spec, ctx)
