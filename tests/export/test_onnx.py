"""ONNX export, onnxruntime parity, int8 and latency on tiny BERTs (stock and registered)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import sentiment_rows, tiny_bert_config, tiny_tokenizer

from autodistill.data import encode
from autodistill.data.types import TextSplit
from autodistill.tasks.sequence_classification.onnx import (
    ExportError,
    check_parity,
    export_onnx,
    ort_latency,
    ort_logits,
    quantize_int8,
    session,
)
from autodistill.train.inference import predict_logits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import BertForSequenceClassification

    root = tmp_path_factory.mktemp("onnx")
    tok = tiny_tokenizer(root / "tok")
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok))).eval()
    rows = sentiment_rows(96, seed=3)
    split = TextSplit(tuple(t for t, _ in rows), None, np.array([int(lab == "positive") for _, lab in rows]))
    enc = encode(split, tok, 24)
    fp32 = root / "model.onnx"
    names = export_onnx(model, fp32)
    return model, enc, tok, fp32, names


def test_onnx_matches_pytorch_on_every_example(tiny):
    model, enc, tok, fp32, names = tiny
    assert names == ("input_ids", "attention_mask", "token_type_ids")
    ref = predict_logits(model, enc, tok.pad_token_id, 32)
    got = ort_logits(session(fp32), enc, tok.pad_token_id, 16)  # other batches: other padding
    parity = check_parity(ref, got, "onnx")
    assert parity["agreement"] == 1.0 and parity["max_abs_logit_diff"] < 1e-4
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_int8_is_smaller_close_and_measured(tiny, tmp_path):
    model, enc, tok, fp32, _ = tiny
    q = tmp_path / "model.int8.onnx"
    quantize_int8(fp32, q)
    assert q.stat().st_size < fp32.stat().st_size
    ref = predict_logits(model, enc, tok.pad_token_id, 32)
    got = ort_logits(session(q), enc, tok.pad_token_id, 32)
    assert np.abs(got - ref).max() < 0.1  # lossy, but int8 weights of a tiny model stay close
    lat = ort_latency(session(q), len(tok), (1, 32), 16, warmup=1, repeats=2)
    assert set(lat) == {"latency_ms_b1", "latency_ms_b32"} and all(v > 0 for v in lat.values())
    assert not list(tmp_path.glob("*.pre.onnx"))  # the pre-processed intermediate is removed


def test_parity_fails_loudly_but_forgives_ties():
    ref = np.array([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5 + 1e-6]])
    tie_flipped = np.array([[0.0, 1.0], [2.0, 0.0], [0.5 + 1e-6, 0.5]])
    assert check_parity(ref, tie_flipped, "x")["agreement"] == pytest.approx(2 / 3)
    flipped = np.array([[1.0, 0.0], [2.0, 0.0], [0.5, 0.6]])
    with pytest.raises(ExportError, match="predicts differently from PyTorch on 1 of 3"):
        check_parity(ref, flipped, "The ONNX export")


def test_registered_student_runs_from_onnx_without_autodistill(tiny, tmp_path):
    """A student no stock config describes (per-layer FFN widths) runs with onnxruntime alone."""
    from autodistill.student.arch import build_model, is_stock, shape_from_config

    model, enc, tok, _, _ = tiny
    shape = shape_from_config(model.config)
    layers = tuple(replace(layer, ffn=16 * (i + 1)) for i, layer in enumerate(shape.layers))
    shape = replace(shape, layers=layers)
    assert not is_stock(shape)
    torch.manual_seed(1)
    student = build_model(shape, model.config).eval()
    path = tmp_path / "registered.onnx"
    export_onnx(student, path)
    ids = torch.tensor([[2, 5, 9, 14, 3, 0], [2, 7, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        ref = student(input_ids=ids, attention_mask=mask).logits.numpy()
    np.save(tmp_path / "ids.npy", ids.numpy())
    np.save(tmp_path / "mask.npy", mask.numpy())
    code = (
        "import sys, numpy as np, onnxruntime as ort\n"
        f"s = ort.InferenceSession({str(path)!r}, providers=['CPUExecutionProvider'])\n"
        f"ids = np.load({str(tmp_path / 'ids.npy')!r}); mask = np.load({str(tmp_path / 'mask.npy')!r})\n"
        "out = s.run(['logits'], {'input_ids': ids, 'attention_mask': mask, 'token_type_ids': np.zeros_like(ids)})[0]\n"
        "assert 'autodistill' not in sys.modules and 'torch' not in sys.modules\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ref, atol=1e-4)


def test_int8_drops_stale_recorded_shapes_before_quantising(tiny, tmp_path):
    """onnxruntime 1.30's pre-processing transposes the classifier's weight and keeps its old
    recorded shape, and the quantiser's shape inference (onnx's) stops on the disagreement; without
    the records it infers them anew and quantises."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from autodistill.tasks.sequence_classification.onnx import _drop_shape_annotations

    model, enc, tok, fp32, _ = tiny
    pre = tmp_path / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    graph = onnx.load(str(pre))
    weight = next(t for t in graph.graph.initializer if t.name.endswith("classifier.weight"))
    stale = onnx.helper.make_tensor_value_info(weight.name, weight.data_type, list(reversed(weight.dims)))
    kept = [v for v in graph.graph.value_info if v.name != weight.name]
    del graph.graph.value_info[:]
    graph.graph.value_info.extend([*kept, stale])
    onnx.save(graph, str(pre))
    # the check that stopped onnxruntime 1.30's quantiser: onnx's shape inference over the graph
    with pytest.raises(Exception, match="Inferred shape and existing shape differ"):
        onnx.shape_inference.infer_shapes(onnx.load(str(pre)))
    _drop_shape_annotations(pre)
    assert not onnx.load(str(pre)).graph.value_info
    onnx.shape_inference.infer_shapes(onnx.load(str(pre)))
    q = tmp_path / "model.int8.onnx"
    quantize_dynamic(str(pre), str(q), weight_type=QuantType.QInt8)
    ref = predict_logits(model, enc, tok.pad_token_id, 32)
    assert np.abs(ort_logits(session(q), enc, tok.pad_token_id, 32) - ref).max() < 0.1
