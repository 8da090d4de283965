"""Shapes, the registered architecture, and the build's checks (stock refusal, names, records)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from student_helpers import calibration_batches, count, logits, tiny_teacher
from transformers import AutoModel, AutoModelForSequenceClassification, BertForSequenceClassification

import autodistill.student.build as build_module
from autodistill.errors import ConfigError
from autodistill.specs import Step, StudentSpec
from autodistill.student.arch import (
    AutodistillBertConfig,
    AutodistillBertForSequenceClassification,
    AutodistillBertModel,
    build_model,
    config_for_shape,
    is_stock,
    shape_from_config,
)
from autodistill.student.build import build_student, plan_student, predict_parameters, rebuild_student
from autodistill.student.shape import LayerShape

UNEVEN = (
    LayerShape(2, 8, 40, {"query": 3}),
    LayerShape(4, 8, 64),
    LayerShape(1, 8, 10, {"ffn_out": 5}),
    LayerShape(3, 8, 64, {"attn_out": 2, "key": 7}),
)


def test_teacher_shape_counts_exactly(teacher) -> None:
    shape = shape_from_config(teacher.config)
    assert shape.num_parameters() == count(teacher) and is_stock(shape)
    same = build_model(shape, teacher.config, teacher.state_dict())
    assert type(same) is BertForSequenceClassification
    batch = calibration_batches(n=1)[0]
    torch.testing.assert_close(logits(same, batch), logits(teacher, batch), rtol=0, atol=0)


def test_registered_model_round_trip(teacher, tmp_path) -> None:
    shape = replace(shape_from_config(teacher.config), layers=UNEVEN, embedding_rank=6)
    assert not is_stock(shape)
    torch.manual_seed(3)
    model = build_model(shape, teacher.config)
    assert isinstance(model, AutodistillBertForSequenceClassification) and count(model) == shape.num_parameters()
    assert isinstance(model.config, AutodistillBertConfig) and shape_from_config(model.config) == shape
    assert model.config.id2label == teacher.config.id2label
    batch = calibration_batches(n=1)[0]
    out = model(
        **{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True, output_attentions=True
    )
    assert len(out.hidden_states) == 5 and [a.shape[1] for a in out.attentions] == [2, 4, 1, 3]
    model.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(again, batch), logits(model, batch), rtol=0, atol=1e-6)  # sdpa vs eager
    backbone = AutoModel.from_pretrained(tmp_path)
    assert isinstance(backbone, AutodistillBertModel)


def test_registered_model_loads_in_a_fresh_process_after_import_autodistill(teacher, tmp_path) -> None:
    shape = replace(shape_from_config(teacher.config), layers=UNEVEN)
    torch.manual_seed(3)
    build_model(shape, teacher.config).save_pretrained(tmp_path)
    code = (
        "import autodistill, sys\n"
        "from transformers import AutoModelForSequenceClassification as A\n"
        f"m = A.from_pretrained({str(tmp_path)!r})\n"
        "print(type(m).__name__, sum(p.numel() for p in m.parameters()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["AutodistillBertForSequenceClassification", str(shape.num_parameters())]


def test_stock_needs_heads_times_head_dim_equal_hidden(teacher) -> None:
    shape = shape_from_config(teacher.config)
    assert is_stock(shape.replace_layers([LayerShape(4, 8, 16)] * 2))
    assert not is_stock(shape.replace_layers([LayerShape(2, 8, 64)] * 4))  # fewer heads, same hidden
    assert not is_stock(replace(shape, embedding_rank=8))
    assert not is_stock(shape.replace_layers([LayerShape(4, 8, 64), LayerShape(4, 8, 32)]))
    config = config_for_shape(shape.replace_layers([LayerShape(4, 8, 16)] * 2), teacher.config)
    assert config.model_type == "bert" and config.intermediate_size == 16 and config.hidden_act == "gelu"


def test_require_stock_architecture_refuses_before_building(teacher, ctx, monkeypatch) -> None:
    def no_build(*args, **kwargs):
        raise AssertionError("built a model")

    monkeypatch.setattr(build_module, "build_model", no_build)
    for steps in (
        [("heads", {"ratio": 0.5})],
        [("low_rank", {"rank": 4})],
        [("hidden", {"ratio": 0.5})],
        [("ffn", {"ratio": 0.5, "scope": "global"})],
    ):
        spec = StudentSpec(tuple(Step(n, o) for n, o in steps), require_stock_architecture=True)
        with pytest.raises(ConfigError, match="'student.require_stock_architecture'"):
            build_student(teacher, spec, ctx)


def test_require_stock_architecture_accepts_stock_students(teacher, ctx) -> None:
    steps = (
        Step("depth", {"layers": 2}),
        Step("ffn", {"ratio": 0.5}),
        Step("hidden", {"ratio": 0.5}),
        Step("heads", {"ratio": 0.5}),
    )
    built = build_student(teacher, StudentSpec(steps, require_stock_architecture=True), ctx)
    assert built.kind == "stock" and type(built.model) is BertForSequenceClassification


def test_unknown_transform_lists_the_valid_names(teacher) -> None:
    valid = r"Valid names: born_again, depth, ffn, .*low_rank"
    with pytest.raises(ConfigError, match=r"student\.transforms\[1\]\.name.*" + valid):
        build_student(teacher, StudentSpec((Step("depth", {"layers": 2}), Step("prune", {}))))


def test_plan_reports_exactness_without_building(teacher, monkeypatch) -> None:
    monkeypatch.setattr(build_module, "build_model", None)
    shape = shape_from_config(teacher.config)
    spec = StudentSpec((Step("depth", {"layers": 2}), Step("heads", {"ratio": 0.5, "scope": "global"})))
    planned, exactness = plan_student(shape, spec)
    assert exactness == "count" and planned.num_layers == 2
    assert predict_parameters(shape, spec) == planned.num_parameters()


def test_token_maps_compose() -> None:
    first = np.array([0, 1, 1, 2, 3])  # 5 -> 4 ids
    second = np.array([0, 0, 1, 2])  # 4 -> 3 ids
    assert build_module._compose_maps(first, second).tolist() == [0, 0, 0, 1, 2]
    assert build_module._compose_maps(None, second).tolist() == second.tolist()
    assert build_module._compose_maps(np.array([0, -1, 2]), np.array([5, 6, 7])).tolist() == [5, -1, 7]


def test_record_from_another_teacher_is_refused(ctx) -> None:
    built = build_student(tiny_teacher(), StudentSpec((Step("ffn", {"ratio": 0.5}),)), ctx)
    with pytest.raises(ConfigError, match="does not fit this teacher"):
        rebuild_student(tiny_teacher(layers=2), built.resolved)
