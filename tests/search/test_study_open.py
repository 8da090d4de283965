"""Opening a study: workers joining one study draw their own trials, a fresh single-worker study
stays reproducible, and a study file that is not a database is named, not a traceback."""

from __future__ import annotations

import sqlite3

import pytest

from autodistill.config.run import RunConfig, SearchConfig
from autodistill.errors import ConfigError
from autodistill.search.study import default_storage, open_existing, open_study, worker_seed

IDENTITY = {"objectives": ["quality"], "space": "s", "teacher": "t", "data": "d"}


def _cfg(sampler: str = "random") -> RunConfig:
    return RunConfig(seed=0, search=SearchConfig(sampler=sampler, objectives=["quality"], startup_trials=2))


def _first_point(study) -> float:
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, [x])
    return x


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_worker_joining_a_study_draws_its_own_first_trial(tmp_path, sampler):
    """Two workers started together on one study with one seed: before, both sampled seed 0 and
    trained the same first point."""
    storage = default_storage(tmp_path)
    first = open_study(_cfg(sampler), storage, "s", IDENTITY)  # creates the study: the run's seed
    second = open_study(_cfg(sampler), storage, "s", IDENTITY)  # joins it: a seed of its own
    assert _first_point(first) != _first_point(second)


def test_a_fresh_study_is_reproducible_from_the_run_seed(tmp_path):
    points = [_first_point(open_study(_cfg(), default_storage(tmp_path / str(i)), "s", IDENTITY)) for i in range(2)]
    assert points[0] == points[1]


def test_worker_seeds_differ_by_worker_and_from_the_run_seed():
    seeds = {worker_seed(0) for _ in range(20)}
    assert len(seeds) == 20 and 0 not in seeds


@pytest.mark.parametrize(
    "content, said",
    [
        (b"these are my notes, not a database\n", "is not a SQLite database"),
        (b"SQLite format 3\x00" + b"\x07" * 3000, "cannot be read as a study"),
    ],
)
def test_a_study_file_that_is_not_a_database_is_named_and_kept(tmp_path, content, said):
    db = tmp_path / "study.db"
    db.write_bytes(content)
    storage = default_storage(tmp_path)
    for opening in (
        lambda: open_study(_cfg(), storage, "s", IDENTITY),
        lambda: open_existing(storage, "s"),
    ):
        with pytest.raises(ConfigError) as err:
            opening()
        msg = str(err.value)
        assert f"The study database {str(db)!r} (study 's') {said}" in msg and "move it away" in msg
        assert db.read_bytes() == content  # left as it was


def test_an_empty_or_real_database_still_opens(tmp_path):
    db = tmp_path / "study.db"
    db.write_bytes(b"")  # SQLite takes an empty file as an empty database
    storage = default_storage(tmp_path)
    study = open_study(_cfg(), storage, "s", IDENTITY)
    _first_point(study)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 1
    assert len(open_existing(storage, "s").trials) == 1
