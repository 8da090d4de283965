"""The shape of a (BERT-family) classifier as plain values, and its exact parameter count.

Every transform maps a shape to a shape before any weight is touched, so the search can refuse a
student that breaks a budget without building it. ``ModelShape.num_parameters()`` must equal
``sum(p.numel() for p in model.parameters())`` of the model built from the shape (contract test).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Linear layers of one encoder layer that low-rank factorisation may replace, by short name.
LINEAR_NAMES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")


@dataclass(frozen=True)
class LayerShape:
    heads: int
    head_dim: int
    ffn: int
    # short Linear name (see LINEAR_NAMES) -> rank of its two-factor replacement
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def attn_dim(self) -> int:
        return self.heads * self.head_dim

    def linear_dims(self, hidden: int) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each Linear of the layer."""
        a = self.attn_dim
        return {
            "query": (hidden, a),
            "key": (hidden, a),
            "value": (hidden, a),
            "attn_out": (a, hidden),
            "ffn_in": (hidden, self.ffn),
            "ffn_out": (self.ffn, hidden),
        }

    def num_parameters(self, hidden: int) -> int:
        total = 4 * hidden  # two LayerNorms
        for name, (fan_in, fan_out) in self.linear_dims(hidden).items():
            total += linear_params(fan_in, fan_out, self.ranks.get(name))
        return total


def linear_params(fan_in: int, fan_out: int, rank: int | None = None) -> int:
    """A Linear with bias, or its factors ``in->rank`` (no bias) and ``rank->out`` (bias)."""
    if rank is None:
        return fan_in * fan_out + fan_out
    return fan_in * rank + rank * fan_out + fan_out


@dataclass(frozen=True)
class ModelShape:
    family: str
    vocab: int
    hidden: int
    max_positions: int
    type_vocab: int
    num_labels: int
    layers: tuple[LayerShape, ...]
    # ALBERT-style factored word embedding: vocab x rank, then rank -> hidden (no bias)
    embedding_rank: int | None = None
    pooler: bool = True

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def embedding_parameters(self) -> int:
        """Word, position and token-type embeddings and their LayerNorm."""
        if self.embedding_rank is None:
            words = self.vocab * self.hidden
        else:
            words = self.vocab * self.embedding_rank + self.embedding_rank * self.hidden
        return words + (self.max_positions + self.type_vocab) * self.hidden + 2 * self.hidden

    def num_parameters(self, include_embeddings: bool = True) -> int:
        total = sum(layer.num_parameters(self.hidden) for layer in self.layers)
        if self.pooler:
            total += self.hidden * self.hidden + self.hidden
        total += self.hidden * self.num_labels + self.num_labels
        if include_embeddings:
            total += self.embedding_parameters()
        return total

    def is_uniform(self) -> bool:
        """One heads/head_dim/ffn for all layers and no factors: a stock config can describe it."""
        first = self.layers[0] if self.layers else None
        return first is not None and all(
            (l.heads, l.head_dim, l.ffn) == (first.heads, first.head_dim, first.ffn) and not l.ranks
            for l in self.layers
        )

    def replace_layers(self, layers: list[LayerShape] | tuple[LayerShape, ...]) -> ModelShape:
        return replace(self, layers=tuple(layers))

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "vocab": self.vocab,
            "hidden": self.hidden,
            "max_positions": self.max_positions,
            "type_vocab": self.type_vocab,
            "num_labels": self.num_labels,
            "embedding_rank": self.embedding_rank,
            "pooler": self.pooler,
            "layers": [
                {"heads": l.heads, "head_dim": l.head_dim, "ffn": l.ffn, "ranks": dict(l.ranks)} for l in self.layers
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelShape:
        layers = tuple(
            LayerShape(l["heads"], l["head_dim"], l["ffn"], dict(l.get("ranks", {}))) for l in data["layers"]
        )
        fields = {k: v for k, v in data.items() if k != "layers"}
        return cls(layers=layers, **fields)
