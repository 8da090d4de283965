"""The only code that imports mlflow: one parent run per study, one nested run per trial, the
Pareto tag kept current, and the front (CSV, JSON, PNG) on the parent run."""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROLE, STUDY = "autodistill.role", "autodistill.study"
TRIAL, PARETO = "autodistill.trial", "autodistill.pareto"
REASON = "autodistill.reason"
KIND = "mlflow.experimentKind"  # MLflow's own tag: model training, not GenAI


def default_uri(output_dir: str | Path) -> str:
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def _shared(write: Callable[[], None], tries: int = 5) -> None:
    """``write()`` to a record other workers write too (the study's parent run, the experiment's
    tags), again after a short random pause when another worker inserted the same row at the same
    instant. MLflow's SQL store reads, then inserts, so the second of two such inserts is refused
    with a unique-key violation; on the next try the row is there and is updated or skipped."""
    from mlflow.exceptions import MlflowException

    for attempt in range(tries):
        try:
            write()
            return
        except MlflowException as err:
            text = str(err).lower()
            racing = any(s in text for s in ("duplicate key", "unique constraint", "uniqueviolation"))
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.1 + 0.4 * random.random())


def _flat(prefix: str, obj: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(obj)[:6000]
    return out


class Tracker:
    """MLflow runs for one study. ``uri`` is any tracking URI; SQLite in the output dir by default."""

    def __init__(
        self, uri: str, experiment: str, study_name: str, artifact_dir: str | Path, reopen: bool = True
    ) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        warnings.filterwarnings("ignore", module="mlflow")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            from mlflow.exceptions import MlflowException

            location = Path(artifact_dir).resolve().as_uri()
            try:
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
            except MlflowException:  # another worker created it a moment ago
                exp = self.client.get_experiment_by_name(experiment)
                if exp is None:
                    raise
                self.experiment_id = exp.experiment_id
        else:
            self.experiment_id = exp.experiment_id
        if (exp.tags if exp is not None else {}).get(KIND) is None:
            # the UI opens an experiment by its kind; left unset, MLflow 3 may show its GenAI overview
            _shared(lambda: self.client.set_experiment_tag(self.experiment_id, KIND, "custom_model_development"))
        self.study_name = study_name
        self.parent_id = self._parent(reopen)

    def _parents(self) -> list[Any]:
        """The study's parent runs, the first created first (by start time, then id)."""
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{ROLE}` = 'study' and tags.`{STUDY}` = '{self.study_name}'"
        )
        return sorted(found, key=lambda r: (r.info.start_time, r.info.run_id))

    def _parent(self, reopen: bool = True) -> str:
        found = self._parents()
        if found:
            run_id = found[0].info.run_id
            if reopen and found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id, run_name=f"study {self.study_name}", tags={ROLE: "study", STUDY: self.study_name}
        )
        # Workers started together may each have found none and made one: after a moment, in which
        # any other worker that searched before this one finishes making its own, all of them see
        # the same runs and keep the first; the others are deleted by the workers that made them.
        time.sleep(0.5)
        first = self._parents()[0].info.run_id
        if first != run.info.run_id:
            self.client.delete_run(run.info.run_id)
        return first

    def fail_stale(self, live_trials: set[int] = frozenset()) -> int:
        """End as FAILED the trial runs a killed process left RUNNING; the runs of ``live_trials``
        (trials other workers are running now) are left alone."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_id}' and attributes.status = 'RUNNING'",
        )
        stale = [r for r in runs if int(r.data.tags.get(TRIAL, -1)) not in live_trials]
        for r in stale:
            self.client.set_terminated(r.info.run_id, status="FAILED")
        return len(stale)

    def log_study(self, params: dict[str, Any]) -> None:
        def write() -> None:
            existing = self.client.get_run(self.parent_id).data.params
            flat = {k: v for k, v in _flat("", params, {}).items() if k not in existing}
            self._log_params(self.parent_id, flat)

        _shared(write)

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def start_trial(self, number: int, params: dict[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial {number}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                ROLE: "trial",
                STUDY: self.study_name,
                TRIAL: str(number),
                PARETO: "false",
            },
        )
        self._log_params(run.info.run_id, _flat("", params, {}))
        return run.info.run_id

    def log_history(self, run_id: str, history: list[dict[str, float]], weights: list[dict[str, float]]) -> None:
        from mlflow.entities import Metric

        metrics = []
        for row in history:
            step = int(row.get("step", 0))
            metrics += [Metric(f"train.{k}", float(v), 0, step) for k, v in row.items() if k != "step"]
        for i, row in enumerate(weights):
            metrics += [Metric(f"weight.{k}", float(v), 0, i + 1) for k, v in row.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])

    def finish_trial(
        self,
        run_id: str,
        metrics: dict[str, float],
        resolved: dict[str, Any] | None,
        status: str,
        reason: str | None = None,
    ) -> None:
        """End a trial's run with its metrics and resolved student; ``reason``: why it was stopped
        or failed, as the tag ``autodistill.reason``."""
        from mlflow.entities import Metric

        if reason:
            self.client.set_tag(run_id, REASON, reason[:5000])

        items = [Metric(k, float(v), 0, 0) for k, v in metrics.items() if isinstance(v, (int, float))]
        if items:
            self.client.log_batch(run_id, metrics=items)
        if resolved is not None:
            self.client.log_text(run_id, json.dumps(resolved, indent=2), "resolved_student.json")
        self.client.set_terminated(run_id, status=status)

    def mark_front(self, run_ids_on_front: set[str], all_run_ids: list[str]) -> None:
        for rid in all_run_ids:
            self.client.set_tag(rid, PARETO, "true" if rid in run_ids_on_front else "false")

    def log_front_files(self, files: list[Path]) -> None:
        for f in files:
            self.client.log_artifact(self.parent_id, str(f), artifact_path="pareto")

    def log_study_metrics(self, metrics: dict[str, float]) -> None:
        """Figures of the whole study (its proxy steps, its front's hypervolume) on the parent run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        _shared(lambda: self.client.log_batch(self.parent_id, metrics=items))

    def end_study(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_id, status=status)

    def log_export(
        self,
        folder: Path,
        kind: str,
        register: str | None = None,
        metrics: dict[str, float] | None = None,
        *,
        pipeline_tag: str,
    ) -> dict[str, Any]:
        """Log an exported student to the study's parent run, and register it under ``register``.

        The whole folder (weights, card, ONNX files) goes to the ``export`` artefacts. A stock
        student is also logged with the transformers flavour, as a ``pipeline_tag`` pipeline (the
        task's, ``Task.pipeline_tag``): it loads with transformers alone;
        a registered one is not, since the flavour's loader would need ``import autodistill``, so
        its registered version points at the ``export`` artefacts instead. The parent run's
        status is left as it was.
        """
        from mlflow.entities import Metric

        before = self.client.get_run(self.parent_id).info.status
        self.client.log_artifacts(self.parent_id, str(folder), artifact_path="export")
        if metrics:
            now = int(time.time() * 1000)  # a real timestamp: each export adds a point, not a duplicate
            items = [Metric(f"export.{k}", float(v), now, 0) for k, v in metrics.items() if isinstance(v, (int, float))]
            self.client.log_batch(self.parent_id, metrics=items)
        out: dict[str, Any] = {"run_id": self.parent_id, "artifacts": "export", "flavor": None, "registered": None}
        if kind == "stock":
            out.update(self._log_transformers(folder, register, pipeline_tag))
        elif register:
            source = f"{self.client.get_run(self.parent_id).info.artifact_uri}/export"
            try:
                self.client.create_registered_model(register)
            except Exception as err:  # already registered: add a version
                if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(err):
                    raise
            mv = self.client.create_model_version(register, source=source, run_id=self.parent_id)
            out["registered"] = {"name": register, "version": int(mv.version), "source": source}
        status = self.client.get_run(self.parent_id).info.status
        if status != before:
            if before == "RUNNING":
                self.client.update_run(self.parent_id, status="RUNNING")
            else:
                self.client.set_terminated(self.parent_id, status=before)
        return out

    def _log_transformers(self, folder: Path, register: str | None, pipeline_tag: str) -> dict[str, Any]:
        import mlflow
        from transformers import pipeline

        previous_uri = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.uri)
        try:
            pipe = pipeline(pipeline_tag, model=str(folder))
            with mlflow.start_run(run_id=self.parent_id):
                # explicit requirements: inferring them imports every optional torch package
                info = mlflow.transformers.log_model(
                    pipe,
                    name="student",
                    registered_model_name=register,
                    pip_requirements=["transformers", "torch", "safetensors", "tokenizers"],
                )
        finally:
            mlflow.set_tracking_uri(previous_uri)
        registered = None
        if register:
            versions = self.client.search_model_versions(f"name = '{register}'")
            latest = max(versions, key=lambda v: int(v.version))
            registered = {"name": register, "version": int(latest.version), "source": latest.source}
        return {"flavor": "transformers", "model_uri": info.model_uri, "registered": registered}
