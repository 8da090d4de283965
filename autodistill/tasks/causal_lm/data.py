"""Causal-LM data: a DataConfig and a tokenizer in, token blocks per split out.

Two kinds of data. Raw text (``data.response_column`` unset): each document is tokenized, ended
with EOS, and the documents of a split are concatenated and cut into blocks of ``data.max_length``
tokens; every token carries loss. Pairs (``data.response_column`` set): one row per prompt and
response, the loss on the response tokens only, optionally written with the tokenizer's chat
template. Labels follow the Hugging Face convention: not shifted, -100 where there is no loss.

Sources are read by ``autodistill.data.sources.read_source``; plain ``.txt`` files (one document
per paragraph) and folders of them (one document per file), which it does not read, are read here.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autodistill.config.run import DataConfig
from autodistill.data.builtin import is_builtin
from autodistill.data.load import _resolve, _texts
from autodistill.data.sources import FILE_FORMATS, SINGLE, Raw, clip, read_source
from autodistill.data.splits import stratified_split
from autodistill.data.types import SPLITS
from autodistill.errors import ConfigError, DataError

IGNORE = -100  # the label of a position without loss (torch's cross_entropy ignore_index)
TOKENIZER_KEY = "teacher.model"  # the student shares the teacher's tokenizer
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make field-wise == ambiguous
class LMSplit:
    """One split as rows of ``block`` tokens."""

    input_ids: np.ndarray  # [n, block] int32
    labels: np.ndarray  # [n, block] int32, not shifted; -100: no loss (prompt tokens, padding)
    attention_mask: np.ndarray  # [n, block] int8, 0 on padding only
    documents: int  # documents (or pairs) in this split
    truncated: int = 0  # pairs cut to the block

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def loss_tokens(self) -> int:
        """Tokens a model is scored on: position t predicts labels[t + 1]."""
        return int((self.labels[:, 1:] != IGNORE).sum())


@dataclass(frozen=True, eq=False)
class LMData:
    splits: dict[str, LMSplit]  # "train", "validation", "test"
    kind: str  # "text" or "pairs"
    source: str
    block_size: int
    fingerprint: str

    def token_report(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "documents": s.documents,
                "blocks": len(s),
                "tokens": int(s.attention_mask.sum()),
                "loss_tokens": s.loss_tokens,
            }
            for name, s in self.splits.items()
        }


def check_tokenizer(tokenizer: Any, where: str) -> int:
    """The id that pads blocks: the tokenizer's pad token, else its EOS token."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ConfigError(
        f"The tokenizer of {where!r} has neither a pad token nor an EOS token (pad_token and eos_token are both "
        "unset). Causal-LM data ends documents with eos_token and pads blocks with pad_token (or eos_token); "
        "use a tokenizer that defines eos_token."
    )


def check_block_size(block_size: int, max_positions: int | None) -> None:
    if max_positions is not None and block_size > max_positions:
        raise ConfigError(
            f"The 'data.max_length' parameter must be at most the teacher's context ({max_positions}). "
            f"Got {block_size} instead."
        )


def load_lm_data(cfg: DataConfig, tokenizer: Any, max_positions: int | None = None) -> LMData:
    """Read ``cfg.source``, split it by document, and tokenize every split into blocks."""
    pad = check_tokenizer(tokenizer, TOKENIZER_KEY)
    if tokenizer.eos_token_id is None:
        raise ConfigError(
            f"The tokenizer of {TOKENIZER_KEY!r} has no EOS token (eos_token is unset); causal-LM data marks the "
            "end of each document and each response with it. Use a tokenizer that defines eos_token."
        )
    check_block_size(cfg.max_length, max_positions)
    _check_chat(cfg, tokenizer)
    docs = _split_documents(cfg)
    ids = _Ids(pad=pad, eos=int(tokenizer.eos_token_id), bos=_bos_id(tokenizer), block=cfg.max_length)
    splits = {}
    for role in SPLITS:
        cap = cfg.max_train_examples if role == "train" else None
        if cfg.response_column is None:
            splits[role] = _pack_text(docs[role], tokenizer, ids, cap)
        else:
            splits[role] = _pair_split(docs[role][:cap], tokenizer, ids, cfg.chat_template)
    _warn_truncated(splits, cfg)
    kind = "text" if cfg.response_column is None else "pairs"
    return LMData(splits, kind, cfg.source, cfg.max_length, _fingerprint(splits, cfg.max_length, kind))


def _check_chat(cfg: DataConfig, tokenizer: Any) -> None:
    if not cfg.chat_template:
        return
    if cfg.response_column is None:
        raise ConfigError(
            "The 'data.chat_template' parameter is true but data.response_column is not set: the chat template "
            "applies to prompt/response pairs. Set data.response_column, or data.chat_template to false."
        )
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"The 'data.chat_template' parameter is true but the tokenizer of {TOKENIZER_KEY!r} has no chat "
            "template. Set data.chat_template to false (prompt and response are then joined as they are)."
        )


# ---- reading and splitting ----------------------------------------------------------------------


def _read(cfg: DataConfig) -> Raw:
    """``read_source``, plus plain .txt: a file (one document per paragraph) or a folder of them
    (one document per file)."""
    path = Path(cfg.source).expanduser()
    if is_builtin(cfg.source) or cfg.format != "auto":
        return read_source(cfg)
    if path.is_file() and path.suffix.lower() == ".txt":
        texts = [p.strip() for p in _PARAGRAPH.split(_read_txt(path))]
    elif path.is_dir() and _is_txt_folder(path):
        texts = [_read_txt(p).strip() for p in sorted(path.glob("*.txt"))]
    else:
        return read_source(cfg)
    if cfg.response_column is not None:
        raise DataError(
            f"The data source {cfg.source!r} is plain text, which has no prompt/response pairs; the "
            f"'data.response_column' parameter ({cfg.response_column!r}) must be null for it."
        )
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"The data source {cfg.source!r} holds no text (only blank lines).")
    return Raw({SINGLE: pd.DataFrame({cfg.text_column: texts})}, has_splits=False)


def _is_txt_folder(folder: Path) -> bool:
    """Holds .txt files and nothing ``read_source`` reads (split files, a saved dataset's .json)."""
    names = [p.name.lower() for p in folder.iterdir() if p.is_file()]
    return any(n.endswith(".txt") for n in names) and not any(os.path.splitext(n)[1] in FILE_FORMATS for n in names)


def _read_txt(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"The data file {str(path)!r} is not UTF-8 text: {err}") from None


def _check_columns(df: pd.DataFrame, cfg: DataConfig, split: str) -> None:
    for key, col in (("text_column", cfg.text_column), ("response_column", cfg.response_column)):
        if col is not None and col not in df.columns:
            where = "the data" if split == SINGLE else f"split {split!r}"
            cols = clip(", ".join(clip(repr(str(c))) for c in df.columns), 1000)
            raise DataError(
                f"The 'data.{key}' parameter names column {clip(repr(col))}, which {where} of {cfg.source!r} does "
                f"not have. Columns: {cols}."
            )


def _documents(df: pd.DataFrame, cfg: DataConfig, split: str) -> list:
    """Texts (blank ones dropped), or (prompt, response) pairs."""
    _check_columns(df, cfg, split)
    texts = _texts(df, cfg.text_column, cfg, split)
    if cfg.response_column is None:
        return [t for t in texts if t.strip()]
    return list(zip(texts, _texts(df, cfg.response_column, cfg, split)))


def _split_documents(cfg: DataConfig) -> dict[str, list]:
    """Documents per split: the source's own splits, or carved from train by document (equal
    documents move together), seeded; train is shuffled so that a cap takes a random sample."""
    frames, names, carve = _resolve(_read(cfg), cfg)
    docs = {role: _documents(df, cfg, names[role]) for role, df in frames.items()}
    train = docs["train"]
    if carve:
        keys = [d if isinstance(d, str) else d[0] + "\x00" + d[1] for d in train]
        fractions = [cfg.validation_size if r == "validation" else cfg.test_size for r in carve]
        what = f"The training data of {cfg.source!r}"
        parts = stratified_split(np.zeros(len(train), np.int64), keys, fractions, cfg.split_seed, what=what)
        for role, idx in zip(carve, parts[1:]):
            docs[role] = [train[i] for i in idx]
        train = [train[i] for i in parts[0]]
    docs["train"] = [train[i] for i in np.random.default_rng(cfg.split_seed).permutation(len(train))]
    for role in SPLITS:
        if not docs[role]:
            raise DataError(f"The {role} split of {cfg.source!r} is empty (no documents) after splitting.")
    return docs


# ---- tokenizing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ids:
    pad: int
    eos: int
    bos: int | None  # put before each document when the tokenizer adds BOS by default
    block: int


def _bos_id(tokenizer: Any) -> int | None:
    """BOS when the tokenizer puts it first by default (Llama-2 style), so a document starts as in
    the model's training; None when it does not (GPT-2, SmolLM2)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return None
    first = tokenizer("a", add_special_tokens=True)["input_ids"]
    return int(bos) if first and first[0] == bos else None


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens. A fast tokenizer's own batch encoder is
    called directly: it skips the offsets and the per-text conversion of the wrapper, about half
    the time on 64k short texts; the ids are the same."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None and hasattr(backend, "encode_batch_fast"):
        return [e.ids for e in backend.encode_batch_fast(list(texts), add_special_tokens=False)]
    out = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False, verbose=False)
    return out["input_ids"]


def _pack_text(texts: list[str], tokenizer: Any, ids: _Ids, cap: int | None) -> LMSplit:
    """[BOS] doc EOS [BOS] doc EOS ... cut into blocks; the last one padded. A cap keeps the
    first ``cap`` blocks. BOS carries no loss: it is put there, not text to predict."""
    head = [] if ids.bos is None else [ids.bos]
    encoded = _encode(tokenizer, texts)
    lengths = np.fromiter((len(x) for x in encoded), np.int64, len(encoded)) + len(head) + 1
    starts = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    stream = np.fromiter(chain.from_iterable(chain(head, x, (ids.eos,)) for x in encoded), np.int32, total)
    rows = -(-total // ids.block)
    if cap is not None and cap < rows:
        rows = cap
    used = min(total, rows * ids.block)
    input_ids = np.full(rows * ids.block, ids.pad, np.int32)
    input_ids[:used] = stream[:used]
    labels = np.full(rows * ids.block, IGNORE, np.int32)
    labels[:used] = stream[:used]
    if head:
        labels[starts[starts < used]] = IGNORE
    mask = np.zeros(rows * ids.block, np.int8)
    mask[:used] = 1
    shape = (rows, ids.block)
    return LMSplit(input_ids.reshape(shape), labels.reshape(shape), mask.reshape(shape), int((starts < used).sum()))


def _pair_split(pairs: list[tuple[str, str]], tokenizer: Any, ids: _Ids, chat: bool) -> LMSplit:
    prompts = [p for p, _ in pairs]
    responses = [r for _, r in pairs]
    if chat:
        seqs, bounds = _chat_sequences(prompts, responses, tokenizer, ids)
    else:
        head = [] if ids.bos is None else [ids.bos]
        p_ids, r_ids = _encode(tokenizer, prompts), _encode(tokenizer, responses)
        seqs = [head + p + r + [ids.eos] for p, r in zip(p_ids, r_ids)]
        bounds = [len(head) + len(p) for p in p_ids]
    return _rows(seqs, bounds, ids)


def _chat_sequences(
    prompts: list[str], responses: list[str], tokenizer: Any, ids: _Ids
) -> tuple[list[list[int]], list[int]]:
    """Token ids of each whole chat and where the response starts. The template writes any BOS
    itself, so the texts are tokenized without special tokens (as apply_chat_template does)."""
    users = [[{"role": "user", "content": p}] for p in prompts]
    chats = [u + [{"role": "assistant", "content": r}] for u, r in zip(users, responses)]
    full_texts = tokenizer.apply_chat_template(chats, tokenize=False)
    prompt_texts = tokenizer.apply_chat_template(users, add_generation_prompt=True, tokenize=False)
    full, prompt = _encode(tokenizer, full_texts), _encode(tokenizer, prompt_texts)
    bounds = []
    for i, (f, p) in enumerate(zip(full, prompt)):
        if f[: len(p)] == p:
            bounds.append(len(p))
        else:
            bounds.append(_boundary_by_text(tokenizer, full_texts[i], prompt_texts[i]))
    # the template usually ends the assistant turn with EOS (SmolLM2's <|im_end|>); add it when not
    seqs = [f if ids.eos in f[b:] else f + [ids.eos] for f, b in zip(full, bounds)]
    return seqs, bounds


def _boundary_by_text(tokenizer: Any, full_text: str, prompt_text: str) -> int:
    """The prompt's tokens are not a prefix of the chat's: the tokenizer merged characters across
    the boundary (e.g. a generation prompt ending in a space), or the template writes the assistant
    turn's start differently without a generation prompt. The loss then starts at the first token
    of the chat that is not wholly inside the text both share."""
    shared = len(os.path.commonprefix([full_text, prompt_text]))
    offsets = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return sum(1 for _, end in offsets if end <= shared)


def _rows(seqs: list[list[int]], bounds: list[int], ids: _Ids) -> LMSplit:
    """One padded row per sequence; loss from ``bound`` on; sequences cut to the block."""
    n = len(seqs)
    input_ids = np.full((n, ids.block), ids.pad, np.int32)
    labels = np.full((n, ids.block), IGNORE, np.int32)
    mask = np.zeros((n, ids.block), np.int8)
    truncated = 0
    for i, (seq, bound) in enumerate(zip(seqs, bounds)):
        if len(seq) > ids.block:
            truncated += 1
            seq = seq[: ids.block]
        input_ids[i, : len(seq)] = seq
        labels[i, bound : len(seq)] = seq[bound:]
        mask[i, : len(seq)] = 1
    return LMSplit(input_ids, labels, mask, n, truncated)


def _warn_truncated(splits: dict[str, LMSplit], cfg: DataConfig) -> None:
    cut = {role: s.truncated for role, s in splits.items() if s.truncated}
    if cut:
        counts = ", ".join(f"{n} of {splits[role].documents} in {role}" for role, n in cut.items())
        warnings.warn(
            f"Prompt/response pairs of {cfg.source!r} longer than data.max_length ({cfg.max_length} tokens) were "
            f"cut to it: {counts}. Their ends (and EOS) are not trained on; raise data.max_length to keep them.",
            stacklevel=3,
        )


def _fingerprint(splits: dict[str, LMSplit], block: int, kind: str) -> str:
    """sha256 of every split's token arrays and the block size; the source's name is left out so
    that the same data read from another place shares its caches."""
    h = hashlib.sha256(f"autodistill-lm-data-v1:{kind}:{block}".encode())
    for role in SPLITS:
        s = splits[role]
        h.update(f"{role}:{s.input_ids.shape}".encode())
        for arr, dtype in ((s.input_ids, "<i4"), (s.labels, "<i4"), (s.attention_mask, "i1")):
            h.update(np.ascontiguousarray(arr, dtype=dtype).tobytes())
    return h.hexdigest()
