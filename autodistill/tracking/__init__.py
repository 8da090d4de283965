"""Tracking at the edge: ``open_tracker`` gives the MLflow tracker when tracking is on, else a
``NullTracker`` with the same methods that records nothing, so the search never asks which one
it has. Only ``mlflow_tracker.py`` imports mlflow, and only when tracking is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.config.run import RunConfig


class NullTracker:
    """The tracker when ``tracking.enabled`` is false: every call does nothing."""

    def fail_stale(self, live_trials: set[int] = frozenset()) -> int:
        return 0

    def log_study(self, params: dict[str, Any]) -> None:
        return None

    def start_trial(self, number: int, params: dict[str, Any]) -> str | None:
        return None

    def log_history(self, run_id: str | None, history: list[dict], weights: list[dict]) -> None:
        return None

    def finish_trial(
        self, run_id: str | None, metrics: dict, resolved: dict | None, status: str, reason: str | None = None
    ) -> None:
        return None

    def mark_front(self, run_ids_on_front: set[str], all_run_ids: list[str]) -> None:
        return None

    def log_front_files(self, files: list[Path]) -> None:
        return None

    def log_study_metrics(self, metrics: dict[str, float]) -> None:
        return None

    def end_study(self, status: str = "FINISHED") -> None:
        return None


def open_tracker(cfg: RunConfig, study_name: str, reopen: bool = True) -> Any:
    """The study's tracker: MLflow runs under ``tracking.uri`` (SQLite in output_dir by default)."""
    if not cfg.tracking.enabled:
        return NullTracker()
    from autodistill.tracking.mlflow_tracker import Tracker, default_uri

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    uri = cfg.tracking.uri or default_uri(out)
    return Tracker(uri, cfg.tracking.experiment, study_name, out / "mlartifacts", reopen=reopen)
