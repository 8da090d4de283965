"""Hidden-state losses between mapped layers (TinyBERT, Jiao et al. 2020, "TinyBERT: Distilling
BERT for Natural Language Understanding"). One value per mapped layer pair; padded tokens are
left out of every mean."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.errors import ConfigError
from autodistill.losses.base import (
    DistillBatch,
    LayerMap,
    Loss,
    LossDims,
    masked_token_mean,
    register,
    require_input,
    token_mask,
)


@dataclass(frozen=True)
class HiddenOptions:
    # one projection W_h for all layers as in TinyBERT, or one per mapped pair
    shared_projection: bool = True
    # also match the embedding outputs (TinyBERT's L_embd; the pair (0, 0), with its own W_e)
    include_embeddings: bool = False


class _HiddenLoss(Loss):
    """Shared wiring: the layer pairs and the learned student -> teacher width projections."""

    Options = HiddenOptions
    needs = frozenset({"hidden"})
    per_layer = True

    def __init__(self, dims: LossDims, layer_map: LayerMap | None = None, **kwargs) -> None:
        super().__init__(dims, layer_map, **kwargs)
        if not self.layer_map:
            raise ConfigError(f"The loss {self.name!r} ({self.key}) needs a non-empty 'distill.loss.layer_map'.")
        self._pairs = ([(0, 0)] if self.options.include_embeddings else []) + self.layer_map
        self.project = dims.student_hidden != dims.teacher_hidden
        self.proj = nn.ModuleDict()
        if self.project:
            for s, t in self._pairs:
                k = self._proj_key(s, t)
                if k not in self.proj:
                    self.proj[k] = nn.Linear(dims.student_hidden, dims.teacher_hidden)

    def _proj_key(self, s: int, t: int) -> str:
        if s == 0:
            return "embeddings"
        return "layers" if self.options.shared_projection else f"s{s}_t{t}"

    def pairs(self) -> LayerMap:
        return list(self._pairs)

    def teacher_hidden_layers(self) -> list[int]:
        return sorted({t for _, t in self._pairs})

    def forward(self, batch: DistillBatch) -> list[torch.Tensor]:
        s_hidden = require_input(batch.student_hidden, self, "student_hidden")
        t_hidden = require_input(batch.teacher_hidden, self, "teacher_hidden")
        mask = token_mask(batch)
        out = []
        for s, t in self._pairs:
            h_s = s_hidden[s].float()
            if self.project:
                h_s = self.proj[self._proj_key(s, t)](h_s)
            out.append(masked_token_mean(self.distance(h_s, t_hidden[t].float()), mask))
        return out

    def distance(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@register
class HiddenMSE(_HiddenLoss):
    """TinyBERT hidden-state loss, per mapped pair (m -> g(m)):
    ``MSE(H_s^m W_h, H_t^g(m))``, the mean over real tokens and the d_t features, where the learned
    ``W_h`` (d_s x d_t) exists only when the widths differ."""

    name = "hidden_mse"

    def distance(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return (h_s - h_t).pow(2).mean(-1)


@register
class HiddenCosine(_HiddenLoss):
    """Cosine distance per token between mapped layers, ``1 - cos(H_s^m W_h, H_t^g(m))``, averaged
    over real tokens: matches directions but not norms, which keeps deep layers with large norms from
    dominating (a scale-free variant of the TinyBERT hidden loss, Jiao et al. 2020)."""

    name = "hidden_cosine"

    def distance(self, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.cosine_similarity(h_s, h_t, dim=-1, eps=1e-8)
