"""The causal-LM teacher-output cache: per token of the training split, the teacher's top-k logits
(fp16), their vocabulary indices (uint16 when the vocabulary fits, else int32) and the log-sum-exp
of the other logits (fp32), for real tokens only (padding is not stored), memory-mapped by every run
and process. Keyed by the teacher, the token arrays and k, under ``$AUTODISTILL_HOME/cache/``.

When (and only when) a loss reads the teacher's hidden states (``hidden_mse``, ``hidden_cos``), the
train split's folder also holds ``hidden-<i>.npy``: the teacher's hidden state at HF hidden index
``i`` (0: embeddings, i: output of layer i), ``[tokens, hidden]`` fp16, real tokens only, one file per
index. A folder without them is extended in place (one teacher pass for all the missing indices,
the top-k arrays untouched); when neither exists, one pass fills both. Each index costs
``2 * hidden`` bytes per token: 1,152 for SmolLM2's hidden size of 576, about 4.4 times the top-k
arrays at k = 64, so a student mapping 15 of SmolLM2's 30 layers adds about 17 KB per token
(17 GB for a million training tokens). fp16 holds SmolLM2's states: its largest, about 22,500 in
two channels of layers 12 to 28, are under fp16's 65,504 (a teacher's state beyond it is refused).

Full logits would take ``2 * V`` bytes per token (98,304 for SmolLM2's 49,152-token vocabulary);
the top-k form takes ``k * (2 + 2) + 4`` (260 at k = 64). What the tail approximation costs is
measured by ``benchmarks/lm_topk.py`` (``topk.reconstruction_kl``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.errors import TeacherCacheError
from autodistill.files import replacing_file, replacing_folder
from autodistill.fingerprint import hash_json, home
from autodistill.teacher.lock import filling

FILES = ("values", "indices", "rest_lse", "offsets")
VERSION = 1


@dataclass
class TopKStore:
    """The cached targets of one split: ``offsets[i]:offsets[i + 1]`` are row i's real tokens."""

    values: np.ndarray  # [tokens, k] fp16
    indices: np.ndarray  # [tokens, k] uint16 / int32
    rest_lse: np.ndarray  # [tokens] fp32
    offsets: np.ndarray  # [rows + 1] int64
    vocab: int
    folder: Path
    hidden: dict[int, np.ndarray] = field(default_factory=dict)  # hidden index -> [tokens, hidden] fp16

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    @property
    def bytes_per_token(self) -> int:
        return self.values.itemsize * self.k + self.indices.itemsize * self.k + self.rest_lse.itemsize

    def batch(self, rows: np.ndarray, block: int, device: Any = "cpu") -> Any:
        """The targets of ``rows`` as a ``TopK`` of ``[len(rows), block, k]`` (padding positions hold
        a harmless uniform placeholder; the loss mask never counts them)."""
        from autodistill.tasks.causal_lm.topk import TopK

        n, k = len(rows), self.k
        values = np.zeros((n, block, k), dtype=np.float32)
        indices = np.tile(np.arange(k, dtype=np.int64), (n, block, 1))
        rest = np.zeros((n, block), dtype=np.float32)
        for j, r in enumerate(rows):
            a, b = int(self.offsets[r]), int(self.offsets[r + 1])
            values[j, : b - a] = self.values[a:b]
            indices[j, : b - a] = self.indices[a:b]
            rest[j, : b - a] = self.rest_lse[a:b]
        return TopK(
            torch.from_numpy(values).to(device),
            torch.from_numpy(indices).to(device),
            torch.from_numpy(rest).to(device),
            self.vocab,
        )

    def hidden_batch(self, rows: np.ndarray, block: int, layers: Sequence[int], device: Any = "cpu") -> dict:
        """The teacher's hidden states of ``rows`` at the hidden indices ``layers``, each a float32
        ``[len(rows), block, hidden]`` tensor with zeros at padding positions."""
        missing = sorted(set(layers) - set(self.hidden))
        if missing:
            raise ValueError(
                f"The teacher cache in {self.folder} holds no hidden states at indices {missing}; "
                "ask for them when the cache is opened (topk_cache(hidden_layers=...))."
            )
        out = {}
        for i in layers:
            arr = self.hidden[i]
            padded = np.zeros((len(rows), block, arr.shape[1]), dtype=np.float16)  # widened on the device
            for j, r in enumerate(rows):
                a, b = int(self.offsets[r]), int(self.offsets[r + 1])
                padded[j, : b - a] = arr[a:b]
            out[i] = torch.from_numpy(padded).to(device).float()
        return out


def cache_key(teacher_fingerprint: str, data_fingerprint: str, split: str, k: int, vocab: int) -> str:
    parts = {"teacher": teacher_fingerprint, "data": data_fingerprint, "split": split, "k": k, "vocab": vocab}
    return hash_json({**parts, "kind": "causal-lm top-k", "version": VERSION})[:24]


def topk_cache(
    load_teacher: Any,
    teacher_fingerprint: str,
    split: Any,
    data_fingerprint: str,
    k: int,
    vocab: int,
    name: str = "train",
    batch_size: int = 8,
    progress: bool = True,
    hidden_layers: Sequence[int] = (),
) -> TopKStore:
    """The split's cached top-k targets, computed once (under the teacher-home lock) and reused,
    with the teacher's hidden states at the HF hidden indices ``hidden_layers`` (any held already
    are opened too). ``load_teacher()`` gives the teacher model; it is called only when the cache
    must be filled or extended."""
    folder = home() / "cache" / f"lm-{cache_key(teacher_fingerprint, data_fingerprint, name, k, vocab)}"
    layers = sorted({int(i) for i in hidden_layers})
    if not (folder / "meta.json").is_file() or _missing(folder, layers):
        with filling(folder, "cache the teacher's outputs", progress):
            if not (folder / "meta.json").is_file():
                _fill(folder, load_teacher(), split, k, vocab, batch_size, progress, layers)
            elif _missing(folder, layers):
                _extend(folder, load_teacher(), split, _missing(folder, layers), batch_size, progress)
    return open_store(folder)


def hidden_file(folder: Path, index: int) -> Path:
    return folder / f"hidden-{index}.npy"


def _missing(folder: Path, layers: list[int]) -> list[int]:
    return [i for i in layers if not hidden_file(folder, i).is_file()]


def open_store(folder: Path) -> TopKStore:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {f: np.load(folder / f"{f}.npy", mmap_mode="r") for f in FILES}
        hidden = {int(p.stem.split("-")[1]): np.load(p, mmap_mode="r") for p in folder.glob("hidden-*.npy")}
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise TeacherCacheError(
            f"The teacher's top-k cache in {folder} is damaged ({err}); remove that folder and run again."
        ) from None
    return TopKStore(**arrays, vocab=int(meta["vocab"]), folder=folder, hidden=dict(sorted(hidden.items())))


def _fill(
    folder: Path, teacher: Any, split: Any, k: int, vocab: int, batch_size: int, progress: bool, layers: list[int]
) -> None:
    """The top-k arrays (and the hidden states at ``layers``) of the split in one teacher pass."""
    offsets = _offsets(split)
    total = int(offsets[-1])
    index_dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.int32
    width = int(teacher.config.hidden_size)
    with replacing_folder(folder, keep_existing=True) as tmp:
        out = {
            "values": np.lib.format.open_memmap(tmp / "values.npy", "w+", np.float16, (total, k)),
            "indices": np.lib.format.open_memmap(tmp / "indices.npy", "w+", index_dtype, (total, k)),
            "rest_lse": np.lib.format.open_memmap(tmp / "rest_lse.npy", "w+", np.float32, (total,)),
        }
        for i in layers:
            out[i] = np.lib.format.open_memmap(hidden_file(tmp, i), "w+", np.float16, (total, width))
        _teacher_pass(teacher, split, offsets, batch_size, progress, out, k, vocab)
        if not np.isfinite(np.asarray(out["values"][:: max(1, total // 1000)], dtype=np.float32)).all():
            raise TeacherCacheError("The teacher's logits are not finite; the teacher cannot be used as it is.")
        np.save(tmp / "offsets.npy", offsets)
        (tmp / "meta.json").write_text(json.dumps({"k": k, "vocab": vocab, "tokens": total, "rows": len(offsets) - 1}))


def _extend(folder: Path, teacher: Any, split: Any, layers: list[int], batch_size: int, progress: bool) -> None:
    """Add the hidden states at ``layers`` to a filled folder in one teacher pass; each file takes
    its place only when the pass is complete, and the top-k arrays are not touched."""
    offsets = np.load(folder / "offsets.npy")
    if len(offsets) != len(split.attention_mask) + 1 or not np.array_equal(offsets, _offsets(split)):
        raise TeacherCacheError(
            f"The teacher's top-k cache in {folder} does not match its split; remove that folder and run again."
        )
    total, width = int(offsets[-1]), int(teacher.config.hidden_size)
    with ExitStack() as stack:
        out = {}
        for i in layers:
            tmp = stack.enter_context(replacing_file(hidden_file(folder, i)))
            out[i] = np.lib.format.open_memmap(tmp, "w+", np.float16, (total, width))
        _teacher_pass(teacher, split, offsets, batch_size, progress, out)


def _offsets(split: Any) -> np.ndarray:
    lengths = np.asarray(split.attention_mask, dtype=np.int64).sum(axis=1)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _teacher_pass(
    teacher: Any,
    split: Any,
    offsets: np.ndarray,
    batch_size: int,
    progress: bool,
    out: dict,
    k: int = 0,
    vocab: int = 0,
) -> None:
    """Run the teacher over the split and write each row's real tokens into the memory maps of
    ``out``: "values", "indices", "rest_lse" (when present, from the logits' top k) and hidden
    index -> array. Without top-k arrays only the base model runs (no LM head)."""
    from tqdm.auto import tqdm

    from autodistill.tasks.causal_lm.topk import compress

    layers = sorted(i for i in out if isinstance(i, int))
    want_logits = "values" in out
    model = teacher if want_logits else teacher.base_model
    device = next(teacher.parameters()).device
    n_rows = len(offsets) - 1
    for start in tqdm(range(0, n_rows, batch_size), desc="teacher outputs", disable=not progress, leave=False):
        rows = slice(start, start + batch_size)
        ids = torch.as_tensor(np.asarray(split.input_ids[rows]), dtype=torch.long, device=device)
        mask = torch.as_tensor(np.asarray(split.attention_mask[rows]), dtype=torch.long, device=device)
        hidden_arg = {"output_hidden_states": layers} if layers else {}  # only these are kept (transformers 5)
        with torch.inference_mode():
            found = model(input_ids=ids, attention_mask=mask, **hidden_arg)
            parts = {}
            if want_logits:
                t = compress(found.logits[..., :vocab].float(), k)
                parts = {"values": t.values.half(), "indices": t.indices, "rest_lse": t.rest_lse}
            for i in layers:
                parts[i] = found.hidden_states[i].half()
                if not bool(torch.isfinite(parts[i]).all()):
                    raise TeacherCacheError(
                        f"The teacher's hidden states at index {i} do not fit in fp16 (beyond +-65504 or not "
                        "finite); the hidden-state losses cannot be used with this teacher."
                    )
        parts = {name: x.cpu().numpy() for name, x in parts.items()}
        for j in range(ids.shape[0]):
            a, b = int(offsets[start + j]), int(offsets[start + j + 1])
            for name, x in parts.items():
                out[name][a:b] = x[j, : b - a]
    for arr in out.values():
        arr.flush()
