"""Plain frozen values passed between stages: config -> specs -> build -> distill -> evaluate.

Specs hold only primitives, names and mappings, so they serialize to JSON (MLflow params, the
Optuna study, ``result.json``) and a stage can be rerun from them alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, get_args, get_type_hints

from autodistill.errors import PickError


@dataclass(frozen=True)
class Step:
    """One registered component and its options: a transform, a loss term, a weighting scheme."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        opts = {k: v for k, v in data.items() if k != "name"}
        return cls(name=data["name"], options=opts)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class StudentSpec:
    """How to make the student from the teacher: transforms applied in order."""

    transforms: tuple[Step, ...]
    require_stock_architecture: bool = False

    @classmethod
    def from_config(cls, student_cfg: Any) -> StudentSpec:
        steps = tuple(Step.from_dict(t) for t in student_cfg.transforms)
        return cls(transforms=steps, require_stock_architecture=student_cfg.require_stock_architecture)

    def to_dict(self) -> dict[str, Any]:
        return {
            "transforms": [s.to_dict() for s in self.transforms],
            "require_stock_architecture": self.require_stock_architecture,
        }


@dataclass(frozen=True)
class LossSpec:
    """What the student learns from: weighted terms, temperature, layer map, weighting scheme."""

    terms: tuple[Step, ...]
    temperature: float = 2.0
    layer_map: str | tuple[int, ...] = "uniform"
    weighting: Step = Step("static")

    @classmethod
    def from_config(cls, loss_cfg: Any) -> LossSpec:
        lm = loss_cfg.layer_map
        return cls(
            terms=tuple(Step.from_dict(t) for t in loss_cfg.terms),
            temperature=loss_cfg.temperature,
            layer_map=tuple(lm) if isinstance(lm, list) else lm,
            weighting=Step.from_dict(loss_cfg.weighting),
        )

    def to_dict(self) -> dict[str, Any]:
        lm = list(self.layer_map) if isinstance(self.layer_map, tuple) else self.layer_map
        return {
            "terms": [t.to_dict() for t in self.terms],
            "temperature": self.temperature,
            "layer_map": lm,
            "weighting": self.weighting.to_dict(),
        }


@dataclass(frozen=True)
class TrainSpec:
    """The optimisation of one distillation run (proxy or full)."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int | None = None
    device: str = "auto"
    bf16: bool = True
    seed: int = 0
    prune_after: float = 0.0  # distill.prune_after: the share of steps before within-layer transforms apply
    prune_stages: int = 1  # distill.prune_stages: heads and FFN pruned gradually, in this many stages
    ema: float = 0.0  # distill.ema: > 0, the decay of the weight average that is evaluated and kept
    dropout: float | None = None  # distill.dropout: the student's dropout rate while it trains (None: its config's)
    # stop after this many validation checkpoints without a gain (train.stopping.Patience); None: run all steps
    patience: int | None = None
    # what the student learns from (distill.combine, distill.assistant): read by the task's distillation
    combine: str = "mean"
    assistant: int | None = None
    # distill.qat: > 0, the last share of the steps trains with int8 fake quantisation (train.qat)
    qat: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# the rule's caps: with any of them the pick is the best quality under them
LIMIT_FIELDS = ("max_params", "max_latency_ms", "max_size_mb", "min_speedup")


def flag_of(name: str) -> str:
    """The command-line flag of a rule field: ``max_params`` -> ``--max-params``."""
    return "--" + name.replace("_", "-")


def _rule_field(help: str, default: Any = None) -> Any:
    # declared once: the CLI's flags, api.export's arguments and the config's export keys all read
    # these fields (``rule_options``); ``help`` is the flag's help text
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class PickRule:
    """How ``export`` picks a trial: caps, a quality floor, one trial, or nothing (the knee)."""

    max_params: int | None = _rule_field("best quality with at most N parameters (total)")
    max_latency_ms: float | None = _rule_field("best quality under this batch-1 latency (ms)")
    max_size_mb: float | None = _rule_field("best quality under this size (MB)")
    min_speedup: float | None = _rule_field(
        "best quality at least X times faster than the teacher at batch 1 (as the search measured both)"
    )
    min_quality: float | None = _rule_field("smallest student with validation quality >= Q")
    min_relative_quality: float | None = _rule_field("smallest student with validation quality >= R x the teacher's")
    trial: int | None = _rule_field("export this trial number")
    # the best K under the limits are final-trained; the best validation wins
    candidates: int = _rule_field(
        "with limits: train the best K trials in full and keep the best validation (K times the work; default 1)", 1
    )

    def __post_init__(self) -> None:
        found = self.problem()
        if found is not None:
            name, text = found
            raise PickError(f"The '{self._term(name)}' option {text}")

    @staticmethod
    def _term(name: str) -> str:
        """How a message names a rule field: here its flag (the config's section names its key)."""
        return flag_of(name)

    def problem(self) -> tuple[str, str] | None:
        """The first broken check, as (field, what is wrong), or None."""
        t = self._term
        for name in LIMIT_FIELDS:
            v = getattr(self, name)
            if v is not None and not v > 0:
                return name, f"must be > 0. Got {v} instead."
        if self.min_quality is not None and not 0 <= self.min_quality <= 1:
            return "min_quality", f"must be in [0, 1]. Got {self.min_quality} instead."
        if self.min_relative_quality is not None and not 0 < self.min_relative_quality <= 1.5:
            return "min_relative_quality", f"must be in (0, 1.5]. Got {self.min_relative_quality} instead."
        if self.trial is not None:
            if self.trial < 0:
                return "trial", f"must be a trial number >= 0. Got {self.trial} instead."
            others = [t(n) for n in RULE_FIELDS if n != "trial" and getattr(self, n) is not None]
            if others:
                return "trial", f"picks one trial and cannot be combined with {', '.join(others)}."
        if self.candidates < 1:
            return "candidates", f"must be >= 1. Got {self.candidates} instead."
        ranks_by_quality = self.limited and self.min_quality is None and self.min_relative_quality is None
        if self.candidates > 1 and not ranks_by_quality:
            limits = ", ".join(t(n) for n in LIMIT_FIELDS)
            return (
                "candidates",
                f"compares the best trials under limits ({limits}); it cannot be used with a quality floor, "
                f"{t('trial')} or the knee.",
            )
        return None

    @property
    def limited(self) -> bool:
        return any(getattr(self, n) is not None for n in LIMIT_FIELDS)

    @property
    def needs_teacher(self) -> bool:
        return self.min_relative_quality is not None

    def given(self) -> dict[str, Any]:
        """The rule's set fields, named as ``_term`` names them (flags here, keys in the config)."""
        names = [n for n in RULE_FIELDS if getattr(self, n) is not None]
        names += ["candidates"] if self.candidates > 1 else []
        return {self._term(n): getattr(self, n) for n in names}

    def describe(self) -> str:
        given = self.given()
        return " ".join(f"{f} {v}" for f, v in given.items()) if given else "the knee of the Pareto front"


# the fields of a pick rule a user sets (besides ``candidates``), in the order messages list them
RULE_FIELDS = tuple(f.name for f in fields(PickRule) if f.name != "candidates")


@dataclass(frozen=True)
class RuleOption:
    """One pick-rule field as a command-line flag or keyword argument."""

    name: str
    flag: str
    type: type
    help: str


def rule_options() -> tuple[RuleOption, ...]:
    """The fields of ``PickRule`` in order, each with its flag, value type and help."""
    hints = get_type_hints(PickRule)
    out = []
    for f in fields(PickRule):
        kinds = [t for t in get_args(hints[f.name]) if t is not type(None)] or [hints[f.name]]
        out.append(RuleOption(f.name, flag_of(f.name), kinds[0], f.metadata["help"]))
    return tuple(out)
