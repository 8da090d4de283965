"""The early-stopping rule on hand-made checkpoints: the median of finished trials in the same
log2-size bucket at the same step."""

from __future__ import annotations

from autodistill.config.run import PruningConfig
from autodistill.search.early_stop import MedianInBucket


def test_below_the_median_of_enough_peers_stops_with_the_reason():
    rule = MedianInBucket(enabled=True, min_trials=3, bucket_log2_width=1.0)
    why = rule.reason_to_stop(20, 0.60, [0.70, 0.65, 0.80])
    assert why == "validation 0.6000 below the median 0.7000 of 3 similar-size trials at step 20"


def test_at_or_above_the_median_goes_on():
    rule = MedianInBucket(enabled=True, min_trials=3)
    assert rule.reason_to_stop(20, 0.70, [0.70, 0.65, 0.80]) is None
    assert rule.reason_to_stop(20, 0.90, [0.70, 0.65, 0.80]) is None


def test_too_few_peers_or_disabled_never_stops():
    assert MedianInBucket(enabled=True, min_trials=4).reason_to_stop(20, 0.1, [0.7, 0.65, 0.8]) is None
    assert MedianInBucket(enabled=False, min_trials=1).reason_to_stop(20, 0.1, [0.7, 0.65, 0.8]) is None


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
