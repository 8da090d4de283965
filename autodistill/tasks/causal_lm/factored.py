"""The registered architecture for causal-LM students with low-rank factors (``low_rank``).

A decoder whose chosen projections are each two factors (``in -> rank -> out``) is no stock
architecture, so it is saved as ``autodistill_<family>`` (``AutodistillLlamaForCausalLM`` and its
Mistral, Qwen2 and Qwen3 siblings): the family's own config with ``layer_ranks`` (per layer,
projection name -> rank) and the family's own model class, whose chosen projections are rebuilt
as :class:`FactoredLinear` after the stock layers are made. Everything else (attention, rotary
embeddings, caches, generation) is the family's code. Importing ``autodistill`` registers these
with the transformers Auto classes, so ``AutoModelForCausalLM.from_pretrained`` and
``pipeline("text-generation")`` load them after ``import autodistill``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

# projection -> the layer's submodule that holds it
PROJECTIONS = {
    "q_proj": "self_attn",
    "k_proj": "self_attn",
    "v_proj": "self_attn",
    "o_proj": "self_attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}
PREFIX = "autodistill_"


class FactoredLinear(nn.Module):
    """``x -> up(down(x))``: a projection as two factors, ``in -> rank`` (no bias), ``rank -> out``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class _Factored:
    """Mixed into a family's ForCausalLM: after the stock model is built, replace the projections
    ``config.layer_ranks`` names by factors of those ranks."""

    def _factor(self) -> None:
        for i, ranks in enumerate(self.config.layer_ranks or []):
            layer = self.model.layers[i]
            for name, rank in ranks.items():
                parent = getattr(layer, PROJECTIONS[name])
                old = getattr(parent, name)
                new = FactoredLinear(old.in_features, old.out_features, int(rank), old.bias is not None)
                setattr(parent, name, new.to(device=old.weight.device, dtype=old.weight.dtype))


@strict
class AutodistillLlamaConfig(LlamaConfig):
    model_type = "autodistill_llama"
    layer_ranks: list[dict[str, int]] | None = None


@strict
class AutodistillMistralConfig(MistralConfig):
    model_type = "autodistill_mistral"
    layer_ranks: list[dict[str, int]] | None = None


@strict
class AutodistillQwen2Config(Qwen2Config):
    model_type = "autodistill_qwen2"
    layer_ranks: list[dict[str, int]] | None = None


@strict
class AutodistillQwen3Config(Qwen3Config):
    model_type = "autodistill_qwen3"
    layer_ranks: list[dict[str, int]] | None = None


class AutodistillLlamaForCausalLM(_Factored, LlamaForCausalLM):
    config_class = AutodistillLlamaConfig

    def __init__(self, config: AutodistillLlamaConfig) -> None:
        super().__init__(config)
        self._factor()


class AutodistillMistralForCausalLM(_Factored, MistralForCausalLM):
    config_class = AutodistillMistralConfig

    def __init__(self, config: AutodistillMistralConfig) -> None:
        super().__init__(config)
        self._factor()


class AutodistillQwen2ForCausalLM(_Factored, Qwen2ForCausalLM):
    config_class = AutodistillQwen2Config

    def __init__(self, config: AutodistillQwen2Config) -> None:
        super().__init__(config)
        self._factor()


class AutodistillQwen3ForCausalLM(_Factored, Qwen3ForCausalLM):
    config_class = AutodistillQwen3Config

    def __init__(self, config: AutodistillQwen3Config) -> None:
        super().__init__(config)
        self._factor()


# stock model_type -> (factored config class, factored model class)
FACTORED: dict[str, tuple[type, type]] = {
    "llama": (AutodistillLlamaConfig, AutodistillLlamaForCausalLM),
    "mistral": (AutodistillMistralConfig, AutodistillMistralForCausalLM),
    "qwen2": (AutodistillQwen2Config, AutodistillQwen2ForCausalLM),
    "qwen3": (AutodistillQwen3Config, AutodistillQwen3ForCausalLM),
}


def is_factored(config: Any) -> bool:
    return str(getattr(config, "model_type", "")).startswith(PREFIX)


def factored_config(config: Any, layer_ranks: list[dict[str, int]]) -> Any:
    """``config`` (a stock llama-family config) as its factored sibling with ``layer_ranks``."""
    cfg_cls, model_cls = FACTORED[config.model_type]
    values = copy.deepcopy(config.to_dict())
    for key in ("model_type", "architectures", "transformers_version", "layer_ranks"):
        values.pop(key, None)
    new = cfg_cls(**values, layer_ranks=[dict(r) for r in layer_ranks])
    new.architectures = [model_cls.__name__]
    new.dtype = config.dtype
    return new


def model_class(config: Any, default: type) -> type:
    """The class that builds ``config``: the factored one for a factored config, else ``default``."""
    if is_factored(config):
        return FACTORED[config.model_type[len(PREFIX) :]][1]
    return default


def register_auto_classes() -> None:
    for cfg_cls, model_cls in FACTORED.values():
        AutoConfig.register(cfg_cls.model_type, cfg_cls, exist_ok=True)
        AutoModelForCausalLM.register(cfg_cls, model_cls, exist_ok=True)


register_auto_classes()
