from __future__ import annotations

import pytest
import torch
from transformers import BertForMaskedLM, LlamaConfig, LlamaForCausalLM

from autodistill.errors import AutodistillError
from autodistill.evaluate import parameter_counts, size_on_disk_mb, state_size_mb


def test_bert_counts_total_and_embedding_block(tiny_bert):
    counts = parameter_counts(tiny_bert)
    assert counts["total"] == sum(p.numel() for p in tiny_bert.parameters())
    emb = tiny_bert.bert.embeddings
    # word 99*32 + position 64*32 + token type 2*32 + LayerNorm 2*32
    assert sum(p.numel() for p in emb.parameters()) == 99 * 32 + 64 * 32 + 2 * 32 + 2 * 32
    assert counts["without_embeddings"] == counts["total"] - (99 * 32 + 64 * 32 + 2 * 32 + 2 * 32)


def test_tied_output_weights_count_once(bert_config):
    model = BertForMaskedLM(bert_config)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    unique = {id(p): p.numel() for p in model.parameters()}
    counts = parameter_counts(model)
    assert counts["total"] == sum(unique.values())
    assert counts["without_embeddings"] == counts["total"] - (99 * 32 + 64 * 32 + 2 * 32 + 2 * 32)


def test_embedding_directly_in_the_model_counts_alone():
    # Llama's embed_tokens sits in LlamaModel itself: only the embedding counts, not the whole model.
    cfg = LlamaConfig(
        vocab_size=99,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    counts = parameter_counts(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["without_embeddings"] == counts["total"] - 99 * 32


def test_size_on_disk_counts_weight_files_only(tiny_bert, tmp_path):
    tiny_bert.save_pretrained(tmp_path)
    (tmp_path / "training_args.bin").write_bytes(b"x" * 10_000)
    (tmp_path / "notes.txt").write_bytes(b"x" * 10_000)
    weights = (tmp_path / "model.safetensors").stat().st_size
    assert size_on_disk_mb(tmp_path) == pytest.approx(weights / 1e6)
    # fp32 weights plus a small safetensors header
    param_mb = sum(p.numel() for p in tiny_bert.parameters()) * 4 / 1e6
    assert param_mb <= size_on_disk_mb(tmp_path) < param_mb * 1.1
    (tmp_path / "extra.bin").write_bytes(b"x" * 2_000_000)
    assert size_on_disk_mb(tmp_path) == pytest.approx(weights / 1e6 + 2.0)


def test_state_size_matches_a_saved_model(tiny_bert, tmp_path):
    tiny_bert.save_pretrained(tmp_path)
    assert state_size_mb(tiny_bert) == pytest.approx(size_on_disk_mb(tmp_path), rel=0.02)
    half = state_size_mb(tiny_bert.to(torch.bfloat16))
    assert half == pytest.approx(size_on_disk_mb(tmp_path) / 2, rel=0.05)


def test_size_on_disk_errors_name_the_folder(tmp_path):
    with pytest.raises(AutodistillError, match="holds no weight files"):
        size_on_disk_mb(tmp_path)
    with pytest.raises(AutodistillError, match="does not exist"):
        size_on_disk_mb(tmp_path / "missing")
