"""ONNX and int8: export with ``torch.onnx.export`` (the dynamo exporter), check that onnxruntime
predicts what PyTorch predicts, quantise with onnxruntime's dynamic quantisation, and measure.

ONNX is also how a registered student runs without autodistill: the graph holds the architecture.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.data import Encoded, batch_indices, collate
from autodistill.errors import AutodistillError
from autodistill.evaluate.predict import model_input_keys

ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# a prediction may flip between runtimes only where PyTorch's top two logits are this close (a tie)
TIE_MARGIN = 1e-4


class ExportError(AutodistillError, RuntimeError):
    """An export step failed a check (e.g. onnxruntime disagrees with PyTorch)."""


class _Logits(torch.nn.Module):
    """The model with plain tensor inputs and the logits as the one output."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits


def input_names(model: torch.nn.Module) -> tuple[str, ...]:
    keys = model_input_keys(model)
    return tuple(k for k in ONNX_INPUTS if k in keys)


def export_onnx(model: torch.nn.Module, path: Path, opset: int | None = None) -> tuple[str, ...]:
    """Write ``model`` (eval, CPU) as ONNX with dynamic batch and sequence axes; returns its input names."""
    from torch.export import Dim

    model = model.to("cpu").eval()
    names = input_names(model)
    wrapper = _Logits(model, names).eval()
    # distinct tensors per input: the exporter treats one tensor passed twice as one graph input
    example = {
        "input_ids": torch.full((2, 8), 5, dtype=torch.long),
        "attention_mask": torch.ones(2, 8, dtype=torch.long),
        "token_type_ids": torch.zeros(2, 8, dtype=torch.long),
    }
    args = tuple(example[n] for n in names)
    batch, seq = Dim("batch"), Dim("sequence")
    dynamic = {n: {0: batch, 1: seq} for n in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            input_names=list(names),
            output_names=["logits"],
            dynamic_shapes={"inputs": tuple(dynamic.values())},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return names


def session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _feed(sess: Any, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    feed = {}
    for inp in sess.get_inputs():
        t = batch.get(inp.name)
        if t is None:  # no segment ids in the data: all zeros, as the model's default
            t = torch.zeros_like(batch["input_ids"])
        feed[inp.name] = t.numpy().astype(np.int64)
    return feed


def ort_logits(
    sess: Any, enc: Encoded, pad_id: int, batch_size: int = 64, token_id_map: torch.Tensor | None = None
) -> np.ndarray:
    """onnxruntime logits over an encoded split, in example order."""
    out: np.ndarray | None = None
    for idx in batch_indices(enc.lengths, batch_size, shuffle=False, seed=0):
        batch = collate(enc, idx, pad_id)
        if token_id_map is not None:
            batch["input_ids"] = token_id_map[batch["input_ids"]]
        logits = sess.run(["logits"], _feed(sess, batch))[0]
        if out is None:
            out = np.zeros((len(enc.lengths), logits.shape[-1]), dtype=np.float32)
        out[np.asarray(idx)] = logits
    assert out is not None
    return out


def check_parity(reference: np.ndarray, other: np.ndarray, what: str) -> dict[str, float]:
    """Same predictions as PyTorch on every example that is not a tie; raises ExportError if not."""
    ref_pred, pred = reference.argmax(-1), other.argmax(-1)
    top2 = np.sort(reference, axis=-1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    flips = (ref_pred != pred) & (margin > TIE_MARGIN)
    max_diff = float(np.abs(reference - other).max()) if len(reference) else 0.0
    if flips.any():
        bad = np.flatnonzero(flips)[:5].tolist()
        raise ExportError(
            f"{what} predicts differently from PyTorch on {int(flips.sum())} of {len(pred)} test examples "
            f"(e.g. examples {bad}; largest logit difference {max_diff:.3g}). The export is not trustworthy; "
            "nothing was written to the target folder."
        )
    return {"agreement": float((ref_pred == pred).mean()) if len(pred) else 1.0, "max_abs_logit_diff": max_diff}


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_name(out.stem + ".pre.onnx")
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization warns through the root logger
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        _drop_shape_annotations(pre)
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)


def _drop_shape_annotations(path: Path) -> None:
    """Remove the graph's recorded intermediate shapes (``value_info``); the quantiser infers them anew.

    The dynamo exporter records a shape for every initializer too; onnxruntime 1.30's pre-processing
    transposes some weights (the classifier's [2, 384] becomes [384, 2]) and keeps the old record,
    and the quantiser's shape inference then stops on the disagreement. Seen on a GPU machine with
    onnxruntime 1.30; 1.32 quantises the same graph identically with or without the records.
    """
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def ort_latency(
    sess: Any, vocab: int, batch_sizes: tuple[int, ...], seq_len: int, warmup: int = 3, repeats: int = 10
) -> dict[str, float]:
    """Median milliseconds per run at each batch size, random ids, full mask (as ``measure_latency``)."""
    out = {}
    for bs in batch_sizes:
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (bs, seq_len), generator=gen)
        feed = _feed(sess, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        for _ in range(warmup):
            sess.run(["logits"], feed)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            sess.run(["logits"], feed)
            times.append((time.perf_counter() - start) * 1000.0)
        out[f"latency_ms_b{bs}"] = float(statistics.median(times))
    return out


def file_mb(path: Path) -> float:
    return path.stat().st_size / 1e6
