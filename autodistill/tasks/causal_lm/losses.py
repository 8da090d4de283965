"""Losses of causal-LM distillation, on the teacher's cached top-k targets (:mod:`.topk`).

A loss reads the student's logits ``[B, L, V]``, the teacher's :class:`TopK` targets for the same
positions, the unshifted token ids ``labels [B, L]`` (``-100``: no loss) and the temperature ``T``,
and returns the mean per counted token. Position ``t`` predicts token ``t + 1``, so it counts when
``labels[:, t + 1] != -100``; the last position never counts (:func:`loss_mask`).

The divergences compare the ``k + 1`` buckets of :func:`teacher_log_probs` (P, the teacher) and
:func:`student_log_probs` (Q, the student) at ``T``; mixtures are taken in log space, so nothing is
NaN when a probability underflows. These losses have their own registry, ``LM_LOSSES``: their inputs
differ from the classifier losses' ``DistillBatch``. Options follow the classifier losses: a frozen
``Options`` dataclass per loss, parsed from ``distill.loss.terms[i]`` so that errors name the key.

The hidden-state losses (``hidden_mse``, ``hidden_cos``) read :class:`HiddenInputs` instead: the
student's hidden states and the teacher's, cached at the mapped teacher indices (``cache.py``), for
the layer pairs of a :class:`HiddenGeometry` (which teacher layer each student layer was cut from,
and both widths; a learned projection maps the student's width to the teacher's when they differ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.components import registered
from autodistill.config.schema import parse, require
from autodistill.errors import ConfigError
from autodistill.losses.base import NoOptions
from autodistill.losses.layer_map import resolve_layer_map
from autodistill.registry import Registry
from autodistill.tasks.causal_lm.topk import TopK, student_log_probs, teacher_log_probs

IGNORE = -100  # the label of a token that carries no loss (the transformers convention)
KEY = "distill.loss.terms"


def loss_mask(labels: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` bool: position ``t`` counts when it predicts a labelled token, ``labels[:, t + 1]``."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE
    return mask


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """``KL(a || b)`` per row from log-probabilities; ``0 log 0`` counts as 0. The difference is
    masked before the product so that an excluded ``-inf - -inf`` sends no NaN into the gradient."""
    a = log_a.exp()
    diff = torch.where(a > 0, log_a - log_b, torch.zeros_like(log_a))
    return (a * diff).sum(-1)


def _mix(log_a: torch.Tensor, log_b: torch.Tensor, w: float) -> torch.Tensor:
    """``log(w a + (1 - w) b)`` for ``w`` in ``[0, 1)``, in log space."""
    if w == 0:
        return log_b
    return torch.logaddexp(log_a + math.log(w), log_b + math.log(1 - w))


@dataclass(frozen=True)
class HiddenInputs:
    """What a hidden-state loss reads for one batch (HF ``hidden_states`` layout: index 0 is the
    embedding output, index i the output of layer i)."""

    student: Sequence[torch.Tensor]  # the student's hidden_states, [B, L, d_s] each
    teacher: dict[int, torch.Tensor]  # teacher hidden index -> [B, L, d_t] (the cached indices)
    attention_mask: torch.Tensor  # [B, L], 1 on real tokens


@dataclass(frozen=True)
class HiddenGeometry:
    """The student and teacher sizes a hidden-state loss maps and projects between.

    ``cut_from``: the teacher layer (0-based) each student layer was cut from (the ``depth``
    records), None when unknown; ``channels``: the teacher's hidden channels the student kept, in
    the student's order (the ``hidden`` records), None when unknown."""

    student_layers: int
    teacher_layers: int
    student_hidden: int
    teacher_hidden: int
    cut_from: tuple[int, ...] | None = None
    channels: tuple[int, ...] | None = None


class LMLoss(nn.Module):
    """One causal-LM loss term. Subclasses set ``name`` (and ``Options``) and define ``divergence``
    on the bucket log-probabilities, or override ``forward`` (``ce``, the hidden-state losses)."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    uses_teacher: ClassVar[bool] = True
    needs_hidden: ClassVar[bool] = False  # reads HiddenInputs (the student's and the cached teacher's states)
    scale_t2: ClassVar[bool] = True  # times T^2 so gradients keep their size as T changes (Hinton et al.)

    def __init__(self, *, key: str = "", **options: Any) -> None:
        super().__init__()
        self.key = key or f"{KEY}[{self.name}]"
        self.options = parse(self.Options, options, path=self.key)

    @classmethod
    def cached_needs(cls, options: dict[str, Any]) -> set[str]:
        """What the teacher cache must hold beyond the top-k targets for this loss ("hidden")."""
        return {"hidden"} if cls.needs_hidden else set()

    def teacher_hidden_layers(self) -> list[int]:
        """The teacher hidden indices this loss reads (none for the logit losses)."""
        return []

    def forward(
        self,
        student_logits: torch.Tensor,
        target: TopK | None,
        labels: torch.Tensor,
        temperature: float,
        hidden: HiddenInputs | None = None,
    ) -> torch.Tensor:
        mask = loss_mask(labels)
        log_p, log_q = self._buckets(student_logits, target, mask, temperature)
        per_token = self.divergence(log_p, log_q).clamp_min(0.0)  # >= 0 in exact arithmetic
        scale = temperature * temperature if self.scale_t2 else 1.0
        return per_token.sum() / mask.sum().clamp_min(1) * scale

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Per-token value ``[N]`` from teacher (``log_p``) and student (``log_q``) buckets ``[N, k+1]``."""
        raise NotImplementedError

    def _buckets(
        self, student_logits: torch.Tensor, target: TopK | None, mask: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher (detached) and student bucket log-probabilities of the counted positions."""
        if target is None:
            raise ValueError(
                f"The loss {self.name!r} ({self.key}) needs the teacher's top-k targets, which are missing."
            )
        if target.indices.shape[:2] != student_logits.shape[:2] or target.vocab != student_logits.shape[-1]:
            raise ValueError(
                f"The loss {self.name!r} ({self.key}) got targets for {tuple(target.indices.shape[:2])} positions "
                f"and vocabulary {target.vocab}, but student logits of shape {tuple(student_logits.shape)}."
            )
        picked = TopK(target.values[mask], target.indices[mask], target.rest_lse[mask], target.vocab)
        log_p = teacher_log_probs(picked, temperature).detach()
        log_q = student_log_probs(student_logits[mask], picked, temperature)
        if picked.k == picked.vocab:  # an empty tail: drop its -inf bucket
            log_p, log_q = log_p[..., :-1], log_q[..., :-1]
        return log_p, log_q


LM_LOSSES: Registry[type[LMLoss]] = Registry("causal-LM loss")


def register(cls: type[LMLoss]) -> type[LMLoss]:
    """Class decorator: ``@register`` on an LMLoss subclass with a ``name``."""
    return LM_LOSSES.register(cls.name)(cls)


@register
class ForwardKL(LMLoss):
    """``T^2 KL(P || Q)``: mode-covering, the student spreads mass over everything the teacher allows."""

    name = "fkl"

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        return _kl(log_p, log_q)


@register
class ReverseKL(LMLoss):
    """``T^2 KL(Q || P)``: mode-seeking, the student puts its mass where the teacher is confident
    (MiniLLM, Gu et al. 2024)."""

    name = "rkl"

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        return _kl(log_q, log_p)


@dataclass(frozen=True)
class JSDOptions:
    beta: float = 0.5

    def __post_init__(self) -> None:
        require(0 < self.beta < 1, "beta", "must be in (0, 1) (0 and 1 make the divergence vanish)", self.beta)


@register
class GeneralisedJSD(LMLoss):
    """``T^2 [beta KL(P || M) + (1 - beta) KL(Q || M)]`` with ``M = beta P + (1 - beta) Q`` (GKD,
    Agarwal et al. 2024). Bounded, so robust to a teacher that is confidently wrong."""

    name = "jsd"
    Options = JSDOptions

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        beta = self.options.beta
        log_m = _mix(log_p, log_q, beta)
        return beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m)


@dataclass(frozen=True)
class SkewOptions:
    alpha: float = 0.1

    def __post_init__(self) -> None:
        require(0 <= self.alpha < 1, "alpha", "must be in [0, 1) (1 makes the divergence vanish)", self.alpha)


@register
class SkewKL(LMLoss):
    """Skew KL ``T^2 KL(P || alpha P + (1 - alpha) Q)`` (DistiLLM, Ko et al. 2024): forward KL with a
    bounded gradient where the student gives a teacher token almost no mass; ``alpha = 0`` is ``fkl``."""

    name = "skl"
    Options = SkewOptions

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        return _kl(log_p, _mix(log_p, log_q, self.options.alpha))


@register
class SkewReverseKL(LMLoss):
    """Skew reverse KL ``T^2 KL(Q || alpha Q + (1 - alpha) P)`` (DistiLLM); ``alpha = 0`` is ``rkl``."""

    name = "srkl"
    Options = SkewOptions

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        return _kl(log_q, _mix(log_q, log_p, self.options.alpha))


@register
class TotalVariation(LMLoss):
    """Total variation ``0.5 sum |P - Q|`` at ``T`` (bounded by 1; not scaled by ``T^2``)."""

    name = "tv"
    scale_t2 = False

    def divergence(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)


@register
class NextTokenCE(LMLoss):
    """The student's next-token cross-entropy on the labels; reads neither the teacher nor ``T``."""

    name = "ce"
    uses_teacher = False

    def forward(
        self,
        student_logits: torch.Tensor,
        target: TopK | None,
        labels: torch.Tensor,
        temperature: float,
        hidden: HiddenInputs | None = None,
    ) -> torch.Tensor:
        mask = loss_mask(labels)
        following = labels[:, 1:][mask[:, :-1]]
        total = F.cross_entropy(student_logits[mask].float(), following, reduction="sum")
        return total / mask.sum().clamp_min(1)


@dataclass(frozen=True)
class HiddenOptions:
    # "uniform": each student layer's output against the output of the teacher layer it was cut
    # from (evenly spaced teacher layers when that is unknown); or one teacher hidden index per
    # student layer, null for a student layer left unmatched
    layers: str | list[int | None] = "uniform"

    def __post_init__(self) -> None:
        rule = "must be 'uniform' or a list with one teacher hidden-state index (>= 1) or null per student layer"
        if isinstance(self.layers, str):
            require(self.layers == "uniform", "layers", rule, self.layers)
        else:
            given = [t for t in self.layers if t is not None]
            require(bool(given) and all(t >= 1 for t in given), "layers", rule, self.layers)


def layer_pairs(layers: str | list[int | None], g: HiddenGeometry, key: str) -> list[tuple[int, int]]:
    """``[(student hidden index, teacher hidden index), ...]`` of the ``layers`` option for this
    student; an explicit list that does not fit it is a ConfigError naming ``<key>.layers``."""
    n_s, n_t = g.student_layers, g.teacher_layers
    if isinstance(layers, str):
        if g.cut_from is not None and len(g.cut_from) == n_s:
            return [(j + 1, t + 1) for j, t in enumerate(g.cut_from)]
        return resolve_layer_map("uniform", n_s, n_t)
    if len(layers) != n_s:
        raise ConfigError(
            f"The '{key}.layers' parameter must list one teacher hidden-state index (or null) per student "
            f"layer ({n_s} entries). Got {len(layers)} entries instead: {list(layers)!r}."
        )
    bad = [t for t in layers if t is not None and not 1 <= t <= n_t]
    if bad:
        raise ConfigError(
            f"The '{key}.layers' parameter entries must be teacher hidden-state indices in [1, {n_t}] "
            f"(i = the output of teacher layer i). Got {bad[0]!r} instead."
        )
    return [(j + 1, t) for j, t in enumerate(layers) if t is not None]


class HiddenLoss(LMLoss):
    """A distance between the student's and the teacher's hidden states, per mapped layer pair,
    averaged over real tokens (``attention_mask``) and then over the pairs. When the widths differ
    (a ``hidden`` transform) the student's states go through one learned linear projection
    ``d_s -> d_t`` shared by all pairs (TinyBERT's ``W_h``, Jiao et al. 2020), started at the
    channel selection the transform made when it is known. The projection belongs to the loss,
    not to the student: it is trained with it and never saved with it. As in transformers, the
    last hidden index of either model is after its final norm, so a student whose last layer was
    cut from a middle teacher layer (``depth`` with ``choice: first``) compares a normed state with
    an un-normed one there."""

    Options = HiddenOptions
    needs_hidden = True
    scale_t2 = False

    def __init__(self, *, key: str = "", geometry: HiddenGeometry | None = None, **options: Any) -> None:
        super().__init__(key=key, **options)
        if geometry is None:
            raise ValueError(f"The loss {self.name!r} ({self.key}) needs the student's and teacher's HiddenGeometry.")
        self.pairs = layer_pairs(self.options.layers, geometry, self.key)
        self.proj: nn.Linear | None = None
        if geometry.student_hidden != geometry.teacher_hidden:
            self.proj = nn.Linear(geometry.student_hidden, geometry.teacher_hidden)
            if geometry.channels is not None and len(geometry.channels) == geometry.student_hidden:
                with torch.no_grad():  # student channel j is teacher channel channels[j]
                    self.proj.weight.zero_()
                    self.proj.weight[list(geometry.channels), range(geometry.student_hidden)] = 1.0
                    self.proj.bias.zero_()

    def teacher_hidden_layers(self) -> list[int]:
        return sorted({t for _, t in self.pairs})

    def forward(
        self,
        student_logits: torch.Tensor,
        target: TopK | None,
        labels: torch.Tensor,
        temperature: float,
        hidden: HiddenInputs | None = None,
    ) -> torch.Tensor:
        if hidden is None:
            raise ValueError(f"The loss {self.name!r} ({self.key}) needs the hidden states, which are missing.")
        mask = hidden.attention_mask.to(torch.float32)
        values = []
        for s, t in self.pairs:
            h_s = hidden.student[s].float()
            if self.proj is not None:
                h_s = self.proj(h_s)
            values.append(self.distance(h_s, hidden.teacher[t].float().detach(), mask))
        return torch.stack(values).mean()

    def distance(self, h_s: torch.Tensor, h_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """One layer pair's value from ``[B, L, d]`` states and the ``[B, L]`` float token mask."""
        raise NotImplementedError


@register
class HiddenMSE(HiddenLoss):
    """``||H_s W - H_t||^2 / ||H_t||^2`` per real token, averaged over tokens, then pairs: each token's
    squared error divided by the teacher's squared norm at that token (the MSE over the teacher's
    mean square, token by token). 0 when the student matches and 1 when it outputs zeros, at any
    model's scale, so one weight suits every model and layer; dividing rather than layer-norming
    both sides keeps the norm in the target. Per token rather than per layer because a few tokens
    can carry most of a layer's square: SmolLM2's states reach about 22,500 in two channels of a
    block's first token in layers 12 to 28, where the other tokens' mean square is 40 to 340, so a
    per-layer mean square would mostly measure that one token."""

    name = "hidden_mse"

    def distance(self, h_s: torch.Tensor, h_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        norm = torch.where(mask > 0, h_t.pow(2).sum(-1), torch.ones_like(mask))  # padding: no 0 / 0
        per_token = (h_s - h_t).pow(2).sum(-1) / norm.clamp_min(1e-12)
        return (per_token * mask).sum() / mask.sum().clamp_min(1.0)


@register
class HiddenCosine(HiddenLoss):
    """``1 - cos(H_s W, H_t)`` per real token, averaged: directions only, so layers (and models)
    with large norms do not dominate; in [0, 2]."""

    name = "hidden_cos"

    def distance(self, h_s: torch.Tensor, h_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_token = 1.0 - F.cosine_similarity(h_s, h_t, dim=-1, eps=1e-8)
        return (per_token * mask).sum() / mask.sum().clamp_min(1.0)


class CompositeLMLoss(nn.Module):
    """``total = sum_k c_k L_k`` over the terms of ``distill.loss.terms``, ``c_k`` the term's
    ``weight``, all at one temperature (``distill.loss.temperature``)."""

    def __init__(self, terms: dict[str, LMLoss], weights: dict[str, float], temperature: float) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.term_weights = dict(weights)
        self.temperature = float(temperature)

    @property
    def uses_teacher(self) -> bool:
        """Whether any term reads the teacher's targets (an all-``ce`` loss needs no teacher cache)."""
        return any(term.uses_teacher for term in self.terms.values())

    @property
    def needs_hidden(self) -> bool:
        """Whether any term reads hidden states (then the student is run with ``output_hidden_states``)."""
        return any(term.needs_hidden for term in self.terms.values())

    def teacher_hidden_layers(self) -> list[int]:
        """The teacher hidden indices the terms read: what the train split's cache must hold."""
        return sorted({i for term in self.terms.values() for i in term.teacher_hidden_layers()})

    def forward(
        self,
        student_logits: torch.Tensor,
        target: TopK | None,
        labels: torch.Tensor,
        hidden: HiddenInputs | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total, and each term's unweighted value and the total as floats for logging."""
        values = {
            name: term(student_logits, target, labels, self.temperature, hidden) for name, term in self.terms.items()
        }
        total = torch.zeros((), device=student_logits.device, dtype=torch.float32)
        for name, value in values.items():
            total = total + self.term_weights[name] * value
        logged = torch.stack([v.detach().float() for v in [*values.values(), total]]).tolist()  # one host copy
        return total, dict(zip([*values, "total"], logged))


def build_lm_loss(
    terms: list[dict[str, Any]], temperature: float, geometry: HiddenGeometry | None = None
) -> CompositeLMLoss:
    """The composite loss of ``distill.loss.terms`` (each ``{"name", "weight", <options>}``) at
    ``temperature``; a wrong name, weight or option is a ConfigError naming its key. ``geometry``:
    the student's and teacher's sizes, which the hidden-state terms need (and only they)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ConfigError(
            f"The 'distill.loss.temperature' parameter must be a number > 0. Got {temperature!r} instead."
        )
    if not isinstance(terms, (list, tuple)) or not terms:
        raise ConfigError(f"The {KEY!r} parameter must be a non-empty list of loss terms. Got {terms!r} instead.")
    built: dict[str, LMLoss] = {}
    weights: dict[str, float] = {}
    for i, term in enumerate(terms):
        key = f"{KEY}[{i}]"
        if not isinstance(term, dict) or not isinstance(term.get("name"), str):
            raise ConfigError(f"The {key!r} parameter must be a mapping with a 'name' string. Got {term!r} instead.")
        name = term["name"]
        cls = registered(LM_LOSSES, name, f"{key}.name")
        if name in built:
            raise ConfigError(f"The '{key}.name' parameter repeats the term {name!r}; list each loss once.")
        weight = term.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise ConfigError(f"The '{key}.weight' parameter must be a number >= 0. Got {weight!r} instead.")
        options = {k: v for k, v in term.items() if k not in ("name", "weight")}
        if cls.needs_hidden:
            options["geometry"] = geometry  # a hidden-state term without one says so
        built[name] = cls(key=key, **options)
        weights[name] = float(weight)
    return CompositeLMLoss(built, weights, temperature)
