"""Splits: seeded, stratified, disjoint, duplicate-safe; fingerprints follow the data exactly."""

from __future__ import annotations

import re

import numpy as np
import pytest
from data_helpers import cfg_for, make_frame

from autodistill.data import load_task_data, stratified_subset
from autodistill.data.splits import stratified_split
from autodistill.errors import DataError


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "d.csv"
    make_frame(1000, classes=("a", "b", "c"), weights=(6, 3, 1)).to_csv(path, index=False)
    return path


def _all_texts(data):
    return [set(s.texts) for s in (data.train, data.validation, data.test)]


def test_splits_are_deterministic(csv_path):
    one, two = load_task_data(cfg_for(csv_path)), load_task_data(cfg_for(csv_path))
    assert one.train.texts == two.train.texts and one.test.texts == two.test.texts
    assert one.fingerprint == two.fingerprint
    other = load_task_data(cfg_for(csv_path, split_seed=1))
    assert other.test.texts != one.test.texts


def test_splits_are_disjoint_and_cover_the_data(csv_path):
    data = load_task_data(cfg_for(csv_path))
    train, val, test = _all_texts(data)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 1000
    assert (len(data.validation), len(data.test)) == (100, 100)


def test_splits_are_stratified(csv_path):
    data = load_task_data(cfg_for(csv_path))
    expected = np.array([0.6, 0.3, 0.1])
    for split in (data.train, data.validation, data.test):
        share = np.bincount(split.labels, minlength=3) / len(split)
        assert np.abs(share - expected).max() <= 0.011, share


def test_sizes_follow_config(csv_path):
    data = load_task_data(cfg_for(csv_path, validation_size=0.2, test_size=0.3))
    assert (len(data.train), len(data.validation), len(data.test)) == (500, 200, 300)


def test_duplicate_texts_never_straddle_splits(tmp_path):
    df = make_frame(300)
    df.loc[200:, "text"] = df.loc[:99, "text"].to_numpy()  # 100 texts occur twice
    df.loc[200:, "label"] = df.loc[:99, "label"].to_numpy()
    path = tmp_path / "dups.csv"
    df.to_csv(path, index=False)
    data = load_task_data(cfg_for(path))
    train, val, test = _all_texts(data)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(data.train) + len(data.validation) + len(data.test) == 300  # nothing dropped


def test_rare_class_reaches_every_split():
    labels = np.array([0] * 97 + [1] * 3)
    keys = [str(i) for i in range(100)]
    rest, val, test = stratified_split(labels, keys, [0.1, 0.1], seed=0)
    for part in (rest, val, test):
        assert 1 in labels[part]


def test_fingerprint_sensitivity(csv_path, tmp_path):
    base = load_task_data(cfg_for(csv_path)).fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", base), base  # a sha256 hex digest
    # the same data from another path or format: same fingerprint
    copy = tmp_path / "copy.tsv"
    make_frame(1000, classes=("a", "b", "c"), weights=(6, 3, 1)).to_csv(copy, sep="\t", index=False)
    assert load_task_data(cfg_for(copy)).fingerprint == base
    assert load_task_data(cfg_for(csv_path, split_seed=3)).fingerprint != base
    assert load_task_data(cfg_for(csv_path, test_size=0.2)).fingerprint != base
    assert load_task_data(cfg_for(csv_path, max_train_examples=100)).fingerprint != base
    # one changed character in one text
    df = make_frame(1000, classes=("a", "b", "c"), weights=(6, 3, 1))
    df.loc[500, "text"] = df.loc[500, "text"] + "!"
    edited = tmp_path / "edited.csv"
    df.to_csv(edited, index=False)
    assert load_task_data(cfg_for(edited)).fingerprint != base
    # renamed labels, same partition
    df = make_frame(1000, classes=("a", "b", "x"), weights=(6, 3, 1))
    relabelled = tmp_path / "relabelled.csv"
    df.to_csv(relabelled, index=False)
    assert load_task_data(cfg_for(relabelled)).fingerprint != base


def test_max_train_examples_is_a_stratified_subset(csv_path):
    full = load_task_data(cfg_for(csv_path))
    small = load_task_data(cfg_for(csv_path, max_train_examples=50))
    assert len(small.train) == 50
    assert set(small.train.texts) <= set(full.train.texts)
    assert small.test.texts == full.test.texts and small.validation.texts == full.validation.texts
    assert np.bincount(small.train.labels).tolist() == [30, 15, 5]


def test_stratified_subset_properties():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    idx = stratified_subset(labels, 100, seed=0)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [90, 9, 1]
    assert np.array_equal(idx, stratified_subset(labels, 100, seed=0))
    assert not np.array_equal(idx, stratified_subset(labels, 100, seed=1))
    # a tiny subset still holds every class
    tiny = stratified_subset(labels, 3, seed=0)
    assert sorted(labels[tiny].tolist()) == [0, 1, 2]
    assert np.array_equal(stratified_subset(labels, 5000, seed=0), np.arange(1000))
    with pytest.raises(DataError, match="cannot hold all 3 classes"):
        stratified_subset(labels, 2, seed=0)
