"""Teacher-output cache files damaged after they were written (cut short, garbled, rewritten with
another shape, NaN inside): the split is removed with a warning naming the file and computed
again, where before every later run failed on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import sentiment_split, tiny_bert_config, tiny_tokenizer

from autodistill.data import encode
from autodistill.errors import TeacherCacheError, TeacherError
from autodistill.teacher.cache import TeacherCache


class Counting(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.config = model, 0, model.config

    def forward(self, **kw):
        self.calls += 1
        return self.model(**kw)


@pytest.fixture
def cached(tmp_path):
    """A cache holding logits, hidden layer 2 and attention layer 1 of both splits."""
    from transformers import BertForSequenceClassification

    tok = tiny_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    cfg = tiny_bert_config(vocab_size=len(tok), layers=2)
    cfg._attn_implementation = "eager"
    model = Counting(BertForSequenceClassification(cfg).eval())
    split = sentiment_split(40)
    enc = {"train": encode(split, tok, 32), "validation": encode(split.select(np.arange(10)), tok, 32)}
    cache = TeacherCache(tmp_path / "cache", "k")
    cache.ensure(model, enc, tok.pad_token_id, hidden=[2], attention=[1], progress=False)
    return cache, model, enc, tok.pad_token_id, np.load(cache._path("train", "logits"))


def again(cache, model, enc, pad):
    return TeacherCache(cache.folder.parent, cache.key).ensure(
        model, enc, pad, hidden=[2], attention=[1], progress=False
    )


def damaged_then_rebuilt(cached, what, damage):
    cache, model, enc, pad, kept = cached
    path = cache._path("train", what)
    damage(path)
    calls = model.calls
    with pytest.warns(UserWarning, match=rf"cache file '{path}' is damaged: .*computed again") as seen:
        out = again(cache, model, enc, pad)
    assert model.calls > calls  # the train split was computed again ...
    assert len(seen) == 1  # ... and the validation split, which was whole, was not touched
    np.testing.assert_array_equal(out.logits("train"), kept.astype(np.float32))
    assert out.batch("train", np.arange(4), 32)["teacher_hidden"][2].isfinite().all()
    return str(seen[0].message)


def test_a_file_cut_short_is_rebuilt(cached):
    message = damaged_then_rebuilt(cached, "logits", lambda p: p.write_bytes(p.read_bytes()[:100]))
    assert "cannot be read" in message


def test_a_garbled_header_is_rebuilt(cached):
    def garble(path):
        data = bytearray(path.read_bytes())
        data[:16] = b"\x00garbage-bytes!!"
        path.write_bytes(bytes(data))

    assert "cannot be read" in damaged_then_rebuilt(cached, "hidden2", garble)


def test_a_file_rewritten_with_other_rows_is_rebuilt(cached):
    def shorter(path):
        arr = np.load(path)
        np.save(path, arr[:-3])

    assert "where the split has" in damaged_then_rebuilt(cached, "hidden2", shorter)


def test_attention_offsets_that_disagree_are_rebuilt(cached):
    def shifted(path):
        arr = np.load(path)
        arr[1] += 1
        np.save(path, arr)

    assert "attention offsets do not match" in damaged_then_rebuilt(cached, "attn_offsets", shifted)


def test_nan_logits_are_rebuilt(cached):
    def nan(path):
        arr = np.load(path)
        arr[5, 0] = np.nan
        np.save(path, arr)

    assert "NaN or infinite" in damaged_then_rebuilt(cached, "logits", nan)


def test_the_check_the_pipeline_runs_reports_a_damaged_split_as_missing(cached):
    cache, *_ = cached
    path = cache._path("validation", "offsets")
    path.write_bytes(path.read_bytes()[:60])
    with pytest.warns(UserWarning, match="validation.offsets.npy' is damaged"):
        assert set(cache._missing("validation", [], [])) == {"logits", "offsets"}
    assert not list(cache.folder.glob("validation.*.npy"))
    assert not cache._missing("train", [], [])


def test_open_refuses_a_damaged_split_and_says_to_run_again(cached):
    cache, *_ = cached
    path = cache._path("train", "logits")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="is damaged"), pytest.raises(TeacherCacheError, match="Run again"):
        cache.open(["train"], [2], [1])


def test_nan_in_gathered_rows_names_the_file_and_removes_the_split(cached):
    cache, model, enc, pad, _ = cached
    out = cache.open(["train", "validation"], [2], [1])
    hidden = np.load(cache._path("train", "hidden2"), mmap_mode="r+")
    hidden[: int(enc["train"].lengths.sum())] = np.nan  # every row, as garbled bytes could make them
    hidden.flush()
    del hidden
    with pytest.raises(TeacherCacheError, match=r"train.hidden2.npy' holds NaN .*learning rate plays no part"):
        out.batch("train", np.arange(4), 32)
    assert not list(cache.folder.glob("train.*.npy")) and list(cache.folder.glob("validation.*.npy"))
    calls = model.calls
    rebuilt = again(cache, model, enc, pad)
    assert model.calls > calls and rebuilt.batch("train", np.arange(4), 32)["teacher_hidden"][2].isfinite().all()


def test_non_finite_teacher_outputs_are_never_cached(cached, tmp_path):
    _, model, enc, pad, _ = cached
    with torch.no_grad():
        model.model.classifier.weight[0, 0] = float("nan")
    fresh = TeacherCache(tmp_path / "other", "k")
    with pytest.raises(TeacherError, match="teacher's logits outputs on the train split hold NaN"):
        fresh.ensure(model, enc, pad, progress=False)
    assert not fresh._path("train", "logits").exists()
