"""Export: pick a student from the study's front, train it for shipping, save it (HF, ONNX, int8)
with a model card, atomically, and log it to MLflow."""

from __future__ import annotations

from autodistill.export.atomic import atomic_folder
from autodistill.export.pick import PickError, PickRule, pick

__all__ = ["PickError", "PickRule", "atomic_folder", "pick", "run_export"]


def run_export(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201  (lazy: keeps `import autodistill.export` light)
    from autodistill.export.run import run_export as _run

    return _run(*args, **kwargs)
