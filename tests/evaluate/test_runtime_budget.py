"""``budget.runtime``: teacher and student timed alike in onnxruntime (fp32 or int8), the teacher's
graph made once, the models left as they were; a causal LM and a wrong runtime are refused by key."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_bert_config
from transformers import BertForSequenceClassification

from autodistill.config.run import RunConfig
from autodistill.config.schema import parse
from autodistill.errors import ConfigError
from autodistill.tasks.sequence_classification import runtime


def _models():
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(layers=4)).eval()
    student = BertForSequenceClassification(tiny_bert_config(layers=1)).train()
    return student, teacher


@pytest.mark.parametrize("name", ["onnx", "onnx-int8"])
def test_both_models_are_timed_in_the_runtime_and_the_teacher_graph_is_made_once(name):
    student, teacher = _models()
    cfg = parse(RunConfig, {"budget": {"runtime": name}, "evaluate": {"repeats": 3, "warmup": 1}}, "")
    s, t = runtime.runtime_latency_b1(cfg, student, teacher, 16)
    assert s > 0 and t > 0
    first = runtime._TEACHERS[teacher][name][1]
    runtime.runtime_latency_b1(cfg, student, teacher, 16)
    assert runtime._TEACHERS[teacher][name][1] is first  # not exported again
    assert student.training and not teacher.training  # modes as they were


def test_a_runtime_session_computes_the_models_logits(tmp_path):
    from autodistill.tasks.sequence_classification.onnx import _feed

    student, _ = _models()
    sess = runtime.runtime_session(student, "onnx", tmp_path, 1)
    ids = torch.randint(0, 64, (2, 8))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    got = sess.run(["logits"], _feed(sess, batch))[0]
    with torch.no_grad():
        want = student.eval()(**batch).logits.numpy()
    assert abs(got - want).max() < 1e-4


def test_a_causal_lm_or_an_unknown_runtime_is_refused_by_key():
    with pytest.raises(ConfigError, match=r"budget.runtime.*decoding speed"):
        parse(RunConfig, {"task": "causal-lm", "budget": {"runtime": "onnx"}}, "")
    with pytest.raises(ConfigError, match=r"budget.runtime"):
        parse(RunConfig, {"budget": {"runtime": "tensorrt"}}, "")
