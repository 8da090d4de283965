"""``low_rank``: replace chosen projections of every layer by two factors from a truncated SVD.

``W (out x in) ~ U_r S_r V_r^T`` becomes ``down = S_r^1/2 V_r^T`` (in -> r) and ``up = U_r S_r^1/2``
(r -> out, with W's bias), the best rank-r approximation of each teacher projection (Eckart-Young),
which distillation then trains. The rank is fixed (``rank``) or a share of each projection's full
rank (``rank_share``, rounded to a multiple of 8), the same in every layer. A factored student
saves as the registered ``autodistill_<family>`` architecture (``factored.py``), not a stock one:
it loads with ``from_pretrained`` after ``import autodistill``, exports to ONNX, not to GGUF. The
transform comes after every other shape transform (they cut dense weights) and before ``lora``
is not allowed (peft adapts dense Linears).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from autodistill.config.schema import Invalid, require
from autodistill.tasks.causal_lm.factored import PROJECTIONS, factored_config, is_factored
from autodistill.tasks.causal_lm.student import LM_TRANSFORMS, LMTransform, State, _head_dim, _misfit, _share


@dataclass(frozen=True)
class LowRankOptions:
    targets: list[str] = field(
        default_factory=lambda: ["gate_proj", "up_proj", "down_proj"],
        metadata={"help": f"projections to factor: {', '.join(PROJECTIONS)}"},
    )
    rank: int | None = field(default=None, metadata={"help": "rank of every factored projection"})
    rank_share: float | None = field(
        default=None, metadata={"help": "or: share of each projection's full rank, (0, 1), a multiple of 8"}
    )

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if t not in PROJECTIONS]
        require(bool(self.targets) and not bad, "targets", f"must name projections among {', '.join(PROJECTIONS)}",
                self.targets)  # fmt: skip
        require(len(set(self.targets)) == len(self.targets), "targets", "must not repeat a name", self.targets)
        one = (self.rank is None) != (self.rank_share is None)
        require(one, "rank", "must be given, or rank_share instead (exactly one of them)", self.rank)
        require(self.rank is None or self.rank >= 1, "rank", "must be >= 1", self.rank)
        require(self.rank_share is None or 0 < self.rank_share < 1, "rank_share", "must be in (0, 1)",
                self.rank_share)  # fmt: skip


def projection_dims(config: Any) -> dict[str, tuple[int, int]]:
    """Each projection's (in, out) features in a llama-layout layer of ``config``."""
    h, hd, inter = config.hidden_size, _head_dim(config), config.intermediate_size
    q, kv = config.num_attention_heads * hd, config.num_key_value_heads * hd
    return {
        "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
        "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h),
    }  # fmt: skip


def planned_ranks(config: Any, options: LowRankOptions) -> dict[str, int]:
    dims = projection_dims(config)
    out = {}
    for name in options.targets:
        full = min(dims[name])
        if options.rank is not None:
            if options.rank > full:
                raise Invalid("rank", f"must be <= {full} for {name} ({dims[name][0]} -> {dims[name][1]})")
            out[name] = options.rank
        else:
            out[name] = _share(options.rank_share, full, min(8, full))
    return out


@LM_TRANSFORMS.register("low_rank")
class LowRank(LMTransform):
    name = "low_rank"
    Options = LowRankOptions

    def plan(self, config: Any, options: LowRankOptions) -> Any:
        if is_factored(config):
            raise Invalid("name", "must appear once: the student is already factored")
        ranks = planned_ranks(config, options)
        return factored_config(config, [dict(ranks) for _ in range(config.num_hidden_layers)])

    def resolve(self, model: Any, config: Any, options: LowRankOptions, calibration: torch.Tensor | None) -> dict:
        return {"ranks": planned_ranks(config, options), "from_dims": projection_dims(config)}

    def apply(self, state: State, config: Any, resolved: dict[str, Any]) -> tuple[State, Any]:
        dims = projection_dims(config)
        ranks = resolved["ranks"]
        fits = not is_factored(config) and all(
            n in dims and tuple(resolved.get("from_dims", {}).get(n, dims[n])) == dims[n] and 1 <= r <= min(dims[n])
            for n, r in ranks.items()
        )
        if not fits:
            raise _misfit(f"low_rank factors {ranks} of projections sized {resolved.get('from_dims')}")
        state = dict(state)
        for i in range(config.num_hidden_layers):
            for name, rank in ranks.items():
                _factor(state, f"model.layers.{i}.{PROJECTIONS[name]}.{name}", rank)
        return state, factored_config(config, [dict(ranks) for _ in range(config.num_hidden_layers)])


def _factor(state: State, prefix: str, rank: int) -> None:
    weight = state.pop(f"{prefix}.weight")
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    root = s[:rank].sqrt()
    state[f"{prefix}.down.weight"] = (root[:, None] * vh[:rank]).to(weight.dtype).contiguous()
    state[f"{prefix}.up.weight"] = (u[:, :rank] * root[None, :]).to(weight.dtype).contiguous()
    if f"{prefix}.bias" in state:
        state[f"{prefix}.up.bias"] = state.pop(f"{prefix}.bias")
