"""distill.qat: fake quantisation to the int8 export's grids (train.qat); the loop's use of it is in test_loop.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import sentiment_split, tiny_bert_config, tiny_tokenizer

from autodistill.data import encode
from autodistill.specs import TrainSpec
from autodistill.train.loop import qat_start
from autodistill.train.qat import fake_quantised, is_fake_quantised


def int8_linear(lin: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """What onnxruntime's MatMulInteger computes: int8 weights (symmetric, per tensor), uint8 inputs
    (their own range with 0, per tensor), an integer product scaled back, the bias added in float."""
    w = lin.weight.detach().double()
    sw = w.abs().max() / 127
    wi = torch.clamp(torch.round(w / sw), -127, 127)
    xd = x.detach().double()
    lo, hi = min(xd.min().item(), 0.0), max(xd.max().item(), 0.0)
    sx = (hi - lo) / 255
    zp = min(255, max(0, round(-lo / sx)))
    xi = torch.clamp(torch.round(xd / sx) + zp, 0, 255)
    return ((xi - zp) @ wi.T * (sx * sw) + lin.bias.detach().double()).float()


def test_a_linear_computes_on_the_int8_grids_inside_and_plainly_after():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8)
    x = torch.randn(5, 16) * 3 + 0.5
    keys = list(lin.state_dict())
    plain = lin(x)
    with fake_quantised(lin) as same:
        assert same is lin and is_fake_quantised(lin)
        out = lin(x)
        out.pow(2).sum().backward()
    torch.testing.assert_close(out, int8_linear(lin, x), atol=1e-5, rtol=1e-5)
    assert (out - plain).abs().max() > 1e-3  # the rounding shows
    # straight-through: the weight's gradient is the float formula's, at the quantised input
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    assert not is_fake_quantised(lin) and "forward" not in lin.__dict__
    assert not lin._forward_pre_hooks and not lin._forward_hooks and not hasattr(lin, "parametrizations")
    assert list(lin.state_dict()) == keys and type(lin) is torch.nn.Linear
    assert torch.equal(lin(x), plain)


def test_the_weight_gradient_passes_straight_through_the_rounding():
    torch.manual_seed(1)
    lin = torch.nn.Linear(6, 3)
    x = torch.randn(4, 6)
    with fake_quantised(lin):
        lin(x).sum().backward()
    got = lin.weight.grad.clone()
    # d(sum(x_q @ w_q.T))/dw with d(w_q)/dw = 1: the column sums of the quantised input, per output
    from autodistill.train.qat import asymmetric_uint8

    expected = asymmetric_uint8(x).sum(0).expand(3, 6)
    torch.testing.assert_close(got, expected)


def test_the_context_leaves_a_plain_model_even_after_an_error_and_copies_inside_are_plain(tmp_path):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config()).eval()
    keys = list(model.state_dict())
    ids = torch.randint(5, 60, (2, 10))
    plain = model(input_ids=ids).logits
    with pytest.raises(RuntimeError, match="inside"), fake_quantised(model):
        swapped = [m for m in model.modules() if is_fake_quantised(m)]
        n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
        n_embed = sum(isinstance(m, torch.nn.Embedding) for m in model.modules())
        assert len(swapped) == n_linear + n_embed and n_linear == 4 * 6 + 2  # every layer, pooler, classifier
        assert not torch.allclose(model(input_ids=ids).logits, plain, atol=1e-6)
        twin = copy.deepcopy(model)
        assert not any(is_fake_quantised(m) for m in twin.modules())
        torch.testing.assert_close(twin(input_ids=ids).logits, plain)
        raise RuntimeError("inside")
    assert not any(is_fake_quantised(m) or "forward" in m.__dict__ for m in model.modules())
    assert list(model.state_dict()) == keys
    assert torch.equal(model(input_ids=ids).logits, plain)
    model.save_pretrained(tmp_path / "saved")
    again = BertForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    assert list(again.state_dict()) == keys
    torch.testing.assert_close(again(input_ids=ids).logits, plain)


def test_a_fake_quantised_classifier_gives_the_int8_onnx_logits(tmp_path):
    """The point of the emulation: the student trains on what onnxruntime's int8 graph computes."""
    from transformers import BertForSequenceClassification

    from autodistill.tasks.sequence_classification.onnx import export_onnx, ort_logits, quantize_int8, session
    from autodistill.train.inference import predict_logits

    tok = tiny_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(vocab_size=len(tok))).eval()
    enc = encode(sentiment_split(16), tok, 24)
    export_onnx(model, tmp_path / "model.onnx")
    quantize_int8(tmp_path / "model.onnx", tmp_path / "model.int8.onnx")
    int8 = ort_logits(session(tmp_path / "model.int8.onnx"), enc, tok.pad_token_id, 1)
    fp32 = predict_logits(model, enc, tok.pad_token_id, 1)
    with fake_quantised(model):
        fake = predict_logits(model, enc, tok.pad_token_id, 1)
    float_gap, fake_gap = np.abs(int8 - fp32).max(), np.abs(int8 - fake).max()
    assert float_gap > 1e-5 and fake_gap < float_gap / 100


@pytest.mark.parametrize(
    ("qat", "offset", "steps", "start"),
    [(0.0, 0, 10, None), (0.5, 0, 10, 6), (0.5, 0, 11, 6), (1.0, 0, 10, 1), (0.01, 0, 10, 10), (0.5, 6, 4, 7)],
)
def test_qat_starts_for_the_last_share_of_the_steps(qat, offset, steps, start):
    # (0.5, 6, 4): a run of 10 whose first 6 steps trained in an earlier stage starts at once
    assert qat_start(TrainSpec(steps=steps, qat=qat), offset) == start
