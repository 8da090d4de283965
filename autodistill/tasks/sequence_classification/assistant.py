"""The teacher assistant (``distill.assistant``, progressive distillation after Mirzadeh et al.,
2020): teacher -> assistant -> student. The assistant keeps N of the teacher's layers (evenly
spaced, full width), is distilled from the teacher (all teachers combined, with ``teacher.extra``)
once, at full length with the config's loss, and seeded like the teacher, so every student of a
study and every seed shares it; its logits on every split are kept in the teacher home beside the
teacher's cache. A student shallower than the assistant learns from those logits; feature terms
(hidden states, attention) keep reading the teacher's layers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from autodistill.files import open_replacing, write_json
from autodistill.fingerprint import hash_json, home
from autodistill.specs import LossSpec, Step, StudentSpec
from autodistill.tasks.sequence_classification.prepare import SPLITS, Prepared

FOLDER = "assistants"


def assistant_spec(layers: int) -> StudentSpec:
    return StudentSpec(transforms=(Step("depth", {"layers": layers, "choice": "uniform"}),))


def assistant_key(prep: Prepared, layers: int, combine: str) -> str:
    """What shapes the assistant: the teacher's outputs (the teachers', with ``teacher.extra``), how
    they combine, its depth, and the config's full-length distillation (loss, optimiser, length)."""
    cfg = prep.cfg
    d = cfg.distill
    return hash_json(
        {
            "cache": prep.cache_key,
            "extra": [e.cache_key for e in prep.extra],
            "combine": combine if prep.extra else None,
            "weights": cfg.teacher.weights,
            "layers": layers,
            "loss": LossSpec.from_config(d.loss).to_dict(),
            "train": [d.epochs, d.max_steps, d.batch_size, d.lr, d.weight_decay, d.warmup_ratio, d.patience],
            "seed": cfg.teacher.finetune.seed,
        }
    )[:24]


def assistant_logits(prep: Prepared, layers: int, combine: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The assistant's logits on every split and its record (layers, steps, seconds, validation and
    test quality), trained on first use and read from the teacher home after."""
    from autodistill.teacher.lock import filling

    folder = home() / FOLDER / assistant_key(prep, layers, combine)
    if not (folder / "assistant.json").is_file():
        with filling(folder, "distil the teacher assistant", prep.progress):
            if not (folder / "assistant.json").is_file():
                _train(prep, layers, combine, folder)
    record = json.loads((folder / "assistant.json").read_text())
    return {s: np.load(folder / f"{s}.logits.npy") for s in SPLITS}, record


def _train(prep: Prepared, layers: int, combine: str, folder: Any) -> None:
    from autodistill.evaluate import task_metrics
    from autodistill.tasks.sequence_classification.distill import distill_student
    from autodistill.tasks.sequence_classification.prepare import train_spec
    from autodistill.train.inference import predict_logits

    cfg = prep.cfg
    full = replace(cfg, distill=replace(cfg.distill, mode="full"))
    n = len(prep.encoded["train"].labels)
    spec = replace(train_spec(full, n), seed=cfg.teacher.finetune.seed, combine=combine, assistant=None, qat=0.0)
    if prep.progress:
        print(f"teacher assistant: distilling {layers} of the teacher's layers (once; kept in {folder})", flush=True)
    run = distill_student(
        prep, assistant_spec(layers), LossSpec.from_config(cfg.distill.loss), spec=spec, indices=np.arange(n),
        keep_best=True, augment=False,
    )  # fmt: skip
    model = run.build.model
    folder.mkdir(parents=True, exist_ok=True)
    quality = {}
    for split in SPLITS:
        logits = predict_logits(model, prep.encoded[split], prep.pad_id, cfg.distill.eval_batch_size, "cpu")
        with open_replacing(folder / f"{split}.logits.npy", "wb") as fh:
            np.save(fh, logits.astype(np.float32))
        if split != "train":
            quality[split] = task_metrics(prep.encoded[split].labels, logits.argmax(-1), cfg.data.metric)["quality"]
    write_json(
        folder / "assistant.json",
        {"layers": layers, "steps": run.train.steps, "seconds": round(run.train.seconds, 1), **quality},
    )
