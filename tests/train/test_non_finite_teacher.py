"""A loss that goes NaN because the teacher's targets hold NaN is blamed on the teacher signal
(the cache file, or the teacher model), not on the learning rate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import sentiment_split, tiny_bert_config, tiny_tokenizer

from autodistill.data import encode
from autodistill.errors import TeacherCacheError, TrainingError
from autodistill.losses import CompositeLoss, LossDims
from autodistill.specs import LossSpec, Step, TrainSpec
from autodistill.teacher.cache import TeacherCache
from autodistill.train.loop import train
from autodistill.train.teacher_signal import CachedTeacher, LiveTeacher, explain_non_finite


@pytest.fixture
def tiny(tmp_path):
    from transformers import BertForSequenceClassification

    tok = tiny_tokenizer(tmp_path / "tok")
    enc = encode(sentiment_split(60), tok, 32)
    torch.manual_seed(0)
    student = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok), layers=2))
    teacher = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok), layers=2)).eval()
    kl = CompositeLoss(LossSpec((Step("kl"),)), LossDims(32, 32))
    return student, teacher, kl, enc, tok.pad_token_id


def test_a_cache_garbled_after_it_was_opened_stops_training_naming_the_file(tiny, tmp_path):
    student, teacher, kl, enc, pad = tiny
    cache = TeacherCache(tmp_path / "cache", "k")
    outputs = cache.ensure(teacher, {"train": enc}, pad, progress=False)
    logits = np.load(cache._path("train", "logits"), mmap_mode="r+")
    logits[:] = np.nan
    logits.flush()
    del logits
    spec = TrainSpec(steps=3, batch_size=8)
    with pytest.raises(TeacherCacheError, match=r"train.logits.npy' holds NaN") as e:
        train(student, kl, enc, np.arange(60), spec, pad, teacher=CachedTeacher(outputs), progress=False)
    assert "distill.lr" not in str(e.value)
    assert not cache._path("train", "logits").exists()  # the next run computes it again


def test_a_teacher_that_outputs_nan_is_blamed_not_the_learning_rate(tiny):
    student, teacher, kl, enc, pad = tiny
    with torch.no_grad():
        teacher.classifier.bias[0] = float("nan")
    spec = TrainSpec(steps=3, batch_size=8)
    with pytest.raises(TrainingError, match=r"targets teacher_logits hold NaN .*not the learning rate") as e:
        train(student, kl, enc, np.arange(60), spec, pad, teacher=LiveTeacher(teacher), progress=False)
    assert "teacher model's own outputs" in str(e.value) and "Lower 'distill.lr'" not in str(e.value)


def test_explanations_name_the_layer_that_went_bad():
    ok = torch.zeros(2, 3)
    bad = torch.full((2, 3), float("inf"))
    targets = {"teacher_logits": ok, "teacher_hidden": {1: ok, 3: bad}, "teacher_qkv": {2: (ok, bad, ok)}}
    message = explain_non_finite([(None, {"teacher_logits": ok}), (LiveTeacher(torch.nn.Linear(1, 1)), targets)])
    assert "teacher_hidden[3], teacher_qkv[2]" in message and "teacher model's own outputs" in message
    assert explain_non_finite([(None, {"teacher_logits": ok})]) is None
    stored = CachedTeacher(SimpleNamespace(cache=SimpleNamespace(folder="/home/cache/k")))
    message = explain_non_finite([(stored, {"teacher_logits": bad})])
    assert "teacher_logits" in message and "teacher-output cache (/home/cache/k); delete that folder" in message
