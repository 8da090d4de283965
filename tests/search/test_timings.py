"""Speed decisions that repeat: the timing book on scripted timers (recorded, reused, close calls
re-timed and decided on the median of the rounds), and two searches of the same config in one home
making the same speed decisions from the book."""

from __future__ import annotations

import optuna
import pytest
from test_search_tiny import tiny_search  # noqa: F401  (the fixture)

from autodistill.cli import main
from autodistill.search.timings import TimingBook, close_to_limit


class Script:
    """A timer that returns the next scripted (student ms, teacher ms) pair and counts its calls."""

    def __init__(self, *pairs: tuple[float, float]) -> None:
        self.pairs, self.calls = list(pairs), 0

    def __call__(self) -> tuple[float, float]:
        self.calls += 1
        return self.pairs.pop(0)


def test_close_calls_are_within_the_band_of_either_limit():
    assert close_to_limit(10.0, 30.5, 3.0, None, 0.05)  # 3.05x against 3x
    assert not close_to_limit(10.0, 33.0, 3.0, None, 0.05)  # 3.3x
    assert close_to_limit(9.8, 0.0, None, 10.0, 0.05) and not close_to_limit(8.0, 0.0, None, 10.0, 0.05)
    assert not close_to_limit(10.0, 30.0, None, None, 0.05)  # no speed budget: nothing is close


def test_a_timing_is_recorded_and_reused_without_timing_again(tmp_path):
    book = TimingBook(tmp_path / "book.json")
    first = book.time("shape-a", Script((10.0, 40.0)), 3.0, None)
    assert (first.latency_ms, first.teacher_latency_ms, first.rounds, first.close, first.cached) == (
        10.0, 40.0, 1, False, False,
    )  # fmt: skip
    again_timer = Script((99.0, 1.0))
    again = TimingBook(tmp_path / "book.json").time("shape-a", again_timer, 3.0, None)  # another process
    assert again_timer.calls == 0 and again.cached and again.latency_ms == 10.0 and again.teacher_latency_ms == 40.0


def test_a_close_call_is_retimed_and_decided_on_the_median(tmp_path):
    book = TimingBook(tmp_path / "book.json", band=0.05, retries=2)
    timer = Script((10.0, 30.2), (10.0, 33.0), (10.0, 33.5))  # 3.02x, then 3.3x and 3.35x
    found = book.time("shape-b", timer, 3.0, None)
    assert timer.calls == 3 and found.rounds == 3
    assert found.teacher_latency_ms == 33.0 and not found.close  # the median round: clear of the band
    timer = Script((10.0, 30.2), (10.0, 29.9), (10.0, 30.1))
    found = book.time("shape-c", timer, 3.0, None)
    assert found.close and found.teacher_latency_ms == 30.1  # still close: recorded as such
    assert TimingBook(tmp_path / "book.json").time("shape-c", Script(), 3.0, None).close


def test_without_a_book_every_call_times_anew():
    book = TimingBook(None)
    timer = Script((10.0, 40.0), (12.0, 40.0))
    assert book.time("k", timer, 3.0, None).latency_ms == 10.0
    assert book.time("k", timer, 3.0, None).latency_ms == 12.0 and timer.calls == 2


def test_two_searches_in_one_home_make_the_same_speed_decisions(tiny_search):  # noqa: F811
    path, tmp = tiny_search
    runs = []
    for name in ("first", "second"):
        out = tmp / name
        assert main(["search", str(path), "--quiet", "--n-trials", "2", "--set", f"output_dir={out}",
                     "--set", "budget.min_speedup=1.0"]) == 0  # fmt: skip
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
        runs.append(sorted(study.trials, key=lambda t: t.number))
    first, second = runs
    assert [t.params for t in first] == [t.params for t in second]  # the same seed samples the same shapes
    for a, b in zip(first, second):
        assert b.user_attrs["shape_timing"]["cached"] and not a.user_attrs["shape_timing"]["cached"]
        assert b.user_attrs["shape_latency_ms_b1"] == pytest.approx(a.user_attrs["shape_latency_ms_b1"])
        assert b.constraints == a.constraints
