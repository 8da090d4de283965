"""Measured latency: the model alone, threads pinned, median of repeated forward passes.

Absolute milliseconds on a shared machine drift with the neighbours' load, so the search compares
students by the ratio to the teacher measured in the same process with their passes interleaved
(``measure_latencies``, ``latency_ratio``); the drift cancels in the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from autodistill.evaluate.predict import model_input_keys

BatchFn = Callable[[int, int], dict[str, torch.Tensor]]
DEFAULT_SEQ_LEN = 128  # DataConfig.max_length's default; callers pass evaluate.seq_len when set


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def vocab_size(model: nn.Module) -> int:
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if size:
        return int(size)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is None:
        raise ValueError("Cannot make random inputs: the model has no config.vocab_size and no input embeddings.")
    return int(emb.num_embeddings)


def random_batch_fn(model: nn.Module, seed: int = 0) -> BatchFn:
    """``(batch_size, seq_len) -> inputs``: random ids in the model's vocabulary, full attention mask.

    Random ids cost the same as real text for a dense encoder; a fixed length makes the shape, and
    so the time, the same for every student measured.
    """
    vocab, device, keys = vocab_size(model), model_device(model), model_input_keys(model)

    def make(batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab, (batch_size, seq_len), generator=gen)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return {k: v.to(device) for k, v in batch.items() if k in keys}

    return make


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    example_batch_fn: BatchFn | None = None,
    batch_sizes: Sequence[int] = (1, 32),
    seq_len: int | None = None,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> dict[str, float]:
    """Median milliseconds per forward pass at each batch size: ``{"latency_ms_b1": ..., ...}``.

    ``example_batch_fn(batch_size, seq_len)`` makes the inputs (default: ``random_batch_fn``).
    The thread count is set to ``threads`` for the measurement and restored afterwards; the model
    is put in eval mode and its mode restored. Warm-up passes are not timed (first-call allocation,
    oneDNN kernel selection). The median resists the odd slow pass that a shared machine causes.
    """
    fns = None if example_batch_fn is None else [example_batch_fn]
    return measure_latencies([model], fns, batch_sizes, seq_len, threads, warmup, repeats)[0]


@torch.inference_mode()
def measure_latencies(
    models: Sequence[nn.Module],
    example_batch_fns: Sequence[BatchFn] | None = None,
    batch_sizes: Sequence[int] = (1, 32),
    seq_len: int | None = None,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> list[dict[str, float]]:
    """``measure_latency`` for several models with their passes interleaved (A B A B ...), so a
    neighbour's load that comes and goes during the measurement falls on all of them alike and
    cancels in their ratio (a student against its teacher)."""
    if threads < 1 or warmup < 0 or repeats < 1 or not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(
            f"measure_latency needs threads >= 1, warmup >= 0, repeats >= 1 and batch sizes >= 1. "
            f"Got threads={threads}, warmup={warmup}, repeats={repeats}, batch_sizes={list(batch_sizes)} instead."
        )
    if not models or (example_batch_fns is not None and len(example_batch_fns) != len(models)):
        n_fns = "none" if example_batch_fns is None else len(example_batch_fns)
        raise ValueError(
            f"measure_latencies needs at least one model and one example_batch_fn per model (or none). "
            f"Got {len(models)} model(s) and {n_fns} example_batch_fns instead."
        )
    seq_len = DEFAULT_SEQ_LEN if seq_len is None else seq_len
    makes = list(example_batch_fns) if example_batch_fns is not None else [random_batch_fn(m) for m in models]
    old_threads, was_training = torch.get_num_threads(), [m.training for m in models]
    for m in models:
        m.eval()
    torch.set_num_threads(threads)
    out: list[dict[str, float]] = [{} for _ in models]
    try:
        for bs in batch_sizes:
            runs = []
            for m, make in zip(models, makes, strict=True):
                device, keys = model_device(m), model_input_keys(m)
                runs.append((m, device, {k: v.to(device) for k, v in make(bs, seq_len).items() if k in keys}))
            for m, device, inputs in runs:
                for _ in range(warmup):
                    m(**inputs)
                _sync(device)
            times: list[list[float]] = [[] for _ in models]
            for _ in range(repeats):
                for i, (m, device, inputs) in enumerate(runs):
                    start = time.perf_counter()
                    m(**inputs)
                    _sync(device)
                    times[i].append((time.perf_counter() - start) * 1000.0)
            for i in range(len(models)):
                out[i][f"latency_ms_b{bs}"] = float(statistics.median(times[i]))
    finally:
        torch.set_num_threads(old_threads)
        for m, mode in zip(models, was_training, strict=True):
            m.train(mode)
    return out


def latency_ratio(student_ms: dict[str, float], teacher_ms: dict[str, float]) -> dict[str, float]:
    """``{"speedup_b1": teacher / student, ...}`` for every batch size measured for both."""
    out: dict[str, float] = {}
    for key, s in student_ms.items():
        if key.startswith("latency_ms_b") and key in teacher_ms and s > 0:
            out["speedup_b" + key.removeprefix("latency_ms_b")] = float(teacher_ms[key] / s)
    return out
