"""``autodistill export``: pick a trial, train it for shipping, write the folder, log it.

Reads the study the search wrote (same storage and name as ``autodistill search``), picks a trial
(``pick.py``), rebuilds and trains it (``retrain.py``), measures it next to the teacher, and writes
the export folder atomically (``atomic.py``): HF weights (safetensors), config with the label map,
tokenizer, ``autodistill_student.json``, ``pareto.png`` with the pick marked, ``export.json``,
the card (``README.md``) and, when asked, ``onnx/model.onnx`` and ``onnx/model.int8.onnx``, with the
``.autodistill-export`` marker: only a folder with it (an earlier export) is ever replaced (``target.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.config import to_dict
from autodistill.config.run import EXPORT_FORMATS as FORMATS
from autodistill.config.run import RunConfig
from autodistill.errors import ConfigError
from autodistill.export.atomic import atomic_folder
from autodistill.export.card import model_card
from autodistill.export.pick import PickError, PickRule, pick, pick_candidates
from autodistill.export.retrain import FinalStudent, final_student
from autodistill.export.target import export_target, out_flag

FORMAT_BATCHES = (1, 32)


def parse_formats(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = [f.strip().lower() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad:
        raise ConfigError(f"The '--formats' option must list some of {', '.join(FORMATS)}. Got {bad[0]!r} instead.")
    out = {"hf", *items}  # the HF folder is always written: the card and ONNX files sit in it
    if "int8" in out:
        out.add("onnx")  # int8 is quantised from the fp32 ONNX graph
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
    from autodistill.pipeline import prepare
    from autodistill.search.study import open_existing, trained_trials

    from_config = False
    if rule is None:
        rule = cfg.export.rule()
        from_config = rule != PickRule()
    fmts = parse_formats(formats)
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
    try:
        if not rule.needs_teacher:  # fail fast, before the teacher and data are loaded
            pick(records, rule, objectives)
        prep = prepare(cfg, progress=progress)
        picked = pick_candidates(records, rule, objectives, prep.teacher_metrics["validation"]["quality"])
    except PickError as err:
        if not from_config:
            raise
        raise PickError(f"{err}\n(The rule is the config's 'export' section; rule flags replace it.)") from None
    proxy = {"proxy_steps": s.space.spec.proxy_steps, "proxy_examples": s.space.spec.proxy_examples}
    chosen, final, compared = _final_of(prep, picked, proxy, retrain, seed, cfg.seed)
    result = _result(cfg, prep, final, chosen, rule, front, s, len(trained_trials(study)), objectives, target)
    result["pick"]["candidates"] = compared
    if from_config:
        result["pick"]["rule"] = cfg.export.describe()
    result["pick"]["validation_examples"] = len(prep.encoded["validation"].labels)
    with atomic_folder(target, flag) as tmp:
        _write_hf(final, prep, tmp)
        from autodistill.search.front import plot_front

        plot_front(study, objectives, front, tmp / "pareto.png", pick=chosen["number"])
        if "onnx" in fmts:
            result["formats"].update(_onnx_formats(final, prep, tmp, "int8" in fmts))
        _write_json(tmp / "export.json", result)
        (tmp / "README.md").write_text(model_card(result))
    result["path"] = str(target.resolve())
    if cfg.tracking.enabled:
        result["mlflow"] = _log_mlflow(cfg, s.study_name, target, result, register)

    return result


def _final_of(
    prep: Any, picked: list[dict], proxy: dict[str, int], retrain: bool, seed: int | None, cfg_seed: int
) -> tuple[dict, FinalStudent, list[dict[str, Any]]]:
    """Final-train each candidate (best proxy first); keep the one whose final training scores best on
    validation (ties to the better proxy). Test metrics play no part in the choice."""
    best: tuple[dict, FinalStudent] | None = None
    compared = []
    for i, chosen in enumerate(picked):
        if len(picked) > 1 and prep.progress:
            print(f"candidate {i + 1}/{len(picked)}: trial {chosen['number']}", flush=True)
        torch.manual_seed(cfg_seed)  # adapters a transform adds at build time start from a seeded state
        final = final_student(prep, chosen, proxy, retrain=retrain, seed=seed)
        validation = float(final.run.validation["quality"])
        compared.append(
            {"trial": chosen["number"], "proxy_validation": final.proxy_validation, "final_validation": validation}
        )
        if best is None or validation > float(best[1].run.validation["quality"]):
            best = (chosen, final)
    assert best is not None
    return best[0], best[1], compared if len(picked) > 1 else []


def _write_hf(final: FinalStudent, prep: Any, folder: Path) -> None:
    build = final.run.build
    model = build.export_model().to("cpu").eval()
    names = list(prep.data.label_names)  # training targets are in the data's label order
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    build.save(folder, prep.teacher.tokenizer)


def _result(
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
    from autodistill.commands import latency_seq_len, measure_models

    build, run = final.run.build, final.run
    model = build.export_model().to("cpu").eval()
    seq_len = latency_seq_len(cfg, prep.encoded["test"].lengths)
    s_meas, t_meas = measure_models([model, prep.teacher_model()], cfg, seq_len)
    mode_text = (
        f"full-length distillation on the whole training split ({final.spec.steps} steps, "
        f"{final.n_examples:,} examples, "
        f"best validation checkpoint kept{_ema_text(final.spec)}{_augment_text(final.augment)}{_warmup_text(run)})"
        if final.mode == "retrained"
        else f"the trial's proxy distillation rerun exactly ({final.spec.steps} steps on {final.n_examples:,} "
        f"examples{_ema_text(final.spec)}{_warmup_text(run)}; not retrained)"
    )
    names = [st["name"] for st in build.resolved["transforms"]]
    data = prep.data
    return {
        "study": {
            "name": s.study_name,
            "storage": s.storage,
            "space": s.space.name,
            "objectives": objectives,
            "trained": trained,
            "front": len(front),
        },
        "pick": {
            "trial": chosen["number"],
            "rule": rule.describe(),
            "on_front": chosen["number"] in {r["number"] for r in front},
            "params": chosen["params"],
            "objectives": chosen["objectives"],
            "search_metrics": chosen["metrics"],
            "strategy": {"student": chosen["student"], "loss": chosen["loss"], "train": chosen["train"]},
        },
        "proxy": {
            "validation_quality": final.proxy_validation,
            "reproduced_validation_quality": final.reproduced_validation,
        },
        "train": {
            "mode": final.mode,
            "mode_text": mode_text,
            "spec": final.spec.to_dict(),
            "examples": final.n_examples,
            "steps": run.train.steps,
            "warmup_steps": run.warmup_steps,
            "seconds": round(run.train.seconds, 1),
            "best_step": run.train.best_step,
            "evals": run.train.evals,
            "augment": final.augment,
        },
        "student": {
            "validation": run.validation,
            "test": final.test,
            "kind": build.resolved["kind"],
            "transforms": names,
            "lora_merged": "lora" in names,
            **s_meas,
        },
        "teacher": {
            "name": str(prep.teacher.path),
            "finetuned": prep.teacher.finetuned,
            **prep.teacher_metrics,
            **t_meas,
        },
        "relative": {
            "parameter_ratio": s_meas["parameters"]["total"] / t_meas["parameters"]["total"],
            "test_quality_ratio": final.test["quality"] / max(1e-12, prep.teacher_metrics["test"]["quality"]),
            **{
                k.replace("latency_ms", "speedup"): t_meas["latency_ms"][k] / v
                for k, v in s_meas.get("latency_ms", {}).items()
            },
        },
        "latency": {"seq_len": seq_len, "threads": cfg.evaluate.threads, "repeats": cfg.evaluate.repeats},
        "budget": {k: v for k, v in to_dict(cfg.budget).items() if v is not None},
        "data": {
            "source": data.source,
            "labels": list(data.label_names),
            "train": len(prep.encoded["train"].labels),
            "validation": len(prep.encoded["validation"].labels),
            "test": len(prep.encoded["test"].labels),
        },
        "metric": cfg.data.metric,
        "formats": {"hf": {"file": "model.safetensors", "size_mb": s_meas["size_mb"]}},
        "out_name": target.name,
    }


def _onnx_formats(final: FinalStudent, prep: Any, folder: Path, int8: bool) -> dict[str, Any]:
    from autodistill.evaluate import measure_latency, task_metrics
    from autodistill.evaluate import state_size_mb as final_size_mb
    from autodistill.export.onnx import (
        check_parity,
        export_onnx,
        file_mb,
        ort_latency,
        ort_logits,
        quantize_int8,
        session,
    )
    from autodistill.train.inference import predict_logits

    cfg = prep.cfg
    ev = cfg.evaluate
    from autodistill.commands import latency_seq_len

    seq_len = latency_seq_len(cfg, prep.encoded["test"].lengths)
    model = final.run.build.export_model().to("cpu").eval()
    # the test split as users of the saved student encode it (its own tokenizer), as for the card
    enc, pad_id = final.shipped_test
    labels = enc.labels
    ref = predict_logits(model, enc, pad_id, cfg.distill.eval_batch_size, "cpu")
    vocab = int(model.config.vocab_size)
    out: dict[str, Any] = {
        "pytorch": {
            "file": "model.safetensors",
            "size_mb": final_size_mb(model),
            "test_quality": task_metrics(labels, ref.argmax(-1), cfg.data.metric)["quality"],
            "agreement": 1.0,
            "latency_ms": measure_latency(
                model,
                batch_sizes=FORMAT_BATCHES,
                seq_len=seq_len,
                threads=ev.threads,
                warmup=ev.warmup,
                repeats=ev.repeats,
            ),
        }
    }
    fp32 = folder / "onnx" / "model.onnx"
    export_onnx(model, fp32)
    files = [("onnx", fp32)]
    if int8:
        q = folder / "onnx" / "model.int8.onnx"
        quantize_int8(fp32, q)
        files.append(("int8", q))
    for name, path in files:
        sess = session(path, ev.threads)
        logits = ort_logits(sess, enc, pad_id, 64)
        if name == "onnx":  # fp32 must match PyTorch; int8 is lossy and is measured, not checked
            parity = check_parity(ref, logits, "The ONNX export (onnxruntime)")
        else:
            parity = {
                "agreement": float((ref.argmax(-1) == logits.argmax(-1)).mean()),
                "max_abs_logit_diff": float(np.abs(ref - logits).max()),
            }
        out[name] = {
            "file": str(path.relative_to(folder)),
            "size_mb": round(file_mb(path), 3),
            "test_quality": task_metrics(labels, logits.argmax(-1), cfg.data.metric)["quality"],
            **parity,
            "latency_ms": ort_latency(sess, vocab, FORMAT_BATCHES, seq_len, ev.warmup, ev.repeats),
        }
    return out


def _write_json(path: Path, obj: Any) -> None:
    from autodistill.commands import _json_default

    path.write_text(json.dumps(obj, indent=2, default=_json_default))


def _log_mlflow(
    cfg: RunConfig, study_name: str, folder: Path, result: dict[str, Any], register: str | None
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
        **{k: v for k, v in s.get("latency_ms", {}).items()},
    }
    return tracker.log_export(folder, s["kind"], register, metrics)


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


def _augment_text(augment: dict[str, Any] | None) -> str:
    if not augment:
        return ""
    return (
        "; each step also saw teacher-labelled augmented copies of its examples "
        f"(ratio {augment['ratio']:g}, splice {augment['splice_prob']:g}, mask {augment['mask_prob']:g}, "
        f"replace {augment['replace_prob']:g})" + _unlabeled_text(augment)
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
