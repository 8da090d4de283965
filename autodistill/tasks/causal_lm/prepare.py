"""What every student of a ``causal-lm`` config shares: the text packed into token blocks with the
teacher's tokenizer, the teacher (converted once from GGUF, or the user's folder), its top-k targets
cached for every split, and its perplexity on validation and test (computed once, kept beside the
cache). The train split's cache also holds the teacher's hidden states at the layers a hidden-state
loss reads: those the configured student and loss read are filled in the same teacher pass as the
top-k targets when they are known before the student is built; others are added on demand
(:meth:`LMPrepared.train_targets`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autodistill.config.run import RunConfig
from autodistill.errors import ConfigError, DataError
from autodistill.files import write_json
from autodistill.fingerprint import hash_json, home
from autodistill.tasks.causal_lm.teacher import LMTeacher, load_lm_teacher

SPLITS = ("train", "validation", "test")


@dataclass
class LMPrepared:
    cfg: RunConfig
    data: Any  # data.LMData
    teacher: LMTeacher
    encoded: dict[str, Any]  # split -> data.LMSplit
    targets: dict[str, Any]  # split -> cache.TopKStore
    teacher_metrics: dict[str, dict[str, float]]
    vocab: int  # the columns of the teacher's logits that are real tokens
    progress: bool = True
    _model: Any = field(default=None, repr=False)

    @property
    def cache_key(self) -> str:
        """The train split's top-k cache folder name (its key)."""
        return self.targets["train"].folder.name

    def teacher_model(self) -> Any:
        if self._model is None:
            self._model = self.teacher.model(self.cfg.teacher)
        return self._model

    def calibration(self, n: int | None = None) -> torch.Tensor:
        """Input ids of ``n`` training rows (seeded), what the pruning transforms score on."""
        train = self.encoded["train"]
        n = min(n or self.cfg.student.calibration_examples, len(train))
        rows = np.sort(np.random.default_rng(self.cfg.seed).choice(len(train), n, replace=False))
        return torch.as_tensor(np.asarray(train.input_ids[rows]), dtype=torch.long)

    def train_targets(self, hidden_layers: Sequence[int] = ()) -> Any:
        """The train split's ``TopKStore``, holding the teacher's hidden states at the HF hidden
        indices ``hidden_layers`` too: a cache that lacks any is extended (one teacher pass)."""
        if not set(hidden_layers) <= set(self.targets["train"].hidden):
            self.targets["train"] = _store(self, "train", hidden_layers)  # it opens every index held
        return self.targets["train"]


def _store(prep: LMPrepared, name: str, hidden_layers: Sequence[int] = ()) -> Any:
    from autodistill.tasks.causal_lm.cache import topk_cache

    return topk_cache(
        prep.teacher_model, prep.teacher.fingerprint, prep.encoded[name], prep.data.fingerprint,
        prep.cfg.distill.top_k, prep.vocab, name=name, progress=prep.progress, hidden_layers=hidden_layers,
    )  # fmt: skip


def planned_hidden_layers(cfg: RunConfig, teacher_config: Any) -> list[int]:
    """The teacher hidden indices the configured loss reads for the configured student, when known
    before the student is built (not when its depth is chosen by importance): the train split's
    first teacher pass fills them with the top-k targets. [] when no term reads hidden states."""
    from autodistill.tasks.causal_lm.distill import planned_geometry
    from autodistill.tasks.causal_lm.losses import LM_LOSSES, build_lm_loss

    terms = cfg.distill.loss.terms
    if not any(t["name"] in LM_LOSSES and LM_LOSSES.get(t["name"]).needs_hidden for t in terms):
        return []
    geometry = planned_geometry(teacher_config, cfg.student.transforms)
    if geometry is None:
        return []
    return build_lm_loss(terms, cfg.distill.loss.temperature, geometry).teacher_hidden_layers()


def usable_vocab(model_config: Any, tokenizer: Any) -> int:
    """Columns of the logits that are tokens: a padded vocabulary (logits wider than the
    tokenizer, e.g. rounded up to a multiple of 64) keeps only the tokenizer's."""
    return min(int(model_config.vocab_size), len(tokenizer))


def prepare(cfg: RunConfig, progress: bool = True) -> LMPrepared:
    from autodistill.tasks.causal_lm.data import check_block_size, check_tokenizer, load_lm_data

    teacher = load_lm_teacher(cfg, progress=progress)
    check_tokenizer(teacher.tokenizer, "teacher.model")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(teacher.path), trust_remote_code=cfg.teacher.trust_remote_code)
    require_causal_lm(config)
    check_block_size(cfg.data.max_length, getattr(config, "max_position_embeddings", None))
    data = load_lm_data(cfg.data, teacher.tokenizer, getattr(config, "max_position_embeddings", None))
    vocab = usable_vocab(config, teacher.tokenizer)
    for name, split in data.splits.items():
        if len(split) and int(np.max(split.input_ids)) >= vocab:
            raise DataError(f"The {name} split holds token ids beyond the teacher's vocabulary ({vocab}).")
    if cfg.teacher.adapt:
        from autodistill.tasks.causal_lm.adapt import adapt_teacher

        teacher = adapt_teacher(teacher, cfg, data, vocab, progress)
    prep = LMPrepared(cfg, data, teacher, dict(data.splits), {}, {}, vocab, progress)
    hidden = planned_hidden_layers(cfg, config)
    for name in SPLITS:
        prep.targets[name] = _store(prep, name, hidden if name == "train" else ())
    prep.teacher_metrics = _teacher_metrics(prep)
    return prep


def _teacher_metrics(prep: LMPrepared) -> dict[str, dict[str, float]]:
    """The teacher's perplexity on validation and test, computed once per (teacher, data), by the
    same code (and over the same vocabulary columns) as every student's (``distill.split_metrics``)."""
    from autodistill.tasks.causal_lm.distill import split_metrics

    ident = {"teacher": prep.teacher.fingerprint, "data": prep.data.fingerprint, "vocab": prep.vocab, "version": 2}
    path = home() / "cache" / f"lm-metrics-{hash_json(ident)[:24]}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out = {}
    for name in ("validation", "test"):
        found = split_metrics(prep, prep.teacher_model(), name)
        out[name] = {k: found[k] for k in ("quality", "perplexity", "nll", "tokens")}
    write_json(path, out)
    return out


def quality_of(found: dict[str, float]) -> dict[str, float]:
    """A causal LM's metrics with ``quality`` = exp(-NLL) = 1 / perplexity: the geometric mean of the
    probability it gives each next token (higher is better, in (0, 1]), so a share of the teacher's
    quality is the teacher's perplexity over the student's."""
    return {
        "quality": float(np.exp(-found["nll"])),
        "perplexity": float(found["perplexity"]),
        "nll": float(found["nll"]),
        "tokens": int(found["tokens"]),
    }


def require_causal_lm(model_config: Any) -> None:
    """A teacher whose kind transformers cannot load as a causal LM is refused by name."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if getattr(model_config, "model_type", None) not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(
            f"The 'teacher.model' is a {getattr(model_config, 'model_type', None)!r} model that transformers "
            "cannot load as a causal language model (AutoModelForCausalLM); task 'causal-lm' needs one."
        )
