"""Energy through codecarbon: a metered block reports joules and how they were found, a switched-off
or broken meter reports none and the block runs all the same, per-1,000 figures count their
predictions; the energy budget's violation and the objective's name."""

from __future__ import annotations

import sys
import time

import pytest

from autodistill.config.run import BudgetConfig, SearchConfig
from autodistill.config.schema import parse
from autodistill.errors import ConfigError
from autodistill.evaluate.energy import metered, model_energy, per_1000
from autodistill.search.budget import measured_violation


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_a_metered_block_reports_joules_and_the_method():
    with metered() as e:
        _busy(0.3)
    assert e.joules > 0 and e.method in ("measured", "estimated") and e.seconds >= 0.3
    assert set(e.record()) == {"joules", "seconds", "method"}


def test_a_switched_off_or_broken_meter_reports_nothing_and_the_block_runs(monkeypatch):
    ran = []
    with metered(enabled=False) as e:
        ran.append(1)
    assert ran and e.method == "unavailable" and e.joules == 0
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # the import fails
    with metered() as e:
        ran.append(2)
    assert ran == [1, 2] and e.method == "unavailable"


def test_per_1000_counts_its_predictions():
    calls = []
    found = per_1000(lambda: calls.append(_busy(0.001)), 50)
    assert len(calls) == 51 and found["predictions"] == 50 and found["joules_per_1000"] > 0
    calls.clear()
    found = model_energy(lambda: calls.append(_busy(0.02)), seconds=0.1, least=3)
    assert found["predictions"] == 5 or found["predictions"] >= 3  # about seconds / one call, at least 3


def test_energy_budget_and_objective_are_checked_by_key():
    b = parse(BudgetConfig, {"max_energy_share": 0.5}, "budget")
    assert measured_violation(b, None, None, None, 0.4) == 0
    assert measured_violation(b, None, None, None, 0.75) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="max_energy_share"):
        parse(BudgetConfig, {"max_energy_share": 0}, "budget")
    assert parse(SearchConfig, {"objectives": ["quality", "energy"]}, "search").objectives == ["quality", "energy"]
