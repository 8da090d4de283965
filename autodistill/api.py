"""The Python API, the package's one public surface: one function per CLI command, taking a config
path (or a loaded config), and the CLI is a thin face over it.

    from autodistill import api

    api.teacher("configs/demo.yaml")                  # fine-tune (or reuse) the teacher
    api.search("configs/demo.yaml", n_trials=12)      # run or continue the study
    front = api.pareto("configs/demo.yaml")["front"]  # the feasible Pareto front, as records
    api.export("configs/demo.yaml", max_params=9_000_000, min_speedup=3, formats="hf,onnx")

Every function takes ``overrides``, the same ``key.sub=value`` strings as the CLI's ``--set``,
and returns the plain dicts the CLI prints. Progress bars are on unless ``progress=False``.
``rule_options()`` lists the export rule's arguments (``autodistill.specs.PickRule``'s fields).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from autodistill.config.run import RunConfig
from autodistill.specs import PickRule, rule_options

__all__ = ["distill", "evaluate", "export", "load", "pareto", "plan", "rule_options", "search", "teacher"]


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
    from autodistill.tasks import get_task

    cfg = load(config, overrides)
    return get_task(cfg).teacher(cfg, progress=progress)


def distill(config: str | Path | RunConfig, overrides: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """One fixed distillation (the config's student and loss). Writes the student folder,
    ``config.resolved.yaml`` and ``result.json`` to output_dir, each replaced only when complete;
    returns what ``result.json`` holds."""
    from autodistill.components import validate_components
    from autodistill.config import dump_config
    from autodistill.evaluate.energy import metered
    from autodistill.export.retrain import augment_record
    from autodistill.files import replacing_folder, write_json, write_text
    from autodistill.specs import LossSpec, StudentSpec
    from autodistill.tasks import get_task

    cfg = load(config, overrides)
    task = get_task(cfg)
    student, loss = StudentSpec.from_config(cfg.student), LossSpec.from_config(cfg.distill.loss)
    validate_components(cfg, task.components())  # names and options checked before the data, teacher or training
    prep = task.prepare(cfg, progress=progress)
    with metered(cfg.evaluate.energy) as energy:
        run = task.distill(prep, student, loss)
    test = task.shipped_quality(prep, run.build, "test")  # as `autodistill evaluate` on the saved student sees it
    seq_len = task.latency_seq_len(cfg, prep)
    measured = task.measure_models(cfg, prep, [run.build.export_model(), prep.teacher_model()])
    out_dir = Path(cfg.output_dir)
    result = _distill_result(task, cfg, prep, run, test, measured, seq_len, out_dir / "student")
    result["train"]["energy"] = energy.record()
    result["train"]["augment"] = augment_record(prep)  # distill.augment as used (the ratio decided, and why)
    result["train"]["targets"] = getattr(run, "targets", None)  # combined teachers or an assistant, when used
    classes = task.class_report(prep, run.build, "test")
    if classes is not None:
        result["classes"] = classes
    with replacing_folder(out_dir / "student") as folder:
        task.save_student(run.build, prep, folder)
    write_text(out_dir / "config.resolved.yaml", dump_config(cfg))
    write_json(out_dir / "result.json", result)
    return result


def _distill_result(
    task: Any,
    cfg: RunConfig,
    prep: Any,
    run: Any,
    test: dict[str, float],
    measured: list[dict],
    seq_len: int,
    path: Path,
) -> dict[str, Any]:
    """``result.json``: the student and the teacher measured side by side, the training, the inputs."""
    from autodistill.config import to_dict
    from autodistill.evaluate.environment import versions
    from autodistill.evaluate.measure import compare
    from autodistill.tasks.base import teacher_training

    s_meas, t_meas = measured
    data = task.data_record(prep)
    teacher_test = prep.teacher_metrics["test"]["quality"]
    train = run.train
    return {
        "student": {
            "validation": run.validation,
            "test": test,
            **s_meas,
            "path": str(path),
            "kind": run.build.resolved.get("kind"),
            "resolved": run.build.resolved,
        },
        "teacher": {
            **prep.teacher_metrics,
            **t_meas,
            "path": str(prep.teacher.path),
            "finetuned": prep.teacher.finetuned,
            "training": teacher_training(prep.teacher),
        },
        "relative": {
            **compare(s_meas, t_meas),
            "test_quality_ratio": round(test["quality"] / max(1e-12, teacher_test), 4),
        },
        "train": {
            "steps": train.steps,
            "warmup_steps": run.warmup_steps,  # distill.prune_after: before the within-layer transforms
            "seconds": round(train.seconds, 2),
            "mode": cfg.distill.mode,
            "best_step": train.best_step,
            "evals": train.evals,
            "final_loss": train.history[-1] if train.history else None,
            "stop_reason": train.stop_reason,
            "qat_from_step": train.qat_from_step,  # distill.qat: the first step trained fake-quantised
        },
        "layer_weights": train.weights[-1] if train.weights else None,
        "latency_seq_len": seq_len,
        **({"labels": data["labels"]} if "labels" in data else {}),
        "data": data,
        "metric": task.metric(cfg),
        "fingerprints": {"teacher": prep.teacher.fingerprint, "data": prep.data.fingerprint, "cache": prep.cache_key},
        "config": to_dict(cfg),
        "versions": versions(),
    }


def evaluate(
    config: str | Path | RunConfig,
    model_dir: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics, parameters, size and latency of a saved student or teacher on a split."""
    from autodistill.tasks import get_task

    cfg = load(config, overrides)
    return get_task(cfg).evaluate_folder(cfg, str(model_dir), split, progress=progress)


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
    more: int | None = None,
    compare_random: bool = False,
) -> dict[str, Any]:
    """Run the search, or continue the same study, until it holds ``n_trials`` trained trials, or
    ``more`` trained trials beyond those it holds now (to go on after a finished search).
    ``effort`` says how many proxy steps its trials spent, per checkpoint. ``compare_random``:
    then a random-sampling study of the same config spends as many proxy steps, and ``random``
    holds its front and both fronts' hypervolumes."""
    from autodistill.config.run import SearchConfig
    from autodistill.config.schema import check_as
    from autodistill.errors import ConfigError
    from autodistill.search.run import Search
    from autodistill.search.run import compare_random as compare

    # None takes the config's value; anything given must pass the config's own check of that key
    for key, value, name in (
        ("n_trials", n_trials, "n_trials"),
        ("timeout", timeout, "timeout"),
        ("n_trials", more, "more"),
    ):
        if value is not None:
            check_as(SearchConfig, key, value, f"{name!r} argument of api.search", f"search.{key}")
    if more is not None and n_trials is not None:
        raise ConfigError(
            "Give the search either a total of trained trials (--n-trials) or more of them (--more), not both."
        )
    cfg = load(config, overrides)
    search = Search(cfg, storage=storage, study_name=study_name, progress=progress)
    out = search.run(n_trials, timeout, more)
    if compare_random:
        r = out["random"] = compare(cfg, out, storage, progress)
        search.tracker.log_study_metrics({"hypervolume": r["main_hypervolume"], "random_hypervolume": r["hypervolume"]})
    return out


def pareto(
    config: str | Path | RunConfig,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """The study's feasible Pareto front (``front``: one record per trial, with its number,
    parameters, objectives, metrics and MLflow run id); writes pareto.json, .csv and .png."""
    from autodistill.search.front import pareto_front, write_front
    from autodistill.search.run import setup
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
    retrain: bool | None = None,
    formats: str | None = None,
    out: str | Path | None = None,
    register: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    **rule: Any,
) -> dict[str, Any]:
    """Pick a trial by the rule, train it at full length and export it.

    Arguments left at None come from the config's ``export`` section. ``rule``: the fields of
    ``autodistill.specs.PickRule`` (listed below), named as the CLI's flags without dashes; any of
    them but ``candidates`` replaces the config's rule as a whole, ``candidates`` alone applies to
    the config's rule. No rule anywhere: the knee of the front.
    """
    from autodistill.export.run import run_export

    cfg = load(config, overrides)
    pick_rule, from_config = _pick_rule(cfg, rule)
    ex = cfg.export
    return run_export(
        cfg,
        pick_rule,
        from_config=from_config,
        formats=ex.formats if formats is None else formats,
        out=ex.out if out is None else str(out),
        retrain=ex.retrain if retrain is None else retrain,
        register=ex.register if register is None else register,
        storage=storage,
        study_name=study_name,
        progress=progress,
    )


def _pick_rule(cfg: RunConfig, given: dict[str, Any]) -> tuple[PickRule, bool]:
    """The rule the arguments give, else the config's; and whether it is the config's section as
    written (so messages name its keys). Decided here only: ``run_export`` takes the rule as given."""
    known = [o.name for o in rule_options()]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(
            f"export() got an unexpected keyword argument {unknown[0]!r}; the rule's arguments are {', '.join(known)}."
        )
    limits = {k: v for k, v in given.items() if v is not None and k != "candidates"}
    candidates = given.get("candidates")
    if limits:
        return PickRule(**limits, candidates=1 if candidates is None else candidates), False
    rule = cfg.export.rule()
    if candidates is not None:
        return replace(rule, candidates=candidates), False
    return rule, rule != PickRule()


export.__doc__ = (export.__doc__ or "") + "".join(f"\n    ``{o.name}``: {o.help}." for o in rule_options()) + "\n"
