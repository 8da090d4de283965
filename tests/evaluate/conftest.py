from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification


def tiny_bert_config(**overrides) -> BertConfig:
    base = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    return BertConfig(**{**base, **overrides})


@pytest.fixture
def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config())
