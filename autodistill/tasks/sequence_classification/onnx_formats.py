"""``--formats onnx,int8`` for a classifier: the student as an ONNX graph (checked against PyTorch on
the test split, as the saved student encodes it) and its int8 quantisation, each with its size,
test quality, agreement with PyTorch and onnxruntime latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autodistill.data import Encoded

# batch sizes each format is timed at (the card's b1 and b32 columns)
FORMAT_BATCHES = (1, 32)


def onnx_formats(final: Any, prep: Any, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    """Write ``onnx/model.onnx`` (and ``onnx/model.int8.onnx`` with ``int8``) into ``folder``; the
    card's row for PyTorch and for each file. Nothing is written without ``onnx`` in ``formats``."""
    if "onnx" not in formats:
        return {}
    from autodistill.tasks.sequence_classification.distill import shipped_split
    from autodistill.tasks.sequence_classification.evaluate import latency_seq_len
    from autodistill.tasks.sequence_classification.onnx import export_onnx, quantize_int8
    from autodistill.train.inference import predict_logits

    cfg = prep.cfg
    seq_len = latency_seq_len(cfg, prep.encoded["test"].lengths)
    build = final.run.build
    model = build.export_model().to("cpu").eval()
    # the test split as users of the saved student encode it (its own tokenizer), as for the card
    enc, pad_id = shipped_split(prep, build, "test")
    ref = predict_logits(model, enc, pad_id, cfg.distill.eval_batch_size, "cpu")
    out: dict[str, Any] = {"pytorch": _pytorch_row(model, cfg, enc.labels, ref, seq_len)}
    fp32 = folder / "onnx" / "model.onnx"
    export_onnx(model, fp32)
    files = [("onnx", fp32)]
    if "int8" in formats:
        q = folder / "onnx" / "model.int8.onnx"
        quantize_int8(fp32, q)
        files.append(("int8", q))
    vocab = int(model.config.vocab_size)
    for name, path in files:
        out[name] = _file_row(name, path, folder, cfg, (enc, pad_id), ref, vocab, seq_len)
        out[name]["teacher_latency_ms"] = _teacher_latency(prep, name, vocab, seq_len)
    out["pytorch"]["teacher_latency_ms"] = _teacher_pytorch_latency(prep, seq_len)
    return out


def _teacher_latency(prep: Any, name: str, vocab: int, seq_len: int) -> dict[str, float]:
    """The teacher's latency in the same runtime as the file ``name`` (its graph made once)."""
    from autodistill.tasks.sequence_classification.onnx import ort_latency
    from autodistill.tasks.sequence_classification.runtime import teacher_session

    ev = prep.cfg.evaluate
    sess = teacher_session(prep.teacher_model(), "onnx" if name == "onnx" else "onnx-int8", ev.threads)
    teacher_vocab = int(prep.teacher_model().config.vocab_size)
    return ort_latency(sess, min(vocab, teacher_vocab), FORMAT_BATCHES, seq_len, ev.warmup, ev.repeats)


def _teacher_pytorch_latency(prep: Any, seq_len: int) -> dict[str, float]:
    from autodistill.evaluate import measure_latency

    ev = prep.cfg.evaluate
    return measure_latency(
        prep.teacher_model(), batch_sizes=FORMAT_BATCHES, seq_len=seq_len, threads=ev.threads, warmup=ev.warmup,
        repeats=ev.repeats,
    )  # fmt: skip


def _pytorch_row(model: Any, cfg: Any, labels: np.ndarray, ref: np.ndarray, seq_len: int) -> dict[str, Any]:
    """The saved safetensors model's row: what the ONNX files are compared against."""
    from autodistill.evaluate import measure_latency, state_size_mb, task_metrics

    ev = cfg.evaluate
    return {
        "file": "model.safetensors",
        "size_mb": state_size_mb(model),
        "test_quality": task_metrics(labels, ref.argmax(-1), cfg.data.metric)["quality"],
        "agreement": 1.0,
        "latency_ms": measure_latency(
            model,
            batch_sizes=FORMAT_BATCHES,
            seq_len=seq_len,
            threads=ev.threads,
            warmup=ev.warmup,
            repeats=ev.repeats,
        ),
    }


def _file_row(
    name: str,
    path: Path,
    folder: Path,
    cfg: Any,
    test: tuple[Encoded, int],
    ref: np.ndarray,
    vocab: int,
    seq_len: int,
) -> dict[str, Any]:
    """One ONNX file's row. fp32 must match PyTorch (``check_parity`` raises otherwise); int8 is
    lossy and is measured, not checked."""
    from autodistill.evaluate import task_metrics
    from autodistill.tasks.sequence_classification.onnx import check_parity, file_mb, ort_latency, ort_logits, session

    ev = cfg.evaluate
    enc, pad_id = test
    sess = session(path, ev.threads)
    logits = ort_logits(sess, enc, pad_id, 64)
    if name == "onnx":
        parity = check_parity(ref, logits, "The ONNX export (onnxruntime)")
    else:
        parity = {
            "agreement": float((ref.argmax(-1) == logits.argmax(-1)).mean()),
            "max_abs_logit_diff": float(np.abs(ref - logits).max()),
        }
    return {
        "file": str(path.relative_to(folder)),
        "size_mb": round(file_mb(path), 3),
        "test_quality": task_metrics(enc.labels, logits.argmax(-1), cfg.data.metric)["quality"],
        **parity,
        "latency_ms": ort_latency(sess, vocab, FORMAT_BATCHES, seq_len, ev.warmup, ev.repeats),
    }
