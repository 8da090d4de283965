"""Augmented copies of a training batch, labelled by the teacher alone (no gold label).

A small student learns the teacher's function better from more inputs than the labelled set holds
(TinyBERT's data augmentation, Jiao et al. 2020; Hinton et al. 2015 on transfer sets). Offline
there is no masked LM or word-vector table to propose replacements, so the copies are made from
the batch itself, in token ids:

- splice (single-segment inputs): the start of one example joined to the end of another, so the
  teacher's soft label for a mixed text carries graded information;
- mask: a token becomes the tokenizer's mask token;
- replace: a token becomes one drawn from the training set's unigram distribution;
- neighbour: a token becomes one of its nearest tokens by cosine in the teacher's own input
  embeddings (TinyBERT's word replacement, with the teacher's embedding table standing in for
  GloVe or a masked LM), drawn among tokens the training set holds and of the same kind (a word's
  start or a word-piece continuation), so the copy stays near real text.

With a ``pool`` (``data.unlabeled``'s texts, tokenized), ``unlabeled_share`` of the copies start
from a pool text instead of a batch example (cut to the batch's width, its closing special tokens
kept), then go through the same edits: real text the labelled set does not hold.

Special tokens (``[CLS]``, ``[SEP]``, padding) are never touched; copies keep the batch's width, so
they stack under the real examples. Labels of the copies are ``IGNORE`` (cross-entropy skips them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

IGNORE = -100  # torch cross-entropy's default ignore_index
AUTO_RATIO = 1.0  # copies per example that ``ratio: null`` turns on (two per example gained nothing more)


def effective(options: Any, n_train: int, unlabeled: bool = False) -> tuple[Any, str]:
    """``distill.augment`` with its ratio decided, and why: a ratio the config sets is kept;
    ``null`` turns copies on (``AUTO_RATIO``) when the training split has fewer than ``small_train``
    rows, where the measurements found they pay, or when ``data.unlabeled`` lists texts, else off."""
    from dataclasses import replace

    if options.ratio is not None:
        return options, "set in the config" if options.ratio > 0 else "off in the config"
    if unlabeled:
        return replace(options, ratio=AUTO_RATIO), "data.unlabeled lists texts"
    if n_train < options.small_train:
        return replace(
            options, ratio=AUTO_RATIO
        ), f"{n_train:,} training rows, under small_train ({options.small_train:,})"
    return replace(options, ratio=0.0), f"{n_train:,} training rows, not under small_train ({options.small_train:,})"


class Augmenter:
    """``augmenter(batch, step)`` -> a batch of augmented copies (same keys and width, no ``index``)."""

    def __init__(
        self,
        options: Any,  # config.run.AugmentConfig: ratio, splice_prob, mask_prob, replace_prob
        token_counts: np.ndarray,
        special_ids: tuple[int, ...],
        mask_id: int | None,
        pad_id: int,
        seed: int,
        pool: list[np.ndarray] | None = None,
        embeddings: torch.Tensor | None = None,
        tokens: list[str] | None = None,
    ) -> None:
        if options.ratio is None:
            raise ValueError("distill.augment.ratio is undecided: pass the options through augment.effective first")
        self.options = options
        self.pool = pool or []
        self.pad_id = pad_id
        self.special = np.asarray(sorted(special_ids), dtype=np.int64)
        self.mask_id = mask_id
        self.seed = seed
        counts = np.asarray(token_counts, dtype=np.float64).copy()
        counts[self.special[self.special < len(counts)]] = 0
        total = counts.sum()
        self.unigram = counts / total if total > 0 else None
        self.neighbours = None
        if options.neighbour_prob > 0:
            if embeddings is None:
                raise ValueError("neighbour_prob > 0 needs the teacher's input embeddings (embeddings=...)")
            self.neighbours = nearest_tokens(embeddings, counts > 0, tokens, options.neighbours)

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        ids = batch["input_ids"].numpy()
        mask = batch["attention_mask"].numpy()
        types = batch.get("token_type_ids")
        single = types is None or not bool(types.any())
        n = max(1, round(self.options.ratio * len(ids)))
        rows = rng.choice(len(ids), size=n, replace=n > len(ids))
        from_pool = np.zeros(n, dtype=bool)
        if self.pool and single:
            from_pool = rng.random(n) < self.options.unlabeled_share
        out_ids = np.full((n, ids.shape[1]), self.pad_id, dtype=np.int64)
        out_mask = np.zeros_like(out_ids)
        for r, i in enumerate(rows):
            if from_pool[r]:
                seq = self._fit(self.pool[int(rng.integers(len(self.pool)))], ids.shape[1])
            else:
                seq = ids[i, : mask[i].sum()]
            if single and rng.random() < self.options.splice_prob:
                j = int(rng.integers(len(ids)))
                seq = self._splice(seq, ids[j, : mask[j].sum()], ids.shape[1], rng)
            seq = self._perturb(seq, rng)
            out_ids[r, : len(seq)] = seq
            out_mask[r, : len(seq)] = 1
        out = {"input_ids": torch.from_numpy(out_ids), "attention_mask": torch.from_numpy(out_mask)}
        if types is not None:
            out["token_type_ids"] = types[torch.from_numpy(rows)].clone() * torch.from_numpy(out_mask)
            out["token_type_ids"][torch.from_numpy(from_pool)] = 0
        out["labels"] = torch.full((n,), IGNORE, dtype=torch.long)
        return out

    def _content(self, seq: np.ndarray) -> tuple[int, int]:
        """The span of ``seq`` between its leading and trailing special tokens."""
        special = np.isin(seq, self.special)
        start = 0
        while start < len(seq) and special[start]:
            start += 1
        end = len(seq)
        while end > start and special[end - 1]:
            end -= 1
        return start, end

    def _fit(self, seq: np.ndarray, width: int) -> np.ndarray:
        """``seq`` cut to ``width`` tokens: the start of its content, then its closing special tokens."""
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) <= width:
            return seq
        _, end = self._content(seq)
        tail = seq[end:]
        return np.concatenate([seq[: max(0, width - len(tail))], tail])[:width]

    def _splice(self, a: np.ndarray, b: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
        a0, a1 = self._content(a)
        b0, b1 = self._content(b)
        if a1 - a0 < 2 or b1 - b0 < 2:
            return a
        cut_a = int(rng.integers(a0 + 1, a1))
        cut_b = int(rng.integers(b0 + 1, b1))
        head, tail = a[:cut_a], b[cut_b:b1]
        room = width - len(head) - (len(a) - a1)
        return np.concatenate([head, tail[: max(0, room)], a[a1:]])

    def _perturb(self, seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        o = self.options
        seq = seq.copy()
        start, end = self._content(seq)
        if end <= start:
            return seq
        draw = rng.random(end - start)
        span = seq[start:end]
        if self.mask_id is not None and o.mask_prob > 0:
            span[draw < o.mask_prob] = self.mask_id
        if self.unigram is not None and o.replace_prob > 0:
            pick = (draw >= o.mask_prob) & (draw < o.mask_prob + o.replace_prob)
            if pick.any():
                span[pick] = rng.choice(len(self.unigram), size=int(pick.sum()), p=self.unigram)
        if self.neighbours is not None:
            low = o.mask_prob + o.replace_prob
            pick = (draw >= low) & (draw < low + o.neighbour_prob)
            table = self.neighbours[span[pick]]  # (picked, k); rows of -1 for tokens without any
            choice = table[np.arange(len(table)), rng.integers(table.shape[1], size=len(table))]
            span[np.flatnonzero(pick)[choice >= 0]] = choice[choice >= 0]
        seq[start:end] = span
        return seq


def nearest_tokens(
    embeddings: torch.Tensor, allowed: np.ndarray, tokens: list[str] | None, k: int, chunk: int = 2048
) -> np.ndarray:
    """``(vocab, k)`` ids: each allowed token's ``k`` nearest allowed tokens by cosine in
    ``embeddings`` (``vocab x hidden``), among tokens of its own kind (a word-piece continuation,
    ``##`` in WordPiece, or not); -1 rows for tokens not allowed or with too few of their kind."""
    vocab = embeddings.shape[0]
    allowed = np.asarray(allowed[:vocab], dtype=bool)
    allowed = np.concatenate([allowed, np.zeros(vocab - len(allowed), dtype=bool)])
    cont = np.zeros(vocab, dtype=bool)
    if tokens is not None:
        cont[: min(vocab, len(tokens))] = [str(t or "").startswith("##") for t in tokens[:vocab]]
    unit = torch.nn.functional.normalize(embeddings.detach().float().cpu(), dim=1)
    out = np.full((vocab, k), -1, dtype=np.int64)
    for kind in (False, True):
        ids = np.flatnonzero(allowed & (cont == kind))
        if len(ids) <= k:
            continue
        group = unit[torch.from_numpy(ids)]
        for lo in range(0, len(ids), chunk):
            sims = group[lo : lo + chunk] @ group.T
            sims[torch.arange(sims.shape[0]), torch.arange(lo, lo + sims.shape[0])] = -2.0  # not itself
            out[ids[lo : lo + chunk]] = ids[sims.topk(k, dim=1).indices.numpy()]
    return out


def stack(batch: dict[str, torch.Tensor], extra: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The real batch with its augmented copies below it (same width)."""
    return {k: torch.cat([v, extra[k]]) for k, v in batch.items() if k in extra}
