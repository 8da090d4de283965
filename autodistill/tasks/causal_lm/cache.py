"""The causal-LM teacher-output cache: per token of the training split, the teacher's top-k logits
(fp16), their vocabulary indices (uint16 when the vocabulary fits, else int32) and the log-sum-exp
of the other logits (fp32), for real tokens only (padding is not stored), memory-mapped by every run
and process. Keyed by the teacher, the token arrays and k, under ``$AUTODISTILL_HOME/cache/``.

Full logits would take ``2 * V`` bytes per token (98,304 for SmolLM2's 49,152-token vocabulary);
the top-k form takes ``k * (2 + 2) + 4`` (260 at k = 64). What the tail approximation costs is
measured by ``benchmarks/lm_topk.py`` (``topk.reconstruction_kl``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodistill.errors import TeacherCacheError
from autodistill.files import replacing_folder
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
) -> TopKStore:
    """The split's cached top-k targets, computed once (under the teacher-home lock) and reused.
    ``load_teacher()`` gives the teacher model; it is called only when the cache must be filled."""
    folder = home() / "cache" / f"lm-{cache_key(teacher_fingerprint, data_fingerprint, name, k, vocab)}"
    if not (folder / "meta.json").is_file():
        with filling(folder, "cache the teacher's top-k logits", progress):
            if not (folder / "meta.json").is_file():
                _fill(folder, load_teacher(), split, k, vocab, batch_size, progress)
    return open_store(folder)


def open_store(folder: Path) -> TopKStore:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {f: np.load(folder / f"{f}.npy", mmap_mode="r") for f in FILES}
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise TeacherCacheError(
            f"The teacher's top-k cache in {folder} is damaged ({err}); remove that folder and run again."
        ) from None
    return TopKStore(**arrays, vocab=int(meta["vocab"]), folder=folder)


def _fill(folder: Path, teacher: Any, split: Any, k: int, vocab: int, batch_size: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    from autodistill.tasks.causal_lm.topk import compress

    lengths = np.asarray(split.attention_mask, dtype=np.int64).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    index_dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.int32
    device = next(teacher.parameters()).device
    with replacing_folder(folder, keep_existing=True) as tmp:
        out = {
            "values": np.lib.format.open_memmap(tmp / "values.npy", "w+", np.float16, (total, k)),
            "indices": np.lib.format.open_memmap(tmp / "indices.npy", "w+", index_dtype, (total, k)),
            "rest_lse": np.lib.format.open_memmap(tmp / "rest_lse.npy", "w+", np.float32, (total,)),
        }
        starts = range(0, len(lengths), batch_size)
        for start in tqdm(starts, desc="teacher top-k", disable=not progress, leave=False):
            rows = slice(start, start + batch_size)
            ids = torch.as_tensor(np.asarray(split.input_ids[rows]), dtype=torch.long, device=device)
            mask = torch.as_tensor(np.asarray(split.attention_mask[rows]), dtype=torch.long, device=device)
            with torch.inference_mode():
                logits = teacher(input_ids=ids, attention_mask=mask).logits[..., :vocab].float()
            t = compress(logits, k)
            for j, n in enumerate(lengths[rows]):
                a = int(offsets[start + j])
                out["values"][a : a + n] = t.values[j, :n].cpu().numpy().astype(np.float16)
                out["indices"][a : a + n] = t.indices[j, :n].cpu().numpy().astype(index_dtype)
                out["rest_lse"][a : a + n] = t.rest_lse[j, :n].cpu().numpy()
        for arr in out.values():
            arr.flush()
        if not np.isfinite(np.asarray(out["values"][:: max(1, total // 1000)], dtype=np.float32)).all():
            raise TeacherCacheError("The teacher's logits are not finite; the teacher cannot be used as it is.")
        np.save(tmp / "offsets.npy", offsets)
        (tmp / "meta.json").write_text(json.dumps({"k": k, "vocab": vocab, "tokens": total, "rows": len(lengths)}))
