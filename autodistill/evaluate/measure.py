"""A student measured next to its teacher: parameters, size, CPU latency and peak memory of each,
and the student's ratios to the teacher."""

from __future__ import annotations

from typing import Any

from autodistill.config.run import RunConfig
from autodistill.evaluate.memory import peak_memory_mb
from autodistill.evaluate.size import parameter_counts, state_size_mb
from autodistill.evaluate.speed import latency_ratio, measure_latencies


def measure_model(model: Any, cfg: RunConfig, seq_len: int) -> dict[str, Any]:
    """Parameters, size, CPU latency (fixed threads, after warm-up) and peak memory of one model."""
    return measure_models([model], cfg, seq_len)[0]


def measure_models(models: list[Any], cfg: RunConfig, seq_len: int) -> list[dict[str, Any]]:
    """``measure_model`` for a student and its teacher together: their timed passes interleave, so
    the ratio between them does not depend on what the machine's neighbours did meanwhile."""
    ev = cfg.evaluate
    outs: list[dict[str, Any]] = [
        {"parameters": parameter_counts(m), "size_mb": round(state_size_mb(m), 3)} for m in models
    ]
    if ev.latency:
        models = [m.to("cpu").eval() for m in models]
        lats = measure_latencies(
            models,
            batch_sizes=tuple(ev.batch_sizes),
            seq_len=seq_len,
            threads=ev.threads,
            warmup=ev.warmup,
            repeats=ev.repeats,
        )
        for out, m, lat in zip(outs, models, lats, strict=True):
            out["latency_ms"] = lat
            out["peak_memory_mb"] = round(peak_memory_mb(m, max(ev.batch_sizes), seq_len), 2)
    if ev.energy:
        for out, m in zip(outs, models, strict=True):
            out["energy"] = prediction_energy(m.to("cpu").eval(), seq_len, ev.threads)
    return outs


def prediction_energy(model: Any, seq_len: int, threads: int) -> dict[str, Any]:
    """Joules per 1,000 batch-1 predictions at ``seq_len`` tokens (random ids, full mask), on
    ``threads`` CPU threads, and how they were found (``evaluate.energy``)."""
    import torch

    from autodistill.evaluate.energy import model_energy
    from autodistill.evaluate.speed import random_batch_fn

    inputs = random_batch_fn(model)(1, seq_len)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return model_energy(lambda: model(**inputs))
    finally:
        torch.set_num_threads(old)


def compare(student: dict[str, Any], teacher: dict[str, Any]) -> dict[str, float]:
    """Student relative to the teacher, measured in the same process (``measure_models``)."""
    out = {
        "parameter_ratio": student["parameters"]["total"] / teacher["parameters"]["total"],
        "size_ratio": student["size_mb"] / teacher["size_mb"],
    }
    if "latency_ms" in student and "latency_ms" in teacher:
        out.update(latency_ratio(student["latency_ms"], teacher["latency_ms"]))
    return {k: round(v, 4) for k, v in out.items()}
