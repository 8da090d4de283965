"""Top-k teacher targets: what the teacher cache keeps of a causal LM's next-token distribution.

A full vocabulary of logits per token is too large to cache (49152 floats per token for SmolLM2),
so each position keeps the teacher's ``k`` largest logits, their vocabulary indices and the
log-sum-exp of the other ``V - k`` logits (``rest_lse``). At ``T = 1`` that is exact for the
``k + 1`` buckets the losses compare: the ``k`` kept tokens and one "tail" bucket holding all the
other tokens' mass. The student, which has its full logits, is grouped into the same buckets.

Temperature and the tail (an approximation): at ``T != 1`` the tail bucket's mass depends on the
individual tail logits, which are not kept. The tail is modelled as ``n = V - k`` equal logits whose
log-sum-exp is ``rest_lse`` (each ``rest_lse - log n``), so at temperature ``T`` its log-sum-exp is
``(rest_lse - log n) / T + log n``. This is exact at ``T = 1`` and whenever the tail really is
uniform; otherwise it over-estimates the tail's mass for ``T > 1`` (for a fixed ``sum exp(z_i)``,
``sum exp(z_i / T)`` is largest when the ``z_i`` are equal, by Jensen) and under-estimates it for
``T < 1``. The kept tokens are exact at every ``T`` relative to one another.

:func:`reconstruction_kl` measures what caching top-k loses: the KL from the full distribution to
the one rebuilt from the cache with the tail spread evenly over its tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class TopK:
    """The cached teacher targets for positions ``[...]``.

    - ``values``: ``[..., k]`` the teacher's logits at ``T = 1``, sorted descending (fp16 on disk).
    - ``indices``: ``[..., k]`` their vocabulary indices (long).
    - ``rest_lse``: ``[...]`` log-sum-exp of the other ``V - k`` logits; ``-inf`` when ``k == V``.
    - ``vocab``: the vocabulary size ``V``.
    """

    values: torch.Tensor
    indices: torch.Tensor
    rest_lse: torch.Tensor
    vocab: int

    @property
    def k(self) -> int:
        return int(self.indices.shape[-1])

    def to(self, device: torch.device | str) -> TopK:
        return TopK(self.values.to(device), self.indices.to(device), self.rest_lse.to(device), self.vocab)


def compress(logits: torch.Tensor, k: int) -> TopK:
    """The top-``k`` targets of full ``logits [..., V]``; ``k > V`` keeps the whole vocabulary."""
    if k < 1:
        raise ValueError(f"compress needs k >= 1. Got {k!r} instead.")
    vocab = int(logits.shape[-1])
    k = min(k, vocab)
    full = logits.detach().float()
    values, indices = full.topk(k, dim=-1, sorted=True)
    if k == vocab:
        rest = torch.full(full.shape[:-1], -math.inf, device=full.device)
    else:  # masking the kept logits out is exact; lse(all) - lse(kept) would cancel catastrophically
        rest = full.scatter(-1, indices, -math.inf).logsumexp(-1)
    return TopK(values, indices, rest, vocab)


def _tail_lse(t: TopK, temperature: float) -> torch.Tensor:
    """Log-sum-exp of the tail at ``temperature``, under the uniform-tail model (module docstring)."""
    n = t.vocab - t.k
    rest = t.rest_lse.float()
    if n == 0:
        return torch.full_like(rest, -math.inf)
    log_n = math.log(n)
    return (rest - log_n) / temperature + log_n


def teacher_log_probs(t: TopK, temperature: float) -> torch.Tensor:
    """``[..., k + 1]`` teacher log-probabilities at ``temperature``: the ``k`` kept tokens, then the
    tail bucket (``-inf`` when ``k == V``)."""
    scores = torch.cat([t.values.float() / temperature, _tail_lse(t, temperature).unsqueeze(-1)], dim=-1)
    return scores - scores.logsumexp(-1, keepdim=True)


def student_log_probs(student_logits: torch.Tensor, t: TopK, temperature: float) -> torch.Tensor:
    """``[..., k + 1]`` exact student log-probabilities at ``temperature`` in the teacher's buckets:
    ``log_softmax(z / T)`` at the kept indices, then the log of the mass of every other token."""
    scaled = student_logits.float() / temperature
    lse = scaled.logsumexp(-1, keepdim=True)
    kept = scaled.gather(-1, t.indices) - lse
    if t.k == t.vocab:
        tail = torch.full_like(lse, -math.inf)
    else:  # the tail by masking, not log(1 - sum(kept)), which is 0 - 0 when the top-k hold all the mass
        tail = scaled.scatter(-1, t.indices, -math.inf).logsumexp(-1, keepdim=True) - lse
    return torch.cat([kept, tail], dim=-1)


def _expand(t: TopK) -> torch.Tensor:
    """Full ``[..., V]`` logits rebuilt from ``t``: the kept logits in place, the tail tokens each at
    ``rest_lse - log(V - k)`` so that together they hold the tail's mass."""
    n = t.vocab - t.k
    fill = t.rest_lse.float() - math.log(n) if n else torch.zeros_like(t.rest_lse, dtype=torch.float32)
    full = fill.unsqueeze(-1).expand(*fill.shape, t.vocab).contiguous()
    return full.scatter(-1, t.indices, t.values.float())


def reconstruction_kl(full_logits: torch.Tensor, k: int, temperature: float = 1.0) -> torch.Tensor:
    """Mean over positions of ``KL(p_full || p_rebuilt)`` at ``temperature``, where ``p_rebuilt`` is
    the distribution rebuilt from the top-``k`` cache with its tail spread evenly: the fidelity lost by
    caching top-k (0 when ``k >= V``)."""
    full = full_logits.detach().float()
    log_p = F.log_softmax(full / temperature, dim=-1).reshape(-1, full.shape[-1])
    log_r = F.log_softmax(_expand(compress(full, k)) / temperature, dim=-1).reshape(-1, full.shape[-1])
    return F.kl_div(log_r, log_p, reduction="batchmean", log_target=True).clamp_min(0.0)
