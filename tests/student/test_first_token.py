"""Registered students compute only the first position of their last layer at inference: the same
logits, the full layer whenever hidden states, attentions, training or hooks need every position."""

from __future__ import annotations

import contextlib

import pytest
import torch
from helpers import tiny_bert_config

from autodistill.student.arch import (
    AutodistillBertConfig,
    AutodistillBertForSequenceClassification,
    every_position,
)
from autodistill.student.importance import layernorm_channel_scores


def registered(attn: str = "eager") -> AutodistillBertForSequenceClassification:
    config = AutodistillBertConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=1,
        intermediate_size=96,
        layer_heads=[3, 2, 2],
        head_dim=16,
        layer_ffn=[96, 40, 24],
        num_labels=3,
    )
    config._attn_implementation = attn
    torch.manual_seed(0)
    return AutodistillBertForSequenceClassification(config).eval()


def padded_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(1, 100, (4, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


class LastLayerRows:
    """Records how many positions the last layer's output block returned on each call."""

    def __init__(self, model: AutodistillBertForSequenceClassification) -> None:
        self.rows: list[int] = []
        self.handle = model.bert.encoder.layer[-1].output.register_forward_hook(self._hook)

    def _hook(self, _module, _args, output) -> None:
        self.rows.append(output.shape[1])


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_same_logits_with_the_last_layer_at_the_first_position_only(attn):
    model, batch = registered(attn), padded_batch()
    rows = LastLayerRows(model)
    with torch.no_grad():
        fast = model(**batch).logits
        with every_position(model):
            full = model(**batch).logits
    assert rows.rows == [1, 11]
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-5)
    assert model.config.first_token_last_layer is True  # restored after the block


def test_a_call_inside_a_call_keeps_its_own_path():
    """The choice travels with each call (no state on the model): a call that wants hidden states,
    made while another call is under way (a second thread, or here a hook), gets every position,
    and the outer call still gets the short path and the same logits."""
    model, batch = registered(), padded_batch()
    inner = []

    def hook(_module, _args, _output) -> None:
        if not inner:  # once: the inner call runs this hook too
            inner.append(None)
            inner[0] = model(**batch, output_hidden_states=True).hidden_states[-1].shape

    handle = model.bert.encoder.layer[0].register_forward_hook(hook)
    rows = LastLayerRows(model)
    with torch.no_grad():
        fast = model(**batch).logits
    handle.remove()
    with torch.no_grad(), every_position(model):
        full = model(**batch).logits
    assert inner == [(4, 11, 64)]
    assert rows.rows == [11, 1, 11]  # the inner call's full layer, the outer short one, the reference
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-5)


def test_every_position_when_hidden_states_attentions_or_training_need_it():
    model, batch = registered(), padded_batch()
    rows = LastLayerRows(model)
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True)
        model(**batch, output_attentions=True)
        model.config.output_hidden_states = True
        model(**batch)
        model.config.output_hidden_states = False
        model.train()
        model(**batch)
        model.eval()
        model.config.first_token_last_layer = False
        model(**batch)
    assert rows.rows == [11, 11, 11, 11, 11]
    assert hidden.hidden_states[-1].shape == (4, 11, 64)


def test_gradients_through_the_short_path_match_the_full_one():
    """Eval-mode gradients (what the pruning scores use) are those of the full layer."""
    model, batch = registered(), padded_batch()
    grads = []
    for full in (False, True):
        model.zero_grad()
        with every_position(model) if full else contextlib.nullcontext():
            model(**batch).logits.square().sum().backward()
        grads.append(model.bert.encoder.layer[-1].intermediate.dense.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_hook_based_calibration_reads_every_position():
    """The hidden-channel scores hook every LayerNorm, the last layer's too: they must see all
    positions (they would fail on a one-position output) and equal the full model's."""
    model, batch = registered(), padded_batch()
    batches = [{**batch, "labels": torch.tensor([0, 1, 2, 0])}]
    scores = layernorm_channel_scores(model, batches)
    model.config.first_token_last_layer = False
    torch.testing.assert_close(scores, layernorm_channel_scores(model, batches))


def test_the_setting_is_saved_and_can_be_turned_off(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = registered()
    model.config.first_token_last_layer = False
    model.save_pretrained(tmp_path / "off")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "off").eval()
    assert loaded.config.first_token_last_layer is False
    registered().save_pretrained(tmp_path / "on")
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "on").config.first_token_last_layer is True


def test_every_position_leaves_stock_models_alone():
    from transformers import BertForSequenceClassification

    stock = BertForSequenceClassification(tiny_bert_config())
    with every_position(stock):
        assert not hasattr(stock.config, "first_token_last_layer")
