"""Compose the transforms of a StudentSpec: plan (price it), resolve + apply (build it), record it.

``predict_parameters`` folds ``plan`` only. ``build_student`` runs each transform's
``resolve`` (data-dependent choices) and ``apply`` (a pure state-dict edit) in order, then builds
the final model once. The record it returns (``StudentBuild.resolved``) is JSON-able and
``rebuild_student`` rebuilds the identical student from it and the teacher alone, without data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.config.schema import Invalid, parse
from autodistill.errors import ConfigError
from autodistill.registry import RegistryError
from autodistill.specs import Step, StudentSpec
from autodistill.student import load_transforms
from autodistill.student.arch import build_model, is_stock, shape_from_config
from autodistill.student.base import TRANSFORMS, BuildContext, Transform
from autodistill.student.shape import ModelShape

load_transforms()

RECORD_FILE = "autodistill_student.json"
RECORD_VERSION = 1


@dataclass
class _Step:
    index: int
    step: Step
    transform: Transform
    options: Any

    @property
    def path(self) -> str:
        return f"student.transforms[{self.index}]"


def _parse_steps(steps: tuple[Step, ...] | list[Step]) -> list[_Step]:
    out = []
    for i, step in enumerate(steps):
        try:
            cls = TRANSFORMS.get(step.name)
        except RegistryError as err:
            raise ConfigError(f"The 'student.transforms[{i}].name' parameter is wrong: {err}") from None
        options = parse(cls.Options, dict(step.options), path=f"student.transforms[{i}]")
        out.append(_Step(i, step, cls(), options))
    return out


def _invalid(step: _Step, err: Invalid) -> ConfigError:
    return ConfigError(f"The '{step.path}.{err.key}' parameter ({step.step.name}) {err.message}")


def _plan(shape: ModelShape, steps: list[_Step], ctx: BuildContext) -> tuple[ModelShape, str]:
    exactness = "exact"
    rank = {"exact": 0, "count": 1, "bound": 2}
    for s in steps:
        try:
            shape = s.transform.plan(shape, s.options, ctx)
        except Invalid as err:
            raise _invalid(s, err) from None
        e = s.transform.plan_exactness(s.options)
        exactness = e if rank[e] > rank[exactness] else exactness
    return shape, exactness


def plan_student(
    teacher_shape: ModelShape, spec: StudentSpec, ctx: BuildContext | None = None
) -> tuple[ModelShape, str]:
    """The planned student shape and how exact it is ("exact", "count" or "bound"; see
    ``Transform.plan_exactness``). Builds nothing."""
    return _plan(teacher_shape, _parse_steps(spec.transforms), ctx or BuildContext())


def predict_parameters(teacher_shape: ModelShape, spec: StudentSpec, ctx: BuildContext | None = None) -> int:
    """The student's total parameter count, before any weight is touched (an upper bound when a
    transform's plan is only a bound, e.g. low-rank by energy)."""
    return plan_student(teacher_shape, spec, ctx)[0].num_parameters()


def _check_stock(spec: StudentSpec, shape: ModelShape, exactness: str) -> None:
    if not spec.require_stock_architecture:
        return
    if not is_stock(shape) or exactness != "exact":
        why = "a per-layer split decided by data" if is_stock(shape) else _why_not_stock(shape)
        raise ConfigError(
            "The 'student.require_stock_architecture' parameter is true, but the planned student needs "
            f"autodistill's registered architecture ({why}). Use transforms that keep one heads/FFN width "
            "for all layers with heads * head_dim == hidden and no low-rank factors (depth, per-layer ffn, "
            "vocab), or set student.require_stock_architecture: false."
        )


def _why_not_stock(shape: ModelShape) -> str:
    if shape.embedding_rank is not None:
        return "a factored word embedding"
    if any(layer.ranks for layer in shape.layers):
        return "low-rank factors"
    if not shape.is_uniform():
        return "per-layer widths"
    return f"heads * head_dim = {shape.layers[0].attn_dim} differs from hidden {shape.hidden}"


@dataclass
class StudentBuild:
    """A built student: the model ready to train (``wrap`` applied), its shape and its record."""

    model: Any
    shape: ModelShape
    resolved: dict[str, Any]
    token_id_map: np.ndarray | None
    _steps: list[_Step]
    # remap_tokenizer's result for the last tokenizer given: validation, test and save all ask for it
    _remapped: tuple[Any, Any] | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.resolved["kind"]

    def num_parameters(self) -> int:
        return self.shape.num_parameters()

    def export_model(self) -> Any:
        """The plain Hugging Face model to save (``unwrap`` applied in reverse order)."""
        model = self.model
        for s, rec in reversed(list(zip(self._steps, self.resolved["transforms"]))):
            model = s.transform.unwrap(model, rec["resolved"])
        return model

    def remap_tokenizer(self, tokenizer: Any) -> Any:
        """The tokenizer the saved student uses (made once per tokenizer: a vocabulary remap writes
        and reads a tokenizer folder)."""
        if self._remapped is not None and self._remapped[0] is tokenizer:
            return self._remapped[1]
        out = tokenizer
        for s, rec in zip(self._steps, self.resolved["transforms"]):
            out = s.transform.remap_tokenizer(out, rec["resolved"])
        self._remapped = (tokenizer, out)
        return out

    def save(self, directory: str | Path, tokenizer: Any = None) -> Path:
        """save_pretrained (safetensors), the remapped tokenizer and ``autodistill_student.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.export_model().save_pretrained(directory)
        if tokenizer is not None:
            self.remap_tokenizer(tokenizer).save_pretrained(directory)
        (directory / RECORD_FILE).write_text(json.dumps(self.resolved, indent=2, sort_keys=True))
        return directory


def _compose_maps(first: np.ndarray | None, second: Any) -> np.ndarray | None:
    """teacher id -> id after both maps; negative ids (dropped tokens) stay dropped."""
    if second is None:
        return first
    second = np.asarray(second, dtype=np.int64)
    if first is None:
        return second
    return np.where(first >= 0, second[np.clip(first, 0, None)], first)


def _teacher_state(teacher_model: Any) -> dict[str, torch.Tensor]:
    # detached CPU copies: apply() may slice them and the built student must never share storage
    # with the teacher
    return {k: v.detach().to("cpu", copy=True) for k, v in teacher_model.state_dict().items()}


def _finish(
    teacher_model: Any, steps: list[_Step], records: list[dict], state: dict, shape: ModelShape, extra: dict
) -> StudentBuild:
    config = teacher_model.config
    model = build_model(shape, config, state)
    token_map = None
    for s, rec in zip(steps, records):
        model = s.transform.wrap(model, rec["resolved"])
        token_map = _compose_maps(token_map, s.transform.token_id_map(rec["resolved"]))
    resolved = {
        "version": RECORD_VERSION,
        "kind": "stock" if is_stock(shape) else "registered",
        "family": shape.family,
        "transforms": records,
        "shape": shape.to_dict(),
        "num_parameters": shape.num_parameters(),
        **extra,
    }
    return StudentBuild(model=model, shape=shape, resolved=resolved, token_id_map=token_map, _steps=steps)


def build_student(teacher_model: Any, spec: StudentSpec, ctx: BuildContext | None = None) -> StudentBuild:
    """Make the student from the teacher's weights, resolving data-dependent choices on ``ctx``."""
    ctx = ctx or BuildContext()
    steps = _parse_steps(spec.transforms)
    teacher_shape = shape_from_config(teacher_model.config)
    planned, exactness = _plan(teacher_shape, steps, ctx)
    _check_stock(spec, planned, exactness)

    state, shape, records = _resolve_steps(
        teacher_model, _teacher_state(teacher_model), teacher_shape, steps, ctx, None, teacher_model.config
    )
    if spec.require_stock_architecture and not is_stock(shape):
        raise ConfigError(
            "The 'student.require_stock_architecture' parameter is true, but the built student is not "
            f"stock ({_why_not_stock(shape)})."
        )
    return _finish(teacher_model, steps, records, state, shape, _build_extra(teacher_shape, planned, exactness, spec))


def _build_extra(teacher_shape: ModelShape, planned: ModelShape, exactness: str, spec: StudentSpec) -> dict:
    return {
        "teacher_shape": teacher_shape.to_dict(),
        "planned_parameters": planned.num_parameters(),
        "plan_exactness": exactness,
        "require_stock_architecture": spec.require_stock_architecture,
    }


def build_for_warmup(
    teacher_model: Any, spec: StudentSpec, ctx: BuildContext | None = None
) -> tuple[StudentBuild, list[_Step]] | None:
    """``distill.prune_after`` from a spec: what ``split_for_warmup(build_student(...))`` gives,
    without resolving the within-layer transforms on the teacher (their importance is scored on the
    warmed-up student by ``extend_student``). None when the spec has no within-layer transform."""
    ctx = ctx or BuildContext()
    steps = _parse_steps(spec.transforms)
    cut = _first_within_layers(steps)
    if cut is None:
        return None
    teacher_shape = shape_from_config(teacher_model.config)
    planned, exactness = _plan(teacher_shape, steps, ctx)
    _check_stock(spec, planned, exactness)
    state, shape, records = _resolve_steps(
        teacher_model, _teacher_state(teacher_model), teacher_shape, steps[:cut], ctx, None, teacher_model.config
    )
    extra = _build_extra(teacher_shape, planned, exactness, spec)
    return _finish(teacher_model, steps[:cut], records, state, shape, extra), steps[cut:]


def _first_within_layers(steps: list[_Step]) -> int | None:
    return next((i for i, s in enumerate(steps) if s.transform.within_layers), None)


def _resolve_steps(
    model: Any, state: dict, shape: ModelShape, steps: list[_Step], ctx: BuildContext, token_map: Any, config: Any
) -> tuple[dict, ModelShape, list[dict]]:
    """Resolve and apply ``steps`` in order from ``state`` (``model``: the model that state came
    from, for the first importance score); ``token_map``: the vocabulary map already applied."""
    records = []
    step_ctx = ctx if token_map is None else _remapped_context(ctx, token_map)
    for s in steps:
        step_plan = s.transform.plan(shape, s.options, ctx)
        if s.transform.wants_model(s.options) and model is None:
            model = build_model(shape, config, state)
        resolved = s.transform.resolve(model, shape, s.options, step_ctx)
        state, shape = s.transform.apply(state, shape, resolved)
        new_map = s.transform.token_id_map(resolved)
        if new_map is not None:  # later importance scores run on the student's own token ids
            token_map = _compose_maps(token_map, new_map)
            step_ctx = _remapped_context(ctx, token_map)
        _check_plan(s, step_plan, shape)
        model = None
        records.append({"name": s.step.name, "options": dict(s.step.options), "resolved": resolved})
    return state, shape, records


def _record_extra(resolved: dict[str, Any]) -> dict[str, Any]:
    derived = ("version", "kind", "family", "transforms", "shape", "num_parameters")
    return {k: v for k, v in resolved.items() if k not in derived}


def split_for_warmup(teacher_model: Any, built: StudentBuild) -> tuple[StudentBuild, list[_Step]] | None:
    """``distill.prune_after``: the student before its first within-layer transform (rebuilt from
    the teacher with the earlier records) and the transforms left for after the warm-up; None when
    it has no within-layer transform."""
    cut = _first_within_layers(built._steps)
    if cut is None:
        return None
    steps, records = built._steps[:cut], [dict(r) for r in built.resolved["transforms"][:cut]]
    state, shape = _teacher_state(teacher_model), shape_from_config(teacher_model.config)
    for s, rec in zip(steps, records):
        state, shape = s.transform.apply(state, shape, rec["resolved"])
    first = _finish(teacher_model, steps, records, state, shape, _record_extra(built.resolved))
    return first, built._steps[cut:]


def extend_student(
    teacher_model: Any, first: StudentBuild, steps: list[_Step], ctx: BuildContext, stage: int | None = None
) -> StudentBuild:
    """``first`` (trained) made smaller by ``steps``, their choices resolved on its own weights; the
    record lists every transform, so ``rebuild_student`` gives this shape from the teacher.
    ``stage`` (``distill.prune_stages``): the stage of a gradual prune these steps are, recorded
    with them so that a rebuild repeats the same stages."""
    trained = first.export_model().to("cpu").eval()
    state = {k: v.detach().to("cpu", copy=True) for k, v in trained.state_dict().items()}
    state, shape, records = _resolve_steps(
        trained, state, first.shape, steps, ctx, first.token_id_map, teacher_model.config
    )
    if stage is not None:
        records = [{**r, "stage": stage} for r in records]
    records = [dict(r) for r in first.resolved["transforms"]] + records
    return _finish(teacher_model, first._steps + steps, records, state, shape, _record_extra(first.resolved))


def prune_stages(start: ModelShape, steps: list[_Step], stages: int, ctx: BuildContext) -> list[list[_Step]]:
    """``distill.prune_stages``: the within-layer ``steps`` (planned from ``start``, the warmed-up
    student's shape) split into ``stages`` gradual stages. Transforms with ``stage_options``
    (heads, ffn) take a geometric share of their cut at every stage and end exactly where the
    one-shot prune ends; the others apply whole at the last stage. Stages left with nothing to cut
    (no transform with stages) are dropped."""
    if stages <= 1:
        return [list(steps)]
    out, now = [], start
    for stage in range(1, stages + 1):
        remaining, begin, group = stages - stage + 1, start, []
        for s in steps:
            opts = s.transform.stage_options(begin, now, s.options, remaining)
            step = s if opts is None and remaining == 1 else None
            if opts is not None:
                raw = {**dict(s.step.options), **_changed(s.options, opts)}
                step = _Step(s.index, Step(s.step.name, raw), s.transform, opts)
            if step is not None:
                group.append(step)
                now = step.transform.plan(now, step.options, ctx)
            begin = s.transform.plan(begin, s.options, ctx)
        out.append(group)
    return [g for g in out if g]  # a stage with nothing to cut would only split the schedule


def recorded_stages(built: StudentBuild, steps: list[_Step]) -> list[list[_Step]] | None:
    """The stages a gradually pruned build recorded for its last ``steps``; None when the record
    marks none (a one-shot record: ``prune_stages`` may stage its steps anew)."""
    records = built.resolved["transforms"][len(built.resolved["transforms"]) - len(steps) :]
    numbers = [r.get("stage") for r in records]
    if all(n is None for n in numbers):
        return None
    return [[s for s, n in zip(steps, numbers) if n == k] for k in sorted(set(numbers))]


def _changed(before: Any, after: Any) -> dict[str, Any]:
    """The options ``after`` sets differently from ``before`` (the raw record keeps the rest as given)."""
    return {k: v for k, v in asdict(after).items() if getattr(before, k) != v}


def _remapped_context(ctx: BuildContext, token_map: Any) -> BuildContext:
    import dataclasses

    import torch

    if not ctx.calibration:
        return ctx
    table = torch.as_tensor(token_map, dtype=torch.long).clamp_min(0)
    batches = [{**b, "input_ids": table[b["input_ids"]]} for b in ctx.calibration]
    return dataclasses.replace(ctx, calibration=batches)


def _check_plan(s: _Step, planned: ModelShape, actual: ModelShape) -> None:
    exactness = s.transform.plan_exactness(s.options)
    ok = {
        "exact": planned == actual,
        "count": planned.num_parameters() == actual.num_parameters(),
        "bound": actual.num_parameters() <= planned.num_parameters(),
    }[exactness]
    if not ok:  # a transform bug, not a user error: plan() and apply() disagree
        raise AssertionError(
            f"Transform {s.step.name!r} ({s.path}) planned {planned.num_parameters()} parameters "
            f"({exactness}) but produced {actual.num_parameters()}."
        )


def rebuild_student(teacher_model: Any, resolved: dict[str, Any]) -> StudentBuild:
    """The identical student from its record (``StudentBuild.resolved`` or the saved JSON), without data."""
    if resolved.get("version") != RECORD_VERSION:
        raise ConfigError(f"Unsupported student record version {resolved.get('version')!r}; expected {RECORD_VERSION}.")
    steps = _parse_steps([Step(r["name"], dict(r["options"])) for r in resolved["transforms"]])
    records = [dict(r) for r in resolved["transforms"]]
    shape = shape_from_config(teacher_model.config)
    if "teacher_shape" in resolved and shape.to_dict() != resolved["teacher_shape"]:
        raise ConfigError("The student record does not fit this teacher: its shape differs from the recorded one.")
    state = _teacher_state(teacher_model)
    for s, rec in zip(steps, records):
        state, shape = s.transform.apply(state, shape, rec["resolved"])
    if shape.to_dict() != resolved["shape"]:
        raise ConfigError("The student record does not fit this teacher: the rebuilt shape differs from the record.")
    return _finish(teacher_model, steps, records, state, shape, _record_extra(resolved))


def load_record(directory: str | Path) -> dict[str, Any]:
    """The ``autodistill_student.json`` saved with a student."""
    return json.loads((Path(directory) / RECORD_FILE).read_text())
