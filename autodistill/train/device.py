"""Device choice and mixed precision: CPU by default, CUDA with bf16 autocast when present."""

from __future__ import annotations

import contextlib

import torch

from autodistill.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "The 'distill.device' parameter is 'cuda', but no CUDA device is available. Use 'auto' or 'cpu'."
        )
    return torch.device(name)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
