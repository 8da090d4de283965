"""Vocabulary pruning (TextPruner, Yang et al. 2022): keep only the tokens the training data uses.

The kept set is the teacher token ids that occur at least ``min_count`` times in the training data
(``BuildContext.token_counts``), plus the special tokens and [UNK]. Kept ids keep their old order,
so the new id of a token is its rank among the kept ids. The student stays a standard model with a
smaller ``vocab_size``; only the word-embedding rows change.

The tokenizer saved with the student is the teacher's WordPiece tokenizer with a vocabulary of the
kept tokens only. WordPiece matches the longest vocabulary entry greedily, so on any word whose
teacher pieces are all kept (every word of the training data when ``min_count`` is 1) the new
tokenizer gives exactly ``token_id_map[teacher ids]``. A word that needs a dropped piece is split
into kept pieces instead (or becomes one [UNK]), where the per-token map gives [UNK] for that piece:
no stock tokenizer with the smaller vocabulary can reproduce a per-piece [UNK].
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from autodistill.config.schema import require
from autodistill.errors import ConfigError
from autodistill.student.base import BuildContext, StateDict, Transform, register
from autodistill.student.shape import ModelShape

# Tokenizer models whose vocabulary is a plain token -> id mapping that can be cut down.
_MAPPED_MODELS = ("WordPiece", "WordLevel")


@dataclass(frozen=True)
class VocabOptions:
    min_count: int = field(default=1, metadata={"help": "keep tokens seen at least this often in the training data"})

    def __post_init__(self) -> None:
        require(self.min_count >= 1, "min_count", "must be >= 1", self.min_count)


def kept_token_ids(shape: ModelShape, options: VocabOptions, ctx: BuildContext) -> np.ndarray:
    """Sorted teacher ids to keep. Cheap (one pass over the counts), so ``plan`` can call it."""
    if ctx.token_counts is None:
        raise ConfigError(
            "The 'vocab' transform needs the training data's token counts (BuildContext.token_counts). "
            "Got None instead."
        )
    counts = np.asarray(ctx.token_counts).reshape(-1)
    if len(counts) != shape.vocab:
        raise ConfigError(
            f"The 'vocab' transform needs one token count per vocabulary entry ({shape.vocab}). "
            f"Got {len(counts)} counts instead; put 'vocab' before any other vocabulary change."
        )
    unk = _unk_id(ctx)
    always = [*ctx.special_token_ids, unk]
    bad = [i for i in always if not 0 <= int(i) < shape.vocab]
    if bad:
        raise ConfigError(f"Special token ids must lie in [0, {shape.vocab}). Got {bad} instead.")
    keep = counts >= options.min_count
    keep[np.asarray(always, dtype=np.int64)] = True
    return np.flatnonzero(keep)


def _unk_id(ctx: BuildContext) -> int:
    unk = ctx.unk_token_id if ctx.unk_token_id is not None else ctx.extra.get("unk_token_id")
    if unk is None:
        raise ConfigError(
            "The 'vocab' transform maps dropped tokens to [UNK] and needs BuildContext.unk_token_id "
            "(the teacher tokenizer's unk_token_id). Got None instead."
        )
    return int(unk)


@register
class VocabPrune(Transform):
    name = "vocab"
    Options = VocabOptions
    example_options: ClassVar[dict] = {"min_count": 1}

    def plan(self, shape: ModelShape, options: VocabOptions, ctx: BuildContext) -> ModelShape:
        return replace(shape, vocab=len(kept_token_ids(shape, options, ctx)))

    def resolve(self, model: Any, shape: ModelShape, options: VocabOptions, ctx: BuildContext) -> dict[str, Any]:
        kept = kept_token_ids(shape, options, ctx)
        return {"old_vocab": shape.vocab, "unk_id": _unk_id(ctx), "kept": [int(i) for i in kept]}

    def apply(self, state: StateDict, shape: ModelShape, resolved: dict[str, Any]) -> tuple[StateDict, ModelShape]:
        old = resolved["old_vocab"]
        if shape.vocab != old:
            raise ValueError(f"The vocab record was made for a vocabulary of {old}; this model has {shape.vocab}.")
        index = torch.as_tensor(resolved["kept"], dtype=torch.long)
        out, sliced = {}, []
        for key, tensor in state.items():
            # word_embeddings.weight, or the vocab x rank table of a factored embedding
            if "word_embeddings" in key and tensor.dim() >= 1 and tensor.shape[0] == old:
                tensor = tensor.index_select(0, index)
                sliced.append(key)
            out[key] = tensor
        if not sliced:
            raise ValueError(f"No word-embedding table with {old} rows in the state dict.")
        return out, replace(shape, vocab=len(index))

    def token_id_map(self, resolved: dict[str, Any]) -> np.ndarray:
        kept = np.asarray(resolved["kept"], dtype=np.int64)
        new_unk = int(np.searchsorted(kept, resolved["unk_id"]))
        mapping = np.full(resolved["old_vocab"], new_unk, dtype=np.int64)
        mapping[kept] = np.arange(len(kept), dtype=np.int64)
        return mapping

    def remap_tokenizer(self, tokenizer: Any, resolved: dict[str, Any]) -> Any:
        return prune_tokenizer(tokenizer, self.token_id_map(resolved), len(resolved["kept"]))


def prune_tokenizer(tokenizer: Any, mapping: np.ndarray, new_size: int) -> Any:
    """A tokenizer of the same class whose vocabulary holds only the kept tokens, in new-id order.

    It goes through ``save_pretrained`` / ``from_pretrained``, the path users take to load the
    exported student, so what is returned is what they get.
    """
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ConfigError(
            f"Vocabulary pruning needs a fast (tokenizers-backed) tokenizer. Got {type(tokenizer).__name__} instead."
        )
    if len(tokenizer) != len(mapping):
        raise ValueError(f"The vocab record is for {len(mapping)} tokens; this tokenizer has {len(tokenizer)}.")
    unk = int(mapping[tokenizer.unk_token_id]) if tokenizer.unk_token_id is not None else -1

    def new_id(old: int) -> int | None:
        """The new id, or None when the token is dropped (maps to [UNK] without being [UNK])."""
        mapped = int(mapping[old])
        return mapped if mapped != unk or old == tokenizer.unk_token_id else None

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizer.save_pretrained(folder)
        _rewrite_tokenizer_json(folder / "tokenizer.json", new_id)
        _rewrite_tokenizer_config(folder / "tokenizer_config.json", new_id)
        _rewrite_vocab_txt(folder / "vocab.txt", new_id)
        pruned = type(tokenizer).from_pretrained(folder)
    if len(pruned) != new_size:
        raise AssertionError(f"The pruned tokenizer has {len(pruned)} tokens; the record keeps {new_size}.")
    return pruned


def _rewrite_tokenizer_json(path: Path, new_id: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data["model"]
    if model.get("type") not in _MAPPED_MODELS:
        raise ConfigError(
            f"Vocabulary pruning supports tokenizers whose model is one of {', '.join(_MAPPED_MODELS)}. "
            f"Got {model.get('type')!r} instead."
        )
    kept = {tok: new_id(old) for tok, old in model["vocab"].items()}
    model["vocab"] = dict(sorted(((t, i) for t, i in kept.items() if i is not None), key=lambda kv: kv[1]))
    added = []
    for token in data.get("added_tokens") or []:
        if (i := new_id(token["id"])) is not None:
            added.append({**token, "id": i})
    data["added_tokens"] = added
    if data.get("padding") and "pad_id" in data["padding"]:
        data["padding"]["pad_id"] = new_id(data["padding"]["pad_id"])
    if data.get("post_processor"):
        data["post_processor"] = _remap_processor(data["post_processor"], new_id)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _remap_processor(node: Any, new_id: Any) -> Any:
    """Special-token ids inside a post-processor (Template, Bert, Roberta; nested in a Sequence)."""
    if isinstance(node, list):
        return [_remap_processor(n, new_id) for n in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in ("cls", "sep"):  # BertProcessing / RobertaProcessing: [token, id]
        if isinstance(out.get(key), list) and len(out[key]) == 2:
            out[key] = [out[key][0], new_id(out[key][1])]
    if isinstance(out.get("special_tokens"), dict):  # TemplateProcessing
        out["special_tokens"] = {
            name: {**spec, "ids": [new_id(i) for i in spec["ids"]]} for name, spec in out["special_tokens"].items()
        }
    if "processors" in out:
        out["processors"] = _remap_processor(out["processors"], new_id)
    return out


def _rewrite_tokenizer_config(path: Path, new_id: Any) -> None:
    if not path.exists():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        config["added_tokens_decoder"] = {
            str(i): tok for old, tok in decoder.items() if (i := new_id(int(old))) is not None
        }
        path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")


def _rewrite_vocab_txt(path: Path, new_id: Any) -> None:
    if not path.exists():
        return
    tokens = path.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    kept = sorted((i, tok) for old, tok in enumerate(tokens) if (i := new_id(old)) is not None)
    path.write_text("".join(tok + "\n" for _, tok in kept), encoding="utf-8")
