"""Measuring a causal language model beside its teacher: perplexity, agreement with the teacher,
generation speed and the peak memory of one generate call.

Quality is scored on fixed blocks (``input_ids``, ``labels``, ``attention_mask`` arrays of shape
``[n, block]``), so teacher and student see the same tokenisation and the same context. Labels are
the unshifted token ids with -100 where no loss is taken: position t's logits predict token t+1,
and position t counts when ``labels[:, t + 1] != -100``.

Speed follows ``autodistill.evaluate.speed``: threads pinned, warm-up runs untimed, medians, and the
models' timed runs interleaved, so a neighbour's load falls on student and teacher alike and
cancels in their ratio. Memory follows ``autodistill.evaluate.memory``: weights + inputs + the
allocator's high-water mark during the call.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autodistill.errors import DataError
from autodistill.evaluate.memory import _cpu_activation_peak, _cuda_activation_peak
from autodistill.evaluate.predict import logits_of, model_input_keys
from autodistill.evaluate.size import MB, weights_bytes
from autodistill.evaluate.speed import _sync, model_device
from autodistill.evaluate.speed import vocab_size as model_vocab_size

IGNORE = -100


# -- quality ---------------------------------------------------------------------------------------
def _as_long(name: str, array: Any) -> torch.Tensor:
    t = torch.as_tensor(array)
    if t.ndim != 2:
        raise DataError(f"The '{name}' array must have shape [n, block]. Got shape {tuple(t.shape)} instead.")
    return t.to(torch.long)


def _blocks(
    input_ids: Any, labels: Any, attention_mask: Any, batch_size: int, device: str
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """``(model inputs, next-token targets [b, block - 1])`` per batch; targets are -100 where nothing counts."""
    ids, lab, mask = (
        _as_long("input_ids", input_ids),
        _as_long("labels", labels),
        _as_long("attention_mask", attention_mask),
    )
    if not ids.shape == lab.shape == mask.shape:
        raise DataError(
            f"The 'input_ids', 'labels' and 'attention_mask' arrays must have the same shape. "
            f"Got {tuple(ids.shape)}, {tuple(lab.shape)} and {tuple(mask.shape)} instead."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1. Got {batch_size} instead.")
    if not (lab[:, 1:] != IGNORE).any():
        raise DataError("The 'labels' array has no counted token (every label after the first position is -100).")
    # a forward call (unlike generate) numbers positions 0..block-1 whatever the mask says; counting
    # only attended tokens keeps a left-padded block's positions the same as the unpadded block's
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    for start in range(0, len(ids), batch_size):
        part = slice(start, start + batch_size)
        batch = {"input_ids": ids[part], "attention_mask": mask[part], "position_ids": positions[part]}
        yield {k: v.to(device) for k, v in batch.items()}, lab[part, 1:].to(device)


def _next_token_logits(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits at positions 0..block-2 (those that predict a next token), float32: ``[b, block - 1, V]``."""
    keys = model_input_keys(model)
    return logits_of(model(**{k: v for k, v in inputs.items() if k in keys}))[:, :-1].float()


@contextlib.contextmanager
def _evaluating(models: Sequence[nn.Module], device: str | None = None, threads: int | None = None) -> Iterator[None]:
    """Eval mode (and ``threads`` torch threads) for the block; the modes and thread count are restored.
    Models are moved to ``device`` in place (``nn.Module.to``) and stay there."""
    old_threads, was_training = torch.get_num_threads(), [m.training for m in models]
    for m in models:
        if device is not None:
            m.to(device)
        m.eval()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(old_threads)
        for m, mode in zip(models, was_training, strict=True):
            m.train(mode)


def perplexity(
    model: nn.Module,
    input_ids: Any,
    labels: Any,
    attention_mask: Any,
    batch_size: int = 8,
    device: str = "cpu",
    vocab: int | None = None,
) -> dict[str, float]:
    """``{"nll", "perplexity", "tokens"}``: the mean next-token negative log-likelihood per counted
    token over all blocks (a token-weighted mean, not a mean of batch means), its exp, and the count.
    ``vocab``: the logit columns that are tokens (a padded vocabulary's extra columns are left out,
    as training and the search leave them out).

    The model is moved to ``device`` and run in eval mode (its mode is restored)."""
    total, count = 0.0, 0
    with _evaluating([model], device):
        for inputs, targets in _blocks(input_ids, labels, attention_mask, batch_size, device):
            counted = targets != IGNORE  # selected first: a padded position's logits may be NaN
            logits = _next_token_logits(model, inputs)[..., :vocab]
            nll = F.cross_entropy(logits[counted], targets[counted], reduction="none")
            total += float(nll.double().sum())
            count += int(counted.sum())
    nll_mean = total / count
    return {"nll": nll_mean, "perplexity": math.exp(nll_mean), "tokens": count}


def teacher_agreement(
    student: nn.Module,
    teacher: nn.Module,
    input_ids: Any,
    labels: Any,
    attention_mask: Any,
    batch_size: int = 8,
    device: str = "cpu",
    vocab_size: int | None = None,
) -> dict[str, float]:
    """``{"top1_agreement", "kl"}`` over the counted positions: the share where the student's argmax
    equals the teacher's, and the mean KL(teacher || student) per counted token at temperature 1.

    Padded vocabularies: when one model's logits are wider than the other's (an embedding matrix
    rounded up to a multiple of 64, say), only the first ``min(V_student, V_teacher)`` columns are
    compared, and also at most ``vocab_size`` (the tokenizer's length) when given; both
    distributions are renormalised over those columns, since the columns past them are no token.
    Both models are moved to ``device`` and run in eval mode (their modes are restored)."""
    agree, kl, count = 0, 0.0, 0
    with _evaluating([student, teacher], device):
        for inputs, targets in _blocks(input_ids, labels, attention_mask, batch_size, device):
            counted = targets != IGNORE
            s, t = _next_token_logits(student, inputs)[counted], _next_token_logits(teacher, inputs)[counted]
            width = min(s.shape[-1], t.shape[-1], vocab_size or s.shape[-1])
            log_s, log_t = F.log_softmax(s[:, :width], -1), F.log_softmax(t[:, :width], -1)
            agree += int((log_s.argmax(-1) == log_t.argmax(-1)).sum())
            kl += float(F.kl_div(log_s, log_t, reduction="none", log_target=True).double().sum())
            count += int(counted.sum())
    return {"top1_agreement": agree / count, "kl": kl / count}


# -- speed -----------------------------------------------------------------------------------------
def greedy_generate(model: nn.Module, input_ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """transformers' ``generate`` at greedy decoding with the KV cache, always ``new_tokens`` new
    tokens (``min_new_tokens`` keeps the end-of-sequence token from stopping it): ``[1, prompt + new]``."""
    return model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
    )


def random_prompt(vocab: int, prompt_len: int, seed: int = 0) -> torch.Tensor:
    """``[1, prompt_len]`` random ids below ``vocab``: the same for every model timed, and the cost of
    a dense decoder does not depend on which tokens it reads."""
    return torch.randint(0, vocab, (1, prompt_len), generator=torch.Generator().manual_seed(seed))


def _check_context(models: Sequence[nn.Module], prompt_len: int, new_tokens: int) -> None:
    if prompt_len < 1 or new_tokens < 2:
        raise ValueError(f"Generation needs prompt_len >= 1 and new_tokens >= 2. Got {prompt_len} and {new_tokens}.")
    for m in models:
        context = getattr(getattr(m, "config", None), "max_position_embeddings", None)
        if context and prompt_len + new_tokens > context:
            raise ValueError(
                f"prompt_len + new_tokens must be at most the model's context ({context}). "
                f"Got {prompt_len} + {new_tokens} instead."
            )


def _timed_ms(model: nn.Module, input_ids: torch.Tensor, new_tokens: int) -> float:
    device = input_ids.device
    _sync(device)
    start = time.perf_counter()
    greedy_generate(model, input_ids, new_tokens)
    _sync(device)
    return (time.perf_counter() - start) * 1000.0


def _speed_summary(first_ms: list[float], full_ms: list[float], prompt_len: int, new_tokens: int) -> dict[str, float]:
    prompt_ms = float(statistics.median(first_ms))
    decode_ms = float(statistics.median((n - f) / (new_tokens - 1) for f, n in zip(first_ms, full_ms, strict=True)))
    if decode_ms <= 0:
        # a decode step lost in the timer's noise (a tiny model on a busy machine) would give a time of
        # zero or less: the whole generation per token, an upper bound that is always positive, instead
        decode_ms = float(statistics.median(full_ms)) / new_tokens
    return {
        "prompt_ms": prompt_ms,
        "prompt_tokens_per_s": prompt_len * 1000.0 / prompt_ms,
        "decode_ms_per_token": decode_ms,
        "decode_tokens_per_s": 1000.0 / decode_ms,
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
    }


def generation_speed(
    models: Sequence[nn.Module],
    prompt_len: int,
    new_tokens: int,
    threads: int = 1,
    warmup: int = 2,
    repeats: int = 5,
    vocab_size: int | None = None,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Greedy generation at batch 1 with the KV cache, one dict per model, in order.

    ``prompt_ms`` is the median time to read the prompt and emit the first token (``generate`` with
    one new token); ``decode_ms_per_token`` the median over repeats of
    ``(t(new_tokens) - t(1)) / (new_tokens - 1)``, the cost of each further token. Every model reads
    the same random prompt (ids below ``vocab_size``, default the smallest vocabulary of the models).
    ``threads`` torch threads during the measurement (restored afterwards); ``warmup`` untimed pairs
    of runs per model, then the timed runs interleave: A rep 1, B rep 1, A rep 2, ...
    """
    if threads < 1 or warmup < 0 or repeats < 1 or not models:
        raise ValueError(
            f"generation_speed needs at least one model, threads >= 1, warmup >= 0 and repeats >= 1. "
            f"Got {len(models)} model(s), threads={threads}, warmup={warmup}, repeats={repeats} instead."
        )
    _check_context(models, prompt_len, new_tokens)
    prompt = random_prompt(vocab_size or min(model_vocab_size(m) for m in models), prompt_len, seed)
    prompts = [prompt.to(model_device(m)) for m in models]
    first: list[list[float]] = [[] for _ in models]
    full: list[list[float]] = [[] for _ in models]
    with _evaluating(models, threads=threads):
        for m, ids in zip(models, prompts, strict=True):
            for _ in range(warmup):
                _timed_ms(m, ids, 1)
                _timed_ms(m, ids, new_tokens)
        for _ in range(repeats):
            for i, (m, ids) in enumerate(zip(models, prompts, strict=True)):
                first[i].append(_timed_ms(m, ids, 1))
                full[i].append(_timed_ms(m, ids, new_tokens))
    return [_speed_summary(f, n, prompt_len, new_tokens) for f, n in zip(first, full, strict=True)]


def speed_ratio(student: dict[str, float], teacher: dict[str, float]) -> dict[str, float]:
    """``{"decode_speedup", "prompt_speedup"}``: teacher time / student time from ``generation_speed``."""
    return {
        "decode_speedup": teacher["decode_ms_per_token"] / student["decode_ms_per_token"],
        "prompt_speedup": teacher["prompt_ms"] / student["prompt_ms"],
    }


# -- memory ----------------------------------------------------------------------------------------
def peak_memory_mb(model: nn.Module, prompt_len: int, new_tokens: int) -> float:
    """Peak MB (1e6 bytes) of one ``greedy_generate`` call at batch 1: weights + prompt ids + the
    high-water mark of what the call allocates (activations, logits, the growing KV cache).

    Measured the way ``autodistill.evaluate.memory`` measures a forward pass (the profiler's
    allocation events on CPU, the caching allocator's peak on CUDA), after one untimed call."""
    _check_context([model], prompt_len, new_tokens)
    device = model_device(model)
    ids = random_prompt(model_vocab_size(model), prompt_len).to(device)

    def run(input_ids: torch.Tensor) -> torch.Tensor:
        return greedy_generate(model, input_ids, new_tokens)

    with _evaluating([model]):
        run(ids)  # lazy buffers and kernel caches are not the call's cost
        if device.type == "cuda":
            act = _cuda_activation_peak(run, {"input_ids": ids}, device)
        else:
            act = _cpu_activation_peak(run, {"input_ids": ids})
    return (weights_bytes(model) + ids.untyped_storage().nbytes() + act) / MB
