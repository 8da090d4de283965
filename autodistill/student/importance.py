"""Importance scores measured on calibration batches, shared by the pruning transforms.

- Layers: the rise in calibration loss when one layer is skipped.
- Heads and FFN neurons: first-order Taylor / mask-gradient scores (Michel et al. 2019, "Are
  Sixteen Heads Really Better than One?"): a gate of ones multiplies each unit's output, and the
  score is ``sum over batches |dL/dgate|``, the estimated loss change of removing the unit; or
  ``sum over examples (dL_x/dgate)^2``, the empirical Fisher (Kwon et al. 2022).
- Hidden channels: mean absolute activation of every LayerNorm output (Minitron, Muralidharan et
  al. 2024), summed over the LayerNorms.

The loss is cross-entropy with the batch labels (the model's own argmax where labels are absent):
a KL to the teacher's logits would have a zero gradient at the teacher itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.errors import ConfigError
from autodistill.student.arch import every_position
from autodistill.student.base import BuildContext

_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def require_calibration(ctx: BuildContext, transform: str, what: str) -> list[dict[str, Any]]:
    if not ctx.calibration:
        raise ConfigError(
            f"The student transform {transform!r} ({what}) scores importance on calibration batches, "
            "but none were given (BuildContext.calibration is empty). Pass a few tokenized training "
            "batches, or choose an option that needs no data."
        )
    return ctx.calibration


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _inputs(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(batch[k]).to(device) for k in _INPUT_KEYS if k in batch and batch[k] is not None}


def calibration_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    device = _device(model)
    logits = model(**_inputs(batch, device)).logits.float()
    labels = batch.get("labels")
    labels = logits.argmax(-1).detach() if labels is None else torch.as_tensor(labels).to(device)
    if logits.shape[-1] == 1:  # regression head
        return F.mse_loss(logits.squeeze(-1), labels.float())
    return F.cross_entropy(logits, labels.long())


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with every position of the last layer computed (hooks here read them all)."""
    was_training = model.training
    model.eval()
    try:
        with every_position(model):
            yield
    finally:
        model.train(was_training)


def _layers(model: nn.Module) -> nn.ModuleList:
    return model.bert.encoder.layer


@torch.no_grad()
def layer_skip_loss_rise(model: nn.Module, batches: list[dict[str, Any]]) -> list[float]:
    """Per encoder layer: mean calibration loss with that layer skipped minus the full model's."""
    encoder = model.bert.encoder
    layers = encoder.layer

    def mean_loss() -> float:
        return sum(float(calibration_loss(model, b)) for b in batches) / len(batches)

    with _eval_mode(model):
        base = mean_loss()
        rise = []
        try:
            for i in range(len(layers)):
                encoder.layer = nn.ModuleList([m for j, m in enumerate(layers) if j != i])
                rise.append(mean_loss() - base)
        finally:
            encoder.layer = layers
    return rise


def _gate_scores(
    model: nn.Module, batches: list[dict[str, Any]], sizes: list[int], install, fisher: bool = False
) -> list[torch.Tensor]:
    """Run the batches with one gate of ones per layer (``install(layer, gate) -> hook handle``).
    Default: ``sum over batches |dL/dgate|`` per layer. ``fisher``: one gate row per example, so one
    backward pass gives every example's own gradient; the score is ``sum over examples (dL_x/dgate)^2``
    (the empirical Fisher of Kwon et al. 2022, "A Fast Post-Training Pruning Framework for
    Transformers"): a unit that matters a lot for a few examples is not averaged away by the signs
    of the others."""
    device = _device(model)
    scores = [torch.zeros(n, device=device) for n in sizes]
    params = [p for p in model.parameters()]
    saved = [p.requires_grad for p in params]
    try:
        with _eval_mode(model):
            for p in params:  # only the gates need gradients
                p.requires_grad_(False)
            for batch in batches:
                rows = int(torch.as_tensor(batch["input_ids"]).shape[0])
                lead = (rows,) if fisher else ()
                gates = [torch.ones(*lead, n, device=device, requires_grad=True) for n in sizes]
                handles = [install(layer, gate) for layer, gate in zip(_layers(model), gates)]
                try:  # the mean loss times the rows: each example's loss with weight 1
                    loss = calibration_loss(model, batch) * (rows if fisher else 1)
                    grads = torch.autograd.grad(loss, gates)
                finally:
                    for h in handles:
                        h.remove()
                for s, g in zip(scores, grads):
                    s += g.pow(2).sum(0) if fisher else g.abs()
    finally:
        for p, r in zip(params, saved):
            p.requires_grad_(r)
    return [s.detach().cpu() for s in scores]


def head_scores(model: nn.Module, batches: list[dict[str, Any]], fisher: bool = False) -> list[torch.Tensor]:
    """Per layer, one score per attention head (mask gradient on the attention context)."""

    def install(layer: nn.Module, gate: torch.Tensor):
        heads = layer.attention.self.num_attention_heads
        # (heads,) -> (heads, 1); per example (B, heads) -> (B, 1, heads, 1) against (B, L, heads, d)
        g = gate[:, None, :, None] if gate.dim() == 2 else gate[:, None]

        def pre_hook(module: nn.Module, args: tuple) -> tuple:
            context = args[0]
            shape = context.shape
            gated = context.view(*shape[:-1], heads, -1) * g.to(context.dtype)
            return (gated.view(shape), *args[1:])

        return layer.attention.output.register_forward_pre_hook(pre_hook)

    sizes = [layer.attention.self.num_attention_heads for layer in _layers(model)]
    return _gate_scores(model, batches, sizes, install, fisher)


def ffn_scores(model: nn.Module, batches: list[dict[str, Any]], fisher: bool = False) -> list[torch.Tensor]:
    """Per layer, one score per intermediate neuron (mask gradient after the activation)."""

    def install(layer: nn.Module, gate: torch.Tensor):
        g = gate[:, None, :] if gate.dim() == 2 else gate  # per example: (B, n) against (B, L, n)

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            return output * g.to(output.dtype)

        return layer.intermediate.register_forward_hook(hook)

    sizes = [_out_features(layer.intermediate.dense) for layer in _layers(model)]
    return _gate_scores(model, batches, sizes, install, fisher)


def _out_features(module: nn.Module) -> int:
    return module.out_features


@torch.no_grad()
def layernorm_channel_scores(model: nn.Module, batches: list[dict[str, Any]]) -> torch.Tensor:
    """One score per hidden channel: mean |LayerNorm output| over real tokens, summed over every
    LayerNorm of the embeddings and encoder (Minitron's embedding-channel importance)."""
    device = _device(model)
    norms = [m for m in model.bert.modules() if isinstance(m, nn.LayerNorm)]
    total = torch.zeros(norms[0].normalized_shape[0], device=device)
    mask_holder: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        m = mask_holder["mask"]
        total.add_((output.float().abs() * m[..., None]).sum((0, 1)) / m.sum().clamp(min=1))

    handles = [n.register_forward_hook(hook) for n in norms]
    try:
        with _eval_mode(model):
            for batch in batches:
                inputs = _inputs(batch, device)
                ids = inputs["input_ids"]
                mask_holder["mask"] = inputs.get("attention_mask", torch.ones_like(ids)).float()
                model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return total.cpu()


@torch.no_grad()
def linear_input_norms(
    model: nn.Module, modules: dict[str, nn.Module], batches: list[dict[str, Any]]
) -> dict[str, torch.Tensor]:
    """Per named module: the root-mean-square of each input feature over real tokens (for
    activation-aware SVD)."""
    device = _device(model)
    sums = {name: None for name in modules}
    counts = {name: 0.0 for name in modules}
    mask_holder: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0].float()
            m = mask_holder["mask"]
            sq = (x.pow(2) * m[..., None]).sum((0, 1))
            sums[name] = sq if sums[name] is None else sums[name] + sq
            counts[name] += float(m.sum())

        return hook

    handles = [mod.register_forward_pre_hook(make_hook(n)) for n, mod in modules.items()]
    try:
        with _eval_mode(model):
            for batch in batches:
                inputs = _inputs(batch, device)
                mask_holder["mask"] = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).float()
                model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: (sums[n] / max(counts[n], 1.0)).sqrt().cpu() for n in modules}


# ---------------------------------------------------------------------------------------------
# Turning a keep ratio into per-layer counts, and scores into kept indices (heads and neurons).


def ratios_per_layer(ratio: float | list[float], layers: int, key: str = "ratio") -> list[float]:
    from autodistill.config.schema import Invalid

    if isinstance(ratio, (int, float)):
        return [float(ratio)] * layers
    if len(ratio) != layers:
        raise Invalid(key, f"must give one ratio per layer ({layers}). Got {len(ratio)} instead.")
    return [float(r) for r in ratio]


def layer_counts(sizes: list[int], ratios: list[float]) -> list[int]:
    """Units kept per layer: ``round(ratio * size)``, at least one."""
    return [max(1, min(n, round(r * n))) for n, r in zip(sizes, ratios)]


def stage_ratio(now: list[int], final: list[int], remaining: int, scope: str) -> float | list[float]:
    """The keep ratio of one pruning stage: ``(final / now) ** (1 / remaining)`` per layer (scope
    ``layer``) or over the total (``global``), so that ``remaining`` stages of it reach ``final``;
    the last stage (``remaining == 1``) gives ``final`` exactly, whatever the rounding before."""
    if scope == "global":
        return min(1.0, (sum(final) / sum(now)) ** (1 / remaining))
    return [min(1.0, (f / n) ** (1 / remaining)) for f, n in zip(final, now)]


def global_total(sizes: list[int], ratio: float) -> int:
    """Units kept over all layers for a global ratio: at least one per layer."""
    return max(len(sizes), min(sum(sizes), round(ratio * sum(sizes))))


def even_split(sizes: list[int], total: int) -> list[int]:
    """A data-free split of ``total`` units (one per layer first, then round-robin): the shape
    ``plan`` reports for a global ratio, whose parameter count any real split shares."""
    counts = [1] * len(sizes)
    left = total - len(sizes)
    while left > 0:
        for i, n in enumerate(sizes):
            if left > 0 and counts[i] < n:
                counts[i] += 1
                left -= 1
    return counts


def top_per_layer(scores: list[torch.Tensor], counts: list[int]) -> list[list[int]]:
    """The ``counts[i]`` best-scored units of each layer, in their original order."""
    return [sorted(torch.argsort(s, descending=True, stable=True)[:k].tolist()) for s, k in zip(scores, counts)]


def top_global(scores: list[torch.Tensor], total: int) -> list[list[int]]:
    """The best ``total`` units over all layers, at least one per layer. Scores are normalised per
    layer (by their L2 norm, as Michel et al. do for heads) so that layers compare."""
    normed = [s / s.norm().clamp(min=1e-12) for s in scores]
    keep = [{int(torch.argmax(s))} for s in normed]
    rest = sorted(
        ((float(v), i, j) for i, s in enumerate(normed) for j, v in enumerate(s.tolist()) if j not in keep[i]),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    for _, i, j in rest[: total - len(scores)]:
        keep[i].add(j)
    return [sorted(k) for k in keep]
