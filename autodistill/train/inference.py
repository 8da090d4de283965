"""Batches for inference over an encoded split, and logits in example order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from autodistill.data import Encoded, batch_indices, collate


def batches_for(
    enc: Encoded, pad_id: int, batch_size: int, token_id_map: torch.Tensor | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Length-sorted padded batches (each padded to its own longest example)."""
    for idx in batch_indices(enc.lengths, batch_size, shuffle=False, seed=0):
        batch = collate(enc, idx, pad_id)
        if token_id_map is not None:
            batch["input_ids"] = token_id_map[batch["input_ids"]]
        yield batch


def predict_logits(
    model: torch.nn.Module,
    enc: Encoded,
    pad_id: int,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    token_id_map: torch.Tensor | None = None,
) -> np.ndarray:
    from autodistill.evaluate import predict

    _, logits, _ = predict(model, batches_for(enc, pad_id, batch_size, token_id_map), device=device)
    return logits
