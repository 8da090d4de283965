"""LoRA students (Hu et al. 2022) through peft: train low-rank adapters instead of all weights.

LoRA acts on training, not on the weights the student starts from: ``plan`` and ``apply`` leave
the shape and the state unchanged, ``wrap`` adds adapters to the built student (only adapters and
the classifier head train), and ``unwrap`` merges them into the weights, so the saved student is
the plain model with exactly the planned parameter count and no peft modules. Usually placed last,
on top of a pruned or truncated student.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from autodistill.config.schema import require
from autodistill.errors import ConfigError
from autodistill.student.base import BuildContext, StateDict, Transform, register
from autodistill.student.shape import ModelShape


@dataclass(frozen=True)
class LoraOptions:
    r: int = field(default=8, metadata={"help": "rank of each adapter"})
    alpha: float = field(default=16.0, metadata={"help": "scale: the update is (alpha / r) * B @ A"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    target_modules: list[str] = field(
        default_factory=lambda: ["query", "value"],
        metadata={"help": "module names (BERT: query, key, value, dense) that get adapters"},
    )

    def __post_init__(self) -> None:
        require(self.r > 0, "r", "must be > 0", self.r)
        require(self.alpha > 0, "alpha", "must be > 0", self.alpha)
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)", self.dropout)
        require(len(self.target_modules) > 0, "target_modules", "must name at least one module", self.target_modules)


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters the optimizer will update (``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def is_wrapped(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@register
class Lora(Transform):
    name = "lora"
    Options = LoraOptions
    example_options: ClassVar[dict] = {"r": 4, "alpha": 8.0, "target_modules": ["query", "value"]}

    def plan(self, shape: ModelShape, options: LoraOptions, ctx: BuildContext) -> ModelShape:
        return shape  # merged adapters add no parameters to the saved student

    def resolve(self, model: Any, shape: ModelShape, options: LoraOptions, ctx: BuildContext) -> dict[str, Any]:
        return {
            "r": options.r,
            "alpha": float(options.alpha),
            "dropout": float(options.dropout),
            "target_modules": list(options.target_modules),
        }

    def apply(self, state: StateDict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[StateDict, ModelShape]:
        return state, shape

    def wrap(self, model: Any, resolved: dict[str, Any]) -> Any:
        """A peft model: adapters on the target modules, the classifier head trained in full
        (SEQ_CLS puts ``classifier`` in ``modules_to_save``), every other weight frozen.

        The adapters' random initialisation draws from its own seeded generator state, so the same
        record always starts from the same adapters: a trial's proxy run can be rerun exactly."""
        import torch
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=resolved["r"],
            lora_alpha=resolved["alpha"],
            lora_dropout=resolved["dropout"],
            target_modules=list(resolved["target_modules"]),
        )
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(resolved.get("init_seed", 0)))
                return get_peft_model(model, config)
        except ValueError as err:  # peft: no module matched, or a module type it cannot adapt
            names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
            reason = str(err).split("\n", 1)[0]  # peft's message may go on with a module's repr
            raise ConfigError(
                f"The 'lora.target_modules' parameter must name Linear modules of the student (for example "
                f"{', '.join(n for n in names if n != 'classifier')}; a low-rank factored layer has 'NAME.down' and "
                f"'NAME.up'). Got {list(resolved['target_modules'])} instead (peft: {reason})."
            ) from None

    def unwrap(self, model: Any, resolved: dict[str, Any]) -> Any:
        """Merge the adapters into the weights and return the plain model (no peft modules)."""
        if not is_wrapped(model):
            return model
        return model.merge_and_unload()
