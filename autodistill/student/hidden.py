"""Hidden-size (embedding channel) pruning, as in Minitron (Muralidharan et al. 2024, "Compact
Language Models via Pruning and Knowledge Distillation").

One subset of the hidden channels is kept everywhere the residual stream appears: the word,
position and token-type embeddings and their LayerNorm, every layer's q/k/v and FFN inputs, its
attention-output and FFN outputs and both LayerNorms, the pooler and the classifier. Importance is
the mean absolute LayerNorm output of each channel over calibration tokens, summed over all
LayerNorms (Minitron's activation-based score); ``score: magnitude`` (the L2 norm of the channel's
embedding columns) needs no data. ``ratio`` is the fraction of channels kept. The attention width
(heads x head_dim) is unchanged, so the student needs the registered architecture unless a
``heads`` step brings heads x head_dim down to the new hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from autodistill.config.schema import require
from autodistill.student import importance as imp
from autodistill.student.base import BuildContext, Transform, register
from autodistill.student.shape import ModelShape
from autodistill.student.statedict import LAYER_PREFIX, WORD_EMBEDDINGS, layer_key, slice_in, slice_out

_EMB = "bert.embeddings"


@dataclass(frozen=True)
class HiddenOptions:
    ratio: float = field(metadata={"help": "fraction of hidden channels kept, in (0, 1]"})
    score: Literal["activation", "magnitude"] = field(default="activation", metadata={"help": "importance"})
    multiple_of: int = field(default=1, metadata={"help": "round the new hidden size down to a multiple"})

    def __post_init__(self) -> None:
        require(0 < self.ratio <= 1, "ratio", "must be in (0, 1]", self.ratio)
        require(self.multiple_of >= 1, "multiple_of", "must be >= 1", self.multiple_of)


def _new_hidden(shape: ModelShape, options: HiddenOptions) -> int:
    k = max(1, round(options.ratio * shape.hidden))
    m = options.multiple_of
    return max(min(m, shape.hidden), (k // m) * m)


@register
class Hidden(Transform):
    name = "hidden"
    within_layers = True
    Options = HiddenOptions
    needs_model = True
    example_options = {"ratio": 0.5}

    def plan(self, shape: ModelShape, options: HiddenOptions, ctx: BuildContext) -> ModelShape:
        return replace(shape, hidden=_new_hidden(shape, options))

    def resolve(self, model: Any, shape: ModelShape, options: HiddenOptions, ctx: BuildContext) -> dict[str, Any]:
        if options.score == "magnitude":
            emb = model.bert.embeddings
            with torch.no_grad():  # the channel's column norm over the word, position and type tables
                tables = [emb.word_embeddings.weight, emb.position_embeddings.weight, emb.token_type_embeddings.weight]
                scores = torch.cat([t.float() for t in tables], dim=0).norm(dim=0)
        else:
            scores = imp.layernorm_channel_scores(model, imp.require_calibration(ctx, "hidden", "score: activation"))
        k = _new_hidden(shape, options)
        keep = sorted(torch.argsort(scores.cpu(), descending=True, stable=True)[:k].tolist())
        return {"keep": keep}

    def apply(self, state: dict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[dict, ModelShape]:
        state = dict(state)
        idx = torch.as_tensor(resolved["keep"], dtype=torch.long)

        def cols(key: str) -> None:
            state[key] = state[key][:, idx].clone()

        def rows(key: str) -> None:
            state[key] = state[key][idx].clone()

        if f"{WORD_EMBEDDINGS}.proj.weight" in state:  # factored: only the rank -> hidden map has channels
            rows(f"{WORD_EMBEDDINGS}.proj.weight")
        else:
            cols(f"{WORD_EMBEDDINGS}.weight")
        cols(f"{_EMB}.position_embeddings.weight")
        cols(f"{_EMB}.token_type_embeddings.weight")
        for p in ("weight", "bias"):
            rows(f"{_EMB}.LayerNorm.{p}")
        for i in range(shape.num_layers):
            for name in ("query", "key", "value", "ffn_in"):
                slice_in(state, layer_key(i, name), idx)
            for name in ("attn_out", "ffn_out"):
                slice_out(state, layer_key(i, name), idx)
            for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
                for p in ("weight", "bias"):
                    rows(f"{LAYER_PREFIX}.{i}.{norm}.{p}")
        state["bert.pooler.dense.weight"] = state["bert.pooler.dense.weight"][idx][:, idx].clone()
        rows("bert.pooler.dense.bias")
        cols("classifier.weight")
        return state, replace(shape, hidden=len(resolved["keep"]))
