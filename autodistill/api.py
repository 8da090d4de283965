"""The Python API: one function per CLI command, taking a config path (or a loaded config).

    from autodistill import api

    api.teacher("configs/demo.yaml")                  # fine-tune (or reuse) the teacher
    api.search("configs/demo.yaml", n_trials=12)      # run or continue the study
    front = api.pareto("configs/demo.yaml")["front"]  # the feasible Pareto front, as records
    api.export("configs/demo.yaml", max_params=9_000_000, min_speedup=3, formats="hf,onnx")

Every function takes ``overrides``, the same ``key.sub=value`` strings as the CLI's ``--set``,
and returns the plain dicts the CLI prints. Progress bars are on unless ``progress=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from autodistill.config.run import RunConfig


def load(config: str | Path | RunConfig, overrides: Sequence[str] = ()) -> RunConfig:
    """A validated run config from a YAML path (with ``--set``-style overrides), or the one given."""
    from autodistill.config import load_config

    if isinstance(config, RunConfig):
        if overrides:
            raise TypeError("overrides apply to a config file; pass the path, not a loaded RunConfig")
        return config
    return load_config(config, list(overrides))


def teacher(config: str | Path | RunConfig, overrides: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """Fine-tune the teacher into the teacher home, or find it there: its path and metrics."""
    from autodistill.commands import run_teacher

    return run_teacher(load(config, overrides), progress=progress)


def distill(config: str | Path | RunConfig, overrides: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """One fixed distillation (the config's student and loss): what ``result.json`` holds."""
    from autodistill.commands import run_distill

    return run_distill(load(config, overrides), progress=progress)


def evaluate(
    config: str | Path | RunConfig,
    model_dir: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics, parameters, size and latency of a saved student or teacher on a split."""
    from autodistill.commands import run_evaluate

    return run_evaluate(load(config, overrides), str(model_dir), split=split, progress=progress)


def plan(config: str | Path | RunConfig, overrides: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """What a search would do (space size, cache size, parameter range, budget feasibility)."""
    from autodistill.search.plan import plan as plan_search

    return plan_search(load(config, overrides), progress=progress)


def search(
    config: str | Path | RunConfig,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Run the search, or continue the same study, until it holds ``n_trials`` trained trials."""
    from autodistill.config.run import SearchConfig
    from autodistill.config.schema import check_as
    from autodistill.search.run import Search

    # None takes the config's value; anything given must pass the config's own check of that key
    for key, value in (("n_trials", n_trials), ("timeout", timeout)):
        if value is not None:
            check_as(SearchConfig, key, value, f"{key!r} argument of api.search", f"search.{key}")
    cfg = load(config, overrides)
    return Search(cfg, storage=storage, study_name=study_name, progress=progress).run(n_trials, timeout)


def pareto(
    config: str | Path | RunConfig,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """The study's feasible Pareto front (``front``: one record per trial, with its number,
    parameters, objectives, metrics and MLflow run id); writes pareto.json, .csv and .png."""
    from autodistill.search.run import setup
    from autodistill.search.front import pareto_front, write_front
    from autodistill.search.study import open_existing

    cfg = load(config, overrides)
    s = setup(cfg, storage, study_name)
    study = open_existing(s.storage, s.study_name)
    objectives = list(cfg.search.objectives)
    files = write_front(study, objectives, Path(cfg.output_dir))
    return {"study": s.study_name, "front": pareto_front(study, objectives), "files": [str(f) for f in files]}


def export(
    config: str | Path | RunConfig,
    *,
    max_params: int | None = None,
    max_latency_ms: float | None = None,
    max_size_mb: float | None = None,
    min_speedup: float | None = None,
    min_quality: float | None = None,
    min_relative_quality: float | None = None,
    trial: int | None = None,
    candidates: int | None = None,
    retrain: bool | None = None,
    formats: str | None = None,
    out: str | Path | None = None,
    register: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Pick a trial by the rule, train it at full length and export it.

    Arguments left at None come from the config's ``export`` section; rule arguments given here
    (``max_params`` ... ``trial``) replace its rule as a whole. No rule anywhere: the knee of the front.
    """
    from autodistill.export.pick import PickRule
    from autodistill.export.run import run_export

    cfg = load(config, overrides)
    ex = cfg.export
    given = {
        "max_params": max_params,
        "max_latency_ms": max_latency_ms,
        "max_size_mb": max_size_mb,
        "min_speedup": min_speedup,
        "min_quality": min_quality,
        "min_relative_quality": min_relative_quality,
        "trial": trial,
    }
    if any(v is not None for v in given.values()):
        rule = PickRule(**given, candidates=1 if candidates is None else candidates)
    else:  # the config's rule (run_export reads it itself, and says so)
        rule = None if candidates is None else replace(ex.rule(), candidates=candidates)
    return run_export(
        cfg,
        rule,
        formats=ex.formats if formats is None else formats,
        out=ex.out if out is None else str(out),
        retrain=ex.retrain if retrain is None else retrain,
        register=ex.register if register is None else register,
        storage=storage,
        study_name=study_name,
        progress=progress,
    )
