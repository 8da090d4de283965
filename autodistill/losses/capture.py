"""Capture the query/key/value projections of chosen attention layers with forward hooks, for the
MiniLMv2 relation loss (``attention_relation`` with ``source: qkv``).

Usage (student, with gradients; teacher the same under ``torch.no_grad()`` when filling the cache)::

    with capture_qkv(model, loss.teacher_qkv_layers()) as qkv:
        model(**inputs)
    batch.teacher_qkv = qkv          # {layer: (q, k, v)}, each [B, L, width]

Attention blocks are found by their projection names, in module order (= layer order): BERT-like
``query/key/value``, Llama/Mistral/Qwen-like ``q_proj/k_proj/v_proj``, DistilBERT ``q_lin/k_lin/v_lin``.
A projection wrapped by peft (LoRA) keeps its name, so its output includes the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from autodistill.errors import TrainingError

NAME_SETS = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"), ("q_lin", "k_lin", "v_lin"))


def attention_projections(model: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """The (q, k, v) projection modules of every attention block, in layer order."""
    for names in NAME_SETS:
        found = []
        for module in model.modules():
            children = dict(module.named_children())
            if all(n in children for n in names):
                found.append(tuple(children[n] for n in names))
        if found:
            return found
    raise TrainingError(
        f"Cannot find the attention query/key/value projections of {type(model).__name__} "
        f"(looked for children named {', '.join('/'.join(n) for n in NAME_SETS)}); the relation loss "
        f"'attention_relation' with source 'qkv' needs them. Use source 'hidden' instead."
    )


@contextmanager
def capture_qkv(model: nn.Module, layers: Sequence[int]) -> Iterator[dict[int, tuple[torch.Tensor, ...]]]:
    """Yield a dict that, after a forward pass, maps each 0-based layer in ``layers`` to
    ``(q, k, v)``, the projection outputs ``[B, L, width]`` before the head split."""
    blocks = attention_projections(model)
    bad = [i for i in layers if not 0 <= i < len(blocks)]
    if bad:
        raise TrainingError(f"Cannot capture Q/K/V of layer {bad[0]}: the model has {len(blocks)} attention layers.")
    store: dict[int, list[torch.Tensor | None]] = {i: [None, None, None] for i in layers}
    out: dict[int, tuple[torch.Tensor, ...]] = {}
    handles = []

    def hook(layer: int, slot: int):
        def fn(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            store[layer][slot] = output
            if all(x is not None for x in store[layer]):
                out[layer] = tuple(store[layer])  # type: ignore[arg-type]

        return fn

    from autodistill.student.arch import every_position  # a registered student's last layer, in full

    try:
        for i in layers:
            for slot, module in enumerate(blocks[i]):
                handles.append(module.register_forward_hook(hook(i, slot)))
        with every_position(model):
            yield out
    finally:
        for h in handles:
            h.remove()
