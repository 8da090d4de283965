"""Timing in the runtime the user will serve with (``budget.runtime``): PyTorch, the ONNX graph in
onnxruntime (``onnx``), or its dynamic int8 quantisation (``onnx-int8``).

The same student can run several times faster in onnxruntime than in PyTorch at batch 1, and by a
different factor than its teacher, so a speed budget timed in PyTorch refuses students that the
serving runtime could afford. Here teacher and student are both exported and timed in the chosen
runtime, their runs interleaved (A B A B) like ``evaluate.measure_latencies``. The teacher's graph
is made once per teacher model object and kept for the process; a student's is made per call in a
temporary folder and removed after.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import torch

RUNTIMES = ("pytorch", "onnx", "onnx-int8")

# teacher model -> {runtime: (its temporary folder, the onnxruntime session)}
_TEACHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def runtime_session(model: torch.nn.Module, runtime: str, folder: Path, threads: int) -> Any:
    """``model`` exported to ONNX in ``folder`` (and quantised for ``onnx-int8``), as a session."""
    from autodistill.tasks.sequence_classification.onnx import export_onnx, quantize_int8, session

    if runtime not in RUNTIMES[1:]:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES[1:])}; got {runtime!r}")
    fp32 = folder / "model.onnx"
    export_onnx(model, fp32)
    if runtime == "onnx":
        return session(fp32, threads)
    q = folder / "model.int8.onnx"
    quantize_int8(fp32, q)
    return session(q, threads)


def teacher_session(teacher: torch.nn.Module, runtime: str, threads: int) -> Any:
    kept = _TEACHERS.setdefault(teacher, {})
    if runtime not in kept:
        folder = tempfile.TemporaryDirectory(prefix="autodistill-teacher-runtime-")
        # the exporter moves a model to the CPU and to eval mode: a copy, so the teacher stays as it is
        kept[runtime] = (folder, runtime_session(copy.deepcopy(teacher), runtime, Path(folder.name), threads))
    return kept[runtime][1]


def ort_latencies(
    sessions: list[Any], vocab: int, batch_size: int, seq_len: int, warmup: int, repeats: int
) -> list[float]:
    """Median milliseconds per run of each session at one batch size, their runs interleaved."""
    from autodistill.tasks.sequence_classification.onnx import _feed

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=gen)
    feeds = [_feed(s, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}) for s in sessions]
    for sess, feed in zip(sessions, feeds):
        for _ in range(warmup):
            sess.run(["logits"], feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for i, (sess, feed) in enumerate(zip(sessions, feeds)):
            start = time.perf_counter()
            sess.run(["logits"], feed)
            times[i].append((time.perf_counter() - start) * 1000.0)
    return [float(statistics.median(t)) for t in times]


def runtime_latency_b1(
    cfg: Any, student: torch.nn.Module, teacher: torch.nn.Module, seq_len: int
) -> tuple[float, float]:
    """Batch-1 milliseconds of the student and the teacher in ``cfg.budget.runtime`` (not pytorch)."""
    ev, runtime = cfg.evaluate, cfg.budget.runtime
    teacher_sess = teacher_session(teacher, runtime, ev.threads)
    was_training = student.training
    if any(p.device.type != "cpu" for p in student.parameters()):  # the exporter moves a model to the CPU
        student = copy.deepcopy(student)
    vocab = min(int(student.config.vocab_size), int(teacher.config.vocab_size))
    with tempfile.TemporaryDirectory(prefix="autodistill-student-runtime-") as folder:
        student_sess = runtime_session(student, runtime, Path(folder), ev.threads)
        s, t = ort_latencies([student_sess, teacher_sess], vocab, 1, seq_len, ev.warmup, ev.repeats)
    student.train(was_training)
    return s, t
