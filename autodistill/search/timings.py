"""Speed decisions that repeat: a book of batch-1 timings of student shapes beside the teacher, kept
per machine and teacher in the home, and close calls re-timed before they are written.

A speed budget (``min_speedup``, ``max_latency_ms``) decides on timings, and a student whose ratio
sits within the timer's noise of the limit is admitted by one run and refused by the next: two
runs of the same config then export different students. Latency follows a student's shape, not
its weights, so the book keys a timing by the shape (the model's config), the sequence length,
threads and runtime, the teacher, the machine and the library versions: a shape seen before on
this machine is decided from the book, the same way each time. A shape timed for the first time
whose ratio lies within ``band`` of the limit is timed ``retries`` more times and decided on the
median of the rounds, and the book records that the call was close.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.files import write_text
from autodistill.fingerprint import hash_json

Timer = Callable[[], tuple[float, float]]  # -> (student ms, teacher ms), timed together


@dataclass(frozen=True)
class Timing:
    latency_ms: float
    teacher_latency_ms: float
    rounds: int
    close: bool  # still within the band of the limit after the re-timings
    cached: bool  # read from the book, not timed now

    def record(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "close": self.close, "cached": self.cached}


def shape_key(model: Any, extra: dict[str, Any]) -> str:
    """What a timing depends on: the model's architecture (its config without names and versions),
    ``extra`` (sequence length, threads, runtime, teacher), the machine and the library versions."""
    import torch

    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
    for key in ("transformers_version", "name_or_path", "id2label", "label2id", "dtype", "torch_dtype"):
        config.pop(key, None)
    machine = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "node": platform.node(), "torch": torch.__version__}  # fmt: skip
    return hash_json({"config": config, **extra, **machine})


def close_to_limit(latency_ms: float, teacher_ms: float, min_speedup: float | None,
                   max_latency_ms: float | None, band: float) -> bool:  # fmt: skip
    """Is either speed budget's ratio within ``band`` (relative) of its limit?"""
    near = False
    if min_speedup is not None and latency_ms > 0:
        near |= abs((teacher_ms / latency_ms) / min_speedup - 1) < band
    if max_latency_ms is not None:
        near |= abs(latency_ms / max_latency_ms - 1) < band
    return near


class TimingBook:
    """Timings by shape key in one JSON file (read and written under an exclusive lock)."""

    def __init__(self, path: Path | None, band: float = 0.05, retries: int = 2) -> None:
        self.path, self.band, self.retries = path, band, retries

    def time(self, key: str, timer: Timer, min_speedup: float | None, max_latency_ms: float | None) -> Timing:
        """The recorded timing of ``key``, or ``timer`` run now (re-run on a close call) and recorded."""
        if self.path is not None:
            found = self._read().get(key)
            if found is not None:
                return Timing(found["latency_ms"], found["teacher_latency_ms"], found["rounds"], found["close"], True)
        rounds = [timer()]
        close = close_to_limit(*rounds[0], min_speedup, max_latency_ms, self.band)
        if close:
            rounds += [timer() for _ in range(self.retries)]
            lat = statistics.median(r[0] for r in rounds)
            teacher = statistics.median(r[1] for r in rounds)
            close = close_to_limit(lat, teacher, min_speedup, max_latency_ms, self.band)
        else:
            lat, teacher = rounds[0]
        timing = Timing(float(lat), float(teacher), len(rounds), close, False)
        if self.path is not None:
            self._write(key, timing)
        return timing

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, key: str, timing: Timing) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            book = self._read()
            book.setdefault(key, {"latency_ms": timing.latency_ms, "teacher_latency_ms": timing.teacher_latency_ms,
                                  "rounds": timing.rounds, "close": timing.close})  # fmt: skip
            write_text(self.path, json.dumps(book, indent=1, sort_keys=True))
        finally:
            os.close(fd)


def timing_book(cfg: Any, teacher_fingerprint: str) -> TimingBook:
    """The book of this teacher's timings in the home (``evaluate.reuse_timings``), or one that
    keeps nothing."""
    from autodistill.fingerprint import home

    if not cfg.evaluate.reuse_timings:
        return TimingBook(None)
    return TimingBook(home() / "timings" / f"{teacher_fingerprint[:24]}.json")
