"""The sampler extension point: ``search.sampler`` names one of these Optuna samplers.

Each entry is a factory ``(seed, startup_trials) -> optuna.samplers.BaseSampler``. The config
checks ``search.sampler`` against ``autodistill.config.run.SAMPLERS``, a plain tuple (the config
layer may not import optuna); a test holds that tuple equal to ``SAMPLERS.names()``.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from autodistill.registry import Registry

SamplerFactory = Callable[[int, int], optuna.samplers.BaseSampler]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


@SAMPLERS.register("tpe")
def tpe_sampler(seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    """Multivariate TPE over grouped (conditional) parameters: the spaces branch per transform."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials, multivariate=True, group=True)


@SAMPLERS.register("nsga2")
def nsga2_sampler(seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    """NSGA-II; the startup trials size the population (at least 4, so a generation can breed)."""
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, startup_trials))


@SAMPLERS.register("gp")
def gp_sampler(seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    """Gaussian-process Bayesian optimisation, after ``startup_trials`` random ones."""
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials)


@SAMPLERS.register("random")
def random_sampler(seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    """Independent uniform draws (``startup_trials`` does not apply)."""
    return optuna.samplers.RandomSampler(seed=seed)
