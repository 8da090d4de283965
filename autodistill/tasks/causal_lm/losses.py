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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.components import registered
from autodistill.config.schema import parse, require
from autodistill.errors import ConfigError
from autodistill.losses.base import NoOptions
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


class LMLoss(nn.Module):
    """One causal-LM loss term. Subclasses set ``name`` (and ``Options``) and define ``divergence``
    on the bucket log-probabilities, or override ``forward`` (``ce``)."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    uses_teacher: ClassVar[bool] = True
    scale_t2: ClassVar[bool] = True  # times T^2 so gradients keep their size as T changes (Hinton et al.)

    def __init__(self, *, key: str = "", **options: Any) -> None:
        super().__init__()
        self.key = key or f"{KEY}[{self.name}]"
        self.options = parse(self.Options, options, path=self.key)

    def forward(
        self, student_logits: torch.Tensor, target: TopK | None, labels: torch.Tensor, temperature: float
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
        self, student_logits: torch.Tensor, target: TopK | None, labels: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        mask = loss_mask(labels)
        following = labels[:, 1:][mask[:, :-1]]
        total = F.cross_entropy(student_logits[mask].float(), following, reduction="sum")
        return total / mask.sum().clamp_min(1)


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

    def forward(
        self, student_logits: torch.Tensor, target: TopK | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total, and each term's unweighted value and the total as floats for logging."""
        values = {name: term(student_logits, target, labels, self.temperature) for name, term in self.terms.items()}
        total = torch.zeros((), device=student_logits.device, dtype=torch.float32)
        for name, value in values.items():
            total = total + self.term_weights[name] * value
        logged = torch.stack([v.detach().float() for v in [*values.values(), total]]).tolist()  # one host copy
        return total, dict(zip([*values, "total"], logged))


def build_lm_loss(terms: list[dict[str, Any]], temperature: float) -> CompositeLMLoss:
    """The composite loss of ``distill.loss.terms`` (each ``{"name", "weight", <options>}``) at
    ``temperature``; a wrong name, weight or option is a ConfigError naming its key."""
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
        built[name] = cls(key=key, **{k: v for k, v in term.items() if k not in ("name", "weight")})
        weights[name] = float(weight)
    return CompositeLMLoss(built, weights, temperature)
