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
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from autodistill.config.run import RunConfig
from autodistill.registry import Registry
from autodistill.specs import LossSpec, StudentSpec, TrainSpec


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

    def export_formats(self, final: Any, prep: Any, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
        """Write the formats beyond the HF folder into ``folder``; returns what the card reports of
        each. The default writes none."""
        return {}


TASKS: Registry[type[Task]] = Registry("task")


def get_task(cfg: RunConfig | str) -> Task:
    """The task a config names (``task:``), as an instance."""
    name = cfg if isinstance(cfg, str) else cfg.task
    import autodistill.tasks  # noqa: F401  (registers every task)

    return TASKS.get(name)()
