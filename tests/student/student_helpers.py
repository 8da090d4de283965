"""Tiny in-process BERT teachers and calibration data shared by the student tests."""

from __future__ import annotations

import numpy as np
import torch
from helpers import tiny_bert_config
from transformers import BertForSequenceClassification

from autodistill.student.base import BuildContext

VOCAB = 99
SPECIAL_IDS = (0, 1, 2, 3, 4)  # pad, unk, cls, sep, mask


def tiny_teacher(layers: int = 4, seed: int = 0, num_labels: int = 2) -> BertForSequenceClassification:
    config = tiny_bert_config(
        num_labels,
        layers,
        VOCAB,
        id2label={i: f"label_{i}" for i in range(num_labels)},
        label2id={f"label_{i}": i for i in range(num_labels)},
    )
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases so that slicing mistakes show
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def calibration_batches(n: int = 2, batch: int = 4, length: int = 10, seed: int = 1) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        # [CLS] w ... w [SEP] then padding on the last rows, words drawn from the first 60 ids
        ids = torch.randint(5, 60, (batch, length), generator=g)
        ids[:, 0], ids[:, -1] = 2, 3
        mask = torch.ones_like(ids)
        mask[-1, length // 2 :] = 0
        ids[-1, length // 2 :] = 0
        out.append({"input_ids": ids, "attention_mask": mask, "labels": torch.arange(batch) % 2})
    return out


def build_context(batches: list[dict] | None = None) -> BuildContext:
    batches = calibration_batches() if batches is None else batches
    counts = np.zeros(VOCAB, dtype=np.int64)
    for b in batches:
        np.add.at(counts, b["input_ids"][b["attention_mask"].bool()].numpy(), 1)
    return BuildContext(calibration=batches, token_counts=counts, special_token_ids=SPECIAL_IDS, unk_token_id=1)


def logits(model, batch: dict, token_id_map=None) -> torch.Tensor:
    ids = batch["input_ids"]
    if token_id_map is not None:
        ids = torch.as_tensor(np.asarray(token_id_map), dtype=torch.long)[ids]
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=batch["attention_mask"]).logits


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())
