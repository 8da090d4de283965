"""The model card (README.md) of an exported student, from the export's result record."""

from __future__ import annotations

import json
import math
from typing import Any


def _f(x: Any, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "-"


def _steps(steps: list[dict[str, Any]]) -> str:
    out = []
    for s in steps:
        opts = ", ".join(f"{k}={v}" for k, v in s.items() if k != "name")
        out.append(f"`{s['name']}`" + (f" ({opts})" if opts else ""))
    return "; ".join(out) or "-"


def _how_to_load(kind: str, name: str) -> str:
    if kind == "stock":
        return (
            "**Kind: stock.** A plain `BertForSequenceClassification`-family model: it loads with transformers "
            "alone, no autodistill needed.\n\n"
            "```python\nfrom transformers import pipeline\n"
            f'classify = pipeline("text-classification", model="{name}")\n'
            'print(classify("a gripping, beautifully shot film"))\n```\n'
        )
    return (
        "**Kind: registered.** The student's shape (per-layer widths, fewer heads at the same hidden size or "
        "low-rank factors) is no stock architecture: load it with transformers **after `import autodistill`**, "
        "which registers the architecture with the Auto classes. To run it without autodistill, use the ONNX "
        "file (`onnx/model.onnx`) with onnxruntime. At inference its last layer computes only the first "
        "([CLS]) position, the one the classifier reads (the same logits, less work; hidden states and "
        "attentions, when asked for, are computed in full; `first_token_last_layer: false` in `config.json` "
        "turns it off).\n\n"
        "```python\nimport autodistill  # registers the student architecture\nfrom transformers import pipeline\n"
        f'classify = pipeline("text-classification", model="{name}")\n```\n'
    )


def model_card(r: dict[str, Any]) -> str:
    """Markdown with YAML front matter; ``r`` is the export's ``export.json`` record."""
    s, t, pick = r["student"], r["teacher"], r["pick"]
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags: [autodistill, knowledge-distillation" + (", onnx" if "onnx" in r["formats"] else "") + "]",
        "---",
        "",
        f"# Distilled student of `{t['name']}`",
        "",
        f"Made by autodistill from study `{r['study']['name']}`: trial {pick['trial']} picked by {pick['rule']}"
        + (" (on the Pareto front)." if pick["on_front"] else " (not on the Pareto front: best under the rule)."),
        "",
        *_candidates(pick.get("candidates") or [], pick.get("validation_examples"), r["metric"]),
        *_close_calls(pick.get("resolution")),
        "## Use",
        "",
        _how_to_load(s["kind"], r.get("out_name", ".")),
    ]
    if s.get("lora_merged"):
        lines += ["The LoRA adapters used in training are merged into the weights; no peft needed.", ""]
    lines += _metrics(r)
    lines += _classes(r)
    if r["formats"].get("onnx"):
        lines += _onnx_table(r)
    lines += _strategy(r)
    return "\n".join(lines)


def _metrics(r: dict[str, Any]) -> list[str]:
    """The teacher and the student side by side: quality, size and CPU latency."""
    s, t, metric = r["student"], r["teacher"], r["metric"]
    lines = [
        "## Metrics",
        "",
        f"Quality metric: {metric}. Test metrics of the student after {r['train']['mode_text']}; "
        "the search's proxy estimate is the validation quality of the short proxy run that ranked this trial.",
        "",
        "| | teacher | student |",
        "|---|---:|---:|",
        f"| test {metric} | {_f(t['test']['quality'])} | {_f(s['test']['quality'])} |",
        f"| share of the teacher's test {metric} | 100% | {r['relative']['test_quality_ratio']:.1%} |",
        *[
            f"| test {name} | {_f(t['test'].get(key))} | {_f(s['test'].get(key))} |"
            for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"))
            if key != metric
        ],
        f"| validation {metric} | {_f(t['validation']['quality'])} | {_f(s['validation']['quality'])} |",
        f"| proxy validation estimate (search) | | {_f(r['proxy']['validation_quality'])} |",
        f"| parameters | {t['parameters']['total']:,} | {s['parameters']['total']:,} |",
        f"| parameters without embeddings | {t['parameters']['without_embeddings']:,} "
        f"| {s['parameters']['without_embeddings']:,} |",
        f"| size (MB, safetensors) | {_f(t['size_mb'], 2)} | {_f(s['size_mb'], 2)} |",
    ]
    for key in sorted(s.get("latency_ms", {})):
        lines.append(
            f"| CPU latency {key.removeprefix('latency_ms_')} (ms) | {_f(t['latency_ms'].get(key), 2)} "
            f"| {_f(s['latency_ms'][key], 2)} |"
        )
    se, te = s.get("energy"), t.get("energy")
    if se and te and se.get("method") != "unavailable":
        lines.append(
            f"| energy per 1,000 predictions, batch 1 (J, {se['method']}, codecarbon) | {_f(te['joules_per_1000'], 2)} "
            f"| {_f(se['joules_per_1000'], 2)} |"
        )
    rt, trt = s.get("runtime_latency"), t.get("runtime_latency")
    if rt and trt:
        lines.append(
            f"| CPU latency b1 in {rt['runtime']}, the budget's runtime (ms) | {_f(trt['latency_ms_b1'], 2)} "
            f"| {_f(rt['latency_ms_b1'], 2)} |"
        )
    return [
        *lines,
        "",
        f"Latency: median of {r['latency']['repeats']} forward passes, {r['latency']['threads']} CPU thread(s), "
        f"sequence length {r['latency']['seq_len']}, teacher and student measured in the same process.",
        "",
    ]


def _energy_text(e: dict[str, Any] | None) -> str:
    if not e or e.get("method") == "unavailable":
        return ""
    return f"; it used {e['joules']:,.0f} J ({e['method']}, codecarbon)"


def _teacher_text(t: dict[str, Any]) -> str:
    tr = t.get("training")
    if not t.get("finetuned") or not tr:
        return "used as it is (a fine-tuned classifier)"
    per = tr.get("steps_per_epoch")
    took = f", {tr['steps'] / per:.1f} epochs" if per else ""
    return (
        f"fine-tuned here for {tr['steps']} steps{took} (at most {tr.get('epochs')} epochs), best validation at step "
        f"{tr['best_step']}; stopped: {tr['stopped']}"
    )


def _classes(r: dict[str, Any]) -> list[str]:
    """Test recall per class beside the teacher's, and a warning for the classes the student drops."""
    c = r.get("classes")
    if not c:
        return []
    lines = ["## Per class", ""]
    if c["dropped"]:
        lines += [
            f"**Warning:** the student drops {', '.join(f'`{n}`' for n in c['dropped'])}: its recall there is under "
            "half the teacher's on a class the teacher handles.",
            "",
        ]
    lines += ["| class | test examples | teacher recall | student recall |", "|---|---:|---:|---:|"]
    for name, n, t, s in zip(c["classes"], c["support"], c["teacher_recall"], c["student_recall"]):
        lines.append(f"| {name} | {n:,} | {_f(t)} | {_f(s)} |")
    return [*lines, ""]


def _onnx_table(r: dict[str, Any]) -> list[str]:
    """One row per format written (PyTorch, ONNX, int8): file, size, quality, agreement, latency."""
    lines = [
        "## ONNX and int8",
        "",
        f"| format | file | size MB | test {r['metric']} | agreement with PyTorch | latency b1 (ms) "
        "| latency b32 (ms) | teacher b1 / b32 in the same runtime (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("pytorch", "onnx", "int8"):
        f = r["formats"].get(name)
        if f:
            lat = f.get("latency_ms", {})
            lines.append(
                f"| {name} | {f.get('file', '-')} | {_f(f.get('size_mb'), 2)} | {_f(f.get('test_quality'))} | "
                f"{_f(f.get('agreement'))} | {_f(lat.get('latency_ms_b1'), 2)} "
                f"| {_f(lat.get('latency_ms_b32'), 2)} | {_teacher_cell(f.get('teacher_latency_ms'))} |"
            )
    return [
        *lines,
        "",
        "onnxruntime, CPU, same threads and sequence length as above. int8: onnxruntime dynamic quantisation "
        "(int8 weights, activations quantised at run time).",
        "",
    ]


def _teacher_cell(lat: dict[str, float] | None) -> str:
    if not lat:
        return "-"
    return f"{_f(lat.get('latency_ms_b1'), 2)} / {_f(lat.get('latency_ms_b32'), 2)}"


def _strategy(r: dict[str, Any]) -> list[str]:
    """How the student was made (transforms, loss, training), the budget and search, the teacher and data."""
    t, pick, data = r["teacher"], r["pick"], r["data"]
    strategy = pick["strategy"]
    loss = strategy["loss"]
    return [
        "## Strategy",
        "",
        f"- Student transforms: {_steps(strategy['student'].get('transforms', []))}",
        f"- Loss: {_steps(loss.get('terms', []))}; temperature {loss.get('temperature')}, "
        f"layer map `{loss.get('layer_map')}`, "
        f"weighting `{(loss.get('weighting') or {}).get('name', 'static')}`",
        f"- Train overrides searched: {json.dumps(strategy.get('train') or {})}",
        f"- Final training: {r['train']['mode_text']}{_energy_text(r['train'].get('energy'))}",
        f"- Teacher: {_teacher_text(t)}",
        "",
        "## Budget and search",
        "",
        f"- Budget: {json.dumps(r['budget']) if r['budget'] else 'none set in the config'}",
        f"- Pick rule: {pick['rule']}",
        f"- Search: space `{r['study']['space']}`, objectives {', '.join(r['study']['objectives'])}, "
        f"{r['study']['trained']} trained trials, {r['study']['front']} on the front",
        "",
        "![Pareto front, the pick marked](pareto.png)",
        "",
        "## Teacher and data",
        "",
        f"- Teacher: `{t['name']}`" + (" (fine-tuned by autodistill)" if t.get("finetuned") else ""),
        f"- Data: `{data['source']}`; labels {', '.join(data['labels'])}; "
        f"{data['train']:,} train / {data['validation']:,} validation / {data['test']:,} test examples",
        "",
        "`export.json` holds every number above; `autodistill_student.json` the student's resolved form.",
        "",
    ]


def _close_calls(res: dict[str, Any] | None) -> list[str]:
    """The trials the validation split could not tell from the pick (within two standard errors)."""
    if not res or not res["close"]:
        return []
    near = ", ".join(f"{c['trial']} ({c['quality']:.4f})" for c in res["close"])
    return [
        f"Trials {near} lie within two standard errors ({2 * res['standard_error']:.4f}) of the pick's validation "
        f"accuracy on {res['examples']:,} examples: this split cannot tell them apart.",
        "",
    ]


def _candidates(rows: list[dict[str, Any]], examples: int | None, metric: str) -> list[str]:
    """The candidates' line: each final-trained, the best validation kept; for accuracy, how far
    apart two of them must be for the validation split to tell them apart."""
    if not rows:
        return []
    each = "; ".join(
        f"trial {c['trial']}: {c['final_validation']:.4f} (proxy {c['proxy_validation']:.4f})" for c in rows
    )
    line = f"The {len(rows)} best trials under the rule were each trained in full; validation after it: {each}."
    if metric == "accuracy" and examples:
        q = max(c["final_validation"] for c in rows)
        se = 100 * math.sqrt(max(q * (1 - q), 1e-12) / examples)
        line += (
            f" On {examples:,} validation examples an accuracy of {q:.2f} has a standard error of about {se:.1f}"
            " points: candidates closer than that to the best are not told apart by this split."
        )
    return [line, ""]
