from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from autodistill.evaluate import evaluate_model, predict, task_metrics

LENGTHS = [5, 17, 3, 11, 9, 2, 14, 7, 20, 4]


def make_examples(vocab: int = 99) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randint(1, vocab, (n,), generator=gen) for n in LENGTHS]


def sorted_batches(examples, batch_size=3, labels=None, token_types=True):
    """Batches ordered by length (as the data loader does), padded per batch, with index."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(examples[i]) for i in idx)
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(examples[i])] = examples[i]
            mask[row, : len(examples[i])] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "index": torch.tensor(idx)}
        if token_types:
            batch["token_type_ids"] = torch.zeros_like(ids)
        if labels is not None:
            batch["labels"] = torch.as_tensor(labels[idx])
        yield batch


@torch.no_grad()
def one_by_one(model, examples) -> np.ndarray:
    model.eval()
    return np.stack([model(input_ids=x[None]).logits[0].float().numpy() for x in examples])


def test_predict_returns_logits_in_original_order(tiny_bert):
    examples = make_examples()
    expected = one_by_one(tiny_bert, examples)
    tiny_bert.train()  # predict must switch to eval (dropout is 0.1) and switch back
    index, logits, preds = predict(tiny_bert, sorted_batches(examples))
    assert tiny_bert.training
    assert index.tolist() == list(range(len(examples)))
    assert logits.dtype == np.float32 and logits.shape == (len(examples), 3)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert preds.tolist() == expected.argmax(-1).tolist()


def test_predict_drops_keys_the_model_does_not_take():
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64)
    model = DistilBertForSequenceClassification(cfg)  # its forward has no token_type_ids
    examples = make_examples()
    labels = np.arange(len(examples)) % 2
    _, logits, _ = predict(model, sorted_batches(examples, labels=labels, token_types=True))
    np.testing.assert_allclose(logits, one_by_one(model, examples), atol=1e-5)


def test_predict_refuses_duplicate_indices(tiny_bert):
    batch = next(sorted_batches(make_examples()))
    with pytest.raises(ValueError, match="same example index twice"):
        predict(tiny_bert, [batch, batch])


def test_evaluate_model_scores_by_example_index(tiny_bert):
    examples = make_examples()
    expected_preds = one_by_one(tiny_bert, examples).argmax(-1)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    teacher = expected_preds.copy()
    teacher[:3] = (teacher[:3] + 1) % 3  # disagree on exactly 3 of 10
    out = evaluate_model(tiny_bert, sorted_batches(examples), labels, "macro_f1", teacher_preds=teacher)
    assert out["preds"].tolist() == expected_preds.tolist()
    assert out["metrics"]["agreement"] == pytest.approx(0.7)
    ref = task_metrics(labels, expected_preds, "macro_f1")
    assert {k: v for k, v in out["metrics"].items() if k != "agreement"} == pytest.approx(ref)
    # Labels taken from the batches themselves give the same scores.
    from_batches = evaluate_model(tiny_bert, sorted_batches(examples, labels=labels), None, "macro_f1")
    assert from_batches["metrics"] == pytest.approx(ref)
