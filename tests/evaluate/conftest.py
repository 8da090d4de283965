from __future__ import annotations

import pytest
import torch
from helpers import tiny_bert_config
from transformers import BertConfig, BertForSequenceClassification


@pytest.fixture
def bert_config() -> BertConfig:
    return tiny_bert_config(num_labels=3, layers=2, vocab_size=99)


@pytest.fixture
def tiny_bert(bert_config: BertConfig) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(bert_config)
