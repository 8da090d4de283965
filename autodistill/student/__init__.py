"""Student transforms (one file each) and the build that composes them.

``load_transforms()`` (called by ``build.py``) imports every transform module, which registers it
in ``base.TRANSFORMS``. This package itself stays light: ``import autodistill`` imports only
``arch`` from it, to register the model classes with transformers.
"""

from __future__ import annotations

import importlib

# vocab / lora / fresh come from another part of the project and may be missing in a checkout.
TRANSFORM_MODULES = ("depth", "heads", "ffn", "hidden", "low_rank", "vocab", "lora", "fresh")


def load_transforms() -> None:
    for name in TRANSFORM_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
