"""Measuring causal LMs: a student and its teacher side by side (parameters, size, generation speed
at batch 1 with prompt processing and decoding apart, peak memory), and ``autodistill evaluate
--model DIR`` on any saved causal-LM folder (perplexity on a split of the config's data, with its
own tokenizer, and the same measurements)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.config.run import RunConfig

PROMPT_TOKENS = 32  # the prompt length generation speed is timed at, unless evaluate.seq_len says


def prompt_len(cfg: RunConfig) -> int:
    return cfg.evaluate.seq_len or PROMPT_TOKENS


def speeds(cfg: RunConfig, models: list[Any], vocab: int, repeats: int | None = None) -> list[dict[str, Any]]:
    """Generation speed of ``models`` timed together (interleaved), batch 1, greedy, KV cache."""
    from autodistill.tasks.causal_lm.measure import generation_speed

    ev = cfg.evaluate
    models = [m.to("cpu").eval() for m in models]
    return generation_speed(
        models,
        prompt_len=prompt_len(cfg),
        new_tokens=ev.new_tokens,
        threads=ev.threads,
        warmup=min(ev.warmup, 2),
        repeats=repeats or ev.repeats,
        vocab_size=vocab,
        seed=cfg.seed,
    )


def measure_models(cfg: RunConfig, models: list[Any], vocab: int) -> list[dict[str, Any]]:
    """Per model: parameters, size, ``latency_ms`` (``latency_ms_b1``: milliseconds per decoded
    token at batch 1, the latency objective and budget of this task), ``generation`` (prompt and
    decode speed apart) and peak memory of one generation."""
    from autodistill.evaluate.size import parameter_counts, state_size_mb
    from autodistill.tasks.causal_lm.measure import peak_memory_mb

    outs: list[dict[str, Any]] = [
        {"parameters": parameter_counts(m), "size_mb": round(state_size_mb(m), 3)} for m in models
    ]
    if cfg.evaluate.latency:
        for out, m, speed in zip(outs, models, speeds(cfg, models, vocab), strict=True):
            out["latency_ms"] = {"latency_ms_b1": round(speed["decode_ms_per_token"], 4)}
            out["generation"] = speed
            out["peak_memory_mb"] = round(peak_memory_mb(m, prompt_len(cfg), cfg.evaluate.new_tokens), 2)
    if cfg.evaluate.energy:
        for out, m in zip(outs, models, strict=True):
            out["energy"] = token_energy(cfg, m, vocab)
    return outs


def token_energy(cfg: RunConfig, model: Any, vocab: int) -> dict[str, Any]:
    """Joules per 1,000 decoded tokens: greedy generation at batch 1 of ``evaluate.new_tokens``
    after a ``prompt_len`` prompt, repeated for about three seconds (at least twice)."""
    import torch

    from autodistill.evaluate.energy import model_energy
    from autodistill.tasks.causal_lm.measure import _evaluating, greedy_generate, model_device, random_prompt

    n = cfg.evaluate.new_tokens
    ids = random_prompt(vocab, prompt_len(cfg)).to(model_device(model))
    with _evaluating([model], threads=cfg.evaluate.threads), torch.inference_mode():
        found = model_energy(lambda: greedy_generate(model, ids, n), seconds=3.0, least=2)
    return {
        "joules_per_1000": round(found["joules_per_1000"] / n, 4),
        "method": found["method"],
        "predictions": found["predictions"] * n,
        "unit": "decoded tokens",
    }


def run_evaluate(cfg: RunConfig, model_dir: str, split: str = "test", progress: bool = True) -> dict[str, Any]:
    """Evaluate a saved causal-LM folder (student or teacher) on the config's split (default: test)."""
    from autodistill.tasks.causal_lm.data import check_tokenizer, load_lm_data
    from autodistill.tasks.causal_lm.measure import perplexity
    from autodistill.tasks.causal_lm.prepare import quality_of, usable_vocab
    from autodistill.teacher.load import load_saved_model

    path = Path(model_dir)
    model, tok = load_saved_model(path, cfg.teacher.trust_remote_code, auto_class="AutoModelForCausalLM")
    check_tokenizer(tok, "--model")
    data = load_lm_data(cfg.data, tok, getattr(model.config, "max_position_embeddings", None))
    s, vocab = data.splits[split], usable_vocab(model.config, tok)
    metrics = quality_of(perplexity(model, s.input_ids, s.labels, s.attention_mask, batch_size=8, vocab=vocab))
    meas = measure_models(cfg, [model], vocab)[0]
    return {"model": str(path), "split": split, "metric": "perplexity", **metrics, **meas}
