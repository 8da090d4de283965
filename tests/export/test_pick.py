"""Pick rules on hand-made fronts: knee, caps, floors, explicit trial, nothing-satisfies errors."""

from __future__ import annotations

import pytest

from autodistill.export.pick import PickError, PickRule, close_calls, knee_of, pick, pick_candidates

TEACHER_MS = 10.0


def rec(number: int, quality: float, params: int, latency: float = 1.0, size: float | None = None) -> dict:
    size = params * 4 / 1e6 if size is None else size
    return {
        "number": number,
        "objectives": {"quality": quality, "parameters": float(params)},
        "metrics": {
            "quality": quality,
            "parameters": float(params),
            "latency_ms_b1": latency,
            "latency": latency / TEACHER_MS,  # the ratio the search records
            "size": size,
        },
    }


OBJ = ["quality", "parameters"]
# a front with an obvious knee at trial 2: big gains up to it, little after
FRONT = [
    rec(0, 0.60, 1_000_000, 1.0),
    rec(1, 0.75, 2_000_000, 2.0),
    rec(2, 0.85, 3_000_000, 3.0),
    rec(3, 0.86, 6_000_000, 6.0),
    rec(4, 0.87, 10_000_000, 10.0),
]
# a dominated trial: lower quality than 2 and bigger, but the fastest of all (latency is not an objective)
DOMINATED = rec(5, 0.80, 4_000_000, 0.5)


def test_no_rule_picks_the_knee():
    assert pick(FRONT, PickRule(), OBJ)["number"] == 2


def test_knee_ignores_dominated_points():
    # a dominated point far from the line must not be the knee
    assert knee_of([*FRONT, rec(9, 0.30, 9_000_000)], OBJ)["number"] == 2


def test_max_params_gives_best_quality_under_the_cap():
    assert pick(FRONT, PickRule(max_params=3_500_000), OBJ)["number"] == 2
    assert pick(FRONT, PickRule(max_params=2_000_000), OBJ)["number"] == 1  # the cap is inclusive


def test_max_latency_may_pick_a_trial_off_the_front():
    assert pick([*FRONT, DOMINATED], PickRule(max_latency_ms=0.9), OBJ)["number"] == 5
    assert pick([*FRONT, DOMINATED], PickRule(max_latency_ms=2.5), OBJ)["number"] == 5  # 0.80 beats 0.75


def test_min_speedup_is_relative_to_the_teacher():
    # speedups: 10x, 5x, 3.33x, 1.67x, 1x on the front; the dominated trial is 20x
    assert pick(FRONT, PickRule(min_speedup=3.0), OBJ)["number"] == 2
    assert pick(FRONT, PickRule(min_speedup=5.0), OBJ)["number"] == 1  # the bound is inclusive
    assert pick([*FRONT, DOMINATED], PickRule(min_speedup=6.0), OBJ)["number"] == 5
    assert pick(FRONT, PickRule(min_speedup=3.0, max_params=1_500_000), OBJ)["number"] == 0
    with pytest.raises(PickError) as err:
        pick(FRONT, PickRule(min_speedup=50.0), OBJ)
    assert "--min-speedup 50.0" in str(err.value) and "(10.00x the teacher)" in str(err.value)


def test_min_speedup_never_passes_a_trial_without_latency():
    unmeasured = rec(7, 0.99, 100)
    del unmeasured["metrics"]["latency"]
    assert pick([*FRONT, unmeasured], PickRule(min_speedup=2.0), OBJ)["number"] == 2  # not 7


def test_max_size_mb():
    assert pick(FRONT, PickRule(max_size_mb=25.0), OBJ)["number"] == 3  # 6M params x 4 bytes = 24 MB


def test_min_quality_gives_the_smallest_meeting_it():
    assert pick(FRONT, PickRule(min_quality=0.80), OBJ)["number"] == 2
    assert pick(FRONT, PickRule(min_quality=0.86), OBJ)["number"] == 3


def test_min_relative_quality_uses_the_teacher():
    # 0.9 x 0.95 = 0.855 -> trial 3 (0.86) is the smallest at or above it
    assert pick(FRONT, PickRule(min_relative_quality=0.9), OBJ, teacher_quality=0.95)["number"] == 3
    with pytest.raises(PickError, match="teacher"):
        pick(FRONT, PickRule(min_relative_quality=0.9), OBJ)


def test_floor_and_cap_together():
    assert pick(FRONT, PickRule(min_quality=0.7, max_latency_ms=2.5), OBJ)["number"] == 1
    with pytest.raises(PickError):
        pick(FRONT, PickRule(min_quality=0.86, max_params=5_000_000), OBJ)


def test_explicit_trial():
    assert pick([*FRONT, DOMINATED], PickRule(trial=5), OBJ)["number"] == 5
    with pytest.raises(PickError, match="'--trial'.*trial 42.*0, 1, 2, 3, 4"):
        pick(FRONT, PickRule(trial=42), OBJ)
    with pytest.raises(PickError, match="cannot be combined with --max-params"):
        PickRule(trial=1, max_params=10)


def test_nothing_satisfies_lists_the_closest():
    with pytest.raises(PickError) as err:
        pick(FRONT, PickRule(max_params=500_000), OBJ)
    msg = str(err.value)
    assert "--max-params 500000" in msg and "Closest trials" in msg
    lines = [line for line in msg.splitlines() if line.strip().startswith("trial ")]
    assert len(lines) == 3 and lines[0].strip().startswith("trial 0:")  # the smallest is the closest
    assert "quality 0.6000" in lines[0] and "parameters 1,000,000" in lines[0]

    with pytest.raises(PickError) as err:
        pick(FRONT, PickRule(min_quality=0.95), OBJ)
    first = next(line for line in str(err.value).splitlines() if line.strip().startswith("trial "))
    assert first.strip().startswith("trial 4:")  # the best quality is the closest to a floor


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"max_params": 0}, "--max-params"),
        ({"max_latency_ms": -1.0}, "--max-latency-ms"),
        ({"max_size_mb": 0.0}, "--max-size-mb"),
        ({"min_speedup": 0.0}, "--min-speedup"),
        ({"min_quality": 1.5}, "--min-quality"),
        ({"min_relative_quality": 0.0}, "--min-relative-quality"),
        ({"trial": -1}, "--trial"),
        ({"max_params": 10, "candidates": 0}, "--candidates"),
        ({"candidates": 2}, "--candidates"),  # the knee has no runners-up
        ({"min_quality": 0.5, "max_params": 10, "candidates": 2}, "--candidates"),
        ({"trial": 3, "candidates": 2}, "--candidates"),
    ],
)
def test_bad_values_name_the_flag(kwargs, flag):
    with pytest.raises(PickError, match=f"'{flag}'"):
        PickRule(**kwargs)


def test_empty_study():
    with pytest.raises(PickError, match="no finished feasible trial"):
        pick([], PickRule(), OBJ)


def test_candidates_are_the_best_under_the_limits_in_order():
    trials = [*FRONT, DOMINATED]
    rule = PickRule(max_params=6_000_000, candidates=3)
    assert [r["number"] for r in pick_candidates(trials, rule, OBJ)] == [3, 2, 5]
    assert pick(trials, rule, OBJ)["number"] == 3  # the first candidate is the single pick
    assert [r["number"] for r in pick_candidates(trials, PickRule(max_params=2_000_000, candidates=5), OBJ)] == [1, 0]
    assert "--candidates 3" in rule.describe()


def test_close_calls_are_the_trials_under_the_rule_within_the_margin_of_the_pick():
    records = [*FRONT, DOMINATED]
    rule = PickRule(max_params=6_500_000)  # trials 0-3 and 5 fit; trial 3 (0.86) is picked
    chosen = pick(records, rule, OBJ)
    assert chosen["number"] == 3
    # 0.85 and 0.80 lie within 0.07 of 0.86; trial 4 (0.87) is over the cap, trial 1 (0.75) too far
    assert [r["number"] for r in close_calls(records, rule, chosen, 0.07)] == [2, 5]
    assert [r["number"] for r in close_calls(records, rule, chosen, 0.005)] == []
    # no rule: the knee, compared with every trial
    knee = pick(records, PickRule(), OBJ)
    assert [r["number"] for r in close_calls(records, PickRule(), knee, 0.015)] == [4, 3]
    # a floor picks on size and --trial names its pick: nothing to compare
    assert close_calls(records, PickRule(min_quality=0.8), chosen, 1.0) == []
    assert close_calls(records, PickRule(trial=3), chosen, 1.0) == []
