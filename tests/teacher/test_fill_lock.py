"""Workers started together fill the teacher home once: the fine-tuned teacher and each cached
split are computed by one of them while the others wait, then read it. Threads stand in for the
processes: a flock taken through two opens of one file excludes within one process too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import sentiment_rows, sentiment_split, tiny_backbone_dir, tiny_bert_config, tiny_tokenizer, write_csv

import autodistill.teacher.finetune as finetune
from autodistill.config import parse
from autodistill.config.run import RunConfig
from autodistill.data import encode, load_task_data
from autodistill.teacher.cache import TeacherCache
from autodistill.teacher.lock import filling, lock_path

pytestmark = pytest.mark.filterwarnings("ignore:The fine-tuned teacher.s validation")


def _together(fn, n: int = 2) -> list:
    """``fn()`` in ``n`` threads released at the same instant; their results (errors raised)."""
    gate, out = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        gate.wait()
        try:
            out[i] = fn()
        except BaseException as err:  # re-raised below, in the test's thread
            out[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for r in out:
        if isinstance(r, BaseException):
            raise r
    return out


def _slowed(monkeypatch, owner, name: str, calls: list) -> None:
    """Record each call of ``owner.name`` and hold it a moment, so two unlocked callers overlap."""
    real = getattr(owner, name)

    def slow(*args, **kwargs):
        calls.append(name)
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)


def test_two_workers_fine_tune_the_teacher_once(tmp_path, monkeypatch):
    backbone = tiny_backbone_dir(tmp_path / "backbone", layers=2)
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(80))
    raw = {"teacher": {"model": str(backbone), "finetune": {"max_steps": 2, "batch_size": 16}}}
    cfg = parse(RunConfig, {**raw, "data": {"source": str(data), "max_length": 32}}, "")
    task = load_task_data(cfg.data)
    calls: list = []
    _slowed(monkeypatch, finetune, "_finetune", calls)
    teachers = _together(lambda: finetune.prepare_teacher(cfg, task, progress=False))
    assert calls == ["_finetune"], "the second worker waited and read the first one's teacher"
    assert teachers[0].path == teachers[1].path and all(t.finetuned for t in teachers)
    assert (teachers[0].path / "teacher.json").is_file() and lock_path(teachers[0].path).is_file()


def test_two_workers_compute_each_cached_split_once(tmp_path, monkeypatch):
    from transformers import BertForSequenceClassification

    tok = tiny_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok))).eval()
    split = sentiment_split(40)
    enc = {"train": encode(split, tok, 32), "validation": encode(split.select(np.arange(10)), tok, 32)}
    calls: list = []
    _slowed(monkeypatch, TeacherCache, "_compute", calls)
    outs = _together(
        lambda: TeacherCache(tmp_path / "cache", "k").ensure(model, enc, tok.pad_token_id, hidden=[1], progress=False)
    )
    assert calls == ["_compute", "_compute"], "one computation per split, by one worker"
    for split in enc:
        np.testing.assert_array_equal(outs[0].logits(split), outs[1].logits(split))
        assert outs[1].splits[split].hidden[1].shape[0] == int(enc[split].lengths.sum())


@pytest.mark.subprocess
def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    """The kernel drops the lock of a worker killed while filling: the next run does not wait."""
    target = tmp_path / "home" / "teachers" / "abc"
    code = (
        "import sys, time\nfrom autodistill.teacher.lock import filling\n"
        f"with filling({str(target)!r}, 'test'):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        got: list = []
        waiter = threading.Thread(target=lambda: filling(target, "test", progress=False).__enter__() or got.append(1))
        waiter.daemon = True
        waiter.start()
        waiter.join(1.0)
        assert not got, "the lock excludes while its holder lives"
        holder.send_signal(signal.SIGKILL)
        waiter.join(30)
        assert got, "the lock is free once its holder is killed"
    finally:
        holder.kill()
        holder.wait()
