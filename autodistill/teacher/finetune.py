"""Making the teacher: use a classifier as it is, or fine-tune a backbone once and keep it in
the teacher home, keyed by exactly what shapes it (so student or search settings never
retrain it)."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.data import Encoded, TaskData, encode, tokenizer_fingerprint
from autodistill.errors import TeacherError
from autodistill.files import replacing_folder
from autodistill.fingerprint import hash_folder, hash_json, home
from autodistill.teacher.folder import check_weights, read_json
from autodistill.teacher.load import (
    SOURCE_FIX,
    is_classifier,
    label_order,
    load_classifier,
    load_config,
    load_tokenizer,
    resolve_source,
)
from autodistill.teacher.lock import filling


@dataclass
class Teacher:
    path: Path
    fingerprint: str
    tokenizer: Any
    label_order: list[int]
    finetuned: bool
    info: dict[str, Any] = field(default_factory=dict)
    _model: Any = None

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def model(self, cfg: RunConfig) -> Any:
        if self._model is None:
            fix = home_fix(self.path) if self.finetuned else SOURCE_FIX
            self._model = load_classifier(self.path, cfg.teacher, fix=fix).eval()
        return self._model


def teacher_home() -> Path:
    return home() / "teachers"


def home_fix(folder: Path) -> str:
    return f"Delete the folder {str(folder)!r}; the next run fine-tunes the teacher again."


def _read_home_teacher(folder: Path) -> dict[str, Any]:
    """The record of a teacher fine-tuned earlier, after checking that its files are whole.

    Checked here rather than when the weights load: a damaged teacher found late would fail a run
    after its data and cache work, and would fail every later run the same way."""
    fix = home_fix(folder)
    info = read_json(folder / "teacher.json", TeacherError, fix)
    check_weights(folder, True, TeacherError, fix)
    return info


_LATER_KEYS = ("patience", "eval_every")


def finetune_fingerprint(source: Path, cfg: RunConfig, data: TaskData, tokenizer: Any) -> str:
    """Exactly what shapes a fine-tuned teacher: its files, the data and splits, the tokenizer,
    the max length, the fine-tuning settings and the seed."""
    return hash_json(
        {
            "files": hash_folder(source),
            "data": data.fingerprint,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "max_length": cfg.data.max_length,
            # the seed stays its own key, so teachers fine-tuned before it moved here keep theirs
            # keys added later count only when set, so teachers fine-tuned before them keep theirs
            "finetune": {
                k: v
                for k, v in asdict(cfg.teacher.finetune).items()
                if k != "seed" and not (k in _LATER_KEYS and v is None)
            },
            "seed": cfg.teacher.finetune.seed,
        }
    )


def prepare_teacher(
    cfg: RunConfig,
    data: TaskData,
    encoded: dict[str, Encoded] | None = None,
    allow_finetune: bool = True,
    progress: bool = True,
) -> Teacher:
    """The teacher for this config: loaded as it is, found in the teacher home, or fine-tuned."""
    source = resolve_source(cfg.teacher)
    config = load_config(source, cfg.teacher)
    tokenizer = load_tokenizer(source, cfg.teacher)
    if is_classifier(config):
        order = label_order(config, data.label_names)
        fp = hash_json({"files": hash_folder(source)})
        return Teacher(source, fp, tokenizer, order, finetuned=False, info={"source": str(source)})
    fp = finetune_fingerprint(source, cfg, data, tokenizer)
    folder = teacher_home() / fp[:24]
    if not (folder / "teacher.json").is_file():
        if not allow_finetune:
            raise TeacherError(
                f"The teacher {cfg.teacher.model!r} is a backbone, not a classifier; "
                "run `autodistill teacher CONFIG` first."
            )
        # workers started together fine-tune it once: the others wait here, then read it
        with filling(folder, "fine-tune the teacher", progress):
            if not (folder / "teacher.json").is_file():
                if encoded is None:
                    encoded = {
                        s: encode(getattr(data, s), tokenizer, cfg.data.max_length) for s in ("train", "validation")
                    }
                info = _finetune(source, folder, cfg, data, tokenizer, encoded, fp, progress)
                return Teacher(folder, fp, tokenizer, list(range(len(data.label_names))), finetuned=True, info=info)
    info = _read_home_teacher(folder)
    return Teacher(folder, fp, tokenizer, list(range(len(data.label_names))), finetuned=True, info=info)


def finetune_spec(cfg: RunConfig, n_examples: int) -> Any:
    """The teacher's training spec (a classifier's fine-tuning, a causal LM's adaptation) over
    ``n_examples`` rows: ``teacher.finetune``'s settings, ``max_steps`` or ``epochs`` as the cap, a
    validation checkpoint once an epoch (or every ``eval_every`` steps) and its ``patience``."""
    from autodistill.specs import TrainSpec
    from autodistill.train.loop import steps_for_epochs

    ft = cfg.teacher.finetune
    steps = ft.max_steps or steps_for_epochs(n_examples, ft.batch_size, ft.epochs)
    per_epoch = steps_for_epochs(n_examples, ft.batch_size, 1)
    return TrainSpec(
        steps=steps,
        batch_size=ft.batch_size,
        lr=ft.lr,
        weight_decay=ft.weight_decay,
        warmup_ratio=ft.warmup_ratio,
        max_grad_norm=ft.max_grad_norm,
        eval_every=min(ft.eval_every or per_epoch, steps),
        device=cfg.distill.device,
        bf16=cfg.distill.bf16,
        seed=ft.seed,
        patience=ft.patience,
    )


def _finetune(source, folder, cfg, data, tokenizer, encoded, fp, progress) -> dict[str, Any]:
    import torch

    from autodistill.evaluate import task_metrics
    from autodistill.losses.base import LossDims
    from autodistill.losses.composite import CompositeLoss
    from autodistill.specs import LossSpec, Step
    from autodistill.train.inference import predict_logits
    from autodistill.train.loop import steps_for_epochs, train

    ft = cfg.teacher.finetune
    torch.manual_seed(ft.seed)
    model = load_classifier(
        source, cfg.teacher, num_labels=len(data.label_names), id2label=data.id2label, label2id=data.label2id
    )
    train_enc, val_enc = encoded["train"], encoded["validation"]
    spec = finetune_spec(cfg, len(train_enc.labels))
    ce = CompositeLoss(LossSpec(terms=(Step("ce"),)), LossDims(model.config.hidden_size, model.config.hidden_size))
    pad = int(tokenizer.pad_token_id)

    def evaluate(step: int) -> float:
        logits = predict_logits(
            model, val_enc, pad, cfg.distill.eval_batch_size, device=next(model.parameters()).device
        )
        return task_metrics(val_enc.labels, logits.argmax(-1), cfg.data.metric)["quality"]

    result = train(
        model,
        ce,
        train_enc,
        np.arange(len(train_enc.labels)),
        spec,
        pad,
        evaluate=evaluate,
        keep_best=True,
        progress=progress,
        desc="fine-tune teacher",
    )
    model.to("cpu")
    logits = predict_logits(model, val_enc, pad, cfg.distill.eval_batch_size)
    val = task_metrics(val_enc.labels, logits.argmax(-1), cfg.data.metric)
    majority = np.bincount(data.train.labels).argmax()
    baseline = task_metrics(val_enc.labels, np.full_like(val_enc.labels, majority), cfg.data.metric)
    if val["quality"] <= baseline["quality"]:
        warnings.warn(
            f"The fine-tuned teacher's validation {cfg.data.metric} ({val['quality']:.4f}) is no better than "
            f"predicting the majority class ({baseline['quality']:.4f}). Train it longer "
            "('teacher.finetune.epochs') or check the data.",
            stacklevel=2,
        )
    info = {
        "fingerprint": fp,
        "source": str(source),
        "validation": val,
        "majority_baseline": baseline,
        "best_step": result.best_step,
        "steps": result.steps,
        "steps_per_epoch": steps_for_epochs(len(train_enc.labels), ft.batch_size, 1),
        "stopped": result.stop_reason or "step cap",
        "curve": [[s, round(q, 6)] for s, q in result.evals],
        "seconds": round(result.seconds, 1),
        "finetune": asdict(cfg.teacher.finetune),
        "data": data.fingerprint,
        "label_names": list(data.label_names),
    }
    _save_atomic_folder(folder, model, tokenizer, info)
    return info


def _save_atomic_folder(folder: Path, model: Any, tokenizer: Any, info: dict[str, Any]) -> None:
    # another process may finish the same teacher first; theirs is equivalent and is kept
    with replacing_folder(folder, keep_existing=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "teacher.json").write_text(json.dumps(info, indent=2))
