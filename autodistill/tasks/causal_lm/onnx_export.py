"""ONNX export of a causal-LM student: one ``.onnx`` file that onnxruntime (or any ONNX runtime) runs
without PyTorch or transformers, the architecture held in the graph.

The graph is the model's forward as a full-sequence scorer: ``input_ids`` and ``attention_mask``
[batch, sequence] in, ``logits`` [batch, sequence, vocab] out, both axes dynamic, float32, with no
key/value cache. It serves perplexity, ranking and one-step next-token prediction; generating text
token by token with it recomputes the whole prefix at each step. Positions count from the left edge
as in the model's own forward without ``position_ids``, so right padding is the padding to use.

The export and its check reuse the classifier's (``sequence_classification.onnx``): torch.onnx's
dynamo exporter with dynamic batch and sequence axes, then onnxruntime against PyTorch on random
token ids, here at every attended position of two batch shapes other than the traced one. The file
is written whole or not at all: a failed export or check leaves the target as it was. Weights are
kept inside the one file, so models of 2 GB or more (protobuf's limit) are refused rather than
written with external data files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.errors import ConfigError
from autodistill.files import replacing_file

ONNX_INPUTS = ("input_ids", "attention_mask")
# protobuf cannot serialise a message of 2 GiB or more, and the weights are kept inside the file
MAX_FILE_BYTES = 2**31
# (batch, sequence) of the random check inputs: neither is the traced (2, 8), so the dynamic axes are exercised
CHECK_SHAPES = ((1, 7), (3, 12))
# the only transformers experts implementation that traces to ONNX: "grouped_mm" calls a kernel
# torch.onnx has no ONNX function for, "eager" loops over a data-dependent set of experts
ONNX_EXPERTS = "batched_mm"


class _Scorer(torch.nn.Module):
    """The model's forward on ``input_ids`` and ``attention_mask`` alone, without a cache."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)


def onnx_supported(model: Any) -> str | None:
    """None if ``model``'s architecture exports to ONNX here, else the reason it does not."""
    experts = getattr(model.config, "_experts_implementation", None)
    if experts != ONNX_EXPERTS and any(isinstance(getattr(m, "num_experts", None), int) for m in model.modules()):
        return (
            f"its mixture-of-experts layers run through transformers' {experts!r} experts implementation, "
            "which torch.onnx cannot trace to an ONNX graph"
        )
    size = 4 * sum(p.numel() for p in model.parameters())  # float32, tied weights once
    if size >= MAX_FILE_BYTES:
        return (
            f"its float32 weights take {size / 1e9:.2f} GB, and a single ONNX file holds less than "
            f"{MAX_FILE_BYTES / 1e9:.2f} GB (external data files are not written)"
        )
    return None


def write_onnx(model: Any, path: Path, vocab: int | None = None, opset: int | None = None) -> dict[str, Any]:
    """Write ``model`` as a float32 ONNX scorer at ``path`` (replaced whole, never half written) and
    check it with onnxruntime against PyTorch on random ids below ``vocab`` (default: every embedding
    row). ``opset``: the ONNX opset (default: torch.onnx's). Returns the file's name, size in MB, the
    largest logit difference, the next-token agreement, the opset and ``kv_cache: False``."""
    from autodistill.tasks.sequence_classification.onnx import file_mb

    reason = onnx_supported(model)
    if reason is not None:
        raise ConfigError(_refusal(model, reason))
    rows = model.get_input_embeddings().num_embeddings
    vocab = rows if vocab is None else vocab
    if not 0 < vocab <= rows:
        raise ConfigError(
            f"The ONNX check's vocabulary must be between 1 and the model's {rows} embedding rows. Got {vocab} instead."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _cpu_float32_eval(model) as ready, replacing_file(path) as tmp:
        scorer = _Scorer(ready).eval()
        used_opset = _export(scorer, tmp, opset, model)
        parity = _check(scorer, tmp, vocab)
    return {
        "file": path.name,
        "size_mb": round(file_mb(path), 3),
        "max_abs_diff": parity["max_abs_logit_diff"],
        "agreement": parity["agreement"],
        "opset": used_opset,
        "kv_cache": False,
    }


def _refusal(model: Any, reason: str) -> str:
    return (
        f"The export format 'onnx' cannot write this student ({type(model).__name__}): {reason}. "
        "Leave 'onnx' out of --formats for it."
    )


@contextmanager
def _cpu_float32_eval(model: Any) -> Iterator[Any]:
    """``model`` in eval mode on the CPU in float32: itself when it already is there (its train/eval
    modes are restored afterwards), else a copy, so the caller's model stays where and as it was."""
    if all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters()):
        modes = {m: m.training for m in model.modules()}
        try:
            yield model.eval()
        finally:
            for m, training in modes.items():
                m.train(training)
        return
    yield copy.deepcopy(model).to("cpu", torch.float32).eval()


def _export(scorer: _Scorer, tmp: Path, opset: int | None, model: Any) -> int:
    """Trace ``scorer`` into ``tmp`` with the classifier's exporter; the file's default-domain opset.
    A failure of torch.onnx becomes a ConfigError with its reason."""
    import onnx

    from autodistill.tasks.sequence_classification.onnx import export_onnx

    try:
        names = export_onnx(scorer, tmp, opset)
    except Exception as exc:  # torch.export and torch.onnx raise many types; all mean "cannot export this"
        raise ConfigError(_refusal(model, f"torch.onnx stopped with {_root_cause(exc)}")) from exc
    assert names == ONNX_INPUTS, names  # the scorer's forward takes exactly these
    graph = onnx.load(str(tmp), load_external_data=False)
    return next(int(o.version) for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's type and first line: torch.onnx wraps the reason in pages of advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first[:300]}"


def _check(scorer: _Scorer, tmp: Path, vocab: int) -> dict[str, float]:
    """onnxruntime against PyTorch at every attended position of random ids, the last row of each
    batch right-padded; raises ``ExportError`` if a next token differs where PyTorch's is no tie."""
    from autodistill.tasks.sequence_classification.onnx import check_parity, session

    sess = session(tmp)
    gen = torch.Generator().manual_seed(0)
    ref_rows, ort_rows = [], []
    for batch, seq in CHECK_SHAPES:
        ids = torch.randint(0, vocab, (batch, seq), generator=gen)
        mask = torch.ones_like(ids)
        if batch > 1:
            mask[-1, seq // 2 :] = 0
        with torch.no_grad():
            ref = scorer(ids, mask).logits.float().numpy()
        got = sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        real = mask.numpy().astype(bool)
        ref_rows.append(ref[real])
        ort_rows.append(got[real])
    return check_parity(np.concatenate(ref_rows), np.concatenate(ort_rows), "The ONNX export (onnxruntime)")
