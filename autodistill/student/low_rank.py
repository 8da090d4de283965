"""Low-rank factorisation: replace chosen Linears by two factors from a truncated SVD.

``W (out x in) ~ U_r S_r V_r^T`` becomes ``down = S_r^1/2 V_r^T`` (in -> r, no bias) and
``up = U_r S_r^1/2`` (r -> out, with W's bias). The rank is fixed (``rank``) or the smallest that
keeps an ``energy`` fraction of the squared singular values, capped where factoring stops saving
parameters (``r <= in*out / (in+out)``), so a plan by energy is an upper bound on the count.
``activation_aware`` factors ``W diag(s)`` instead, with ``s`` the RMS of each input feature on
calibration tokens, and unscales ``down`` afterwards (ASVD, Yuan et al. 2023): the truncation
then spends its error where inputs are small. ``embedding_rank`` factors the word embedding the
ALBERT way (Lan et al. 2020): ``vocab x r`` rows and an ``r -> hidden`` projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from autodistill.config.schema import Invalid, require
from autodistill.student import importance as imp
from autodistill.student.base import BuildContext, Transform, register
from autodistill.student.shape import LINEAR_NAMES, ModelShape
from autodistill.student.statedict import WORD_EMBEDDINGS, bias, dense_weight, is_factored, layer_key


@dataclass(frozen=True)
class LowRankOptions:
    targets: list[str] = field(
        default_factory=lambda: ["ffn_in", "ffn_out"], metadata={"help": f"Linears to factor: {LINEAR_NAMES}"}
    )
    rank: int | None = field(default=None, metadata={"help": "rank of every factored Linear"})
    energy: float | None = field(default=None, metadata={"help": "or: kept fraction of squared singular values"})
    activation_aware: bool = field(default=False, metadata={"help": "scale by input RMS on calibration data"})
    layers: list[int] | None = field(default=None, metadata={"help": "layer indices to factor (default: all)"})
    embedding_rank: int | None = field(default=None, metadata={"help": "ALBERT-style word embedding rank"})

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if t not in LINEAR_NAMES]
        require(not bad, "targets", f"must name Linears among {', '.join(LINEAR_NAMES)}", bad)
        require(len(set(self.targets)) == len(self.targets), "targets", "must not repeat a name", self.targets)
        if self.targets:
            one = (self.rank is None) != (self.energy is None)
            require(one, "rank", "must be given, or energy instead (exactly one of them)", self.rank)
        require(self.rank is None or self.rank >= 1, "rank", "must be >= 1", self.rank)
        require(self.energy is None or 0 < self.energy < 1, "energy", "must be in (0, 1)", self.energy)
        require(
            self.embedding_rank is None or self.embedding_rank >= 1,
            "embedding_rank",
            "must be >= 1",
            self.embedding_rank,
        )
        require(
            bool(self.targets) or self.embedding_rank is not None,
            "targets",
            "must name at least one Linear when embedding_rank is not set",
            self.targets,
        )


def saving_cap(fan_in: int, fan_out: int) -> int:
    """The largest rank whose two factors hold no more parameters than the Linear."""
    return max(1, min(fan_in, fan_out, (fan_in * fan_out) // (fan_in + fan_out)))


def _layers(shape: ModelShape, options: LowRankOptions) -> list[int]:
    if options.layers is None:
        return list(range(shape.num_layers))
    bad = [i for i in options.layers if not 0 <= i < shape.num_layers]
    if bad:
        raise Invalid("layers", f"must hold layer indices in [0, {shape.num_layers - 1}]. Got {bad} instead.")
    return sorted(set(options.layers))


def _planned_ranks(shape: ModelShape, options: LowRankOptions) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for i in _layers(shape, options):
        dims = shape.layers[i].linear_dims(shape.hidden)
        out[i] = {}
        for name in options.targets:
            fan_in, fan_out = dims[name]
            if options.rank is None:
                out[i][name] = saving_cap(fan_in, fan_out)
            elif options.rank > min(fan_in, fan_out):
                raise Invalid(
                    "rank",
                    f"must be <= {min(fan_in, fan_out)} for {name} of layer {i} "
                    f"({fan_in} -> {fan_out}). Got {options.rank} instead.",
                )
            else:
                out[i][name] = options.rank
    return out


def _with_ranks(shape: ModelShape, ranks: dict[int, dict[str, int]], embedding_rank: int | None) -> ModelShape:
    layers = [replace(layer, ranks={**layer.ranks, **ranks.get(i, {})}) for i, layer in enumerate(shape.layers)]
    shape = shape.replace_layers(layers)
    return shape if embedding_rank is None else replace(shape, embedding_rank=embedding_rank)


def _check_embedding_rank(shape: ModelShape, options: LowRankOptions) -> None:
    r = options.embedding_rank
    if r is not None and r > min(shape.vocab, shape.hidden):
        raise Invalid("embedding_rank", f"must be <= {min(shape.vocab, shape.hidden)}. Got {r} instead.")


def _svd(weight: torch.Tensor, scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    w = weight.double()
    if scale is not None:
        w = w * scale.double()[None, :]
    return torch.linalg.svd(w, full_matrices=False)


def _energy_rank(s: torch.Tensor, energy: float, cap: int) -> int:
    cum = torch.cumsum(s.pow(2), 0) / s.pow(2).sum().clamp(min=1e-30)
    return min(cap, int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype))) + 1)


@register
class LowRank(Transform):
    name = "low_rank"
    within_layers = True
    Options = LowRankOptions
    example_options = {"targets": ["ffn_in", "ffn_out"], "rank": 8}

    def wants_model(self, options: LowRankOptions) -> bool:
        return options.energy is not None or options.activation_aware

    def plan_exactness(self, options: LowRankOptions) -> str:
        return "bound" if options.energy is not None else "exact"

    def plan(self, shape: ModelShape, options: LowRankOptions, ctx: BuildContext) -> ModelShape:
        _check_embedding_rank(shape, options)
        return _with_ranks(shape, _planned_ranks(shape, options), options.embedding_rank)

    def resolve(self, model: Any, shape: ModelShape, options: LowRankOptions, ctx: BuildContext) -> dict[str, Any]:
        ranks = _planned_ranks(shape, options)
        scales: dict[str, list[float]] = {}
        if options.activation_aware and options.targets:
            batches = imp.require_calibration(ctx, "low_rank", "activation_aware: true")
            modules = {f"{i}.{n}": _module(model, i, n) for i in ranks for n in options.targets}
            norms = imp.linear_input_norms(model, modules, batches)
            # a floor keeps dead features invertible when the factor is unscaled
            scales = {k: v.clamp(min=1e-6 * float(v.max().clamp(min=1e-12))).tolist() for k, v in norms.items()}
        if options.energy is not None:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            for i in ranks:
                for name in options.targets:
                    scale = scales.get(f"{i}.{name}")
                    weight = dense_weight(state, layer_key(i, name))
                    _, s, _ = _svd(weight, None if scale is None else torch.tensor(scale))
                    ranks[i][name] = _energy_rank(s, options.energy, ranks[i][name])
        return {
            "ranks": {str(i): r for i, r in ranks.items()},
            "scales": scales,
            "embedding_rank": options.embedding_rank,
        }

    def apply(self, state: dict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[dict, ModelShape]:
        state = dict(state)
        ranks = {int(i): dict(r) for i, r in resolved["ranks"].items()}
        for i, per_layer in ranks.items():
            for name, r in per_layer.items():
                scale = resolved["scales"].get(f"{i}.{name}")
                _factor(state, layer_key(i, name), r, None if scale is None else torch.tensor(scale))
        if resolved.get("embedding_rank") is not None:
            _factor_embedding(state, resolved["embedding_rank"])
        return state, _with_ranks(shape, ranks, resolved.get("embedding_rank"))


def _module(model: Any, i: int, name: str) -> Any:
    module = model
    for part in layer_key(i, name).split("."):
        module = getattr(module, part) if not part.isdigit() else module[int(part)]
    return module


def _factor(state: dict, prefix: str, rank: int, scale: torch.Tensor | None) -> None:
    weight, b = dense_weight(state, prefix), bias(state, prefix)
    dtype = weight.dtype
    u, s, vh = _svd(weight, scale)
    root = s[:rank].sqrt()
    down = root[:, None] * vh[:rank]
    if scale is not None:
        down = down / scale.double()[None, :]
    up = u[:, :rank] * root[None, :]
    old = ("down.weight", "up.weight", "up.bias") if is_factored(state, prefix) else ("weight", "bias")
    for suffix in old:
        del state[f"{prefix}.{suffix}"]
    state[f"{prefix}.down.weight"] = down.to(dtype).contiguous()
    state[f"{prefix}.up.weight"] = up.to(dtype).contiguous()
    state[f"{prefix}.up.bias"] = b.clone()


def _factor_embedding(state: dict, rank: int) -> None:
    full = f"{WORD_EMBEDDINGS}.weight"
    if full in state:
        table = state.pop(full)
    else:  # already factored: refactor the product
        embed, proj = state.pop(f"{WORD_EMBEDDINGS}.embed.weight"), state.pop(f"{WORD_EMBEDDINGS}.proj.weight")
        table = embed @ proj.t()
    u, s, vh = torch.linalg.svd(table.double(), full_matrices=False)
    state[f"{WORD_EMBEDDINGS}.embed.weight"] = (u[:, :rank] * s[:rank][None, :]).to(table.dtype).contiguous()
    state[f"{WORD_EMBEDDINGS}.proj.weight"] = vh[:rank].t().to(table.dtype).contiguous()
