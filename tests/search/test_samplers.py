"""The sampler registry: the names the config accepts, and each factory's seeding."""

from __future__ import annotations

import optuna
import pytest

from autodistill.config import run
from autodistill.search.samplers import SAMPLERS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_config_accepts_exactly_the_registered_samplers():
    assert sorted(run.SAMPLERS) == SAMPLERS.names()
    assert len(run.SAMPLERS) == len(set(run.SAMPLERS))


def _points(name: str, seed: int, startup: int = 2, n: int = 4) -> list[tuple[float, int]]:
    study = optuna.create_study(sampler=SAMPLERS.get(name)(seed, startup))
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2 + t.suggest_int("k", 0, 9), n_trials=n)
    return [(t.params["x"], t.params["k"]) for t in study.trials]


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_each_sampler_is_built_and_seeded(name):
    sampler = SAMPLERS.get(name)(0, 2)
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    # past the startup trials too, where the model-based samplers take over
    assert _points(name, 0) == _points(name, 0)
    assert _points(name, 0) != _points(name, 1)


def test_startup_trials_reach_the_sampler():
    assert SAMPLERS.get("tpe")(0, 7)._n_startup_trials == 7
    assert SAMPLERS.get("gp")(0, 7)._n_startup_trials == 7
    assert SAMPLERS.get("nsga2")(0, 9)._population_size == 9
    assert SAMPLERS.get("nsga2")(0, 0)._population_size == 4  # NSGA-II needs a population to breed
