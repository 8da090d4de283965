"""Student transforms (one file each) and the build that composes them.

Every transform module is imported here, which registers it in ``base.TRANSFORMS``: a missing or
broken module is an ImportError at once, never a transform that is silently absent. This costs
``import autodistill`` (which imports ``arch`` from here, to register the model classes with
transformers) about 0.2 s on top of the torch and transformers imports ``arch`` already makes,
and no third-party package of its own.
"""

from __future__ import annotations

from autodistill.registry import Registry
from autodistill.student import depth, ffn, fresh, heads, hidden, lora, low_rank, vocab  # noqa: F401  (registers)
from autodistill.student.base import TRANSFORMS, Transform


def load_transforms() -> Registry[type[Transform]]:
    """The transform registry, every transform module registered (by the imports above)."""
    return TRANSFORMS
