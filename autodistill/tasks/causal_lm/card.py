"""The model card (README.md) of an exported causal-LM student, from the export's result record:
how to run it (transformers, llama.cpp), its perplexity, agreement and speed beside the teacher's,
and how it was made."""

from __future__ import annotations

from typing import Any


def _f(x: Any, digits: int = 3) -> str:
    return f"{x:,.{digits}f}" if isinstance(x, (int, float)) else "-"


def _row(name: str, s: Any, t: Any, digits: int = 3, ratio: str = "") -> str:
    return f"| {name} | {_f(s, digits)} | {_f(t, digits)} | {ratio} |"


def _speed_rows(s: dict[str, Any], t: dict[str, Any]) -> list[str]:
    sg, tg = s.get("generation"), t.get("generation")
    if not sg or not tg:
        return []
    decode = tg["decode_ms_per_token"] / sg["decode_ms_per_token"]
    prompt = tg["prompt_ms"] / sg["prompt_ms"]
    return [
        _row("decoding, tokens/s (batch 1, CPU)", sg["decode_tokens_per_s"], tg["decode_tokens_per_s"], 1,
             f"{decode:.2f}x faster"),
        _row(f"prompt of {sg['prompt_len']} tokens, ms", sg["prompt_ms"], tg["prompt_ms"], 1, f"{prompt:.2f}x faster"),
    ]  # fmt: skip


def _energy_rows(s: dict[str, Any], t: dict[str, Any]) -> list[str]:
    se, te = s.get("energy"), t.get("energy")
    if not se or not te or se.get("method") == "unavailable":
        return []
    ratio = te["joules_per_1000"] / max(1e-12, se["joules_per_1000"])
    return [
        _row(f"energy per 1,000 decoded tokens, J ({se['method']}, codecarbon)", se["joules_per_1000"],
             te["joules_per_1000"], 1, f"{ratio:.2f}x less"),
    ]  # fmt: skip


def _use(name: str, formats: dict[str, Any], kind: str) -> list[str]:
    stock = kind != "registered"
    lines = [
        "## Use",
        "",
        "A stock model: it loads with transformers alone."
        if stock
        else "Its projections are low-rank factors, which no stock architecture holds: it loads with "
        "transformers **after `import autodistill`** (which registers its class).",
        "",
        "```python",
        *([] if stock else ["import autodistill  # registers the factored architecture"]),
        "from transformers import pipeline",
        f'generate = pipeline("text-generation", model="{name}")',
        'print(generate("hello, how are you?", max_new_tokens=20)[0]["generated_text"])',
        "```",
        "",
    ]
    onnx = formats.get("onnx")
    if onnx:
        lines += [
            f"`{onnx['file']}` ({onnx['size_mb']:.1f} MB, opset {onnx['opset']}) computes the logits of every position "
            "(input_ids, attention_mask; no KV cache) for onnxruntime: next-token agreement with PyTorch "
            f"{onnx['agreement']:.4f}, largest logit difference {onnx['max_abs_diff']:.1e}.",
            "",
        ]
    gguf = formats.get("gguf")
    if gguf:
        lines += [
            f"For llama.cpp: `{gguf['file']}` ({gguf['dtype']}, {gguf['bytes'] / 1e6:.1f} MB), e.g.",
            "",
            "```sh",
            f'llama-cli -m {name}/{gguf["file"]} -p "hello, how are you?" -n 20',
            "```",
            "",
        ]
    return lines


def model_card(r: dict[str, Any]) -> str:
    """Markdown with YAML front matter; ``r`` is the export's ``export.json`` record."""
    s, t, pick, rel = r["student"], r["teacher"], r["pick"], r["relative"]
    st, tt = s["test"], t["test"]
    tags = ["autodistill", "knowledge-distillation"] + (["gguf"] if "gguf" in r["formats"] else [])
    name = r.get("out_name", "student")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        f"tags: [{', '.join(tags)}]",
        "---",
        "",
        f"# Distilled student of `{t['name']}`",
        "",
        f"Made by autodistill from study `{r['study']['name']}`: trial {pick['trial']} picked by {pick['rule']}.",
        "",
        *_use(name, r["formats"], s.get("kind", "stock")),
        "## Quality and speed against the teacher",
        "",
        f"Test split: {st.get('tokens', 0):,} predicted tokens of `{r['data']['source']}`, the same blocks for both.",
        "",
        "| | student | teacher | |",
        "|---|---:|---:|---|",
        _row("test perplexity (lower is better)", st["perplexity"], tt["perplexity"], 2,
             f"student keeps {rel['test_quality_ratio']:.1%} of the teacher's quality (perplexity ratio)"),
        _row("next-token top-1 agreement with the teacher", st.get("top1_agreement"), 1.0),
        _row("KL(teacher ‖ student) per token, nats", st.get("kl"), 0.0),
        _row("parameters, millions", s["parameters"]["total"] / 1e6, t["parameters"]["total"] / 1e6, 1,
             f"{rel['parameter_ratio']:.1%} of the teacher's"),
        _row("size, MB (fp32)", s["size_mb"], t["size_mb"], 1),
        *_speed_rows(s, t),
        *_energy_rows(s, t),
        "",
        "## How it was made",
        "",
        f"- Student: {', '.join(f'`{n}`' for n in s['transforms']) or 'the teacher as it is'} "
        f"({'a stock' if s.get('kind', 'stock') == 'stock' else 'the registered autodistill'} architecture).",
        "- Loss: " + "; ".join(
            f"`{x['name']}` x {x.get('weight', 1.0)}" for x in pick["strategy"]["loss"]["terms"]
        ) + f" at temperature {pick['strategy']['loss']['temperature']}.",
        f"- Training: {r['train']['mode_text']}.",
        f"- Teacher targets: its top-{r['data'].get('top_k', '?')} logits per token, cached"
        + (", from the teacher fine-tuned on the training text first (`teacher.adapt`)."
           if t.get("finetuned") else "."),
        "",
    ]  # fmt: skip
    return "\n".join(lines)
