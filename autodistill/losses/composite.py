"""A weighted sum of named loss terms (the torchdistill pattern), with a pluggable weighting scheme
over the per-layer units."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from autodistill.errors import ConfigError
from autodistill.losses.base import LOSSES, DistillBatch, LayerMap, LossDims
from autodistill.registry import RegistryError
from autodistill.specs import LossSpec
from autodistill.weighting import WEIGHTINGS
from autodistill.weighting.base import KEY as WEIGHTING_KEY

SCOPES = ("layers", "all")


class CompositeLoss(nn.Module):
    """``total = sum_k c_k * mean_j u_kj`` over the terms k of ``distill.loss.terms``, with ``c_k``
    the term's ``weight`` and ``u_kj`` its weighted units: a per-layer term (hidden, attention) has
    one unit per mapped layer pair j, named ``"<term>/s<student>_t<teacher>"``; a scalar term is one
    unit named after the term. The weighting scheme (``distill.loss.weighting``) turns the unit
    values into ``u`` (``w * L``; ``exp(-s) L + s`` for uncertainty). With ``scope: layers``
    (default) it weights only the per-layer units; with ``scope: all`` every term's units.
    Averaging over layers keeps ``c_k`` meaning the same whatever the number of mapped layers.
    ``log_every`` (default 10) thins ``weight_history()``. Both are options of every scheme.
    """

    def __init__(self, spec: LossSpec, dims: LossDims, layer_map: LayerMap | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.layer_map = [(int(s), int(t)) for s, t in (layer_map or [])]
        self.terms = nn.ModuleDict()
        self.term_weights: dict[str, float] = {}
        for i, step in enumerate(spec.terms):
            key = f"distill.loss.terms[{i}]"
            try:
                cls = LOSSES.get(step.name)
            except RegistryError as err:
                raise ConfigError(f"The '{key}.name' parameter is wrong: {err}") from None
            if step.name in self.terms:
                raise ConfigError(f"The '{key}.name' parameter repeats the term {step.name!r}; list each loss once.")
            opts = {k: v for k, v in step.options.items() if k != "weight"}
            weight = step.options.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                raise ConfigError(f"The '{key}.weight' parameter must be a number >= 0. Got {weight!r} instead.")
            self.terms[step.name] = cls(dims, self.layer_map, key=key, **opts)
            self.term_weights[step.name] = float(weight)

        try:
            scheme_cls = WEIGHTINGS.get(spec.weighting.name)
        except RegistryError as err:
            raise ConfigError(f"The '{WEIGHTING_KEY}.name' parameter is wrong: {err}") from None
        # scope decides the units, so read it before the scheme exists (parse checks it again)
        self.scope = spec.weighting.options.get("scope", "layers")
        if self.scope not in SCOPES:
            raise ConfigError(
                f"The '{WEIGHTING_KEY}.scope' parameter must be one of 'layers', 'all'. Got {self.scope!r} instead."
            )
        # units: (term, unit name, weighted?)
        self.units: list[tuple[str, str, bool]] = []
        for name, term in self.terms.items():
            weighted = term.per_layer or self.scope == "all"
            if term.per_layer:
                self.units += [(name, f"{name}/s{s}_t{t}", weighted) for s, t in term.pairs()]
            else:
                self.units.append((name, name, weighted))
        self.weighted_units = [u for _, u, w in self.units if w]
        self.scheme = scheme_cls(self.weighted_units, key=WEIGHTING_KEY, **spec.weighting.options)
        self.log_every = self.scheme.options.log_every
        self._history: list[dict[str, float]] = []

    # -- what the loop and the cache need --------------------------------------------------------
    @property
    def needs(self) -> frozenset[str]:
        out: set[str] = set()
        for term in self.terms.values():
            out |= term.needs
        return frozenset(out)

    def teacher_hidden_layers(self) -> list[int]:
        return sorted({i for term in self.terms.values() for i in term.teacher_hidden_layers()})

    def teacher_attention_layers(self) -> list[int]:
        return sorted({i for term in self.terms.values() for i in term.teacher_attention_layers()})

    def teacher_qkv_layers(self) -> list[int]:
        """0-based teacher layers whose Q/K/V projections the cache must hold (``needs`` has "qkv")."""
        return sorted({i for term in self.terms.values() for i in term.teacher_qkv_layers()})

    def student_qkv_layers(self) -> list[int]:
        """0-based student layers to capture with :func:`autodistill.losses.capture.capture_qkv`."""
        return sorted({s - 1 for term in self.terms.values() if term.teacher_qkv_layers() for s, _ in term.pairs()})

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Optimiser groups for ``loss.parameters()``: projections like the student; learned
        weights at the scheme's own ``lr`` (if it has one) and without weight decay."""
        groups = []
        proj = [p for p in self.terms.parameters() if p.requires_grad]
        if proj:
            groups.append({"params": proj, "lr": lr, "weight_decay": weight_decay})
        learned = [p for p in self.scheme.parameters() if p.requires_grad]
        if learned:
            groups.append({"params": learned, "lr": getattr(self.scheme.options, "lr", lr), "weight_decay": 0.0})
        return groups

    # -- the loss ----------------------------------------------------------------------------------
    def forward(self, batch: DistillBatch) -> tuple[torch.Tensor, dict[str, float]]:
        # the spec is the one source of the temperature, whatever the loop put in the batch
        batch = dataclasses.replace(batch, temperature=self.spec.temperature, layer_map=self.layer_map)
        raw: dict[str, torch.Tensor] = {}
        for name, term in self.terms.items():
            value = term(batch)
            if term.per_layer:
                for (_, unit, _), v in zip([u for u in self.units if u[0] == name], value):
                    raw[unit] = v
            else:
                raw[name] = value
        device = batch.student_logits.device
        if self.weighted_units:
            vec = torch.stack([raw[u].float().reshape(()) for u in self.weighted_units])
            if torch.is_grad_enabled() and self.training:
                self.scheme.observe(vec.detach())
            combined = dict(zip(self.weighted_units, self.scheme.combine(vec).unbind(0)))
        else:
            combined = {}
        total = torch.zeros((), device=device, dtype=torch.float32)
        term_means: dict[str, torch.Tensor] = {}
        for name in self.terms:
            units = [u for t, u, _ in self.units if t == name]
            term_means[name] = torch.stack([raw[u].float().reshape(()) for u in units]).mean()
            contrib = torch.stack([combined.get(u, raw[u]).float().reshape(()) for u in units]).mean()
            total = total + self.term_weights[name] * contrib
        # one device -> host copy for all logged numbers
        names = list(term_means) + [u for t, u, _ in self.units if self.terms[t].per_layer] + ["total"]
        values = [term_means[n] for n in term_means] + [raw[u] for t, u, _ in self.units if self.terms[t].per_layer]
        logged = torch.stack([v.detach().float().reshape(()) for v in values + [total]]).tolist()
        return total, dict(zip(names, logged))

    def start(self, total_steps: int) -> None:
        """Call once before training with its number of optimiser steps: schedules over the run
        (the ``progressive`` weighting, ``self_kl``'s ``start``) read it."""
        self.scheme.start(total_steps)
        for term in self.terms.values():
            term.start(total_steps)

    def step_end(self, step: int) -> None:
        """Call once per optimiser step: adaptive schemes update, the weights are recorded."""
        self.scheme.step_end(step)
        for term in self.terms.values():
            term.step_end(step)
        if not self._history or step % self.log_every == 0:
            self._history.append({"step": step, **self.current_weights()})

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.weighted_units, self.scheme.weights().tolist()))

    def weight_history(self) -> list[dict[str, float]]:
        return [dict(h) for h in self._history]
