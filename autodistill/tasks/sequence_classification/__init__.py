"""``task: sequence-classification``: an encoder (or any ``AutoModelForSequenceClassification``)
teacher, labelled texts, students scored by accuracy / macro-F1, exported as HF, ONNX and int8.

``prepare.py`` holds what every student shares (``Prepared``), ``distill.py`` one student's
distillation and scores, ``evaluate.py`` a saved folder's, ``onnx.py`` and ``onnx_formats.py`` the
ONNX and int8 exports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.specs import LossSpec, StudentSpec, TrainSpec
from autodistill.tasks.base import TASKS, Task


@TASKS.register("sequence-classification")
class SequenceClassification(Task):
    name = "sequence-classification"
    formats = ("hf", "onnx", "int8")
    metrics = ("quality", "accuracy", "macro_f1", "teacher_agreement")
    pipeline_tag = "text-classification"

    def prepare(self, cfg: RunConfig, progress: bool = True) -> Any:
        from autodistill.tasks.sequence_classification import prepare

        return prepare.prepare(cfg, progress=progress)

    def teacher(self, cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
        """The teacher fine-tuned (or found, or used as it is), its outputs cached, and its quality
        on validation and test: a teacher the user brings is measured before any student is."""
        from autodistill.tasks.base import teacher_training
        from autodistill.tasks.sequence_classification import prepare

        prep = prepare.prepare(cfg, progress=progress)
        teacher = prep.teacher
        return {
            **teacher.info,
            "path": str(teacher.path),
            "fingerprint": teacher.fingerprint,
            "finetuned": teacher.finetuned,
            "metric": cfg.data.metric,
            "validation": prep.teacher_metrics["validation"],
            "test": prep.teacher_metrics["test"],
            "training": teacher_training(teacher),
            "teachers": prep.teachers_record(),  # teacher.extra: each teacher and their combination
        }

    def predicted_parameters(self, prep: Any, student: StudentSpec) -> int:
        from autodistill.student.arch import shape_from_config
        from autodistill.student.build import predict_parameters

        return predict_parameters(shape_from_config(prep.teacher_model().config), student, prep.token_context())

    def untrained_model(self, prep: Any, student: StudentSpec) -> Any | None:
        from autodistill.student.arch import build_model, shape_from_config
        from autodistill.student.build import plan_student

        config = prep.teacher_model().config
        shape, exactness = plan_student(shape_from_config(config), student, prep.token_context())
        return None if exactness == "bound" else build_model(shape, config)

    def train_spec(self, cfg: RunConfig, n_examples: int) -> TrainSpec:
        from autodistill.tasks.sequence_classification.prepare import train_spec

        return train_spec(cfg, n_examples)

    def proxy_indices(self, prep: Any, n: int, seed: int) -> np.ndarray:
        from autodistill.data import stratified_subset

        labels = prep.encoded["train"].labels
        return stratified_subset(labels, min(n, len(labels)), seed)

    def distill(self, prep: Any, student: StudentSpec | None, loss: LossSpec, **options: Any) -> Any:
        from autodistill.tasks.sequence_classification import distill

        return distill.distill_student(prep, student, loss, **options)

    def trial_metrics(self, run: Any) -> dict[str, float]:
        return {k: run.validation[k] for k in self.metrics}

    def shipped_quality(self, prep: Any, build: Any, split: str = "test") -> dict[str, float]:
        from autodistill.tasks.sequence_classification import distill

        return distill.shipped_quality(prep, build, split)

    def latency_b1(self, cfg: RunConfig, prep: Any, student: Any, teacher: Any) -> tuple[float, float]:
        """Batch-1 milliseconds of student and teacher in ``budget.runtime``: PyTorch (the default
        ``Task.latency_b1``), or both exported and timed in onnxruntime (``runtime.py``)."""
        if cfg.budget.runtime == "pytorch":
            return super().latency_b1(cfg, prep, student, teacher)
        from autodistill.tasks.sequence_classification.runtime import runtime_latency_b1

        return runtime_latency_b1(cfg, student, teacher, self.latency_seq_len(cfg, prep))

    def measure_models(self, cfg: RunConfig, prep: Any, models: list[Any]) -> list[dict[str, Any]]:
        """``Task.measure_models``, and with a ``budget.runtime`` other than PyTorch the student's and
        teacher's batch-1 milliseconds in it (``runtime_latency``: ``{runtime, latency_ms_b1}``)."""
        out = super().measure_models(cfg, prep, models)
        if cfg.budget.runtime != "pytorch" and len(models) == 2:
            s, t = self.latency_b1(cfg, prep, models[0], models[1])
            out[0]["runtime_latency"] = {"runtime": cfg.budget.runtime, "latency_ms_b1": s}
            out[1]["runtime_latency"] = {"runtime": cfg.budget.runtime, "latency_ms_b1": t}
        return out

    def quality_error(self, prep: Any, quality: float) -> float | None:
        """Accuracy's binomial standard error on the validation split (other metrics: None)."""
        if prep.cfg.data.metric != "accuracy":
            return None
        n = len(prep.encoded["validation"].labels)
        return math.sqrt(max(quality * (1 - quality), 1e-12) / max(1, n))

    def class_report(self, prep: Any, build: Any, split: str = "test") -> dict[str, Any] | None:
        from autodistill.tasks.sequence_classification import distill

        return distill.class_report(prep, build, split)

    def latency_seq_len(self, cfg: RunConfig, prep: Any) -> int:
        from autodistill.tasks.sequence_classification.evaluate import latency_seq_len

        return latency_seq_len(cfg, prep.encoded["test"].lengths)

    def cache_plan(self, prep: Any, samples: list[Any]) -> dict[str, Any]:
        """The cache now, and its growth should the search map every teacher layer its losses read."""
        from autodistill.losses import cached_needs

        needs = {x for sample in samples for t in sample.loss.terms for x in cached_needs(t)}
        tconf = prep.teacher_model().config
        layers = list(range(1, tconf.num_hidden_layers + 1))
        growth = prep.cache.estimate_bytes(
            tconf,
            prep.encoded,
            layers if {"hidden", "qkv"} & needs else [],
            layers if "attentions" in needs else [],
            layers if "qkv" in needs else [],
        )
        cache_mb = sum(p.stat().st_size for p in prep.cache.folder.glob("*.npy")) / 1e6
        return {
            "cache_mb": round(cache_mb, 2),
            "cache_growth_mb_max": round(growth / 1e6, 1),
            "cache_folder": str(prep.cache.folder),
        }

    def probe_loss(self, loss: LossSpec) -> LossSpec:
        """Logit terms only (KL when none is left), so that the probe never fills the cache."""
        from dataclasses import replace

        from autodistill.losses import cached_needs
        from autodistill.specs import Step

        return replace(loss, terms=tuple(t for t in loss.terms if not cached_needs(t)) or (Step("kl"),))

    def save_student(self, build: Any, prep: Any, folder: Path) -> None:
        model = build.export_model().to("cpu").eval()
        names = list(prep.data.label_names)  # training targets are in the data's label order
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {n: i for i, n in enumerate(names)}
        build.save(folder, prep.teacher.tokenizer)

    def evaluate_folder(self, cfg: RunConfig, model_dir: str, split: str, progress: bool = True) -> dict[str, Any]:
        from autodistill.tasks.sequence_classification import evaluate

        return evaluate.run_evaluate(cfg, model_dir, split=split, progress=progress)

    def export_formats(self, final: Any, prep: Any, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
        from autodistill.tasks.sequence_classification import onnx_formats

        return onnx_formats.onnx_formats(final, prep, folder, formats)

    def model_card(self, result: dict[str, Any]) -> str:
        from autodistill.tasks.sequence_classification.card import model_card

        return model_card(result)
