"""Hard budgets: absolute and teacher-relative limits give Optuna's constraint sign (> 0 broken)."""

import pytest

from autodistill.config.run import BudgetConfig
from autodistill.search.budget import measured_violation, predicted_violation


def test_parameter_share_is_relative_to_the_teacher():
    b = BudgetConfig(max_parameter_share=0.4)
    assert predicted_violation(b, 400, teacher_parameters=1000) == pytest.approx(0.0)
    assert predicted_violation(b, 300, teacher_parameters=1000) == 0.0
    assert predicted_violation(b, 500, teacher_parameters=1000) == pytest.approx(0.25)
    # the stricter of two limits decides
    both = BudgetConfig(max_parameters=450, max_parameter_share=0.5)
    assert predicted_violation(both, 480, teacher_parameters=1000) == pytest.approx(480 / 450 - 1)


def test_min_speedup_compares_latencies_measured_together():
    b = BudgetConfig(min_speedup=3.0)
    assert measured_violation(b, 5.0, None, teacher_latency_ms=15.0) == pytest.approx(0.0)
    assert measured_violation(b, 4.0, None, teacher_latency_ms=15.0) == 0.0
    assert measured_violation(b, 6.0, None, teacher_latency_ms=15.0) == pytest.approx(0.2)
    # no teacher measurement, nothing to compare: the other limits still apply
    assert measured_violation(BudgetConfig(min_speedup=3.0, max_latency_ms=5.0), 6.0, None, None) == pytest.approx(0.2)


def test_no_limits_no_violation():
    assert predicted_violation(BudgetConfig(), 10**9, teacher_parameters=10) == 0.0
    assert measured_violation(BudgetConfig(), 100.0, 1e6, teacher_latency_ms=1.0) == 0.0
