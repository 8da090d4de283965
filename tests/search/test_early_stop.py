"""The early-stopping rules on hand-made checkpoints: the median of finished trials in the same
log2-size bucket at the same step, and successive halving ranked by non-dominated sorting."""

from __future__ import annotations

import pytest

from autodistill.config.run import PruningConfig
from autodistill.config.schema import Invalid
from autodistill.search.early_stop import Halving, MedianInBucket, Peer, front_ranks, promotion_order, stop_rule

M = 1_000_000  # a size whose bucket (log2 width 1) is 19


def peers(*qualities: float, parameters: float = M, bucket: int = 19) -> list[Peer]:
    return [Peer(q, parameters, bucket) for q in qualities]


def test_below_the_median_of_enough_peers_stops_with_the_reason():
    rule = MedianInBucket(enabled=True, min_trials=3, bucket_log2_width=1.0)
    why = rule.reason_to_stop(20, 0.60, M, peers(0.70, 0.65, 0.80))
    assert why == "validation 0.6000 below the median 0.7000 of 3 similar-size trials at step 20"


def test_at_or_above_the_median_goes_on():
    rule = MedianInBucket(enabled=True, min_trials=3)
    assert rule.reason_to_stop(20, 0.70, M, peers(0.70, 0.65, 0.80)) is None
    assert rule.reason_to_stop(20, 0.90, M, peers(0.70, 0.65, 0.80)) is None


def test_too_few_peers_or_disabled_never_stops():
    assert MedianInBucket(enabled=True, min_trials=4).reason_to_stop(20, 0.1, M, peers(0.7, 0.65, 0.8)) is None
    assert MedianInBucket(enabled=False, min_trials=1).reason_to_stop(20, 0.1, M, peers(0.7, 0.65, 0.8)) is None


def test_only_peers_of_the_same_size_bucket_count():
    rule = MedianInBucket(enabled=True, min_trials=3)
    bigger = peers(0.9, 0.9, 0.9, parameters=4 * M, bucket=21)
    assert rule.reason_to_stop(20, 0.5, M, bigger) is None  # no peer of its own size yet
    assert rule.reason_to_stop(20, 0.5, M, bigger + peers(0.6, 0.7, 0.8)) is not None


def test_buckets_group_students_by_log2_size():
    rule = MedianInBucket(bucket_log2_width=1.0)
    assert rule.bucket(1_000_000) == rule.bucket(1_048_575) == 19
    assert rule.bucket(1_048_576) == 20
    wide = MedianInBucket(bucket_log2_width=2.0)
    assert wide.bucket(1_100_000) == wide.bucket(3_000_000) == 10  # log2 20.1 and 21.5, halved
    assert rule.bucket(0) == rule.bucket(2) == 1  # a floor of 2 parameters: log2 is defined


def test_from_config_reads_the_pruning_section():
    rule = MedianInBucket.from_config(PruningConfig(enabled=False, min_trials=7, bucket_log2_width=0.5))
    assert rule == MedianInBucket(enabled=False, min_trials=7, bucket_log2_width=0.5)
    assert stop_rule(PruningConfig()) == MedianInBucket()
    assert stop_rule(PruningConfig(rule="halving", eta=2, min_trials=4)) == Halving(True, 4, 2.0)
    with pytest.raises(Invalid) as err:
        PruningConfig(rule="halving", eta=1)
    assert err.value.key == "eta"


def test_fronts_maximise_quality_and_minimise_parameters():
    points = [(0.9, 10), (0.8, 5), (0.7, 5), (0.9, 12), (0.6, 1), (0.5, 20)]
    assert front_ranks(points) == [0, 0, 1, 1, 0, 2]
    # the first front by quality, then the second, ...; a tie on quality keeps the earlier point first
    assert promotion_order(points) == [0, 1, 4, 3, 2, 5]


def test_halving_promotes_the_top_third_of_the_rung_and_names_the_rank():
    rule = Halving(enabled=True, min_trials=5, eta=3)
    rung = [Peer(q, M) for q in (0.60, 0.65, 0.70, 0.75, 0.80)]  # equal sizes: quality decides
    assert rule.reason_to_stop(10, 0.85, M, rung) is None  # best of 6: top 2 go on
    assert rule.reason_to_stop(10, 0.78, M, rung) is None  # second
    why = rule.reason_to_stop(10, 0.72, M, rung)
    assert why == "rank 3 of 6 at step 10 (validation 0.7200, 1,000,000 parameters); only the top 2 (1/3) go on"


def test_halving_keeps_a_small_student_that_larger_ones_do_not_dominate():
    """By quality alone the small student ranks last of six; on the front of quality against size
    it is not dominated, so it goes on, and a larger student it beats in size and quality stops."""
    rule = Halving(enabled=True, min_trials=5, eta=3)
    big = [Peer(q, 8 * M) for q in (0.80, 0.81, 0.82, 0.83, 0.84)]
    assert rule.reason_to_stop(10, 0.70, M, big) is None
    assert rule.reason_to_stop(10, 0.805, 8 * M, big) is not None


def test_halving_waits_for_enough_trials_at_the_rung_and_can_be_off():
    rule = Halving(enabled=True, min_trials=5, eta=3)
    assert rule.reason_to_stop(10, 0.1, M, [Peer(0.9, M)] * 4) is None
    assert Halving(enabled=False).reason_to_stop(10, 0.1, M, [Peer(0.9, M)] * 9) is None
    assert rule.bucket(M) is None and rule.counts_stopped and not MedianInBucket().counts_stopped
