"""The task seam: everything that differs between kinds of model (a sequence classifier today, a
causal language model next) sits behind one ``Task``. The search, export and the commands call a
task; none of them branches on ``cfg.task``.

A task turns a config into a ``Prepared`` (data encoded with the teacher's tokenizer, the teacher,
its cached outputs and its quality on each split), distils one student from plain specs, scores and
saves it, evaluates a saved folder, and writes the extra export formats that apply to it. Adding a
task means a folder under ``autodistill/tasks/`` whose ``__init__`` registers a ``Task`` subclass in
``TASKS`` and an import line in ``autodistill/tasks/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.registry import Registry
from autodistill.specs import LossSpec, StudentSpec, TrainSpec


@dataclass(frozen=True)
class Components:
    """The registries a task's config and search space name their components from."""

    transforms: Registry[Any]
    losses: Registry[Any]
    weightings: Registry[Any]


class Task(ABC):
    """One kind of model and data. Subclasses are stateless; ``Prepared`` holds the state."""

    name: ClassVar[str]
    # export formats this task can write beside the HF folder (a subset of config.run.EXPORT_FORMATS)
    formats: ClassVar[tuple[str, ...]] = ("hf",)
    # the metrics a trial records (``trial_metrics``) besides size and speed, "quality" first
    metrics: ClassVar[tuple[str, ...]] = ("quality",)
    # the transformers pipeline a saved student runs in (the card's and MLflow's model flavour)
    pipeline_tag: ClassVar[str]

    # -- shared set-up -----------------------------------------------------------------------
    @abstractmethod
    def prepare(self, cfg: RunConfig, progress: bool = True) -> Any:
        """Data, teacher (fine-tuned or reused), encoded splits, the teacher-output cache and the
        teacher's metrics on validation and test: what every student of a config shares."""

    @abstractmethod
    def teacher(self, cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
        """Fine-tune the teacher into the teacher home, or find it there: its path and metrics."""

    # -- one student ---------------------------------------------------------------------------
    @abstractmethod
    def predicted_parameters(self, prep: Any, student: StudentSpec) -> int:
        """The student's parameter count from its plan, before any weight is built (a bound where
        a transform can only bound it); raises ConfigError for a student the config refuses."""

    @abstractmethod
    def untrained_model(self, prep: Any, student: StudentSpec) -> Any | None:
        """The student's planned shape with random weights, for timing before training (latency and
        memory depend on the shape alone); None where the plan only bounds the shape."""

    @abstractmethod
    def train_spec(self, cfg: RunConfig, n_examples: int) -> TrainSpec:
        """The training spec of ``distill`` (proxy or full length) for ``n_examples`` examples."""

    @abstractmethod
    def proxy_indices(self, prep: Any, n: int, seed: int) -> np.ndarray:
        """The training examples a proxy run trains on (a stratified subset for classifiers)."""

    @abstractmethod
    def distill(self, prep: Any, student: StudentSpec | None, loss: LossSpec, **options: Any) -> Any:
        """Build one student from the teacher, distil it, score it on validation (a ``StudentRun``)."""

    @abstractmethod
    def trial_metrics(self, run: Any) -> dict[str, float]:
        """A run's validation metrics as the search records them (``quality`` among them)."""

    @abstractmethod
    def shipped_quality(self, prep: Any, build: Any, split: str = "test") -> dict[str, float]:
        """A student's metrics on ``split`` as its saved folder will run (its own tokenizer)."""

    @abstractmethod
    def latency_seq_len(self, cfg: RunConfig, prep: Any) -> int:
        """The sequence length latency is measured at."""

    # -- saved folders ---------------------------------------------------------------------------
    @abstractmethod
    def save_student(self, build: Any, prep: Any, folder: Path) -> None:
        """Write the student as a folder that ``from_pretrained`` loads (weights, config, tokenizer)."""

    @abstractmethod
    def evaluate_folder(self, cfg: RunConfig, model_dir: str, split: str, progress: bool = True) -> dict[str, Any]:
        """Metrics, parameters, size and latency of a saved student or teacher folder on ``split``."""

    @abstractmethod
    def model_card(self, result: dict[str, Any]) -> str:
        """The export's model card (``README.md``, Markdown with front matter) from its ``export.json``
        record: how to load the student, its quality and speed beside the teacher's, how it was made."""

    # -- components and measurement (the classifier's by default) -------------------------------
    def components(self) -> Components:
        """The student transforms, losses and weightings this task's configs may name."""
        from autodistill.losses import LOSSES
        from autodistill.student.base import TRANSFORMS
        from autodistill.weighting import WEIGHTINGS

        return Components(TRANSFORMS, LOSSES, WEIGHTINGS)

    def rebuild(self, prep: Any, resolved: dict[str, Any]) -> Any:
        """A recorded student rebuilt from the teacher alone (export's final training starts here)."""
        from autodistill.student.build import rebuild_student

        return rebuild_student(prep.teacher_model(), resolved)

    def latency_b1(self, cfg: RunConfig, prep: Any, student: Any, teacher: Any) -> tuple[float, float]:
        """Batch-1 milliseconds of the student and the teacher (the latency objective and budget),
        their timed passes interleaved so that the ratio does not depend on what the machine did
        meanwhile."""
        from autodistill.evaluate import measure_latencies

        ev = cfg.evaluate
        both = measure_latencies(
            [student, teacher],
            batch_sizes=(1,),
            seq_len=self.latency_seq_len(cfg, prep),
            threads=ev.threads,
            warmup=ev.warmup,
            repeats=ev.repeats,
        )
        return both[0]["latency_ms_b1"], both[1]["latency_ms_b1"]

    def peak_memory_mb(self, cfg: RunConfig, prep: Any, model: Any) -> float:
        """Peak memory of one batch-1 inference (the memory budget)."""
        from autodistill.evaluate import peak_memory_mb

        return peak_memory_mb(model, 1, self.latency_seq_len(cfg, prep))

    def prediction_energy(self, cfg: RunConfig, prep: Any, model: Any) -> dict[str, Any]:
        """Joules per 1,000 batch-1 predictions of ``model`` and how they were found (measured or
        estimated; ``evaluate.energy``), the energy objective and budget."""
        from autodistill.evaluate.measure import prediction_energy

        return prediction_energy(model, self.latency_seq_len(cfg, prep), cfg.evaluate.threads)

    def measure_models(self, cfg: RunConfig, prep: Any, models: list[Any]) -> list[dict[str, Any]]:
        """Parameters, size, latency (``latency_ms``: ``latency_ms_b<N>`` per batch size) and peak
        memory of a student and its teacher, measured side by side."""
        from autodistill.evaluate.measure import measure_models

        return measure_models(models, cfg, self.latency_seq_len(cfg, prep))

    def metric(self, cfg: RunConfig) -> str:
        """The name of what ``quality`` measures (the configured metric for classifiers)."""
        return cfg.data.metric

    def data_record(self, prep: Any) -> dict[str, Any]:
        """What the export record and card say of the data: its source and the size of each split."""
        data = prep.data
        return {
            "source": data.source,
            "labels": list(data.label_names),
            **{s: len(prep.encoded[s]) for s in ("train", "validation", "test")},
        }

    def cache_plan(self, prep: Any, samples: list[Any]) -> dict[str, Any]:
        """``autodistill plan``: the teacher-output cache's size now (``cache_mb``, ``cache_folder``)
        and at most how much the losses of these sampled points could add (``cache_growth_mb_max``)."""
        return {}

    def probe_loss(self, loss: LossSpec) -> LossSpec:
        """The loss ``plan``'s timed probe trains with: one that needs nothing new in the cache."""
        return loss

    def class_report(self, prep: Any, build: Any, split: str = "test") -> dict[str, Any] | None:
        """Per-class quality of the shipped student beside the teacher's on ``split`` (classifiers:
        recall per class and the classes the student drops), or None where classes do not apply."""
        return None

    def quality_error(self, prep: Any, quality: float) -> float | None:
        """One standard error of a validation quality figure near ``quality``, from the validation
        split's size, or None where no such figure applies (the default)."""
        return None

    def check_formats(self, prep: Any, formats: tuple[str, ...], students: Sequence[dict] = ()) -> None:
        """Refuse (ConfigError naming '--formats') a format this teacher's students, or the picked
        ``students`` (their ``StudentSpec.to_dict()``), cannot be written in, before any training.
        The default refuses none."""
        return None

    def export_formats(self, final: Any, prep: Any, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
        """Write the formats beyond the HF folder into ``folder``; returns what the card reports of
        each. The default writes none."""
        return {}


def train_spec(cfg: RunConfig, n_examples: int) -> TrainSpec:
    """``distill``'s training spec for ``n_examples`` training rows: ``distill.proxy_steps`` in proxy
    mode, else ``distill.max_steps`` or ``distill.epochs`` with a validation check once per epoch."""
    from autodistill.train.loop import steps_for_epochs

    d = cfg.distill
    eval_every = d.eval_every
    if d.mode == "proxy":
        steps = d.proxy_steps
    else:
        steps = d.max_steps or steps_for_epochs(n_examples, d.batch_size, d.epochs)
        # full runs check validation once per epoch by default and keep the best
        eval_every = eval_every or min(steps, steps_for_epochs(n_examples, d.batch_size, 1))
    return TrainSpec(
        steps=steps,
        batch_size=d.batch_size,
        lr=d.lr,
        weight_decay=d.weight_decay,
        warmup_ratio=d.warmup_ratio,
        max_grad_norm=d.max_grad_norm,
        eval_every=eval_every,
        device=d.device,
        bf16=d.bf16,
        seed=cfg.seed,
        prune_after=d.prune_after,
        prune_stages=d.prune_stages,
        ema=d.ema,
        dropout=d.dropout,
        patience=None if d.mode == "proxy" else d.patience,
        combine=d.combine,
        assistant=d.assistant,
        qat=0.0 if d.mode == "proxy" else d.qat,
    )


TASKS: Registry[type[Task]] = Registry("task")


def get_task(cfg: RunConfig | str) -> Task:
    """The task a config names (``task:``), as an instance."""
    name = cfg if isinstance(cfg, str) else cfg.task
    import autodistill.tasks  # noqa: F401  (registers every task)

    return TASKS.get(name)()


def teacher_training(teacher: Any) -> dict[str, Any] | None:
    """How the teacher was trained, for every report beside the student's share of its quality:
    None for a teacher used as it is; else its steps, best step, why it stopped, seconds and the
    epoch cap and patience it trained under (a classifier's fine-tuning, a causal LM's adaptation)."""
    if not teacher.finetuned:
        return None
    info, ft = teacher.info or {}, (teacher.info or {}).get("finetune") or {}
    return {
        "steps": info.get("steps"),
        "steps_per_epoch": info.get("steps_per_epoch"),
        "best_step": info.get("best_step"),
        "curve": info.get("curve"),  # [step, validation quality] at each checkpoint
        "stopped": info.get("stopped", "step cap"),
        "seconds": info.get("seconds"),
        "epochs": ft.get("epochs"),
        "max_steps": ft.get("max_steps"),
        "patience": ft.get("patience"),
    }
