from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import sentiment_split, tiny_bert_config, tiny_tokenizer

from autodistill.data import Encoded, encode
from autodistill.errors import AutodistillError
from autodistill.teacher.cache import TeacherCache
from autodistill.train.teacher_signal import LiveTeacher


@pytest.fixture
def setup(tmp_path):
    from transformers import BertForSequenceClassification

    tok = tiny_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    cfg = tiny_bert_config(vocab_size=len(tok))
    cfg._attn_implementation = "eager"
    model = BertForSequenceClassification(cfg).eval()
    split = sentiment_split(40)
    enc = {"train": encode(split, tok, 32), "validation": encode(split.select(np.arange(10)), tok, 32)}
    return model, tok, enc


class Counting(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.config = model, 0, model.config

    def forward(self, **kw):
        self.calls += 1
        return self.model(**kw)


def test_cache_matches_live_teacher_and_is_computed_once(setup, tmp_path):
    model, tok, enc = setup
    counting = Counting(model)
    cache = TeacherCache(tmp_path / "cache", "k")
    out = cache.ensure(counting, enc, tok.pad_token_id, hidden=[2], attention=[1], progress=False)
    first_calls = counting.calls
    assert first_calls > 0
    # stored compactly: fp16, unpadded rows
    logits = np.load(cache._path("train", "logits"), mmap_mode="r")
    hidden = np.load(cache._path("train", "hidden2"), mmap_mode="r")
    assert logits.dtype == np.float16 and hidden.dtype == np.float16
    assert hidden.shape[0] == int(enc["train"].lengths.sum())
    assert isinstance(out.splits["train"].logits, np.memmap)
    # a second run (another process would do the same) computes nothing
    again = TeacherCache(tmp_path / "cache", "k").ensure(
        counting, enc, tok.pad_token_id, hidden=[2], attention=[1], progress=False
    )
    assert counting.calls == first_calls
    # gathered batches equal the live teacher on real (unpadded) positions, to fp16 precision
    from autodistill.data import collate

    idx = np.array([3, 0, 7])
    batch = collate(enc["train"], idx, tok.pad_token_id)
    L = batch["input_ids"].shape[1]
    cached = again.batch("train", idx, L)
    live = LiveTeacher(model, hidden=[2], attention=[1]).targets(idx, batch, torch.device("cpu"))
    mask = batch["attention_mask"].bool()
    assert torch.allclose(cached["teacher_logits"], live["teacher_logits"], atol=2e-3)
    assert torch.allclose(cached["teacher_hidden"][2][mask], live["teacher_hidden"][2][mask], atol=5e-3)
    m2 = mask[:, None, :, None] & mask[:, None, None, :]
    a, b = cached["teacher_attentions"][1], live["teacher_attentions"][1]
    assert torch.allclose(a.expand_as(b)[m2.expand_as(b)], b[m2.expand_as(b)], atol=2e-3)


def test_cache_grows_by_layer_without_recomputing_logits(setup, tmp_path):
    model, tok, enc = setup
    cache = TeacherCache(tmp_path / "cache", "k")
    cache.ensure(model, enc, tok.pad_token_id, progress=False)
    stamp = cache._path("train", "logits").stat().st_mtime_ns
    cache.ensure(model, enc, tok.pad_token_id, hidden=[1], progress=False)
    assert cache._path("train", "hidden1").exists()
    assert cache._path("train", "logits").stat().st_mtime_ns == stamp


def test_label_order_permutes_logits(setup, tmp_path):
    model, tok, enc = setup
    plain = TeacherCache(tmp_path / "a", "k").ensure(model, enc, tok.pad_token_id, progress=False)
    swapped = TeacherCache(tmp_path / "b", "k").ensure(model, enc, tok.pad_token_id, label_order=[1, 0], progress=False)
    assert np.allclose(plain.logits("train")[:, ::-1], swapped.logits("train"))


def test_refuses_a_cache_that_does_not_fit_the_disk(setup, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    model, tok, enc = setup
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 10))
    with pytest.raises(AutodistillError, match="needs .* MB .* only 0 MB are free"):
        TeacherCache(tmp_path / "c", "k").ensure(model, enc, tok.pad_token_id, hidden=[1, 2], progress=False)
    assert not any((tmp_path / "c" / "k").glob("*.npy"))


def test_encoded_type_is_what_the_cache_expects(setup):
    _, _, enc = setup
    assert isinstance(enc["train"], Encoded)
