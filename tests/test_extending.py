"""docs/EXTENDING.md works as written: its example loss, transform, weighting scheme, search space
and sampler are taken from the guide's code blocks, added from a module outside the package the
way the guide says, and run through the same contract checks as the package's own components.
Each is unregistered afterwards. The checks themselves are shown to catch a broken component."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import loss_contract
import pytest
import torch
import transform_contract
from student.student_helpers import build_context, tiny_teacher

from autodistill.errors import ConfigError
from autodistill.losses import LOSSES, Loss
from autodistill.registry import Registry
from autodistill.specs import Step, StudentSpec
from autodistill.student.base import TRANSFORMS
from autodistill.student.build import build_student
from autodistill.weighting import WEIGHTINGS

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "EXTENDING.md"


def guide_block(section: str, language: str) -> str:
    """The first ``language`` code block under the guide's ``## <section>`` heading."""
    text = GUIDE.read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    body = next((p for p in parts if p.startswith(section + "\n")), None)
    assert body is not None, f"docs/EXTENDING.md has no section {section!r}"
    found = re.search(rf"^```{language}\n(.*?)^```", body, flags=re.M | re.S)
    assert found, f"the section {section!r} of docs/EXTENDING.md has no {language} block"
    return found.group(1)


def import_from_guide(section: str, module: str, tmp_path: Path, monkeypatch) -> Any:
    """Write the section's Python block to ``tmp_path/<module>.py`` and import it from there."""
    (tmp_path / f"{module}.py").write_text(guide_block(section, "python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return importlib.import_module(module)


@contextmanager
def from_guide(section: str, module: str, registry: Registry, name: str, tmp_path: Path, monkeypatch) -> Iterator[str]:
    """The guide's component registered for the block's duration, then unregistered again."""
    try:
        import_from_guide(section, module, tmp_path, monkeypatch)
        yield name
    finally:
        if name in registry:
            registry.unregister(name)
        sys.modules.pop(module, None)


def test_the_guide_loss_keeps_the_loss_contract(tmp_path, monkeypatch):
    with from_guide("Adding a loss", "guide_loss", LOSSES, "logit_cosine", tmp_path, monkeypatch) as name:
        assert name in LOSSES.names()
        loss_contract.check_loss(name, {})
        loss_contract.check_loss(name, {"scale": 2.0})
        assert LOSSES.get(name).cached_needs({}) == set()
        _, dims = loss_contract.make_batch()
        with pytest.raises(ConfigError, match=r"'distill.loss.terms\[0\].scale' parameter must be > 0. Got -1"):
            LOSSES.get(name)(dims, key="distill.loss.terms[0]", scale=-1)
    assert "logit_cosine" not in LOSSES and "guide_loss" not in sys.modules


def test_the_guide_transform_keeps_the_transform_contract(tmp_path, monkeypatch):
    teacher, ctx = tiny_teacher(), build_context()
    with from_guide("Adding a transform", "guide_transform", TRANSFORMS, "drop_layer", tmp_path, monkeypatch) as name:
        transform_contract.check_transform(name, teacher, ctx, tmp_path / "student")
        assert build_student(teacher, transform_contract.example_spec(name), ctx).shape.num_layers == 3
        with pytest.raises(
            ConfigError, match=r"'student.transforms\[0\].layer' parameter \(drop_layer\) must be below"
        ):
            build_student(teacher, StudentSpec((Step(name, {"layer": 7}),)), ctx)
    assert "drop_layer" not in TRANSFORMS and "guide_transform" not in sys.modules


def test_the_guide_weighting_starts_at_one_and_favours_the_smaller_loss(tmp_path, monkeypatch):
    with from_guide("Adding a weighting scheme", "guide_weighting", WEIGHTINGS, "inverse", tmp_path, monkeypatch) as n:
        scheme = WEIGHTINGS.get(n)(["a", "b"], momentum=0.5)
    assert "inverse" not in WEIGHTINGS
    torch.testing.assert_close(scheme.weights(), torch.ones(2))
    for step in range(1, 20):
        scheme.observe(torch.tensor([4.0, 1.0]))
        scheme.step_end(step)
    w = scheme.weights()
    assert torch.isfinite(w).all() and w[1] > 1 > w[0]
    torch.testing.assert_close(w, torch.tensor([0.4, 1.6]), rtol=1e-3, atol=1e-3)  # 1/m, mean 1


def test_the_guide_search_space_loads_checks_and_samples(tmp_path):
    from autodistill.search.budget import RandomPoint
    from autodistill.search.space import check_components, load_space
    from autodistill.tasks import get_task

    path = tmp_path / "tiny_depth.yaml"
    path.write_text(guide_block("Adding a search space", "yaml"))
    space = load_space(str(path))
    check_components(space, get_task("sequence-classification").components())
    assert space.name == "tiny_depth" and space.size() > 1
    depths = {
        next(s for s in space.sample(RandomPoint(seed)).student.transforms if s.name == "depth").options["layers"]
        for seed in range(30)
    }
    assert depths == {1, 2, 3}


def test_the_guide_sampler_registers_and_builds():
    import optuna

    from autodistill.search.samplers import SAMPLERS

    try:
        exec(guide_block("Adding a sampler", "python"), {"SAMPLERS": SAMPLERS, "optuna": optuna})
        assert isinstance(SAMPLERS.get("qmc")(0, 3), optuna.samplers.QMCSampler)
    finally:
        if "qmc" in SAMPLERS:
            SAMPLERS.unregister("qmc")


# -- the contract checks catch what they promise to catch ------------------------------------


class _ReadsUndeclared(Loss):
    """Reads the teacher's hidden states without declaring them."""

    name = "reads_undeclared"

    def forward(self, batch):
        return (batch.student_logits - batch.teacher_logits).pow(2).mean() + batch.teacher_hidden[0].mean() * 0


class _WrongCachedNeeds(Loss):
    """Reads hidden states, but tells the cache it needs nothing."""

    name = "wrong_cached_needs"
    needs = frozenset({"teacher_logits", "hidden"})

    @classmethod
    def cached_needs(cls, options: dict[str, Any]) -> set[str]:
        return set()

    def forward(self, batch):
        return (batch.student_logits - batch.teacher_logits).pow(2).mean()


@pytest.mark.parametrize(
    ("cls", "check", "error"),
    [
        (_ReadsUndeclared, loss_contract.check_shape_and_declared_inputs, TypeError),  # teacher_hidden is None
        (_WrongCachedNeeds, loss_contract.check_cached_needs, AssertionError),
    ],
)
def test_the_loss_checks_catch_a_broken_loss(cls, check, error):
    LOSSES.register(cls.name)(cls)
    try:
        with pytest.raises(error):
            check(cls.name, {})
    finally:
        LOSSES.unregister(cls.name)


def test_the_transform_checks_catch_borrowed_options_and_a_transform_that_does_nothing(tmp_path, monkeypatch):
    with from_guide("Adding a transform", "guide_transform", TRANSFORMS, "drop_layer", tmp_path, monkeypatch) as name:
        drop_layer = TRANSFORMS.get(name)

    class Borrowed(drop_layer):  # inherits example_options instead of declaring its own
        name = "borrowed"

    class Nothing(drop_layer):  # plans, builds and trains exactly the teacher
        name = "nothing"
        example_options = {"layer": 1}

        def plan(self, shape, options, ctx):
            return shape

        def resolve(self, model, shape, options, ctx):
            return {"keep": list(range(shape.num_layers))}

    with pytest.raises(AssertionError, match="declares no example_options"):
        transform_contract.check_example_options(Borrowed)
    TRANSFORMS.register(Nothing.name)(Nothing)
    try:
        with pytest.raises(AssertionError, match="changes neither the shape nor what trains"):
            transform_contract.check_changes_as_promised(Nothing.name, tiny_teacher(), build_context())
    finally:
        TRANSFORMS.unregister(Nothing.name)
