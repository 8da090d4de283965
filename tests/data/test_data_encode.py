"""Tokenize once, pad per batch, bucket by length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autodistill.data import (
    Encoded,
    TextSplit,
    batch_indices,
    collate,
    encode,
    token_counts,
    tokenizer_fingerprint,
)


def _split(n: int = 300, pairs: bool = False) -> TextSplit:
    rng = np.random.default_rng(0)
    texts = tuple(" ".join(["word"] * int(k)) + f" end {i}" for i, k in enumerate(rng.integers(1, 60, n)))
    return TextSplit(texts, tuple(f"second {i}" for i in range(n)) if pairs else None, np.arange(n) % 2)


def _fake_encoded(lengths) -> Encoded:
    ids = [np.arange(1, n + 1, dtype=np.int32) for n in lengths]
    return Encoded(ids, None, np.zeros(len(lengths), dtype=np.int64))


def test_encode_truncates_and_keeps_labels(minilm_tokenizer):
    split = _split()
    enc = encode(split, minilm_tokenizer, max_length=32)
    assert len(enc) == len(split)
    assert enc.lengths.max() == 32 and enc.lengths.min() < 10
    assert all(x.dtype == np.int32 for x in enc.input_ids)
    assert enc.input_ids[0][0] == minilm_tokenizer.cls_token_id
    assert enc.input_ids[0][-1] == minilm_tokenizer.sep_token_id
    assert np.array_equal(enc.labels, split.labels)
    assert enc.token_type_ids is not None and all(not t.any() for t in enc.token_type_ids)


def test_encode_pairs_sets_segment_ids(minilm_tokenizer):
    enc = encode(_split(20, pairs=True), minilm_tokenizer, max_length=128)
    assert all(t.max() == 1 and t[0] == 0 for t in enc.token_type_ids)
    assert all(len(t) == len(x) for t, x in zip(enc.token_type_ids, enc.input_ids))


def test_collate_pads_to_the_batch_max_only():
    enc = _fake_encoded([3, 7, 5, 12])
    batch = collate(enc, np.array([0, 1, 2]), pad_id=0)
    assert batch["input_ids"].shape == (3, 7)
    assert batch["attention_mask"].sum(1).tolist() == [3, 7, 5]
    assert batch["input_ids"][0].tolist() == [1, 2, 3, 0, 0, 0, 0]
    assert batch["index"].tolist() == [0, 1, 2] and batch["index"].dtype == torch.long
    assert batch["labels"].dtype == torch.long and "token_type_ids" not in batch
    assert collate(enc, np.array([3, 0]), pad_id=9)["input_ids"][1].tolist() == [1, 2, 3] + [9] * 9


def test_collate_with_real_tokenizer(minilm_tokenizer):
    enc = encode(_split(40, pairs=True), minilm_tokenizer, max_length=64)
    idx = np.array([5, 1, 30])
    batch = collate(enc, idx, pad_id=minilm_tokenizer.pad_token_id)
    width = int(enc.lengths[idx].max())
    assert batch["input_ids"].shape == batch["token_type_ids"].shape == (3, width)
    split = _split(40, pairs=True)
    direct = minilm_tokenizer(
        [split.texts[i] for i in idx],
        [split.text_pairs[i] for i in idx],
        padding=True,
        truncation=True,
        max_length=64,
        return_tensors="pt",
    )
    assert torch.equal(batch["input_ids"], direct["input_ids"])
    assert torch.equal(batch["attention_mask"], direct["attention_mask"])
    assert torch.equal(batch["token_type_ids"], direct["token_type_ids"])


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n, bs", [(1000, 32), (7, 3), (64, 64), (0, 4)])
def test_batch_indices_cover_every_index_once(n, bs, shuffle):
    lengths = np.random.default_rng(1).integers(1, 100, n)
    batches = batch_indices(lengths, bs, shuffle=shuffle, seed=0)
    flat = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(n))
    assert all(1 <= len(b) <= bs for b in batches)
    assert sum(len(b) < bs for b in batches) <= (1 if not shuffle else -(-n // (bs * 50)))


def test_batch_indices_seeding_and_eval_order():
    lengths = np.random.default_rng(2).integers(1, 100, 5000)
    a = batch_indices(lengths, 32, shuffle=True, seed=0)
    b = batch_indices(lengths, 32, shuffle=True, seed=0)
    c = batch_indices(lengths, 32, shuffle=True, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    ev = np.concatenate(batch_indices(lengths, 32, shuffle=False, seed=0))
    assert np.all(np.diff(lengths[ev]) >= 0)
    # batch order is shuffled: lengths do not rise steadily from batch to batch
    means = [lengths[x].mean() for x in a]
    assert not np.all(np.diff(means) >= 0)


def _padded_tokens(lengths, batches) -> int:
    return sum(len(b) * int(lengths[b].max()) for b in batches)


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(3).integers(5, 64, 4000)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(lengths))
    random_batches = [perm[i : i + 32] for i in range(0, len(perm), 32)]
    bucketed = batch_indices(lengths, 32, shuffle=True, seed=0)
    real = int(lengths.sum())
    random_pad = _padded_tokens(lengths, random_batches) - real
    bucket_pad = _padded_tokens(lengths, bucketed) - real
    assert bucket_pad < 0.2 * random_pad
    assert _padded_tokens(lengths, batch_indices(lengths, 32, False, 0)) - real <= bucket_pad


def _bert_tokenizer(words: list[str]):
    from transformers import BertTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    return BertTokenizerFast(vocab=vocab)  # transformers 5 ignores vocab_file=


def test_rotten_tomatoes_lengths_and_bucketing_saving(minilm_tokenizer):
    """The issue's claim: snippets average ~27 tokens, so fixed padding to 64 wastes over half."""
    from autodistill.config.run import DataConfig
    from autodistill.data import load_task_data

    train = load_task_data(DataConfig(source="builtin:rotten_tomatoes")).train
    lengths = np.minimum(encode(train, minilm_tokenizer, max_length=128).lengths, 64)
    assert 24 < lengths.mean() < 30
    fixed = 64 * len(lengths)
    bucketed = _padded_tokens(lengths, batch_indices(lengths, 32, shuffle=True, seed=0))
    assert lengths.sum() / fixed < 0.5  # fixed padding: most slots are padding
    assert bucketed < 0.5 * fixed
    assert bucketed < 1.05 * lengths.sum()  # bucketed: under 5% padding


def test_tokenizer_fingerprint(minilm_tokenizer):
    before = tokenizer_fingerprint(minilm_tokenizer)
    encode(_split(10), minilm_tokenizer, max_length=16)  # sets truncation state on the backend
    assert tokenizer_fingerprint(minilm_tokenizer) == before
    ab, ac = _bert_tokenizer(["a", "b"]), _bert_tokenizer(["a", "c"])
    assert ab("a b")["input_ids"] == [2, 5, 6, 3]
    assert tokenizer_fingerprint(ab) != before
    assert tokenizer_fingerprint(ab) != tokenizer_fingerprint(ac)  # one word differs
    assert tokenizer_fingerprint(ab) == tokenizer_fingerprint(_bert_tokenizer(["a", "b"]))
    ab.add_special_tokens({"additional_special_tokens": ["[X]"]})
    assert tokenizer_fingerprint(ab) != tokenizer_fingerprint(_bert_tokenizer(["a", "b"]))


def test_token_counts():
    enc = Encoded([np.array([1, 2, 2], np.int32), np.array([2, 5], np.int32)], None, np.zeros(2, np.int64))
    counts = token_counts(enc, 8)
    assert counts.dtype == np.int64 and counts.tolist() == [0, 1, 3, 0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        token_counts(enc, 4)
