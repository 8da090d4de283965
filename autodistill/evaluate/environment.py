"""The software a result was measured with: Python and the packages that decide the numbers."""

from __future__ import annotations

import importlib.metadata as md
import platform

PACKAGES = ("autodistill-kd", "torch", "transformers", "datasets", "optuna", "mlflow", "peft", "scikit-learn")


def versions() -> dict[str, str]:
    """Python's version and each installed package's of ``PACKAGES`` (absent ones are left out)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out
