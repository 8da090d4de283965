"""Attention-head pruning: keep the most important heads of each layer.

Importance is the head-mask gradient (first-order Taylor) score of Michel et al. 2019, "Are
Sixteen Heads Really Better than One?", measured on calibration batches; ``score: magnitude``
(the L2 norm of a head's q/k/v/output weights) needs no data. ``ratio`` is the fraction of heads
kept: one number (per layer, or over all layers with ``scope: global``) or one per layer. Every
layer keeps at least one head. Fewer heads at an unchanged hidden size need the registered
architecture (``heads * head_dim != hidden``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from autodistill.config.schema import Invalid, require
from autodistill.student import importance as imp
from autodistill.student.base import BuildContext, Transform, register
from autodistill.student.shape import ModelShape
from autodistill.student.statedict import dense_weight, head_rows, layer_key, slice_in, slice_out


@dataclass(frozen=True)
class HeadsOptions:
    ratio: float | list[float] = field(metadata={"help": "fraction of heads kept (0, 1], or one per layer"})
    scope: Literal["layer", "global"] = field(default="layer", metadata={"help": "ratio per layer or overall"})
    score: Literal["gradient", "fisher", "magnitude"] = field(
        default="gradient", metadata={"help": "importance score: gradient, fisher (per-example squared) or magnitude"}
    )

    def __post_init__(self) -> None:
        ratios = [self.ratio] if isinstance(self.ratio, float) else self.ratio
        require(all(0 < r <= 1 for r in ratios), "ratio", "must be in (0, 1]", self.ratio)
        ok = self.scope == "layer" or isinstance(self.ratio, float)
        require(ok, "scope", "must be 'layer' when ratio lists one value per layer", self.scope)


def _head_cost(shape: ModelShape, i: int) -> int:
    """Parameters one head of layer ``i`` holds (q/k/v rows and biases, output columns)."""
    layer = shape.layers[i]
    width = {name: layer.ranks.get(name, shape.hidden) for name in ("query", "key", "value", "attn_out")}
    return layer.head_dim * (width["query"] + width["key"] + width["value"] + 3 + width["attn_out"])


def _counts(shape: ModelShape, options: HeadsOptions) -> list[int]:
    sizes = [layer.heads for layer in shape.layers]
    if options.scope == "global":
        if len({_head_cost(shape, i) for i in range(shape.num_layers)}) > 1:
            raise Invalid("scope", "'global' needs heads of one size in every layer; prune heads before low_rank")
        return imp.even_split(sizes, imp.global_total(sizes, options.ratio))
    return imp.layer_counts(sizes, imp.ratios_per_layer(options.ratio, shape.num_layers))


def _with_heads(shape: ModelShape, counts: list[int]) -> ModelShape:
    return shape.replace_layers([replace(layer, heads=k) for layer, k in zip(shape.layers, counts)])


def _magnitude_scores(model: Any, shape: ModelShape) -> list[torch.Tensor]:
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    scores = []
    for i, layer in enumerate(shape.layers):
        rows = [dense_weight(state, layer_key(i, n)).view(layer.heads, -1) for n in ("query", "key", "value")]
        cols = dense_weight(state, layer_key(i, "attn_out")).t().reshape(layer.heads, -1)
        scores.append(torch.cat([*rows, cols], dim=1).norm(dim=1))
    return scores


@register
class Heads(Transform):
    name = "heads"
    within_layers = True
    Options = HeadsOptions
    needs_model = True
    example_options = {"ratio": 0.5}

    def plan_exactness(self, options: HeadsOptions) -> str:
        return "count" if options.scope == "global" else "exact"

    def plan(self, shape: ModelShape, options: HeadsOptions, ctx: BuildContext) -> ModelShape:
        return _with_heads(shape, _counts(shape, options))

    def stage_options(self, start: ModelShape, now: ModelShape, options: HeadsOptions, remaining: int) -> HeadsOptions:
        final = _counts(start, options)
        now_counts = [layer.heads for layer in now.layers]
        return replace(options, ratio=imp.stage_ratio(now_counts, final, remaining, options.scope))

    def resolve(self, model: Any, shape: ModelShape, options: HeadsOptions, ctx: BuildContext) -> dict[str, Any]:
        counts = _counts(shape, options)
        if options.score == "magnitude":
            scores = _magnitude_scores(model, shape)
        else:
            scores = imp.head_scores(
                model, imp.require_calibration(ctx, "heads", f"score: {options.score}"), options.score == "fisher"
            )
        if options.scope == "global":
            keep = imp.top_global(scores, sum(counts))
        else:
            keep = imp.top_per_layer(scores, counts)
        return {"keep": keep, "scores": [[round(float(v), 8) for v in s] for s in scores]}

    def apply(self, state: dict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[dict, ModelShape]:
        state = dict(state)
        keep = resolved["keep"]
        for i, heads in enumerate(keep):
            rows = head_rows(heads, shape.layers[i].head_dim)
            for name in ("query", "key", "value"):
                slice_out(state, layer_key(i, name), rows)
            slice_in(state, layer_key(i, "attn_out"), rows)
        return state, _with_heads(shape, [len(h) for h in keep])
