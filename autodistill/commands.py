"""What each CLI command does, as plain functions (the Python API): teacher, distill, evaluate."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from autodistill.config import dump_config, to_dict
from autodistill.config.run import RunConfig
from autodistill.specs import LossSpec, StudentSpec
from autodistill.tasks.sequence_classification.evaluate import latency_seq_len, run_evaluate  # noqa: F401


def run_teacher(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """Fine-tune the teacher if the config names a backbone (reused when already in the home)."""
    from autodistill.data import load_task_data
    from autodistill.teacher import prepare_teacher

    data = load_task_data(cfg.data)
    teacher = prepare_teacher(cfg, data, progress=progress)
    return {
        "path": str(teacher.path),
        "fingerprint": teacher.fingerprint,
        "finetuned": teacher.finetuned,
        **teacher.info,
    }


def measure_model(model: Any, cfg: RunConfig, seq_len: int) -> dict[str, Any]:
    """Parameters, size, CPU latency (fixed threads, after warm-up) and peak memory of one model."""
    return measure_models([model], cfg, seq_len)[0]


def measure_models(models: list[Any], cfg: RunConfig, seq_len: int) -> list[dict[str, Any]]:
    """``measure_model`` for a student and its teacher together: their timed passes interleave, so
    the ratio between them does not depend on what the machine's neighbours did meanwhile."""
    from autodistill.evaluate import measure_latencies, parameter_counts, peak_memory_mb, state_size_mb

    ev = cfg.evaluate
    outs: list[dict[str, Any]] = [
        {"parameters": parameter_counts(m), "size_mb": round(state_size_mb(m), 3)} for m in models
    ]
    if ev.latency:
        models = [m.to("cpu").eval() for m in models]
        lats = measure_latencies(
            models,
            batch_sizes=tuple(ev.batch_sizes),
            seq_len=seq_len,
            threads=ev.threads,
            warmup=ev.warmup,
            repeats=ev.repeats,
        )
        for out, m, lat in zip(outs, models, lats, strict=True):
            out["latency_ms"] = lat
            out["peak_memory_mb"] = round(peak_memory_mb(m, max(ev.batch_sizes), seq_len), 2)
    return outs


def compare(student: dict[str, Any], teacher: dict[str, Any]) -> dict[str, float]:
    """Student relative to the teacher, measured in the same process."""
    from autodistill.evaluate import latency_ratio

    out = {
        "parameter_ratio": student["parameters"]["total"] / teacher["parameters"]["total"],
        "size_ratio": student["size_mb"] / teacher["size_mb"],
    }
    if "latency_ms" in student and "latency_ms" in teacher:
        out.update(latency_ratio(student["latency_ms"], teacher["latency_ms"]))
    return {k: round(v, 4) for k, v in out.items()}


def run_distill(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """One fixed distillation: writes the student (HF format) and ``result.json`` to output_dir."""
    from autodistill.evaluate.environment import versions
    from autodistill.tasks.sequence_classification.distill import distill_student, shipped_quality
    from autodistill.tasks.sequence_classification.prepare import prepare

    student_spec = StudentSpec.from_config(cfg.student)
    loss_spec = LossSpec.from_config(cfg.distill.loss)
    validate_components(cfg)
    prep = prepare(cfg, progress=progress)
    run = distill_student(prep, student_spec, loss_spec)
    test = shipped_quality(prep, run.build, "test")  # as `autodistill evaluate` on the saved student sees it
    export = run.build.export_model()
    seq_len = latency_seq_len(cfg, prep.encoded["test"].lengths)
    s_meas, t_meas = measure_models([export, prep.teacher_model()], cfg, seq_len)
    out_dir = Path(cfg.output_dir)
    student_dir = out_dir / "student"
    result = {
        "student": {
            "validation": run.validation,
            "test": test,
            **s_meas,
            "path": str(student_dir),
            "kind": run.build.resolved.get("kind"),
            "resolved": run.build.resolved,
        },
        "teacher": {
            **prep.teacher_metrics,
            **t_meas,
            "path": str(prep.teacher.path),
            "finetuned": prep.teacher.finetuned,
        },
        "relative": {
            **compare(s_meas, t_meas),
            "test_quality_ratio": round(test["quality"] / max(1e-12, prep.teacher_metrics["test"]["quality"]), 4),
        },
        "train": {
            "steps": run.train.steps,
            "warmup_steps": run.warmup_steps,  # distill.prune_after: before the within-layer transforms
            "seconds": round(run.train.seconds, 2),
            "mode": cfg.distill.mode,
            "best_step": run.train.best_step,
            "evals": run.train.evals,
            "final_loss": run.train.history[-1] if run.train.history else None,
        },
        "layer_weights": run.train.weights[-1] if run.train.weights else None,
        "latency_seq_len": seq_len,
        "labels": list(prep.data.label_names),
        "metric": cfg.data.metric,
        "fingerprints": {"teacher": prep.teacher.fingerprint, "data": prep.data.fingerprint, "cache": prep.cache.key},
        "config": to_dict(cfg),
        "versions": versions(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_student_atomic(run.build, prep.teacher.tokenizer, student_dir, prep.data)
    (out_dir / "config.resolved.yaml").write_text(dump_config(cfg))
    write_json_atomic(out_dir / "result.json", result)
    return result


def save_student_atomic(build: Any, tokenizer: Any, target: Path, data: Any) -> None:
    """Save into a temporary folder beside ``target``, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build.save(tmp, tokenizer)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def validate_components(cfg: RunConfig) -> None:
    """Check registry names and options before any work (data, teacher or training)."""
    from autodistill.config.schema import parse
    from autodistill.losses import LOSSES
    from autodistill.student import load_transforms
    from autodistill.student.base import TRANSFORMS
    from autodistill.weighting import WEIGHTINGS

    load_transforms()
    for i, step in enumerate(cfg.student.transforms):
        key = f"student.transforms[{i}]"
        cls = _registered(TRANSFORMS, step["name"], f"{key}.name")
        parse(cls.Options, {k: v for k, v in step.items() if k != "name"}, key)
    for i, term in enumerate(cfg.distill.loss.terms):
        key = f"distill.loss.terms[{i}]"
        cls = _registered(LOSSES, term["name"], f"{key}.name")
        parse(cls.Options, {k: v for k, v in term.items() if k not in ("name", "weight")}, key)
    weighting = cfg.distill.loss.weighting
    cls = _registered(WEIGHTINGS, weighting["name"], "distill.loss.weighting.name")
    parse(cls.Options, {k: v for k, v in weighting.items() if k != "name"}, "distill.loss.weighting")


def _registered(registry: Any, name: str, key: str) -> Any:
    from autodistill.errors import ConfigError

    if name not in registry:
        valid = ", ".join(registry.names())
        raise ConfigError(f"The {key!r} parameter must be one of {valid}. Got {name!r} instead.")
    return registry.get(name)
