"""Search-space files: which knobs are searched, over what, and which are fixed.

A leaf is either a fixed value or a distribution::

    {int: [lo, hi]}            {int: [lo, hi], log: true}     {int: [lo, hi], step: 2}
    {float: [lo, hi]}          {float: [lo, hi], log: true}
    {choice: [a, b, c]}

A transform or loss term marked ``optional: true`` is switched on or off by the search (a
boolean parameter ``<name>.enabled``); its own knobs are sampled only when it is on, so a rank
exists only when factorisation is on. The proxy length is fixed per study, not searched.
This module imports no optuna: a :class:`Sampler` protocol stands between it and the trial.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from autodistill.config.run import DistillConfig, LossConfig
from autodistill.config.schema import Invalid, field_rule, parse, require
from autodistill.errors import ConfigError
from autodistill.specs import LossSpec, Step, StudentSpec

# the repository's top-level folder in a checkout; installed wheels carry it as autodistill/search_spaces
_REPO_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
SPACES_DIR = _REPO_SPACES if _REPO_SPACES.is_dir() else Path(__file__).resolve().parents[1] / "search_spaces"
# distill.* keys a space may search (its `train:` section); combine and assistant choose the targets
TRAIN_KNOBS = (
    "lr", "batch_size", "weight_decay", "warmup_ratio", "prune_after", "prune_stages", "ema", "dropout", "qat",
    "combine", "assistant",
)  # fmt: skip


class Sampler(Protocol):
    """What a search space needs from a trial (optuna.Trial satisfies it)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and len({"int", "float", "choice"} & set(value)) == 1


def check_distribution(value: dict[str, Any], key: str) -> None:
    kind = next(k for k in ("int", "float", "choice") if k in value)
    extra = set(value) - {kind, "log", "step"}
    if extra:
        raise Invalid(key, f"has unknown distribution keys {sorted(extra)}; allowed: {kind}, log, step.")
    spec = value[kind]
    if kind == "choice":
        require(isinstance(spec, list) and len(spec) >= 1, key, "'choice' must be a non-empty list", spec)
        return
    ok = (
        isinstance(spec, list)
        and len(spec) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
    )
    require(ok, key, f"'{kind}' must be a list [low, high] of numbers", spec)
    require(spec[0] <= spec[1], key, f"'{kind}' must have low <= high", spec)
    if value.get("log"):
        require(spec[0] > 0, key, "a log-scale range must have low > 0", spec)
    if kind == "int":
        require(all(float(v).is_integer() for v in spec), key, "'int' bounds must be integers", spec)


DISTRIBUTIONS = "{int: [low, high]}, {float: [low, high]} or {choice: [a, b, ...]}"


def ends(value: Any) -> list[Any]:
    """The values that bound a leaf: a fixed value itself, every choice, or a range's two ends
    (enough for the interval checks of the config keys and options a leaf stands for)."""
    if not is_distribution(value):
        return [value]
    if "choice" in value:
        return list(value["choice"])
    return list(value.get("int", value.get("float")))


def _plain_types(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def shape_problem(tp: Any, value: Any) -> str | None:
    """A leaf whose form cannot stand for a field of type ``tp``: a mapping that is no known
    distribution (e.g. ``{normal: [1, 4]}``, which would otherwise reach the trial as a value), or
    a float range for a whole-number field (it would sample 2.37 layers)."""
    kinds = _plain_types(tp)
    takes_mapping = any(k is Any or typing.get_origin(k) is dict or k is dict for k in kinds)
    if isinstance(value, dict) and not is_distribution(value) and not takes_mapping:
        return f"must be a value or one of the distributions {DISTRIBUTIONS}"
    if is_distribution(value) and "float" in value and kinds == [int]:
        return "takes whole numbers: search it with {int: [low, high]}"
    return None


def leaf_rule(tp: Any, value: Any, rule_of: Callable[[Any], str | None]) -> tuple[str, bool] | None:
    """The rule a leaf for a field of type ``tp`` breaks, and whether it is the field's own check
    (``rule_of``, at any of the leaf's :func:`ends`) rather than the leaf's form. None: every value
    it can take passes."""
    rule = shape_problem(tp, value)
    if rule is not None:
        return rule, False
    for v in ends(value):
        rule = rule_of(v)
        if rule is not None:
            return (f"{rule} at every value it can take" if is_distribution(value) else rule), True
    return None


def _refuse(key: str, value: Any, found: tuple[str, bool] | None, config_key: str) -> None:
    if found is not None:
        rule, own = found
        like = f", like the config's {config_key!r}" if own else ""
        raise Invalid(key, f"{rule}{like}. Got {value!r} instead.")


def _as_config(cls: type, name: str, value: Any, key: str, config_key: str) -> None:
    """Refuse a leaf that can take a value the config's ``config_key`` (field ``name`` of ``cls``)
    refuses: the space is checked by the config's own declarations, not a copy of them."""
    found = leaf_rule(typing.get_type_hints(cls)[name], value, lambda v: field_rule(cls, name, v))
    _refuse(key, value, found, config_key)


def suggest(trial: Sampler, name: str, value: Any) -> Any:
    """A fixed value as it is; a distribution sampled under ``name``."""
    if not is_distribution(value):
        return value
    if "choice" in value:
        choices = list(value["choice"])
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            return trial.suggest_categorical(name, choices)
        # lists/mappings do not persist in Optuna storage: sample their JSON text instead
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in choices]))
    lo, hi = value.get("int", value.get("float"))
    if "int" in value:
        return trial.suggest_int(
            name, int(lo), int(hi), step=int(value.get("step", 1)), log=bool(value.get("log", False))
        )
    return trial.suggest_float(name, float(lo), float(hi), log=bool(value.get("log", False)))


def size_of(value: Any) -> float:
    """How many values a leaf can take (inf for continuous ranges)."""
    if not is_distribution(value):
        return 1
    if "choice" in value:
        return len(value["choice"])
    if "float" in value:
        lo, hi = value["float"]
        return 1 if lo == hi else math.inf
    lo, hi = value["int"]
    return (int(hi) - int(lo)) // int(value.get("step", 1)) + 1


@dataclass(frozen=True)
class SpaceFile:
    """The YAML schema of a search-space file."""

    name: str
    description: str = ""
    task: str = "sequence-classification"  # the task whose transforms and losses the space names
    proxy_steps: int = 150
    proxy_examples: int = 2000
    eval_every: int | None = None
    transforms: list[dict[str, Any]] = field(default_factory=list)
    loss: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from autodistill.config.run import TASKS

        require(self.task in TASKS, "task", f"must be one of {', '.join(TASKS)}", self.task)
        require(self.proxy_steps >= 1, "proxy_steps", "must be >= 1", self.proxy_steps)
        require(self.proxy_examples >= 2, "proxy_examples", "must be >= 2", self.proxy_examples)
        require(len(self.transforms) >= 1, "transforms", "must list at least one transform", self.transforms)
        for i, t in enumerate(self.transforms):
            _check_block(t, f"transforms[{i}]")
        unknown = set(self.loss) - {"temperature", "terms", "layer_map", "weighting"}
        if unknown:
            raise Invalid(
                f"loss.{sorted(unknown)[0]}",
                "is not a known key. Allowed keys here: layer_map, temperature, terms, weighting.",
            )
        terms = self.loss.get("terms", [])
        require(isinstance(terms, list) and len(terms) >= 1, "loss.terms", "must list at least one loss term", terms)
        for i, t in enumerate(terms):
            _check_block(t, f"loss.terms[{i}]")
            if "weight" in t:
                _check_weight(t["weight"], f"loss.terms[{i}].weight")
        for key in ("temperature", "layer_map"):
            if is_distribution(self.loss.get(key)):
                check_distribution(self.loss[key], f"loss.{key}")
            if key in self.loss:
                _as_config(LossConfig, key, self.loss[key], f"loss.{key}", f"distill.loss.{key}")
        if "weighting" in self.loss:
            _check_block(self.loss["weighting"], "loss.weighting")
        for key, value in self.train.items():
            if key not in TRAIN_KNOBS:
                raise Invalid(f"train.{key}", f"is not a known key. Allowed keys here: {', '.join(TRAIN_KNOBS)}.")
            if is_distribution(value):
                check_distribution(value, f"train.{key}")
            # every value a train knob may take must be one its distill.* key accepts
            _as_config(DistillConfig, key, value, f"train.{key}", f"distill.{key}")
        if self.task == "causal-lm" and "qat" in self.train:
            raise Invalid("train.qat", "is for classifiers (their int8 ONNX export); causal LMs have none.")


def _check_weight(value: Any, key: str) -> None:
    """A loss term's weight, by the config's own check of distill.loss.terms[i].weight."""
    found = leaf_rule(float, value, lambda v: field_rule(LossConfig, "terms", [{"name": "_", "weight": v}]))
    _refuse(key, value, found, "distill.loss.terms[i].weight")


def _check_block(block: Any, key: str) -> None:
    if not isinstance(block, dict) or "name" not in block:
        raise Invalid(f"{key}.name", "is required (a registered name).")
    if is_distribution(block["name"]):
        check_distribution(block["name"], f"{key}.name")
    require(
        isinstance(block.get("optional", False), bool),
        f"{key}.optional",
        "must be true or false",
        block.get("optional"),
    )
    for k, v in block.items():
        if is_distribution(v):
            check_distribution(v, f"{key}.{k}")


@dataclass(frozen=True)
class Sample:
    """One point of the space: plain specs plus the train overrides."""

    student: StudentSpec
    loss: LossSpec
    train: dict[str, Any]
    params: dict[str, Any]


class SearchSpace:
    def __init__(self, spec: SpaceFile, source: str = "") -> None:
        self.spec = spec
        self.source = source

    @property
    def name(self) -> str:
        return self.spec.name

    def sample(self, trial: Sampler, require_stock: bool = False) -> Sample:
        """Walk the space in a fixed order, asking ``trial`` for each searched knob."""
        params: dict[str, Any] = {}

        def ask(name: str, value: Any) -> Any:
            out = suggest(trial, name, value)
            if is_distribution(value):
                params[name] = out
            return out

        steps = []
        for block in self.spec.transforms:
            s = self._block(block, "student", ask)
            if s is not None:
                steps.append(s)
        loss = self.spec.loss
        terms = [t for t in (self._block(b, "loss", ask) for b in loss.get("terms", [])) if t is not None]
        if not terms:  # every optional term switched off: fall back to the first listed term
            first = loss["terms"][0]
            terms = [Step(first["name"] if isinstance(first["name"], str) else first["name"]["choice"][0], {})]
        weighting = self._block(loss.get("weighting", {"name": "static"}), "loss.weighting", ask, force=True)
        lm = ask("loss.layer_map", loss.get("layer_map", "uniform"))
        loss_spec = LossSpec(
            terms=tuple(terms),
            temperature=float(ask("loss.temperature", loss.get("temperature", 2.0))),
            layer_map=tuple(lm) if isinstance(lm, list) else lm,
            weighting=weighting,
        )
        train = {k: ask(f"train.{k}", v) for k, v in self.spec.train.items()}
        student = StudentSpec(tuple(steps), require_stock_architecture=require_stock)
        return Sample(student, loss_spec, train, params)

    @staticmethod
    def _block(block: dict[str, Any], prefix: str, ask: Any, force: bool = False) -> Step | None:
        name = block["name"]
        label = name if isinstance(name, str) else prefix
        if isinstance(name, dict):
            name = ask(f"{prefix}.name", name)
            label = f"{prefix}.{name}"
        elif prefix == "loss":
            label = f"loss.{name}"
        if block.get("optional") and not force:
            if not ask(f"{label}.enabled", {"choice": [True, False]}):
                return None
        opts = {k: ask(f"{label}.{k}", v) for k, v in block.items() if k not in ("name", "optional")}
        return Step(name, opts)

    def size(self) -> float:
        """How many distinct points the space holds (inf when any range is continuous)."""
        total = 1.0
        for block in self.spec.transforms + list(self.spec.loss.get("terms", [])):
            inner = math.prod(size_of(v) for k, v in block.items() if k != "optional")
            total *= inner + 1 if block.get("optional") else inner
        loss = self.spec.loss
        for key in ("temperature", "layer_map"):
            total *= size_of(loss.get(key))
        total *= math.prod(size_of(v) for v in loss.get("weighting", {}).values())
        total *= math.prod(size_of(v) for v in self.spec.train.values())
        return total

    def fingerprint_dict(self) -> dict[str, Any]:
        from autodistill.config.schema import to_dict

        out = to_dict(self.spec)
        if out.get("task") == "sequence-classification":  # spaces written before the key keep their identity
            out.pop("task")
        return out


def load_space(name_or_path: str) -> SearchSpace:
    """A shipped space by name (``default``, ``fast``, ...) or a YAML file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
        raise ConfigError(
            f"The search space {name_or_path!r} does not exist. Shipped spaces: {shipped}; or give a YAML path."
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"Search space file {str(path)!r} is not valid YAML: {err}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    name = data["name"] if isinstance(data, dict) and isinstance(data["name"], str) else path.stem
    return SearchSpace(parse(SpaceFile, data, "", _where(name, str(path))), str(path))


def _where(name: str, source: str) -> str:
    """How messages name a space: its name and the file it was read from."""
    return f"search space {name!r} ({source})" if source else f"search space {name!r}"


def first_value(value: Any) -> Any:
    """A representative value of a leaf (for checking options without sampling)."""
    if not is_distribution(value):
        return value
    if "choice" in value:
        return value["choice"][0]
    return value.get("int", value.get("float"))[0]


def check_components(space: SearchSpace, components: Any) -> None:
    """Every name is registered and every option of every component parses at each value it can
    take (each end of a range, each choice); errors name the key. Run before the first trial, so a
    space that could sample an invalid point is refused whole instead of failing one trial."""
    c = components  # the task's registries (tasks.base.Components)
    where = _where(space.name, space.source)
    blocks = [(f"transforms[{i}]", b, c.transforms, ()) for i, b in enumerate(space.spec.transforms)]
    blocks += [(f"loss.terms[{i}]", b, c.losses, ("weight",)) for i, b in enumerate(space.spec.loss.get("terms", []))]
    blocks.append(("loss.weighting", space.spec.loss.get("weighting", {"name": "static"}), c.weightings, ()))
    for key, block, registry, skip in blocks:
        n = block["name"]
        for name in list(n["choice"]) if is_distribution(n) else [n]:
            if name not in registry:
                raise ConfigError(
                    f"The '{key}.name' parameter of {where} must be one of "
                    f"{', '.join(registry.names())}. Got {name!r} instead."
                )
            leaves = {k: v for k, v in block.items() if k not in ("name", "optional", *skip)}
            _check_options(registry.get(name).Options, leaves, key, where)


def _check_options(options: type, leaves: dict[str, Any], key: str, where: str) -> None:
    """Parse ``options`` with each leaf at each of its ends, the others at their first value."""
    hints = typing.get_type_hints(options)
    for k, leaf in leaves.items():
        rule = shape_problem(hints[k], leaf) if k in hints else None  # parse names unknown keys
        if rule is not None:
            raise ConfigError(f"The '{key}.{k}' parameter of {where} {rule}. Got {leaf!r} instead.")
    first = {k: first_value(v) for k, v in leaves.items()}
    parse(options, first, key, where)
    for k, leaf in leaves.items():
        for v in ends(leaf)[1:] if is_distribution(leaf) else []:
            parse(options, {**first, k: v}, key, where)
