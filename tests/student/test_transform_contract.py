"""The contract every registered student transform keeps, with its ``example_options``:
the student runs, has exactly the planned parameter count, saves and reloads with identical
outputs (stock or registered), rebuilds identically from its JSON record, and is no larger."""

from __future__ import annotations

import json

import pytest
import torch
from student_helpers import calibration_batches, count, logits
from transformers import AutoConfig, AutoModelForSequenceClassification

import autodistill  # noqa: F401  (registers autodistill_bert with the Auto classes)
from autodistill.specs import Step, StudentSpec
from autodistill.student.arch import shape_from_config
from autodistill.student.base import TRANSFORMS
from autodistill.student.build import RECORD_FILE, build_student, load_record, predict_parameters, rebuild_student

# the chain of the benchmark arms, on top of the single transforms
CHAINS = {
    "depth+heads+ffn": [("depth", {"layers": 2}), ("heads", {"ratio": 0.5}), ("ffn", {"ratio": 0.5})],
    "all": [
        ("depth", {"layers": 3, "choice": "importance"}),
        ("heads", {"ratio": [1.0, 0.5, 0.25]}),
        ("ffn", {"ratio": 0.5, "scope": "global"}),
        ("low_rank", {"targets": ["query", "attn_out"], "rank": 4, "activation_aware": True}),
        ("hidden", {"ratio": 0.75}),
        ("low_rank", {"targets": ["ffn_in"], "energy": 0.8, "embedding_rank": 12}),
    ],
}


def _spec(name: str) -> StudentSpec:
    if name in CHAINS:
        return StudentSpec(tuple(Step(n, o) for n, o in CHAINS[name]))
    return StudentSpec((Step(name, dict(TRANSFORMS.get(name).example_options)),))


def test_every_transform_has_example_options() -> None:
    assert {"depth", "heads", "ffn", "hidden", "low_rank"} <= set(TRANSFORMS.names())
    for name in TRANSFORMS.names():
        assert isinstance(TRANSFORMS.get(name).example_options, dict), name


@pytest.mark.parametrize("name", [*TRANSFORMS.names(), *CHAINS])
def test_contract(name: str, teacher, ctx, tmp_path) -> None:
    spec = _spec(name)
    teacher_count = count(teacher)
    predicted = predict_parameters(shape_from_config(teacher.config), spec, ctx)
    built = build_student(teacher, spec, ctx)
    batch = calibration_batches(n=1, seed=7)[0]

    # runs
    out = logits(built.model, batch, built.token_id_map)
    assert out.shape == (4, 2) and torch.isfinite(out).all()

    # exact count (an upper bound only where the plan says so)
    exported = built.export_model()
    n = count(exported)
    assert n == built.shape.num_parameters() == built.resolved["num_parameters"]
    if built.resolved["plan_exactness"] == "bound":
        assert n <= predicted
    else:
        assert n == predicted
    assert n <= teacher_count

    # saves and reloads, stock or registered, with identical outputs
    expected = logits(exported, batch, built.token_id_map)
    built.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == ("bert" if built.kind == "stock" else "autodistill_bert")
    assert isinstance(AutoConfig.from_pretrained(tmp_path), type(exported.config))
    assert any(p.suffix == ".safetensors" for p in tmp_path.iterdir())
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(exported)
    assert count(reloaded) == n
    torch.testing.assert_close(logits(reloaded, batch, built.token_id_map), expected, rtol=0, atol=1e-6)

    # rebuilds identically from the JSON record alone (no data)
    record = load_record(tmp_path)
    assert record == json.loads(json.dumps(built.resolved))
    assert (tmp_path / RECORD_FILE).exists()
    rebuilt = rebuild_student(teacher, record)
    assert rebuilt.shape == built.shape and rebuilt.kind == built.kind
    torch.testing.assert_close(logits(rebuilt.export_model(), batch, rebuilt.token_id_map), expected, rtol=0, atol=0)
    state, again = built.export_model().state_dict(), rebuilt.export_model().state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)


def test_the_teacher_is_left_untouched(teacher, ctx) -> None:
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    built = build_student(teacher, _spec("all"), ctx)
    with torch.no_grad():  # the student shares no storage with the teacher
        for p in built.model.parameters():
            p.add_(1.0)
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not teacher.training
