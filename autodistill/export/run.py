"""``autodistill export``: pick a trial, train it for shipping, write the folder, log it.

Reads the study the search wrote (same storage and name as ``autodistill search``), picks a trial
(``pick.py``), rebuilds and trains it (``retrain.py``), measures it next to the teacher, and writes
the export folder atomically (``atomic.py``): HF weights (safetensors), config with the label map,
tokenizer, ``autodistill_student.json``, ``pareto.png`` with the pick marked, ``export.json``,
the card (``README.md``) and, when asked, ``onnx/model.onnx`` and ``onnx/model.int8.onnx``, with the
``.autodistill-export`` marker: only a folder with it (an earlier export) is ever replaced (``target.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autodistill.config import to_dict
from autodistill.config.run import EXPORT_FORMATS as FORMATS
from autodistill.config.run import RunConfig
from autodistill.errors import ConfigError
from autodistill.evaluate.energy import metered
from autodistill.export.atomic import atomic_folder
from autodistill.export.pick import PickError, PickRule, close_calls, pick, pick_candidates
from autodistill.export.retrain import FinalStudent, final_student
from autodistill.export.target import export_target, out_flag
from autodistill.search.study import shown_url
from autodistill.tasks import Task, get_task
from autodistill.tasks.base import teacher_training


def parse_formats(text: str | list[str] | tuple[str, ...], task: Task) -> tuple[str, ...]:
    """The formats ``--formats`` (or ``export.formats``) asks for, in their fixed order, with what they
    imply; ``task`` must write each of them (``Task.formats``)."""
    items = [f.strip().lower() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad:
        raise ConfigError(f"The '--formats' option must list some of {', '.join(FORMATS)}. Got {bad[0]!r} instead.")
    out = {"hf", *items}  # the HF folder is always written: the card and ONNX files sit in it
    if "int8" in out:
        out.add("onnx")  # int8 is quantised from the fp32 ONNX graph
    unwritten = [f for f in FORMATS if f in out and f not in task.formats]
    if unwritten:
        raise ConfigError(
            f"The '--formats' option must list some of {', '.join(task.formats)} for task {task.name!r} "
            f"(the config's 'task'). Got {unwritten[0]!r} instead."
        )
    return tuple(f for f in FORMATS if f in out)


def study_records(study: Any, objectives: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every complete, trained, feasible trial as a plain record (with its resolved form), and the front."""
    from autodistill.search.front import candidates, pareto_front, record

    records = []
    for t in candidates(study):
        r = record(t, objectives)
        r["resolved"] = t.user_attrs.get("resolved")
        records.append(r)
    return records, pareto_front(study, objectives)


def run_export(
    cfg: RunConfig,
    rule: PickRule | None = None,
    *,
    from_config: bool = False,
    formats: str | tuple[str, ...] = ("hf",),
    out: str | Path | None = None,
    retrain: bool = True,
    register: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> dict[str, Any]:
    from autodistill.search.run import setup
    from autodistill.search.study import open_existing, trained_trials

    task = get_task(cfg)
    rule = rule or PickRule()  # the API resolves "no rule given" against the config's
    fmts = parse_formats(formats, task)
    if rule.candidates > 1 and not retrain:
        raise PickError(
            "The '--candidates' option compares full-length trainings; it cannot be used with --no-retrain."
        )
    if register and not cfg.tracking.enabled:
        raise ConfigError("The '--register' option needs MLflow tracking; 'tracking.enabled' is false in the config.")
    flag = out_flag(out, cfg.export.out)
    target = export_target(out, cfg.output_dir, flag)  # refused here, before the teacher load and training
    s = setup(cfg, storage, study_name)
    study = open_existing(s.storage, s.study_name)
    objectives = list((study.user_attrs.get("identity") or {}).get("objectives") or cfg.search.objectives)
    records, front = study_records(study, objectives)
    prep, picked = _prepare_and_pick(task, cfg, records, rule, objectives, from_config, progress)
    # before the final training, so a refusal costs no training
    task.check_formats(prep, fmts, [c.get("student") or {} for c in picked])
    proxy = {"proxy_steps": s.space.spec.proxy_steps, "proxy_examples": s.space.spec.proxy_examples}
    chosen, final, compared = _final_of(task, prep, picked, proxy, retrain, seed, cfg.seed)
    result = _result(task, cfg, prep, final, chosen, rule, front, s, len(trained_trials(study)), objectives, target)
    result["pick"]["candidates"] = compared
    classes = task.class_report(prep, final.run.build, "test")
    if classes is not None:
        result["classes"] = classes
    if from_config:
        result["pick"]["rule"] = cfg.export.describe()
    result["pick"]["validation_examples"] = len(prep.encoded["validation"])
    result["pick"]["resolution"] = _resolution(task, prep, records, rule, chosen)
    with atomic_folder(target, flag) as tmp:
        _write_folder(task, prep, final, study, objectives, front, chosen, fmts, result, tmp)
    result["path"] = str(target.resolve())
    if cfg.tracking.enabled:
        result["mlflow"] = _log_mlflow(task, cfg, s.study_name, target, result, register)

    return result


def _prepare_and_pick(
    task: Task,
    cfg: RunConfig,
    records: list[dict[str, Any]],
    rule: PickRule,
    objectives: list[str],
    from_config: bool,
    progress: bool,
) -> tuple[Any, list[dict[str, Any]]]:
    """The task's prepared data and teacher, and the trials the rule picks (best first). A rule that
    needs no teacher is checked before the teacher and data load."""
    try:
        if not rule.needs_teacher:  # fail fast, before the teacher and data are loaded
            pick(records, rule, objectives)
        prep = task.prepare(cfg, progress=progress)
        return prep, pick_candidates(records, rule, objectives, prep.teacher_metrics["validation"]["quality"])
    except PickError as err:
        if not from_config:
            raise
        raise PickError(f"{err}\n(The rule is the config's 'export' section; rule flags replace it.)") from None


def _write_folder(
    task: Task,
    prep: Any,
    final: FinalStudent,
    study: Any,
    objectives: list[str],
    front: list,
    chosen: dict,
    fmts: tuple[str, ...],
    result: dict[str, Any],
    folder: Path,
) -> None:
    """The export folder's files: the student, the front with the pick marked, the task's other
    formats (their rows join ``result["formats"]``), ``export.json`` and the card."""
    from autodistill.search.front import plot_front

    task.save_student(final.run.build, prep, folder)
    plot_front(study, objectives, front, folder / "pareto.png", pick=chosen["number"])
    result["formats"].update(task.export_formats(final, prep, folder, fmts))
    _write_json(folder / "export.json", result)
    (folder / "README.md").write_text(task.model_card(result))


def _final_of(
    task: Task, prep: Any, picked: list[dict], proxy: dict[str, int], retrain: bool, seed: int | None, cfg_seed: int
) -> tuple[dict, FinalStudent, list[dict[str, Any]]]:
    """Final-train each candidate (best proxy first); keep the one whose final training scores best on
    validation (ties to the better proxy). Test metrics play no part in the choice."""
    best: tuple[dict, FinalStudent] | None = None
    compared = []
    for i, chosen in enumerate(picked):
        if len(picked) > 1 and prep.progress:
            print(f"candidate {i + 1}/{len(picked)}: trial {chosen['number']}", flush=True)
        torch.manual_seed(cfg_seed)  # adapters a transform adds at build time start from a seeded state
        with metered(prep.cfg.evaluate.energy) as energy:
            final = final_student(prep, chosen, proxy, retrain=retrain, seed=seed, task=task)
        final.energy = energy.record()
        validation = float(final.run.validation["quality"])
        compared.append(
            {"trial": chosen["number"], "proxy_validation": final.proxy_validation, "final_validation": validation}
        )
        if best is None or validation > float(best[1].run.validation["quality"]):
            best = (chosen, final)
    assert best is not None
    return best[0], best[1], compared if len(picked) > 1 else []


def _result(
    task: Task,
    cfg: RunConfig,
    prep: Any,
    final: FinalStudent,
    chosen: dict,
    rule: PickRule,
    front: list,
    s: Any,
    trained: int,
    objectives: list[str],
    target: Path,
) -> dict[str, Any]:
    """``export.json``: the study, the pick, the training, student and teacher measured side by side."""
    model = final.run.build.export_model().to("cpu").eval()
    seq_len = task.latency_seq_len(cfg, prep)
    s_meas, t_meas = task.measure_models(cfg, prep, [model, prep.teacher_model()])
    return {
        "study": {
            "name": s.study_name,
            "storage": shown_url(s.storage),
            "space": s.space.name,
            "objectives": objectives,
            "trained": trained,
            "front": len(front),
        },
        "pick": _pick_record(chosen, rule, front),
        "proxy": {
            "validation_quality": final.proxy_validation,
            "reproduced_validation_quality": final.reproduced_validation,
        },
        "train": _train_record(final),
        "student": _student_record(final, s_meas),
        "teacher": {
            "name": str(prep.teacher.path),
            "finetuned": prep.teacher.finetuned,
            "training": teacher_training(prep.teacher),
            **prep.teacher_metrics,
            **t_meas,
        },
        "relative": _relative(final, prep, s_meas, t_meas),
        "latency": {"seq_len": seq_len, "threads": cfg.evaluate.threads, "repeats": cfg.evaluate.repeats},
        "budget": {k: v for k, v in to_dict(cfg.budget).items() if v is not None},
        "data": task.data_record(prep),
        "metric": task.metric(cfg),
        "formats": {"hf": {"file": "model.safetensors", "size_mb": s_meas["size_mb"]}},
        "out_name": target.name,
    }


def _resolution(task: Task, prep: Any, records: list, rule: PickRule, chosen: dict) -> dict[str, Any] | None:
    """How finely validation tells students apart (one standard error of the pick's proxy quality)
    and the trials within two of them of the pick, which the search could not tell from it."""
    se = task.quality_error(prep, float(chosen["objectives"]["quality"]))
    if se is None:
        return None
    close = close_calls(records, rule, chosen, 2 * se)
    return {
        "standard_error": round(se, 6),
        "examples": len(prep.encoded["validation"]),
        "close": [{"trial": r["number"], "quality": r["objectives"]["quality"]} for r in close],
    }


def _pick_record(chosen: dict, rule: PickRule, front: list) -> dict[str, Any]:
    return {
        "trial": chosen["number"],
        "rule": rule.describe(),
        "on_front": chosen["number"] in {r["number"] for r in front},
        "params": chosen["params"],
        "objectives": chosen["objectives"],
        "search_metrics": chosen["metrics"],
        "strategy": {"student": chosen["student"], "loss": chosen["loss"], "train": chosen["train"]},
    }


def _mode_text(final: FinalStudent) -> str:
    """How the shipped student was trained, in the card's words."""
    run = final.run
    if final.mode == "retrained":
        return (
            f"full-length distillation on the whole training split ({_length_text(final)}, "
            f"{final.n_examples:,} examples, "
            f"best validation checkpoint kept{_ema_text(final.spec)}{_augment_text(final.augment)}{_warmup_text(run)}"
            f"{_qat_text(run.train)}{_targets_text(run)})"
        )
    return (
        f"the trial's proxy distillation rerun exactly ({final.spec.steps} steps on {final.n_examples:,} "
        f"examples{_ema_text(final.spec)}{_warmup_text(run)}{_qat_text(run.train)}{_targets_text(run)}; not retrained)"
    )


def _length_text(final: FinalStudent) -> str:
    """How long the final training ran and why it stopped."""
    train, cap = final.run.train, final.spec.steps
    if train.stopped_early and train.stop_reason:
        return f"{train.steps} of at most {cap} steps: {train.stop_reason}"
    if final.spec.patience:
        return f"{cap} steps, the cap, with validation still improving within patience {final.spec.patience}"
    return f"{cap} steps"


def _train_record(final: FinalStudent) -> dict[str, Any]:
    run = final.run
    return {
        "mode": final.mode,
        "mode_text": _mode_text(final),
        "spec": final.spec.to_dict(),
        "examples": final.n_examples,
        "steps": run.train.steps,
        "warmup_steps": run.warmup_steps,
        "seconds": round(run.train.seconds, 1),
        "best_step": run.train.best_step,
        "energy": final.energy,
        "stopped": run.train.stop_reason if run.train.stopped_early else "step cap",
        "evals": run.train.evals,
        "augment": final.augment,
        "targets": getattr(run, "targets", None),  # combined teachers or an assistant, when used
        "qat_from_step": run.train.qat_from_step,
    }


def _student_record(final: FinalStudent, s_meas: dict[str, Any]) -> dict[str, Any]:
    build = final.run.build
    names = [st["name"] for st in build.resolved["transforms"]]
    return {
        "validation": final.run.validation,
        "test": final.test,
        "kind": build.resolved["kind"],
        "transforms": names,
        "lora_merged": "lora" in names,
        **s_meas,
    }


def _relative(final: FinalStudent, prep: Any, s_meas: dict[str, Any], t_meas: dict[str, Any]) -> dict[str, float]:
    """The student against the teacher: parameters, test quality, and speed-up at each batch size."""
    return {
        "parameter_ratio": s_meas["parameters"]["total"] / t_meas["parameters"]["total"],
        "test_quality_ratio": final.test["quality"] / max(1e-12, prep.teacher_metrics["test"]["quality"]),
        **{
            k.replace("latency_ms", "speedup"): t_meas["latency_ms"][k] / v
            for k, v in s_meas.get("latency_ms", {}).items()
        },
    }


def _write_json(path: Path, obj: Any) -> None:
    from autodistill.files import write_json

    write_json(path, obj)


def _log_mlflow(
    task: Task, cfg: RunConfig, study_name: str, folder: Path, result: dict[str, Any], register: str | None
) -> dict[str, Any]:
    from autodistill.tracking.mlflow_tracker import Tracker, default_uri

    out_dir = Path(cfg.output_dir)
    uri = cfg.tracking.uri or default_uri(out_dir)
    tracker = Tracker(uri, cfg.tracking.experiment, study_name, out_dir / "mlartifacts", reopen=False)
    s = result["student"]
    metrics = {
        "test_quality": s["test"]["quality"],
        "validation_quality": s["validation"]["quality"],
        "parameters": s["parameters"]["total"],
        "size_mb": s["size_mb"],
        "trial": result["pick"]["trial"],
        **_relative_metrics(result),
        **_energy_metrics(result),
        **{k: v for k, v in s.get("latency_ms", {}).items()},
    }
    return tracker.log_export(folder, s["kind"], register, metrics, pipeline_tag=task.pipeline_tag)


def _relative_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The teacher's test quality and the student's share of it, for MLflow (where the record has them)."""
    teacher = (result.get("teacher") or {}).get("test") or {}
    relative = result.get("relative") or {}
    out = {"teacher_test_quality": teacher["quality"]} if "quality" in teacher else {}
    return {**out, **{k: relative[k] for k in ("test_quality_ratio", "parameter_ratio") if k in relative}}


def _energy_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The energy figures of an export for MLflow: per 1,000 predictions of student and teacher, and
    the final training's joules."""
    out = {}
    for who in ("student", "teacher"):
        e = (result.get(who) or {}).get("energy")
        if e and e.get("method") != "unavailable":
            out[f"{who}_energy_j_per_1000"] = e["joules_per_1000"]
    train = (result.get("train") or {}).get("energy")
    if train and train.get("method") != "unavailable":
        out["train_energy_j"] = train["joules"]
    return out


def _warmup_text(run: Any) -> str:
    if not run.warmup_steps:
        return ""
    from autodistill.student.base import TRANSFORMS

    names = [t["name"] for t in run.build.resolved["transforms"]]
    cut = next(i for i, name in enumerate(names) if TRANSFORMS.get(name).within_layers)
    return (
        f"; the student trained {run.warmup_steps} steps before {', '.join(names[cut:])} applied, "
        "their choices scored on its own weights (distill.prune_after)"
    )


def _ema_text(spec: Any) -> str:
    if not spec.ema:
        return ""
    return f"; the weights evaluated and kept are their moving average over the steps (decay {spec.ema:g}, distill.ema)"


def _qat_text(train: Any) -> str:
    if train.qat_from_step is None:
        return ""
    return (
        f"; from step {train.qat_from_step} on, its Linear layers and embeddings trained and were judged "
        "fake-quantised to the int8 export's grids (distill.qat)"
    )


def _targets_text(run: Any) -> str:
    """What the student learned from, when not the teacher alone (distill.combine, distill.assistant)."""
    record = getattr(run, "targets", None) or {}
    if record.get("kind") == "assistant":
        a = record["assistant"]
        return f"; it learned from a {a['layers']}-layer teacher assistant (test {a['test']:.4f}, distill.assistant)"
    if record.get("kind") == "teachers":
        t = record["teachers"]
        return (
            f"; it learned from {len(t['teachers'])} teachers combined by {t['combine']} "
            f"(test {t['combined']['test']:.4f}, teacher.extra)"
        )
    return ""


def _augment_text(augment: dict[str, Any] | None) -> str:
    if not augment:
        return ""
    return (
        "; each step also saw teacher-labelled augmented copies of its examples "
        f"(ratio {augment['ratio']:g}, splice {augment['splice_prob']:g}, mask {augment['mask_prob']:g}, "
        f"replace {augment['replace_prob']:g}"
        + (f"; {augment['why']}" if augment.get("why") else "")
        + ")"
        + _unlabeled_text(augment)
    )


def _unlabeled_text(augment: dict[str, Any]) -> str:
    unlabeled = augment.get("unlabeled")
    if not unlabeled:
        return ""
    share = augment.get("unlabeled_share", 0.0)
    return (
        f", {share:.0%} of them starting from {unlabeled['texts']:,} unlabeled texts "
        f"({', '.join(unlabeled['sources'])})"
    )
