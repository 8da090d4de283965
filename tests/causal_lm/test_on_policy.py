"""On-policy distillation (``distill.on_policy``): the student continues each batch's first half,
the live teacher scores the result, and the loss reads only what the student wrote."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.distill import _on_policy
from autodistill.tasks.causal_lm.losses import build_lm_loss
from autodistill.tasks.causal_lm.on_policy import OnPolicy
from autodistill.tasks.causal_lm.topk import compress


def tiny(seed: int, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         eos_token_id=1, pad_token_id=1)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def counting(model):
    calls = []

    def load():
        calls.append(1)
        return model

    return load, calls


def test_the_student_continues_the_first_half_and_the_teacher_scores_it():
    teacher, student = tiny(0, 3), tiny(1)
    load, calls = counting(teacher)
    ids = torch.randint(2, 40, (3, 12))
    mask = torch.ones_like(ids)
    new, new_mask, labels, target = OnPolicy(1.0, load, 5, 40, 1).batch(student, ids, mask)
    assert new.shape == ids.shape and bool(new_mask.all())
    assert torch.equal(new[:, :6], ids[:, :6])  # the prompt is the data's first half
    assert bool((labels[:, :6] == -100).all()) and torch.equal(labels[:, 6:], new[:, 6:])
    with torch.inference_mode():
        want = compress(teacher(input_ids=new).logits.float(), 5)
    assert torch.allclose(target.values, want.values) and torch.equal(target.indices, want.indices)
    assert calls == [1] and not student.training


def test_the_share_decides_and_a_padded_prompt_stays_on_the_data():
    teacher, student = tiny(0), tiny(1)
    load, calls = counting(teacher)
    ids = torch.randint(2, 40, (2, 10))
    assert OnPolicy(0.0, load, 4, 40, 1).batch(student, ids, torch.ones_like(ids)) is None
    padded = torch.ones_like(ids)
    padded[1, 3:] = 0
    assert OnPolicy(1.0, load, 4, 40, 1).batch(student, ids, padded) is None
    half = OnPolicy(0.5, load, 4, 40, 1, seed=3)
    taken = sum(half.batch(student, ids, torch.ones_like(ids)) is not None for _ in range(40))
    assert half.steps == taken and 10 < taken < 30 and len(calls) == taken


def test_on_policy_steps_train_the_student_through_the_loss():
    teacher, student = tiny(0, 3), tiny(1)
    student.train()
    load, _ = counting(teacher)
    ids = torch.randint(2, 40, (2, 12))
    new, new_mask, labels, target = OnPolicy(1.0, load, 40, 40, 1).batch(student, ids, torch.ones_like(ids))
    loss, _ = build_lm_loss([{"name": "fkl", "weight": 1.0}], 1.0)(student(input_ids=new).logits, target, labels)
    loss.backward()
    assert float(loss.detach()) > 0 and student.model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0


def test_on_policy_refuses_hidden_state_terms_by_key():
    prep = SimpleNamespace(cfg=SimpleNamespace(distill=SimpleNamespace(on_policy=0.3, top_k=4)))
    assert _on_policy(SimpleNamespace(cfg=SimpleNamespace(distill=SimpleNamespace(on_policy=0.0))), None, 0) is None
    with pytest.raises(ConfigError, match="'distill.on_policy'"):
        _on_policy(prep, SimpleNamespace(needs_hidden=True), 0)
