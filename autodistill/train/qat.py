"""Quantisation-aware distillation (``distill.qat``): a model that computes as its int8 export will.

The int8 export (``tasks.sequence_classification.onnx.quantize_int8``) is onnxruntime's dynamic
quantisation with ``weight_type=QInt8``, per tensor. In that graph

- every ``nn.Linear`` becomes a ``MatMulInteger``: its weight is stored as symmetric int8 (scale
  ``max|w| / 127``, zero point 0, values in [-127, 127]) and its input goes through
  ``DynamicQuantizeLinear``, i.e. uint8 with a scale and zero point taken at run time from that
  tensor's own minimum and maximum (the range widened to include 0); the integer product is
  scaled back to float and the bias added in float;
- every embedding table (``Gather`` on an initializer) is stored as uint8, asymmetric per tensor,
  from the table's own minimum and maximum (widened to include 0), and dequantised after the lookup;
- everything else (layer norms, softmax, the attention's activation-by-activation products, GELU)
  stays float.

``fake_quantised(model)`` makes the model's ``nn.Linear`` and ``nn.Embedding`` layers compute with
exactly those grids: each tensor is rounded to its integer grid and mapped back to float
(``torch.fake_quantize_per_tensor_affine``, whose gradient is the straight-through estimator: the
rounding passes gradients unchanged inside the grid's range, which here is the whole tensor). The
dequantised product equals the integer product scaled back, so training sees the rounding the
export applies and learns weights that survive it, up to float summation order and rounding ties.

It swaps each such module's ``forward`` for the quantised one on the instance only and deletes the
swap on exit: the model's classes, parameters and ``state_dict`` keys never change (a
``torch.nn.utils.parametrize`` would rename the weights while active, and a training loop copies
its best checkpoint's state dict inside the context), and nothing stays behind for the saved student.
A deep copy taken inside the context is a plain model.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F


def symmetric_int8(w: torch.Tensor) -> torch.Tensor:
    """``w`` on onnxruntime's symmetric int8 weight grid: scale ``max|w| / 127``, zero point 0."""
    x = w.float()
    with torch.no_grad():
        scale = (x.abs().amax() / 127.0).clamp_min(torch.finfo(torch.float32).tiny).reshape(1)
        zero = torch.zeros(1, dtype=torch.int32, device=x.device)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, -127, 127).to(w.dtype)


def asymmetric_uint8(x: torch.Tensor) -> torch.Tensor:
    """``x`` on the uint8 grid of its own range widened to include 0, as onnxruntime's
    ``DynamicQuantizeLinear`` (and its quantisation of an embedding table) computes it."""
    xf = x.float()
    with torch.no_grad():
        lo, hi = xf.amin().clamp_max(0.0), xf.amax().clamp_min(0.0)
        scale = ((hi - lo) / 255.0).clamp_min(torch.finfo(torch.float32).tiny).reshape(1)
        zero = torch.round(-lo / scale).clamp(0, 255).to(torch.int32).reshape(1)
    return torch.fake_quantize_per_tensor_affine(xf, scale, zero, 0, 255).to(x.dtype)


def _linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(asymmetric_uint8(x), symmetric_int8(self.weight), self.bias)


def _embedding(self: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    table = asymmetric_uint8(self.weight)
    return F.embedding(
        ids, table, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse
    )


_FORWARDS = ((torch.nn.Linear, _linear), (torch.nn.Embedding, _embedding))


class _Quantised:
    """The forward ``fake_quantised`` puts on one module instance."""

    def __init__(self, module: torch.nn.Module, forward: Callable) -> None:
        self.module, self.forward = module, forward

    def __call__(self, *args, **kwargs):
        return self.forward(self.module, *args, **kwargs)

    def __deepcopy__(self, memo: dict):
        # a copy made inside the context computes plainly (its own class's forward, on itself)
        twin = copy.deepcopy(self.module, memo)
        return type(twin).forward.__get__(twin)


def is_fake_quantised(module: torch.nn.Module) -> bool:
    """Whether ``module`` currently computes through ``fake_quantised``'s swapped forward."""
    return isinstance(module.__dict__.get("forward"), _Quantised)


@contextlib.contextmanager
def fake_quantised(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """While active, ``model``'s ``nn.Linear`` and ``nn.Embedding`` layers compute as the int8
    export will (see the module's docstring); on exit they are plain again, whatever happened."""
    swapped: list[tuple[torch.nn.Module, object]] = []
    try:
        for module in model.modules():
            forward = next((f for kind, f in _FORWARDS if isinstance(module, kind)), None)
            if forward is None or is_fake_quantised(module):
                continue
            swapped.append((module, module.__dict__.get("forward")))
            module.forward = _Quantised(module, forward)
        yield model
    finally:
        for module, before in reversed(swapped):
            del module.forward
            if before is not None:  # an instance-level forward someone else had set
                module.forward = before
