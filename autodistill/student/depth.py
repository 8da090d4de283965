"""Depth: keep k of the teacher's encoder layers, initialised from the teacher's weights.

``uniform`` keeps evenly spaced layers starting with the first (k=3 of 6: 0, 2, 4, every other
layer as DistilBERT did, Sanh et al. 2019); ``first`` / ``last`` keep the bottom / top k;
``layers_to_keep`` lists them; ``importance`` keeps the k layers whose removal raises the
calibration loss most (one layer skipped at a time, as in the layer-dropping study of Sajjad et
al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from autodistill.config.schema import Invalid, require
from autodistill.student import importance
from autodistill.student.base import BuildContext, Transform, register
from autodistill.student.shape import ModelShape
from autodistill.student.statedict import keep_layers

CHOICES = ("uniform", "first", "last", "explicit", "importance")


@dataclass(frozen=True)
class DepthOptions:
    layers: int | None = field(default=None, metadata={"help": "how many layers to keep"})
    choice: Literal["uniform", "first", "last", "explicit", "importance"] = field(
        default="uniform", metadata={"help": "how to pick them"}
    )
    layers_to_keep: list[int] | None = field(
        default=None, metadata={"help": "explicit teacher layer indices (choice 'explicit')"}
    )

    def __post_init__(self) -> None:
        if self.layers_to_keep is not None:
            ok = self.choice in ("explicit", "uniform")
            require(ok, "choice", "must be 'explicit' (or left out) with layers_to_keep", self.choice)
            require(len(self.layers_to_keep) > 0, "layers_to_keep", "must list at least one layer", self.layers_to_keep)
            dup = len(set(self.layers_to_keep)) != len(self.layers_to_keep)
            require(not dup, "layers_to_keep", "must not repeat a layer", self.layers_to_keep)
            n = self.layers
            require(n is None or n == len(self.layers_to_keep), "layers", "must equal len(layers_to_keep)", n)
        else:
            require(self.choice != "explicit", "layers_to_keep", "is required when choice is 'explicit'", None)
            require(self.layers is not None, "layers", "is required (how many layers to keep)", None)
            require(self.layers >= 1, "layers", "must be >= 1", self.layers)


def uniform_layers(total: int, k: int) -> list[int]:
    """k evenly spaced indices of ``range(total)`` starting at 0 (6, 3 -> 0, 2, 4)."""
    return [(j * total) // k for j in range(k)]


def _count(options: DepthOptions) -> int:
    return len(options.layers_to_keep) if options.layers_to_keep is not None else options.layers


def _fixed_choice(n: int, options: DepthOptions) -> list[int]:
    k = _count(options)
    if options.layers_to_keep is not None:
        return sorted(options.layers_to_keep)
    if options.choice == "first":
        return list(range(k))
    if options.choice == "last":
        return list(range(n - k, n))
    return uniform_layers(n, k)


@register
class Depth(Transform):
    name = "depth"
    Options = DepthOptions
    example_options = {"layers": 2, "choice": "uniform"}

    def wants_model(self, options: DepthOptions) -> bool:
        return options.choice == "importance" and options.layers_to_keep is None

    def plan(self, shape: ModelShape, options: DepthOptions, ctx: BuildContext) -> ModelShape:
        n = shape.num_layers
        k = _count(options)
        if options.layers_to_keep is not None:
            bad = [i for i in options.layers_to_keep if not 0 <= i < n]
            if bad:
                raise Invalid("layers_to_keep", f"must hold layer indices in [0, {n - 1}]. Got {bad} instead.")
        elif k > n:
            raise Invalid("layers", f"must be <= the {n} layers of the model it prunes. Got {k} instead.")
        if options.choice == "importance" and options.layers_to_keep is None:
            # with unequal layers the kept sizes, hence the count, would depend on data
            if any(layer != shape.layers[0] for layer in shape.layers):
                raise Invalid("choice", "'importance' needs layers of one shape; put depth before per-layer pruning")
            return replace(shape, layers=shape.layers[:k])
        keep = _fixed_choice(n, options)
        return replace(shape, layers=tuple(shape.layers[i] for i in keep))

    def resolve(self, model: Any, shape: ModelShape, options: DepthOptions, ctx: BuildContext) -> dict[str, Any]:
        n, k = shape.num_layers, _count(options)
        if options.choice != "importance" or options.layers_to_keep is not None:
            return {"keep": _fixed_choice(n, options)}
        batches = importance.require_calibration(ctx, "depth", "choice: importance")
        rise = importance.layer_skip_loss_rise(model, batches)
        order = sorted(range(n), key=lambda i: (-rise[i], i))
        return {"keep": sorted(order[:k]), "loss_rise": [float(r) for r in rise]}

    def apply(self, state: dict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[dict, ModelShape]:
        keep = list(resolved["keep"])
        return keep_layers(state, keep), replace(shape, layers=tuple(shape.layers[i] for i in keep))
