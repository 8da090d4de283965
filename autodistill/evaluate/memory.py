"""Peak memory of one forward pass: the weights, the inputs and the activations' high-water mark.

CUDA: the caching allocator counts every byte; reset its peak, run, read ``max_memory_allocated``.

CPU has no allocator statistics, so the forward pass runs under the PyTorch profiler with
``profile_memory=True``, which records every allocation and free made through PyTorch's CPU
allocator in order; the running sum's maximum is the activations' peak. This was chosen over the
process's RSS high-water mark (``resource.getrusage``) because RSS is dominated by the interpreter
and libraries (hundreds of MB), never goes down within a process, includes the transient peak of
loading the model, and with glibc's allocator keeps freed pages; even in a fresh subprocess the
difference of two high-water marks is often zero for a small student. The profiler count is exact,
deterministic and takes milliseconds; it misses only scratch memory a kernel library (oneDNN)
allocates on its own, which is small against activations.

Both devices report the same quantity, so CPU and GPU budgets mean the same thing and a teacher
sharing the GPU does not inflate a student's number.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import torch
from torch import nn

from autodistill.evaluate.size import MB, weights_bytes
from autodistill.evaluate.speed import BatchFn, model_device, random_batch_fn


def _cpu_activation_peak(model: nn.Module, inputs: dict[str, torch.Tensor]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(**inputs)
    try:
        tree = prof.profiler.kineto_results.experimental_event_tree()
        alloc_tag = torch._C._profiler._EventType.Allocation
    except AttributeError as exc:  # a torch whose profiler moved these; fail loudly, never guess
        msg = f"peak_memory_mb cannot read allocation events from torch {torch.__version__}'s profiler."
        raise RuntimeError(msg) from exc
    events: list[tuple[int, int]] = []
    stack = list(tree)
    while stack:
        node = stack.pop()
        if node.tag == alloc_tag and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))  # frees are negative
        stack.extend(node.children)
    events.sort(key=lambda e: e[0])
    live = peak = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
    return peak


def _cuda_activation_peak(model: nn.Module, inputs: dict[str, torch.Tensor], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    model(**inputs)
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


@torch.inference_mode()
def peak_memory(
    model: nn.Module, batch_size: int, seq_len: int, example_batch_fn: BatchFn | None = None
) -> dict[str, float]:
    """MB (1e6 bytes) of ``weights``, ``inputs``, ``activations`` (high-water mark) and their ``peak`` sum."""
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"peak_memory needs batch_size >= 1 and seq_len >= 1. Got {batch_size} and {seq_len} instead.")
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        inputs = {k: v.to(device) for k, v in (example_batch_fn or random_batch_fn(model))(batch_size, seq_len).items()}
        model(**inputs)  # one untimed pass first: lazy buffers and kernel caches are not the forward's cost
        if device.type == "cuda":
            act = _cuda_activation_peak(model, inputs, device)
        else:
            act = _cpu_activation_peak(model, inputs)
    finally:
        model.train(was_training)
    weights = weights_bytes(model)
    in_bytes = sum(t.untyped_storage().nbytes() for t in inputs.values())
    return {
        "weights": weights / MB,
        "inputs": in_bytes / MB,
        "activations": act / MB,
        "peak": (weights + in_bytes + act) / MB,
    }


def peak_memory_mb(model: nn.Module, batch_size: int, seq_len: int, example_batch_fn: BatchFn | None = None) -> float:
    """Peak MB of one forward pass at ``[batch_size, seq_len]``: weights + inputs + activations."""
    return peak_memory(model, batch_size, seq_len, example_batch_fn)["peak"]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side prints USDT start/stop lines straight to fd 2; hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
