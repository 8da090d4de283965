"""Energy, through codecarbon: what a training run or a measurement used, in joules, and the energy
of 1,000 predictions of a model.

codecarbon reads the CPU's RAPL counters where Linux exposes them (``measured``); elsewhere it
estimates the CPU's power from this process's CPU load and the model's TDP, and RAM's from its
size (``estimated``). Every figure carries which of the two it is. The tracker runs offline (no
location lookup), writes no file and reports for this process only (``tracking_mode="process"``),
so a neighbour's load on a shared machine is not counted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

KWH = 3.6e6  # joules per kWh


@dataclass
class Energy:
    joules: float = 0.0
    seconds: float = 0.0
    method: str = "unavailable"  # measured (RAPL), estimated (CPU load x TDP), or unavailable

    def record(self) -> dict[str, Any]:
        return {"joules": round(self.joules, 4), "seconds": round(self.seconds, 3), "method": self.method}


def _method(tracker: Any) -> str:
    # codecarbon does not publish how it measured; its CPU object's mode says (read defensively)
    modes = {getattr(h, "_mode", None) for h in getattr(tracker, "_hardware", [])}
    if "intel_rapl" in modes or "apple_powermetrics" in modes:
        return "measured"
    return "estimated"


@contextlib.contextmanager
def metered(enabled: bool = True) -> Iterator[Energy]:
    """The energy of the block (``Energy`` filled when it ends); ``method`` stays ``unavailable``
    when not ``enabled`` or when codecarbon is missing or fails, and the block runs all the same."""
    out = Energy()
    start = time.perf_counter()
    tracker = None
    try:
        if not enabled:
            raise LookupError("energy is not measured")
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets it

        tracker = OfflineEmissionsTracker(
            country_iso_code="USA", save_to_file=False, log_level="error", tracking_mode="process",
            measure_power_secs=1,
        )  # fmt: skip
        tracker.start()
    except Exception:  # noqa: BLE001 - energy is a report, never a reason for the run to fail
        tracker = None
    try:
        yield out
    finally:
        out.seconds = time.perf_counter() - start
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.stop()
                data = tracker.final_emissions_data
                out.joules = float(data.energy_consumed) * KWH
                out.method = _method(tracker)


def model_energy(predict: Callable[[], Any], seconds: float = 1.5, least: int = 10) -> dict[str, Any]:
    """``per_1000`` with as many predictions as fill about ``seconds`` (at least ``least``, at most
    5,000): a meter's figure over a fraction of a second is mostly its own overhead."""
    start = time.perf_counter()
    predict()
    one = max(1e-6, time.perf_counter() - start)
    return per_1000(predict, int(min(5000, max(least, seconds / one))))


def per_1000(predict: Callable[[], Any], n: int) -> dict[str, Any]:
    """Joules per 1,000 predictions: ``predict()`` (one prediction) run ``n`` times in a meter,
    after one warm-up call."""
    predict()
    with metered() as e:
        for _ in range(n):
            predict()
    return {"joules_per_1000": round(e.joules * 1000.0 / n, 4), "method": e.method, "predictions": n}
