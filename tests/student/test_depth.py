"""Depth: which layers are kept, and that they carry the teacher's weights."""

from __future__ import annotations

import pytest
import torch
from student_helpers import build_context, calibration_batches, count, logits, tiny_teacher

from autodistill.errors import ConfigError
from autodistill.specs import Step, StudentSpec
from autodistill.student.build import build_student
from autodistill.student.depth import uniform_layers
from autodistill.student.importance import calibration_loss


@pytest.fixture(scope="module")
def six():
    return tiny_teacher(layers=6)


def _kept(teacher, options, ctx=None) -> list[int]:
    built = build_student(teacher, StudentSpec((Step("depth", options),)), ctx)
    keep = built.resolved["transforms"][0]["resolved"]["keep"]
    t_state, s_state = teacher.state_dict(), built.model.state_dict()
    for new, old in enumerate(keep):  # the kept layers carry the teacher's weights
        for key in ("attention.self.query.weight", "output.LayerNorm.bias"):
            assert torch.equal(s_state[f"bert.encoder.layer.{new}.{key}"], t_state[f"bert.encoder.layer.{old}.{key}"])
    assert built.shape.num_layers == len(keep) and built.kind == "stock"
    return keep


@pytest.mark.parametrize(
    ("options", "keep"),
    [
        ({"layers": 3}, [0, 2, 4]),  # DistilBERT: every other layer from the first
        ({"layers": 3, "choice": "uniform"}, [0, 2, 4]),
        ({"layers": 2}, [0, 3]),
        ({"layers": 6}, [0, 1, 2, 3, 4, 5]),
        ({"layers": 2, "choice": "first"}, [0, 1]),
        ({"layers": 2, "choice": "last"}, [4, 5]),
        ({"layers_to_keep": [5, 1, 3]}, [1, 3, 5]),
        ({"layers_to_keep": [2], "choice": "explicit"}, [2]),
    ],
)
def test_layer_choice(six, options, keep) -> None:
    assert _kept(six, options) == keep


def test_uniform_spacing() -> None:
    assert uniform_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert uniform_layers(12, 4) == [0, 3, 6, 9]
    assert uniform_layers(6, 4) == [0, 1, 3, 4]
    assert uniform_layers(5, 1) == [0]


def test_three_of_six_keeps_the_first_layers_output_path(six) -> None:
    built = build_student(six, StudentSpec((Step("depth", {"layers": 6}),)))
    batch = calibration_batches(n=1)[0]
    torch.testing.assert_close(logits(built.model, batch), logits(six, batch), rtol=0, atol=1e-6)
    smaller = build_student(six, StudentSpec((Step("depth", {"layers": 3}),)))
    per_layer = (count(six) - count(smaller.model)) // 3
    assert count(six) - count(built.model) == 0 and per_layer == 4 * (32 * 32 + 32) + 2 * 32 * 64 + 64 + 32 + 4 * 32


def test_importance_keeps_the_layers_whose_removal_hurts_most(six) -> None:
    ctx = build_context()
    keep = _kept(six, {"layers": 3, "choice": "importance"}, ctx)
    built = build_student(six, StudentSpec((Step("depth", {"layers": 3, "choice": "importance"}),)), ctx)
    rise = built.resolved["transforms"][0]["resolved"]["loss_rise"]
    assert keep == sorted(sorted(range(6), key=lambda i: -rise[i])[:3])

    def mean_loss(model) -> float:
        with torch.no_grad():
            return sum(float(calibration_loss(model, b)) for b in ctx.calibration) / len(ctx.calibration)

    # the recorded rise is the loss of the teacher without that layer minus the teacher's loss
    without_two = build_student(six, StudentSpec((Step("depth", {"layers_to_keep": [0, 1, 3, 4, 5]}),))).model
    assert rise[2] == pytest.approx(mean_loss(without_two) - mean_loss(six), abs=1e-6)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"layers": 7}, "layers"),
        ({"layers": 0}, "layers"),
        ({"choice": "first"}, "layers"),
        ({"layers_to_keep": [0, 6]}, "layers_to_keep"),
        ({"layers_to_keep": [1, 1]}, "layers_to_keep"),
        ({"layers_to_keep": [0, 1], "layers": 3}, "layers"),
        ({"choice": "explicit", "layers": 2}, "layers_to_keep"),
        ({"layers": 2, "choice": "middle"}, "choice"),
        ({"layers": 2, "keep": [1]}, "keep"),
    ],
)
def test_bad_options_name_the_key(six, options, key) -> None:
    with pytest.raises(ConfigError, match=rf"'student\.transforms\[0\]\.{key}'"):
        build_student(six, StudentSpec((Step("depth", options),)))


def test_importance_without_calibration_is_a_clear_error(six) -> None:
    with pytest.raises(ConfigError, match="calibration"):
        build_student(six, StudentSpec((Step("depth", {"layers": 2, "choice": "importance"}),)))
