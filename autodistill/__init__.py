"""autodistill: search student architectures and distillation losses for a Hugging Face teacher.

The Python API is ``autodistill.api``: ``load``, ``teacher``, ``distill``, ``evaluate``, ``plan``,
``search``, ``pareto``, ``export``, each taking a config path like the CLI. (They are not attributes
of the package itself: ``autodistill.search``, ``.evaluate`` and ``.export`` are subpackages.)

Importing the package registers autodistill's own model classes with the transformers Auto
classes, so students that no stock config describes load with ``from_pretrained``.
"""

from __future__ import annotations

__version__ = "0.1.0"

try:  # registers autodistill_bert and autodistill_<llama family> with the transformers Auto classes;
    # config code works without torch
    from autodistill.student import arch as _arch  # noqa: F401
    from autodistill.tasks.causal_lm import factored as _factored  # noqa: F401
except ImportError:  # pragma: no cover - torch/transformers not installed
    pass
