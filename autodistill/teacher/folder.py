"""Checks on a Hugging Face model folder before transformers opens it.

transformers reports a damaged or unsafe folder with a traceback (or, for custom code, a prompt
on stdin); these checks name the file and say what to do instead. They read only config.json and
the safetensors headers, so they cost nothing next to loading the weights.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from autodistill.errors import AutodistillError

CONVERT_HINT = (
    "Convert it where you trust its source: AutoModelForSequenceClassification.from_pretrained(folder)"
    ".save_pretrained(folder) writes model.safetensors beside it."
)


def read_json(path: Path, error: type[AutodistillError], fix: str) -> dict[str, Any]:
    """A JSON object from ``path``, or ``error`` naming the file and ``fix``."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"The file {str(path)!r} cannot be read as JSON ({err}). {fix}") from None
    if not isinstance(value, dict):
        raise error(f"The file {str(path)!r} must hold a JSON object. Got {type(value).__name__} instead. {fix}")
    return value


def needs_remote_code(config: dict[str, Any]) -> bool:
    """Whether transformers would have to import the folder's own Python to build this config:
    an ``auto_map`` and a model type that neither transformers nor autodistill registers."""
    if not config.get("auto_map"):
        return False
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    import autodistill.student  # noqa: F401  (registers autodistill's own model types)

    return config.get("model_type") not in CONFIG_MAPPING


def check_remote_code(folder: Path, config: dict[str, Any], trust_remote_code: bool, error: type[AutodistillError]):
    if trust_remote_code or not needs_remote_code(config):
        return
    classes = ", ".join(sorted({str(v) for v in config["auto_map"].values()}))
    raise error(
        f"The model folder {str(folder)!r} needs its own Python code to load (config.json 'auto_map': {classes}; "
        f"model_type {config.get('model_type')!r} is not one transformers knows), and 'teacher.trust_remote_code' "
        "is false, so autodistill does not run it. Set 'teacher.trust_remote_code: true' only if you trust "
        "that code."
    )


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a .safetensors file's layout (header, tensor extents, file size), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"it is {size} bytes long, too short for a safetensors header"
            n = struct.unpack("<Q", head)[0]
            if n > size - 8:
                return f"its header claims {n} bytes but the file has {size} bytes: it is truncated"
            header = json.loads(fh.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"its header cannot be read ({err})"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        return "its header does not describe tensors"
    expected = 8 + n + end
    if size < expected:
        return f"it has {size} bytes where its header needs {expected}: it is truncated"
    if size > expected:
        return f"it has {size} bytes where its header describes {expected}: it is damaged"
    return None


def check_weights(
    folder: Path, safetensors_only: bool, error: type[AutodistillError], fix: str, allow_pickle_key: str | None = None
) -> None:
    """Refuse a folder whose weights are missing, damaged, or pickled while pickles are not allowed.

    ``fix``: what to do about a damaged file; ``allow_pickle_key``: the config key that would
    allow pickled weights (None where autodistill never loads them)."""
    tensors = sorted(folder.glob("*.safetensors"))
    for path in tensors:
        problem = safetensors_problem(path)
        if problem:
            raise error(f"The weights file {str(path)!r} cannot be loaded: {problem}. {fix}")
    if tensors:
        return
    pickles = sorted(p.name for p in folder.glob("*.bin") if "model" in p.name)
    if pickles and not safetensors_only:
        return
    if pickles:
        allow = (
            f", or set '{allow_pickle_key}: false' if you trust the source"
            if allow_pickle_key
            else "; autodistill never loads pickles"
        )
        raise error(
            f"The model folder {str(folder)!r} has no .safetensors weights, only pickled ones "
            f"({', '.join(pickles)}), which can run code when loaded. {CONVERT_HINT[:-1]}{allow}."
        )
    raise error(f"The model folder {str(folder)!r} has no weights (no .safetensors file). {fix}")
