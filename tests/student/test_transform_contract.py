"""The contract every registered student transform keeps, with its ``example_options``: the
student runs, has exactly the planned parameter count, saves and reloads with identical outputs
(stock or registered), rebuilds identically from its JSON record, is no larger, and changes as
its plan promises. The checks live in tests/transform_contract.py, shared with
tests/test_extending.py."""

from __future__ import annotations

import pytest
import torch
import transform_contract as contract

from autodistill.specs import Step, StudentSpec
from autodistill.student.base import TRANSFORMS
from autodistill.student.build import build_student

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
    return contract.example_spec(name)


def test_the_shipped_transforms_are_registered() -> None:
    assert {"depth", "heads", "ffn", "hidden", "low_rank", "vocab", "lora", "fresh"} <= set(TRANSFORMS.names())


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_example_options_parse_and_change_the_student_as_promised(name: str, teacher, ctx) -> None:
    contract.check_example_options(TRANSFORMS.get(name))
    contract.check_changes_as_promised(name, teacher, ctx)


@pytest.mark.parametrize("name", [*TRANSFORMS.names(), *CHAINS])
def test_contract(name: str, teacher, ctx, tmp_path) -> None:
    contract.check_transform_contract(_spec(name), teacher, ctx, tmp_path)


def test_the_teacher_is_left_untouched(teacher, ctx) -> None:
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    built = build_student(teacher, _spec("all"), ctx)
    with torch.no_grad():  # the student shares no storage with the teacher
        for p in built.model.parameters():
            p.add_(1.0)
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not teacher.training
