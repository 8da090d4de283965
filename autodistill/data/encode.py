"""Tokenize once, pad per batch.

Texts are tokenized a single time into unpadded id arrays; :func:`collate` pads each batch only
to its own longest example and :func:`batch_indices` groups similar lengths, so short snippets
(Rotten Tomatoes averages ~27 tokens) do not pay for a fixed pad length.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from autodistill.data.types import TextSplit

_CHUNK = 2048  # texts per tokenizer call: batched for speed, bounded for memory
_BUCKET_BATCHES = 50  # batches per length-sorted chunk when shuffling


@dataclass
class Encoded:
    """A tokenized split: one int32 id array per example, unpadded."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(split: TextSplit, tokenizer, max_length: int) -> Encoded:
    """Tokenize ``split`` with truncation to ``max_length`` tokens (special tokens included)."""
    want_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    ids: list[np.ndarray] = []
    types: list[np.ndarray] | None = [] if want_types else None
    for start in range(0, len(split), _CHUNK):
        texts = list(split.texts[start : start + _CHUNK])
        pairs = None if split.text_pairs is None else list(split.text_pairs[start : start + _CHUNK])
        out = tokenizer(
            texts,
            pairs,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=want_types,
        )
        ids.extend(np.asarray(x, dtype=np.int32) for x in out["input_ids"])
        if types is not None:
            types.extend(np.asarray(x, dtype=np.int32) for x in out["token_type_ids"])
    return Encoded(ids, types, np.asarray(split.labels, dtype=np.int64).copy())


def collate(enc: Encoded, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """A right-padded batch of the examples at ``indices``, as long as its longest example."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    rows = [enc.input_ids[i] for i in idx]
    width = max((len(r) for r in rows), default=0)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        input_ids[j, : len(r)] = r
        mask[j, : len(r)] = 1
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if enc.token_type_ids is not None:
        types = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(idx):
            t = enc.token_type_ids[i]
            types[j, : len(t)] = t
        batch["token_type_ids"] = torch.from_numpy(types)
    batch["labels"] = torch.from_numpy(enc.labels[idx].astype(np.int64))
    batch["index"] = torch.from_numpy(idx.copy())
    return batch


def batch_indices(lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> list[np.ndarray]:
    """Batches of example indices; every index appears exactly once.

    ``shuffle=False`` (evaluation): sorted by length, so padding is least. ``shuffle=True``
    (training): a seeded shuffle, then sorting within chunks of ~50 batches (similar lengths share
    a batch while the data order stays random at a coarse grain), then a shuffle of the batch order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Got {batch_size} instead.")
    lengths = np.asarray(lengths).reshape(-1)
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    chunk = batch_size * _BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides the ids: the tokenizer.json content (fast tokenizers) or the vocab,
    plus the special tokens. Runtime truncation/padding state is left out: encoding must not
    change the fingerprint."""
    h = hashlib.sha256(b"autodistill-tokenizer-v1")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    specials = {str(k): str(v) for k, v in tokenizer.special_tokens_map.items()}
    h.update(json.dumps(specials, sort_keys=True).encode())
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    h.update(json.dumps(ids, sort_keys=True).encode())
    h.update(type(tokenizer).__name__.encode())
    return h.hexdigest()


def token_counts(enc: Encoded, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in ``enc`` (int64, length ``vocab_size``)."""
    if not enc.input_ids:
        return np.zeros(vocab_size, dtype=np.int64)
    flat = np.concatenate(enc.input_ids).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
        raise ValueError(f"Token ids must lie in [0, {vocab_size}); found {int(flat.min())}..{int(flat.max())}.")
    return np.bincount(flat, minlength=vocab_size).astype(np.int64)
