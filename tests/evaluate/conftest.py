from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification


@pytest.fixture
def bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )


@pytest.fixture
def tiny_bert(bert_config: BertConfig) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(bert_config)
