"""Perplexity, agreement with the teacher, generation speed and memory of a causal LM, on tiny
random Llama and GPT-2 models built here."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from autodistill.errors import DataError
from autodistill.evaluate.size import MB, weights_bytes
from autodistill.tasks.causal_lm import measure
from autodistill.tasks.causal_lm.measure import (
    generation_speed,
    greedy_generate,
    peak_memory_mb,
    perplexity,
    speed_ratio,
    teacher_agreement,
)

VOCAB = 24


def llama(layers: int = 2, seed: int = 0, vocab: int = VOCAB) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def gpt2(layers: int = 2, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=layers, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2
    )
    return GPT2LMHeadModel(cfg).eval()


def blocks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three blocks of 8: a full one with a -100 prompt, one right-padded, one with a single counted token."""
    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, size=(3, 8)).astype(np.int32)
    labels = ids.copy()
    mask = np.ones((3, 8), dtype=np.int8)
    labels[0, :3] = -100  # a prompt that takes no loss: 5 counted next-token positions
    ids[1, 5:], labels[1, 5:], mask[1, 5:] = 0, -100, 0  # padding: 4 counted
    labels[2, :7] = -100  # only the last token counts: 1 counted
    return ids, labels, mask


def hand_nll(model: torch.nn.Module, ids: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Summed next-token NLL and the counted tokens, log-softmax by hand in float64 numpy."""
    with torch.no_grad():
        logits = model(input_ids=torch.as_tensor(ids).long(), attention_mask=torch.as_tensor(mask).long()).logits
    z = logits.double().numpy()
    total, count = 0.0, 0
    for row in range(len(ids)):
        for t in range(ids.shape[1] - 1):
            target = labels[row, t + 1]
            if target == -100:
                continue
            x = z[row, t]
            log_p = x - (x.max() + np.log(np.exp(x - x.max()).sum()))
            total -= log_p[target]
            count += 1
    return total, count


@pytest.mark.parametrize("make", [llama, gpt2], ids=["llama", "gpt2"])
def test_perplexity_is_exp_of_the_hand_computed_nll(make):
    model = make()
    ids, labels, mask = blocks()
    total, count = hand_nll(model, ids, labels, mask)
    out = perplexity(model, ids, labels, mask, batch_size=2)
    assert count == 10 and out["tokens"] == 10
    assert out["nll"] == pytest.approx(total / count, rel=1e-5)
    assert out["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_perplexity_weights_tokens_not_batches():
    model = llama()
    ids, labels, mask = blocks()
    one = perplexity(model, ids, labels, mask, batch_size=1)
    together = perplexity(model, ids, labels, mask, batch_size=3)
    assert one["tokens"] == together["tokens"] == 10
    assert one["nll"] == pytest.approx(together["nll"], rel=1e-6)
    # the mean of the three blocks' means differs: the single-token block would weigh as much as the others
    per_block = [perplexity(model, ids[i : i + 1], labels[i : i + 1], mask[i : i + 1])["nll"] for i in range(3)]
    assert abs(float(np.mean(per_block)) - together["nll"]) > 1e-3


@pytest.mark.parametrize("make", [llama, gpt2], ids=["llama", "gpt2"])
def test_a_left_padded_block_scores_like_the_unpadded_block(make):
    # GPT-2's learned absolute positions would shift with the padding if positions were not counted
    # from the first attended token (Llama's rotary positions depend only on distances)
    model = make()
    ids, labels, mask = blocks()
    short_ids, short_labels = ids[1:2, :5], labels[1:2, :5]
    left_ids = np.concatenate([np.zeros((1, 3), np.int32), short_ids], axis=1)
    # the first real token has no context in either block: nothing predicts it
    left_labels = np.concatenate([np.full((1, 4), -100, np.int32), short_labels[:, 1:]], axis=1)
    left_mask = np.array([[0, 0, 0, 1, 1, 1, 1, 1]], dtype=np.int8)
    plain = perplexity(model, short_ids, short_labels, np.ones((1, 5), np.int8))
    left = perplexity(model, left_ids, left_labels, left_mask)
    assert left["tokens"] == plain["tokens"] == 4
    assert left["nll"] == pytest.approx(plain["nll"], rel=1e-5)


def test_perplexity_refuses_bad_arrays():
    model = llama()
    ids, labels, mask = blocks()
    with pytest.raises(DataError, match="same shape"):
        perplexity(model, ids, labels[:, :7], mask)
    with pytest.raises(DataError, match="no counted token"):
        perplexity(model, ids, np.full_like(labels, -100), mask)


def test_a_student_identical_to_the_teacher_agrees_everywhere():
    teacher = llama()
    student = copy.deepcopy(teacher)
    ids, labels, mask = blocks()
    out = teacher_agreement(student, teacher, ids, labels, mask, batch_size=2)
    assert out["top1_agreement"] == 1.0
    assert out["kl"] == pytest.approx(0.0, abs=1e-6)


def test_a_differently_initialised_student_disagrees():
    ids, labels, mask = blocks()
    out = teacher_agreement(llama(seed=1), llama(seed=0), ids, labels, mask)
    assert out["kl"] > 1e-4
    assert out["top1_agreement"] < 1.0


def test_the_kl_is_the_hand_computed_mean_over_counted_tokens():
    student, teacher = llama(seed=1), llama(seed=0)
    ids, labels, mask = blocks()
    with torch.no_grad():
        kw = {"input_ids": torch.as_tensor(ids).long(), "attention_mask": torch.as_tensor(mask).long()}
        s, t = student(**kw).logits.double().numpy(), teacher(**kw).logits.double().numpy()
    counted = labels[:, 1:] != -100
    log_s = s[:, :-1][counted] - np.log(np.exp(s[:, :-1][counted]).sum(-1, keepdims=True))
    log_t = t[:, :-1][counted] - np.log(np.exp(t[:, :-1][counted]).sum(-1, keepdims=True))
    kl = float((np.exp(log_t) * (log_t - log_s)).sum(-1).mean())
    top1 = float((log_s.argmax(-1) == log_t.argmax(-1)).mean())
    out = teacher_agreement(student, teacher, ids, labels, mask, batch_size=1)
    # The measure takes log-softmaxes in float32: a KL near 1e-2 is a difference of numbers near 1,
    # so it keeps about four significant digits, and the last one varies with the CPU's kernels.
    assert out["kl"] == pytest.approx(kl, rel=1e-4)
    assert out["top1_agreement"] == pytest.approx(top1)


def test_a_padded_teacher_vocabulary_is_compared_over_the_shared_columns():
    student = llama()
    teacher = llama(vocab=VOCAB + 8, seed=3)  # 8 padding rows past the tokenizer
    state = {k: v.clone() for k, v in student.state_dict().items()}
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        padded = teacher.state_dict()[key].clone()
        padded[:VOCAB] = state[key]
        padded[VOCAB:] = 5.0  # the padding columns win every argmax if they were compared
        state[key] = padded
    teacher.load_state_dict(state)
    ids, labels, mask = blocks()
    out = teacher_agreement(student, teacher, ids, labels, mask)
    assert out["top1_agreement"] == 1.0 and out["kl"] == pytest.approx(0.0, abs=1e-6)
    # a tokenizer shorter than both vocabularies narrows the comparison further
    narrow = teacher_agreement(student, llama(seed=1), ids, labels, mask, vocab_size=VOCAB - 4)
    assert narrow["kl"] > 0


@pytest.mark.parametrize("make", [llama, gpt2], ids=["llama", "gpt2"])
def test_greedy_generate_decodes_exactly_new_tokens_even_past_eos(make):
    model = make()
    prompt = measure.random_prompt(VOCAB, 5)
    plain = {"attention_mask": torch.ones_like(prompt), "do_sample": False}
    first = int(model.generate(prompt, max_new_tokens=1, **plain)[0, -1])
    model.generation_config.eos_token_id = first  # the model would stop after its first token
    stopped = model.generate(prompt, max_new_tokens=6, **plain)
    assert stopped.shape == (1, 6)
    out = greedy_generate(model, prompt, 6)
    assert out.shape == (1, 11)
    assert torch.equal(out[0, :5], prompt[0])
    assert first not in out[0, 5:].tolist()  # min_new_tokens masks the end-of-sequence token until the last


def test_generation_speed_interleaves_and_times_each_model(monkeypatch):
    """A fake clock and generate: each call costs a prompt time plus a time per further token."""
    clock, log = [0.0], []
    costs = {"a": (4.0, 1.0), "b": (10.0, 3.0)}  # ms: prompt + first token, each further token

    def fake_generate(model, input_ids, new_tokens):
        log.append((model.name, new_tokens, tuple(input_ids[0].tolist())))
        prompt_ms, token_ms = costs[model.name]
        clock[0] += (prompt_ms + token_ms * (new_tokens - 1)) / 1000
        return input_ids

    monkeypatch.setattr(measure, "greedy_generate", fake_generate)
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    a, b = llama(), llama()
    a.name, b.name = "a", "b"
    b.train()
    out = generation_speed([a, b], prompt_len=6, new_tokens=9, warmup=1, repeats=3)
    assert [(name, n) for name, n, _ in log] == [("a", 1), ("a", 9), ("b", 1), ("b", 9)] + [
        ("a", 1),
        ("a", 9),
        ("b", 1),
        ("b", 9),
    ] * 3
    assert len({ids for _, _, ids in log}) == 1  # the same prompt for all
    assert out[0] == pytest.approx(
        {
            "prompt_ms": 4.0,
            "prompt_tokens_per_s": 1500.0,
            "decode_ms_per_token": 1.0,
            "decode_tokens_per_s": 1000.0,
            "prompt_len": 6,
            "new_tokens": 9,
        }
    )
    assert out[1]["prompt_ms"] == pytest.approx(10.0) and out[1]["decode_ms_per_token"] == pytest.approx(3.0)
    assert b.training and not a.training  # modes restored
    assert speed_ratio(out[0], out[1]) == pytest.approx({"decode_speedup": 3.0, "prompt_speedup": 2.5})


def test_generation_speed_on_real_models_is_positive_and_depth_costs_time():
    before = torch.get_num_threads()
    shallow, deep, other = llama(layers=1), llama(layers=8), gpt2(layers=2)
    out = generation_speed([shallow, deep, other], prompt_len=16, new_tokens=12, warmup=1, repeats=3)
    keys = {"prompt_ms", "prompt_tokens_per_s", "decode_ms_per_token", "decode_tokens_per_s"}
    keys |= {"prompt_len", "new_tokens"}
    for row in out:
        assert set(row) == keys
        assert all(row[k] > 0 and math.isfinite(row[k]) for k in keys)
        assert (row["prompt_len"], row["new_tokens"]) == (16, 12)
    # loose on purpose: the machine is shared, only a gross inversion would be a bug
    assert out[1]["decode_ms_per_token"] > 0.8 * out[0]["decode_ms_per_token"]
    assert torch.get_num_threads() == before


def test_generation_speed_refuses_bad_settings():
    with pytest.raises(ValueError, match="new_tokens >= 2"):
        generation_speed([llama()], prompt_len=4, new_tokens=1)
    with pytest.raises(ValueError, match=r"context \(128\)"):
        generation_speed([llama()], prompt_len=120, new_tokens=16)


def test_speed_ratio_is_teacher_over_student():
    student = {"decode_ms_per_token": 2.0, "prompt_ms": 5.0}
    teacher = {"decode_ms_per_token": 7.0, "prompt_ms": 20.0}
    assert speed_ratio(student, teacher) == {"decode_speedup": 3.5, "prompt_speedup": 4.0}


def test_peak_memory_covers_weights_and_the_kv_cache_and_grows_with_the_prompt():
    model = llama()
    short, long = peak_memory_mb(model, 8, 4), peak_memory_mb(model, 64, 16)
    # the KV cache at the last step: layers x (key, value) x kv heads x tokens x head dim x 4 bytes
    kv = 2 * 2 * 2 * (64 + 16 - 1) * 8 * 4
    assert long * MB >= weights_bytes(model) + kv
    assert long > short > weights_bytes(model) / MB


def test_perplexity_leaves_a_padded_vocabularys_extra_columns_out():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 32, (2, 9))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1, :32].double()
    want = -torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).mean().item()
    mask = torch.ones_like(ids)
    got = perplexity(model, ids.numpy(), ids.numpy(), mask.numpy(), vocab=32)
    full = perplexity(model, ids.numpy(), ids.numpy(), mask.numpy())
    assert got["nll"] == pytest.approx(want, rel=1e-5) and full["nll"] > got["nll"]


def test_a_decode_step_lost_in_the_timers_noise_falls_back_to_the_whole_generation_per_token():
    from autodistill.tasks.causal_lm.measure import _speed_summary

    clear = _speed_summary([10.0, 10.0, 10.0], [40.0, 41.0, 39.0], prompt_len=8, new_tokens=4)
    assert clear["decode_ms_per_token"] == 10.0 and clear["decode_tokens_per_s"] == 100.0
    # the full runs came out no slower than the one-token runs: (n - f) <= 0 would be no time at all
    noisy = _speed_summary([10.0, 12.0, 11.0], [9.0, 12.0, 10.0], prompt_len=8, new_tokens=4)
    assert noisy["decode_ms_per_token"] == 10.0 / 4 and noisy["decode_tokens_per_s"] == 400.0
