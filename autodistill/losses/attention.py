"""Attention losses between mapped layers: TinyBERT's attention-map MSE (equal head counts) and
MiniLMv2's multi-head self-attention relation transfer (any head counts). Hidden index i pairs
with attention layer i - 1; the embedding index 0 has no attention and is skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from autodistill.config.schema import parse, require
from autodistill.errors import ConfigError
from autodistill.losses.base import DistillBatch, LayerMap, Loss, LossDims, register, require_input, token_mask


def _layer_pairs(loss: Loss) -> LayerMap:
    pairs = [(s, t) for s, t in loss.layer_map if s >= 1 and t >= 1]
    if not pairs:
        raise ConfigError(
            f"The loss {loss.name!r} ({loss.key}) needs 'distill.loss.layer_map' to map at least one "
            f"transformer layer (index >= 1). Got {loss.layer_map!r} instead."
        )
    return pairs


@register
class AttentionMSE(Loss):
    """TinyBERT attention loss (Jiao et al. 2020), per mapped pair (m -> g(m)), on attention
    probabilities A [B, H, L, L] with padded queries and keys left out:

        ``(1 / (H * N)) * sum_h sum_{real i} sum_{real j} (A_s^m[h, i, j] - A_t^g(m)[h, i, j])^2``

    N = number of real query tokens. Each query row is summed over keys (not averaged) so the value
    does not shrink as sequences grow. TinyBERT fits the pre-softmax scores; the cache holds
    probabilities (what HF returns), so this fits those. Needs equal head counts.
    """

    name = "attention_mse"
    needs = frozenset({"attentions"})
    per_layer = True

    def __init__(self, dims: LossDims, layer_map: LayerMap | None = None, **kwargs) -> None:
        super().__init__(dims, layer_map, **kwargs)
        self._pairs = _layer_pairs(self)
        for s, _ in self._pairs:
            if dims.student_heads and dims.teacher_heads and s - 1 < len(dims.student_heads):
                self._check_heads(s, dims.student_heads[s - 1], dims.teacher_heads)

    def _check_heads(self, s: int, h_s: int, h_t: int) -> None:
        if h_s != h_t:
            raise ConfigError(
                f"The loss 'attention_mse' ({self.key}) needs equal head counts, but student layer {s} has "
                f"{h_s} heads and the teacher {h_t}. Use the loss 'attention_relation' (MiniLMv2 relation "
                f"transfer), which works with any head counts."
            )

    def pairs(self) -> LayerMap:
        return list(self._pairs)

    def teacher_attention_layers(self) -> list[int]:
        return sorted({t - 1 for _, t in self._pairs})

    def forward(self, batch: DistillBatch) -> list[torch.Tensor]:
        s_att = require_input(batch.student_attentions, self, "student_attentions")
        t_att = require_input(batch.teacher_attentions, self, "teacher_attentions")
        mask = token_mask(batch)
        pair_mask = mask[:, None, :, None] * mask[:, None, None, :]  # [B, 1, L, L]
        out = []
        for s, t in self._pairs:
            a_s, a_t = s_att[s - 1].float(), t_att[t - 1].float()
            self._check_heads(s, a_s.shape[1], a_t.shape[1])
            sq = (a_s - a_t).pow(2) * pair_mask
            out.append(sq.sum() / (a_s.shape[1] * mask.sum().clamp_min(1.0)))
        return out


def relation_log_probs(x: torch.Tensor, y: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """MiniLMv2 relation: split the widths of ``x, y [B, L, d]`` into ``heads`` relation heads and
    return ``log softmax(x_r y_r^T / sqrt(d_r))`` over real keys, ``[B, heads, L, L]``."""
    b, n, d = x.shape
    d_r = d // heads
    xr = x.reshape(b, n, heads, d_r).transpose(1, 2)
    yr = y.reshape(b, n, heads, d_r).transpose(1, 2)
    scores = xr @ yr.transpose(-1, -2) / d_r**0.5
    scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    return torch.log_softmax(scores, dim=-1)


def row_kl(log_p: torch.Tensor, log_q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(p || q)`` per query row over real keys, averaged over heads and real query rows."""
    key_mask = mask[:, None, None, :] > 0
    # where(), not a product: padded keys hold -inf-like logs whose difference may be nan
    kl = torch.where(key_mask, log_p.exp() * (log_p - log_q), torch.zeros_like(log_p)).sum(-1)  # [B, R, L]
    row = mask[:, None, :]
    return (kl * row).sum() / (kl.shape[1] * row.sum().clamp_min(1.0))


def _head_mean_log_probs(att: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Head-averaged attention, renormalised over real keys: ``log mean_h A[h]``, ``[B, 1, L, L]``."""
    p = att.float().mean(1, keepdim=True) * mask[:, None, None, :]
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    return p.clamp_min(1e-12).log()


@dataclass(frozen=True)
class RelationOptions:
    # "qkv": MiniLMv2 proper, from the query/key/value projections (needs capture, see capture.py);
    # "hidden": from the layer outputs (hidden states) and head-averaged attention probabilities
    source: Literal["qkv", "hidden"] = "qkv"
    # qkv: any of qq, kk, vv; hidden: any of hh (hidden self-relation), attn (head-mean attention)
    relations: list[str] = field(default_factory=list)
    # relation heads; must divide every compared width (None: the teacher's head count)
    relation_heads: int | None = None
    # MiniLMv2 transfers one layer pair (the last mapped one); "all" uses every mapped pair
    layers: Literal["last", "all"] = "last"

    def __post_init__(self) -> None:
        allowed = ("qq", "kk", "vv") if self.source == "qkv" else ("hh", "attn")
        require(len(set(self.relations)) == len(self.relations), "relations", "must not repeat", self.relations)
        for r in self.relations:
            require(
                r in allowed,
                "relations",
                f"must be a list of {', '.join(allowed)} for source '{self.source}'",
                self.relations,
            )
        require(
            self.relation_heads is None or self.relation_heads >= 1,
            "relation_heads",
            "must be >= 1",
            self.relation_heads,
        )


def _relations(opts: RelationOptions) -> tuple[str, ...]:
    return tuple(opts.relations) or (("qq", "kk", "vv") if opts.source == "qkv" else ("hh", "attn"))


def _relation_needs(opts: RelationOptions) -> frozenset[str]:
    """``source: qkv`` reads the Q/K/V projections; ``source: hidden`` the layer outputs, and the
    attention probabilities as well when the head-mean attention relation is on."""
    if opts.source == "qkv":
        return frozenset({"qkv"})
    return frozenset({"hidden"} | ({"attentions"} if "attn" in _relations(opts) else set()))


@register
class AttentionRelation(Loss):
    """MiniLMv2 multi-head self-attention relation transfer (Wang et al. 2021, "MiniLMv2:
    Multi-Head Self-Attention Relation Distillation for Compressing Pretrained Transformers").
    For each relation X in {Q-Q, K-K, V-V}, concatenated heads are re-split into R relation heads
    (R need not equal either model's head count) and, per relation head r and real query i,

        ``R_X[r] = softmax(X_r X_r^T / sqrt(d_r))``,  loss = ``sum_X mean_{r, i} KL(R_X^t[r, i] || R_X^s[r, i])``

    over real keys. ``source: hidden`` is a cheaper variant that needs no Q/K/V capture: the
    relation of the layer outputs H-H (value-like) and the KL between head-averaged attention
    probabilities (so head counts may differ there too).
    """

    name = "attention_relation"
    Options = RelationOptions
    per_layer = True
    zero_on_identical = True

    def __init__(self, dims: LossDims, layer_map: LayerMap | None = None, **kwargs) -> None:
        super().__init__(dims, layer_map, **kwargs)
        opts = self.options
        self.relations = _relations(opts)
        pairs = _layer_pairs(self)
        self._pairs = pairs[-1:] if opts.layers == "last" else pairs
        self.heads = opts.relation_heads or dims.teacher_heads
        if self.heads < 1:
            raise ConfigError(
                f"The '{self.key}.relation_heads' parameter is required when the teacher head "
                f"count is unknown. Got {opts.relation_heads!r} instead."
            )
        self.needs = _relation_needs(opts)
        if opts.source == "hidden" and "hh" in self.relations:
            for width in (dims.student_hidden, dims.teacher_hidden):
                self._check_width(width, "hidden")

    @classmethod
    def cached_needs(cls, options: dict[str, Any]) -> set[str]:
        return set(_relation_needs(parse(cls.Options, dict(options), path=f"distill.loss.terms[{cls.name}]")))

    def _check_width(self, width: int, what: str) -> None:
        if width % self.heads:
            raise ConfigError(
                f"The '{self.key}.relation_heads' parameter must divide every compared width; the {what} "
                f"width {width} is not divisible by {self.heads}. Got {self.heads!r} instead."
            )

    def pairs(self) -> LayerMap:
        return list(self._pairs)

    def teacher_hidden_layers(self) -> list[int]:
        return sorted({t for _, t in self._pairs}) if "hh" in self.relations else []

    def teacher_attention_layers(self) -> list[int]:
        return sorted({t - 1 for _, t in self._pairs}) if "attn" in self.relations else []

    def teacher_qkv_layers(self) -> list[int]:
        return sorted({t - 1 for _, t in self._pairs}) if self.options.source == "qkv" else []

    def _relation(self, x_s: torch.Tensor, x_t: torch.Tensor, mask: torch.Tensor, what: str) -> torch.Tensor:
        self._check_width(x_s.shape[-1], f"student {what}")
        self._check_width(x_t.shape[-1], f"teacher {what}")
        log_s = relation_log_probs(x_s.float(), x_s.float(), self.heads, mask)
        log_t = relation_log_probs(x_t.float(), x_t.float(), self.heads, mask)
        return row_kl(log_t, log_s, mask)

    def forward(self, batch: DistillBatch) -> list[torch.Tensor]:
        mask = token_mask(batch)
        out = []
        for s, t in self._pairs:
            terms = []
            if self.options.source == "qkv":
                s_qkv = require_input(batch.student_qkv, self, "student_qkv")[s - 1]
                t_qkv = require_input(batch.teacher_qkv, self, "teacher_qkv")[t - 1]
                for r in self.relations:
                    i = "qkv".index(r[0])
                    terms.append(self._relation(s_qkv[i], t_qkv[i], mask, r[0]))
            else:
                if "hh" in self.relations:
                    h_s = require_input(batch.student_hidden, self, "student_hidden")[s]
                    h_t = require_input(batch.teacher_hidden, self, "teacher_hidden")[t]
                    terms.append(self._relation(h_s, h_t, mask, "hidden"))
                if "attn" in self.relations:
                    a_s = require_input(batch.student_attentions, self, "student_attentions")[s - 1]
                    a_t = require_input(batch.teacher_attentions, self, "teacher_attentions")[t - 1]
                    terms.append(row_kl(_head_mean_log_probs(a_t, mask), _head_mean_log_probs(a_s, mask), mask))
            out.append(torch.stack(terms).sum())
        return out
