"""Importance scores for cutting a causal-LM student, measured on calibration token ids.

- Layers: block influence (ShortGPT, Men et al. 2024): 1 - the mean cosine similarity of a
  decoder block's input and output hidden states over the calibration tokens.
- Key/value groups: the mean L2 norm of each query head's attention output (its slice of the
  ``o_proj`` input), averaged over the query heads that share the group's key/value head.
- MLP neurons: the mean ``|act(gate) * up|`` (the ``down_proj`` input).
- Hidden channels: the mean ``|x|`` of the residual stream at the input of every decoder RMSNorm
  (both norms of each layer and the final norm), summed over the norms (Minitron, Muralidharan et
  al. 2024).

Every position of the calibration ids counts (they are expected unpadded). The scores are read
with forward hooks: transformers exposes no per-head or per-neuron activations of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.errors import DataError

BATCH = 8  # calibration rows per forward pass


def check_calibration(calibration: Any) -> torch.Tensor:
    """The calibration ids as a 2-D long tensor, or a DataError saying what is expected."""
    ok = isinstance(calibration, torch.Tensor) and calibration.dim() == 2 and not calibration.is_floating_point()
    if not ok or calibration.numel() == 0:
        got = tuple(calibration.shape) if isinstance(calibration, torch.Tensor) else type(calibration).__name__
        raise DataError(f"The calibration tokens must be a non-empty integer tensor of input ids [n, L]. Got {got}.")
    return calibration.long()


class _Mean:
    """A running per-feature mean over tokens."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, per_token: torch.Tensor) -> None:
        """``per_token``: [..., features], one row of features per token."""
        flat = per_token.detach().float().reshape(-1, per_token.shape[-1])
        self.total = self.total + flat.sum(0).cpu()
        self.count += flat.shape[0]

    def value(self) -> torch.Tensor:
        return torch.as_tensor(self.total) / max(self.count, 1)


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


@contextlib.contextmanager
def _hooked(handles: list[Any]) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def _run(model: nn.Module, calibration: torch.Tensor) -> None:
    """Forward the calibration ids through the decoder (no LM head), in eval mode."""
    ids = check_calibration(calibration)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for chunk in ids.split(BATCH):
            model.base_model(input_ids=chunk.to(device), use_cache=False)
    finally:
        model.train(was_training)


def _input_means(
    model: nn.Module, modules: list[nn.Module], calibration: torch.Tensor, stat: Callable[[torch.Tensor], torch.Tensor]
) -> list[torch.Tensor]:
    """Per module: the mean over tokens of ``stat(module input)`` ([B, L, ...] -> [B, L, features])."""
    means = [_Mean() for _ in modules]

    def hook_for(mean: _Mean) -> Callable:
        return lambda module, args: mean.add(stat(args[0]))

    with _hooked([m.register_forward_pre_hook(hook_for(mean)) for m, mean in zip(modules, means)]):
        _run(model, calibration)
    return [m.value() for m in means]


def block_influence(model: nn.Module, layers: nn.ModuleList, calibration: torch.Tensor) -> list[float]:
    """Per decoder block: 1 - mean cosine(block input, block output) over the calibration tokens."""
    means = [_Mean() for _ in layers]

    def hook_for(mean: _Mean) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            x = args[0] if args else kwargs["hidden_states"]
            mean.add(F.cosine_similarity(x.float(), _first(output).float(), dim=-1).unsqueeze(-1))

        return hook

    handles = [layer.register_forward_hook(hook_for(mean), with_kwargs=True) for layer, mean in zip(layers, means)]
    with _hooked(handles):
        _run(model, calibration)
    return [1.0 - float(m.value()[0]) for m in means]


def group_scores(
    model: nn.Module, layers: nn.ModuleList, calibration: torch.Tensor, head_dim: int, kv_heads: int
) -> list[list[float]]:
    """Per layer, per key/value group: the mean over its query heads of the mean L2 norm of each
    head's attention output (the ``o_proj`` input slice)."""

    def head_norms(x: torch.Tensor) -> torch.Tensor:
        return x.float().unflatten(-1, (-1, head_dim)).norm(dim=-1)

    modules = [layer.self_attn.o_proj for layer in layers]
    per_head = _input_means(model, modules, calibration, head_norms)
    return [[float(v) for v in h.view(kv_heads, -1).mean(dim=1)] for h in per_head]


def neuron_scores(model: nn.Module, layers: nn.ModuleList, calibration: torch.Tensor) -> list[torch.Tensor]:
    """Per layer: the mean ``|act(gate) * up|`` of every MLP neuron (the ``down_proj`` input)."""
    return _input_means(model, [layer.mlp.down_proj for layer in layers], calibration, lambda x: x.float().abs())


def channel_scores(model: nn.Module, layers: nn.ModuleList, calibration: torch.Tensor) -> torch.Tensor:
    """Per hidden channel: the mean ``|x|`` at the input of every decoder RMSNorm, summed over norms."""
    norms = [m for layer in layers for m in (layer.input_layernorm, layer.post_attention_layernorm)]
    norms.append(model.base_model.norm)
    return torch.stack(_input_means(model, norms, calibration, lambda x: x.float().abs())).sum(dim=0)
