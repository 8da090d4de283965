"""Evaluation: task metrics, agreement with the teacher, parameters, size, latency and memory.

Everything here takes a model and plain values and returns plain values; nothing imports optuna
or mlflow. Latency and memory are measured, never estimated.
"""

from __future__ import annotations

from autodistill.evaluate.memory import peak_memory, peak_memory_mb
from autodistill.evaluate.metrics import METRICS, agreement, task_metrics
from autodistill.evaluate.predict import evaluate_model, predict
from autodistill.evaluate.size import embedding_modules, parameter_counts, size_on_disk_mb, state_size_mb
from autodistill.evaluate.speed import latency_ratio, measure_latencies, measure_latency, random_batch_fn

__all__ = [
    "METRICS",
    "agreement",
    "embedding_modules",
    "evaluate_model",
    "latency_ratio",
    "measure_latencies",
    "measure_latency",
    "parameter_counts",
    "peak_memory",
    "peak_memory_mb",
    "predict",
    "random_batch_fn",
    "size_on_disk_mb",
    "state_size_mb",
    "task_metrics",
]
