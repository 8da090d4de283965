"""FFN width pruning: keep the most important intermediate neurons of each layer.

Importance is the neuron-mask gradient (first-order Taylor) score, as for heads (Michel et al.
2019; the same score ranks FFN neurons in Kwon et al. 2022, "A Fast Post-Training Pruning
Framework for Transformers"), measured on calibration batches; ``score: magnitude`` (the L2 norm
of a neuron's input row and output column) needs no data. ``ratio`` is the fraction of neurons
kept: one number (per layer, or over all layers with ``scope: global``) or one per layer. One
ratio per layer on a uniform teacher keeps a stock architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from autodistill.config.schema import Invalid, require
from autodistill.student import importance as imp
from autodistill.student.base import BuildContext, Transform, register
from autodistill.student.shape import ModelShape
from autodistill.student.statedict import dense_weight, layer_key, slice_in, slice_out


@dataclass(frozen=True)
class FfnOptions:
    ratio: float | list[float] = field(metadata={"help": "fraction of neurons kept (0, 1], or one per layer"})
    scope: Literal["layer", "global"] = field(default="layer", metadata={"help": "ratio per layer or overall"})
    score: Literal["gradient", "fisher", "magnitude"] = field(
        default="gradient", metadata={"help": "importance score: gradient, fisher (per-example squared) or magnitude"}
    )
    multiple_of: int = field(default=1, metadata={"help": "round kept widths down to a multiple (GPU-friendly)"})

    def __post_init__(self) -> None:
        ratios = [self.ratio] if isinstance(self.ratio, float) else self.ratio
        require(all(0 < r <= 1 for r in ratios), "ratio", "must be in (0, 1]", self.ratio)
        ok = self.scope == "layer" or isinstance(self.ratio, float)
        require(ok, "scope", "must be 'layer' when ratio lists one value per layer", self.scope)
        require(self.multiple_of >= 1, "multiple_of", "must be >= 1", self.multiple_of)
        ok = self.multiple_of == 1 or self.scope == "layer"
        require(ok, "multiple_of", "must be 1 with scope 'global'", self.multiple_of)


def _neuron_cost(shape: ModelShape, i: int) -> int:
    ranks = shape.layers[i].ranks
    return ranks.get("ffn_in", shape.hidden) + 1 + ranks.get("ffn_out", shape.hidden)


def _counts(shape: ModelShape, options: FfnOptions) -> list[int]:
    sizes = [layer.ffn for layer in shape.layers]
    if options.scope == "global":
        if len({_neuron_cost(shape, i) for i in range(shape.num_layers)}) > 1:
            raise Invalid("scope", "'global' needs neurons of one size in every layer; prune ffn before low_rank")
        return imp.even_split(sizes, imp.global_total(sizes, options.ratio))
    counts = imp.layer_counts(sizes, imp.ratios_per_layer(options.ratio, shape.num_layers))
    m = options.multiple_of
    return [max(min(m, n), (k // m) * m) for k, n in zip(counts, sizes)]


def _with_ffn(shape: ModelShape, counts: list[int]) -> ModelShape:
    return shape.replace_layers([replace(layer, ffn=k) for layer, k in zip(shape.layers, counts)])


def _magnitude_scores(model: Any, shape: ModelShape) -> list[torch.Tensor]:
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    scores = []
    for i in range(shape.num_layers):
        rows = dense_weight(state, layer_key(i, "ffn_in"))  # (ffn, hidden)
        cols = dense_weight(state, layer_key(i, "ffn_out")).t()  # (ffn, hidden)
        scores.append(torch.cat([rows, cols], dim=1).norm(dim=1))
    return scores


@register
class Ffn(Transform):
    name = "ffn"
    within_layers = True
    Options = FfnOptions
    needs_model = True
    example_options = {"ratio": 0.5}

    def plan_exactness(self, options: FfnOptions) -> str:
        return "count" if options.scope == "global" else "exact"

    def plan(self, shape: ModelShape, options: FfnOptions, ctx: BuildContext) -> ModelShape:
        return _with_ffn(shape, _counts(shape, options))

    def stage_options(self, start: ModelShape, now: ModelShape, options: FfnOptions, remaining: int) -> FfnOptions:
        final = _counts(start, options)
        ratio = imp.stage_ratio([layer.ffn for layer in now.layers], final, remaining, options.scope)
        # rounding to a multiple only where the width is final (it is one already)
        return replace(options, ratio=ratio, multiple_of=options.multiple_of if remaining == 1 else 1)

    def resolve(self, model: Any, shape: ModelShape, options: FfnOptions, ctx: BuildContext) -> dict[str, Any]:
        counts = _counts(shape, options)
        if options.score == "magnitude":
            scores = _magnitude_scores(model, shape)
        else:
            scores = imp.ffn_scores(
                model, imp.require_calibration(ctx, "ffn", f"score: {options.score}"), options.score == "fisher"
            )
        if options.scope == "global":
            keep = imp.top_global(scores, sum(counts))
        else:
            keep = imp.top_per_layer(scores, counts)
        # the kept indices are the record; scores of thousands of neurons would bloat it
        return {"keep": keep}

    def apply(self, state: dict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[dict, ModelShape]:
        state = dict(state)
        for i, neurons in enumerate(resolved["keep"]):
            idx = torch.as_tensor(neurons, dtype=torch.long)
            slice_out(state, layer_key(i, "ffn_in"), idx)
            slice_in(state, layer_key(i, "ffn_out"), idx)
        return state, _with_ffn(shape, [len(k) for k in resolved["keep"]])
