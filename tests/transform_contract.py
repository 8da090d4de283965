"""The contract every student transform keeps, as functions: the contract tests
(tests/student/test_transform_contract.py) run them over every registered transform, and
tests/test_extending.py over a transform added as docs/EXTENDING.md says.

Each transform is built with its own ``example_options`` on the tests' tiny BERT (hidden 32,
4 heads, 4 layers, FFN 64, vocabulary 99)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from student.student_helpers import calibration_batches, count, logits
from transformers import AutoConfig, AutoModelForSequenceClassification

import autodistill  # noqa: F401  (registers autodistill_bert with the Auto classes)
from autodistill.config.schema import parse
from autodistill.specs import Step, StudentSpec
from autodistill.student.arch import shape_from_config
from autodistill.student.base import TRANSFORMS, BuildContext, Transform
from autodistill.student.build import RECORD_FILE, build_student, load_record, plan_student, rebuild_student


def example_spec(name: str) -> StudentSpec:
    """The registered transform ``name`` alone, with its ``example_options``."""
    return StudentSpec((Step(name, dict(TRANSFORMS.get(name).example_options)),))


def check_example_options(cls: type[Transform]) -> None:
    """The transform declares its own example options, and they parse through its Options."""
    assert "example_options" in vars(cls), f"{cls.name!r} declares no example_options of its own"
    assert isinstance(cls.example_options, dict), cls.name
    options = parse(cls.Options, dict(cls.example_options), path=f"student.transforms[{cls.name}]")
    assert isinstance(options, cls.Options), cls.name


def renewed(teacher: Any, student: Any, matrices: bool = False) -> bool:
    """Are ``student``'s weights not the teacher's: does any parameter differ from the teacher's
    of the same name (with ``matrices``, every weight matrix)? A random initialisation seeded
    like the teacher's own (the test teachers are random) repeats its matrices, only the
    teacher's perturbed biases and LayerNorms telling them apart."""
    before = dict(teacher.named_parameters())
    after = dict(student.named_parameters())
    differs = [not torch.equal(after[k], v) for k, v in before.items() if v.dim() == 2 or not matrices]
    return after.keys() == before.keys() and (all(differs) if matrices else any(differs))


def check_changes_as_promised(name: str, teacher: Any, ctx: BuildContext) -> None:
    """The built student differs from the teacher as the plan says: a transform that changes the
    planned shape yields that shape (its parameter count, where data decides the per-layer split)
    with fewer parameters than the teacher; one that keeps the shape (LoRA) trains fewer
    parameters than the teacher has, or starts again from new weights (born_again)."""
    spec = example_spec(name)
    teacher_shape = shape_from_config(teacher.config)
    teacher_count = count(teacher)
    planned, exactness = plan_student(teacher_shape, spec, ctx)
    built = build_student(teacher, spec, ctx)
    if planned == teacher_shape:
        assert built.shape == teacher_shape, name
        trainable = sum(p.numel() for p in built.model.parameters() if p.requires_grad)
        changed = 0 < trainable < teacher_count or renewed(teacher, built.model)
        assert changed, f"{name!r} changes neither the shape nor what trains nor the weights"
        return
    assert planned.num_parameters() < teacher_count, f"{name!r} plans no fewer parameters than the teacher"
    if exactness == "exact":
        assert built.shape == planned, name
    elif exactness == "count":
        assert built.shape.num_parameters() == planned.num_parameters(), name
    else:
        assert built.shape.num_parameters() <= planned.num_parameters(), name
    assert count(built.export_model()) < teacher_count, name


def check_transform_contract(spec: StudentSpec, teacher: Any, ctx: BuildContext, tmp_path: Path) -> None:
    """The student runs, has exactly the planned parameter count, saves and reloads with identical
    outputs (stock or registered), rebuilds identically from its JSON record, and is no larger."""
    teacher_count = count(teacher)
    predicted = plan_student(shape_from_config(teacher.config), spec, ctx)[0].num_parameters()
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


def check_transform(name: str, teacher: Any, ctx: BuildContext, tmp_path: Path) -> None:
    """Every check above for the registered transform ``name`` with its example options."""
    check_example_options(TRANSFORMS.get(name))
    check_changes_as_promised(name, teacher, ctx)
    check_transform_contract(example_spec(name), teacher, ctx, tmp_path)
