from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from autodistill.evaluate import latency_ratio, measure_latencies, measure_latency, peak_memory, peak_memory_mb, speed


def test_latency_is_positive_finite_per_batch_size_and_restores_state(tiny_bert):
    before = torch.get_num_threads()
    pinned = 2 if before == 1 else 1
    seen: list[tuple[int, int, int]] = []

    def batch_fn(batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
        seen.append((batch_size, seq_len, torch.get_num_threads()))
        ids = torch.randint(0, 99, (batch_size, seq_len))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.zeros(batch_size)}

    tiny_bert.train()
    out = measure_latency(tiny_bert, batch_fn, batch_sizes=(1, 4), seq_len=16, threads=pinned, warmup=1, repeats=3)
    assert set(out) == {"latency_ms_b1", "latency_ms_b4"}
    assert all(math.isfinite(v) and v > 0 for v in out.values())
    assert seen == [(1, 16, pinned), (4, 16, pinned)]  # inputs made while the threads were pinned
    assert torch.get_num_threads() == before
    assert tiny_bert.training


def test_latency_default_inputs_are_in_the_vocab(tiny_bert):
    # a token id outside the vocab would raise an IndexError in the embedding
    out = measure_latency(tiny_bert, batch_sizes=(2,), seq_len=8, warmup=0, repeats=3)
    assert list(out) == ["latency_ms_b2"] and out["latency_ms_b2"] > 0


def test_latency_rejects_bad_settings(tiny_bert):
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(tiny_bert, repeats=0)


class Ticks(nn.Module):
    """Advances a fake clock by ``ms`` milliseconds a pass and writes its name into a shared log."""

    def __init__(self, name: str, ms: float, log: list[str], clock: list[float]) -> None:
        super().__init__()
        self.name, self.ms, self.log, self.clock = name, ms, log, clock
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        self.clock[0] += self.ms / 1000
        return input_ids.float() + self.w


def _zeros(batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
    ids = torch.zeros(batch_size, seq_len, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_latencies_interleave_the_models_and_time_each(monkeypatch):
    log: list[str] = []
    clock = [0.0]  # a fake clock, so the times are exact and the test does not depend on the machine
    monkeypatch.setattr(speed, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    fast, slow = Ticks("fast", 2, log, clock), Ticks("slow", 8, log, clock)
    slow.train()
    fast.eval()
    a, b = measure_latencies([fast, slow], [_zeros, _zeros], batch_sizes=(1, 2), seq_len=4, warmup=1, repeats=3)
    assert log == ["fast", "slow"] * (1 + 3) * 2  # per batch size: one warm-up each, then A B A B A B
    assert a == pytest.approx({"latency_ms_b1": 2.0, "latency_ms_b2": 2.0})
    assert b == pytest.approx({"latency_ms_b1": 8.0, "latency_ms_b2": 8.0})
    assert slow.training and not fast.training  # modes restored


def test_latencies_reject_a_batch_fn_count_that_does_not_match(tiny_bert):
    with pytest.raises(ValueError, match=r"one example_batch_fn per model .*2 model\(s\) and 1 example_batch_fns"):
        measure_latencies([tiny_bert, tiny_bert], [_zeros])
    with pytest.raises(ValueError, match="at least one model"):
        measure_latencies([])


def test_latency_ratio():
    student = {"latency_ms_b1": 2.0, "latency_ms_b32": 10.0, "latency_ms_b8": 1.0}
    teacher = {"latency_ms_b1": 4.0, "latency_ms_b32": 50.0}
    assert latency_ratio(student, teacher) == {"speedup_b1": 2.0, "speedup_b32": 5.0}


class Allocates(nn.Module):
    """Allocates exactly ``batch * MB_PER_ROW`` MB of float32 in its forward, and nothing else big."""

    FLOATS_PER_ROW = 250_000  # 1 MB

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"vocab_size": 10})()
        self.scale = nn.Parameter(torch.ones(1000))  # 4 KB of weights

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        big = torch.ones(input_ids.shape[0], self.FLOATS_PER_ROW, device=input_ids.device)
        return big.sum(dim=1) * self.scale[0]


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 4])
def test_peak_memory_counts_a_known_allocation(batch, device):
    out = peak_memory(Allocates().to(device), batch, 8)
    assert out["weights"] == pytest.approx(0.004)
    assert out["inputs"] == pytest.approx(2 * batch * 8 * 8 / 1e6)  # ids and mask, int64
    assert out["activations"] == pytest.approx(batch * 1.0, rel=0.01)
    assert out["peak"] == pytest.approx(out["weights"] + out["inputs"] + out["activations"])


def test_peak_memory_grows_with_batch_size(tiny_bert):
    small, large = peak_memory(tiny_bert, 1, 32), peak_memory(tiny_bert, 8, 32)
    assert (
        small["weights"]
        == large["weights"]
        == pytest.approx(
            sum(t.numel() * t.element_size() for t in [*tiny_bert.parameters(), *tiny_bert.buffers()]) / 1e6
        )
    )
    # Activations scale with the batch: at least the attention scores [B, heads, L, L] fp32 are live.
    assert large["activations"] >= 8 * 4 * 32 * 32 * 4 / 1e6
    assert large["activations"] > 4 * small["activations"] > 0
    assert peak_memory_mb(tiny_bert, 8, 32) == pytest.approx(large["peak"])
