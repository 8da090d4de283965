"""State-dict key names of BERT classifiers and slicing helpers shared by the transforms.

A Linear is either plain (``<prefix>.weight``, ``<prefix>.bias``) or a two-factor
``LowRankLinear`` (``<prefix>.down.weight``, ``<prefix>.up.weight``, ``<prefix>.up.bias``); the
helpers slice either form, so transforms compose in any order.
"""

from __future__ import annotations

import re
from typing import Any

import torch

LAYER_PREFIX = "bert.encoder.layer"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings"

# short Linear name (shape.LINEAR_NAMES) -> key suffix inside one encoder layer
LINEAR_SUFFIX = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
}


def layer_key(layer: int, short: str) -> str:
    return f"{LAYER_PREFIX}.{layer}.{LINEAR_SUFFIX[short]}"


def is_factored(state: dict[str, Any], prefix: str) -> bool:
    return f"{prefix}.down.weight" in state


def slice_out(state: dict[str, Any], prefix: str, idx: torch.Tensor) -> None:
    """Keep output features ``idx`` of the Linear at ``prefix`` (in place on the dict, not the tensors)."""
    p = f"{prefix}.up" if is_factored(state, prefix) else prefix
    state[f"{p}.weight"] = state[f"{p}.weight"][idx].clone()
    state[f"{p}.bias"] = state[f"{p}.bias"][idx].clone()


def slice_in(state: dict[str, Any], prefix: str, idx: torch.Tensor) -> None:
    """Keep input features ``idx`` of the Linear at ``prefix``."""
    p = f"{prefix}.down" if is_factored(state, prefix) else prefix
    state[f"{p}.weight"] = state[f"{p}.weight"][:, idx].clone()


def dense_weight(state: dict[str, Any], prefix: str) -> torch.Tensor:
    """The (out, in) weight of the Linear at ``prefix``, multiplied out when factored."""
    if is_factored(state, prefix):
        return state[f"{prefix}.up.weight"] @ state[f"{prefix}.down.weight"]
    return state[f"{prefix}.weight"]


def bias(state: dict[str, Any], prefix: str) -> torch.Tensor:
    return state[f"{prefix}.up.bias"] if is_factored(state, prefix) else state[f"{prefix}.bias"]


def word_embedding_key(state: dict[str, Any]) -> str:
    """The key whose rows are the vocabulary (the ``embed`` factor when the embedding is factored)."""
    factored = f"{WORD_EMBEDDINGS}.embed.weight"
    return factored if factored in state else f"{WORD_EMBEDDINGS}.weight"


_LAYER_RE = re.compile(rf"^{re.escape(LAYER_PREFIX)}\.(\d+)\.(.*)$")


def keep_layers(state: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """A new state dict with encoder layers ``keep`` renumbered 0..k-1; other keys unchanged."""
    new_index = {old: new for new, old in enumerate(keep)}
    out: dict[str, Any] = {}
    for key, value in state.items():
        m = _LAYER_RE.match(key)
        if m is None:
            out[key] = value
        elif int(m.group(1)) in new_index:
            out[f"{LAYER_PREFIX}.{new_index[int(m.group(1))]}.{m.group(2)}"] = value
    return out


def head_rows(heads: list[int], head_dim: int) -> torch.Tensor:
    """Feature indices of ``heads`` in a q/k/v output (heads are contiguous blocks of head_dim)."""
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])
