"""The teacher-output cache: the teacher runs once per split, every later run reads from disk.

Layout under ``<home>/cache/<key>/`` (key = teacher + data + tokenizer + max length):
``<split>.logits.npy`` fp16 [N, C]; ``<split>.hidden<j>.npy`` fp16 [total tokens, H] (unpadded,
rows of example i at ``offsets[i]:offsets[i+1]``); ``<split>.attn<j>.npy`` fp16, the flattened
[heads, L_i, L_i] maps one after another; ``<split>.offsets.npy``. Each file is written to a
temporary name and renamed, so readers in other processes never see a half-written array, and
read memory-mapped. A split whose files are damaged (cut short, garbled, sizes that disagree,
non-finite values) is removed with a warning and computed again.
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from autodistill.data import Encoded, batch_indices, collate
from autodistill.errors import AutodistillError, TeacherCacheError, TeacherError
from autodistill.files import open_replacing, write_json
from autodistill.teacher.cache_check import split_files, split_problem
from autodistill.teacher.lock import filling


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with open_replacing(path, "wb") as fh:
        np.save(fh, array)


@dataclass
class SplitOutputs:
    logits: np.ndarray
    offsets: np.ndarray | None = None
    lengths: np.ndarray | None = None
    hidden: dict[int, np.ndarray] = field(default_factory=dict)
    attention: dict[int, np.ndarray] = field(default_factory=dict)
    qkv: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    attn_offsets: np.ndarray | None = None
    heads: int = 0
    files: dict[str, Path] = field(default_factory=dict)  # array name -> its file, for error messages


class TeacherOutputs:
    """Memory-mapped teacher outputs of every split, gathered into padded batch tensors.

    Gathered rows are checked for NaN and infinity (the per-token files are too large to scan
    whole on every run): a damaged file is removed with its split, and the error names it."""

    def __init__(self, splits: dict[str, SplitOutputs], cache: TeacherCache | None = None) -> None:
        self.splits = splits
        self.cache = cache

    def logits(self, split: str) -> np.ndarray:
        return np.asarray(self.splits[split].logits, dtype=np.float32)

    def batch(self, split: str, indices: np.ndarray, seq_len: int, device: Any = "cpu") -> dict[str, Any]:
        s = self.splits[split]
        logits = torch.from_numpy(np.asarray(s.logits[indices], dtype=np.float32))
        out: dict[str, Any] = {"teacher_logits": self._finite(split, "logits", logits).to(device)}
        if s.hidden:
            out["teacher_hidden"] = {
                j: self._finite(split, f"hidden{j}", self._gather_hidden(s, arr, indices, seq_len)).to(device)
                for j, arr in s.hidden.items()
            }
        if s.qkv:
            out["teacher_qkv"] = {
                j: tuple(
                    self._finite(split, f"{x}{j}", self._gather_hidden(s, a, indices, seq_len)).to(device)
                    for x, a in zip("qkv", arrs)
                )
                for j, arrs in s.qkv.items()
            }
        if s.attention:
            out["teacher_attentions"] = {
                j: self._finite(split, f"attn{j}", self._gather_attn(s, arr, indices, seq_len)).to(device)
                for j, arr in s.attention.items()
            }
        return out

    def _finite(self, split: str, what: str, values: torch.Tensor) -> torch.Tensor:
        if bool(torch.isfinite(values).all()):
            return values
        path = self.splits[split].files.get(what, f"{split}.{what}.npy")
        if self.cache is not None:
            self.cache.discard(split)
        raise TeacherCacheError(
            f"The teacher-output cache file {str(path)!r} holds NaN or infinite values, so it is damaged "
            "(the learning rate plays no part). Its split's cache files were removed; run again and they "
            "are computed anew from the teacher."
        )

    @staticmethod
    def _gather_hidden(s: SplitOutputs, arr: np.ndarray, indices: np.ndarray, seq_len: int) -> torch.Tensor:
        buf = np.zeros((len(indices), seq_len, arr.shape[1]), dtype=np.float32)
        for row, i in enumerate(indices):
            a, b = s.offsets[i], s.offsets[i + 1]
            buf[row, : b - a] = arr[a:b]
        return torch.from_numpy(buf)

    @staticmethod
    def _gather_attn(s: SplitOutputs, arr: np.ndarray, indices: np.ndarray, seq_len: int) -> torch.Tensor:
        buf = np.zeros((len(indices), s.heads, seq_len, seq_len), dtype=np.float32)
        for row, i in enumerate(indices):
            n = int(s.lengths[i])
            a, b = s.attn_offsets[i], s.attn_offsets[i + 1]
            buf[row, :, :n, :n] = arr[a:b].reshape(s.heads, n, n)
        return torch.from_numpy(buf)


class TeacherCache:
    """Computes missing teacher outputs once and serves them memory-mapped."""

    def __init__(self, root: str | Path, key: str) -> None:
        self.folder = Path(root) / key
        self.key = key

    def _path(self, split: str, what: str) -> Path:
        return self.folder / f"{split}.{what}.npy"

    def discard(self, split: str) -> None:
        """Remove every cache file of ``split`` (they all hang on its offsets), to be computed again."""
        for path in split_files(self.folder, split).values():
            path.unlink(missing_ok=True)

    def check(self, split: str, enc: Encoded | None = None) -> bool:
        """Whether ``split``'s files are whole; damaged ones are removed with a warning (False)."""
        problem = split_problem(self.folder, split, enc)
        if problem is None:
            return True
        path, why = problem
        warnings.warn(
            f"The teacher-output cache file {str(path)!r} is damaged: {why}. Its split's cache files are "
            "removed and computed again from the teacher.",
            stacklevel=3,
        )
        self.discard(split)
        return False

    def _missing(
        self,
        split: str,
        hidden: list[int],
        attention: list[int],
        qkv: list[int] = (),
        enc: Encoded | None = None,
    ) -> list[str]:
        self.check(split, enc)
        wanted = ["logits", "offsets"] + [f"hidden{j}" for j in hidden] + [f"attn{j}" for j in attention]
        wanted += [f"{x}{j}" for j in qkv for x in "qkv"]
        if attention:
            wanted.append("attn_offsets")
        return [w for w in wanted if not self._path(split, w).exists()]

    def estimate_bytes(
        self,
        model_config: Any,
        encoded: dict[str, Encoded],
        hidden: list[int],
        attention: list[int],
        qkv: list[int] = (),
    ) -> int:
        """Bytes that the missing arrays would take (fp16)."""
        total = 0
        heads = getattr(model_config, "num_attention_heads", 0)
        width = getattr(model_config, "hidden_size", 0)
        for split, enc in encoded.items():
            lengths = enc.lengths.astype(np.int64)
            missing = self._missing(split, hidden, attention, qkv, enc)
            if "logits" in missing:
                total += len(lengths) * getattr(model_config, "num_labels", 2) * 2
            total += sum(int(lengths.sum()) * width * 2 for m in missing if m.startswith(("hidden", "q", "k", "v")))
            total += sum(
                int((lengths**2).sum()) * heads * 2 for m in missing if m.startswith("attn") and m != "attn_offsets"
            )
        return total

    def ensure(
        self,
        model: torch.nn.Module,
        encoded: dict[str, Encoded],
        pad_id: int,
        hidden: list[int] | tuple[int, ...] = (),
        attention: list[int] | tuple[int, ...] = (),
        qkv: list[int] | tuple[int, ...] = (),
        label_order: list[int] | None = None,
        batch_size: int = 64,
        device: Any = "cpu",
        progress: bool = True,
        meta: dict[str, Any] | None = None,
    ) -> TeacherOutputs:
        """Fill in whatever is missing for these splits, then open everything memory-mapped.

        ``label_order[k]`` is the teacher output index of data label k (teacher and data may
        order their labels differently); logits are stored in data order.
        """
        hidden, attention, qkv = sorted(set(hidden)), sorted(set(attention)), sorted(set(qkv))
        self.folder.mkdir(parents=True, exist_ok=True)
        # workers started together compute each split once: the others wait here, then read it (and
        # no worker judges a split damaged while another is still writing its files)
        with filling(self.folder, "compute the teacher outputs", progress):
            self._fill(model, encoded, pad_id, hidden, attention, qkv, label_order, batch_size, device, progress, meta)
        return self.open(list(encoded), hidden, attention, qkv)

    def _fill(self, model, encoded, pad_id, hidden, attention, qkv, label_order, batch_size, device, progress, meta):
        need = self.estimate_bytes(model.config, encoded, hidden, attention, qkv)
        if need:
            free = shutil.disk_usage(self.folder).free
            if need * 1.1 > free:
                raise AutodistillError(
                    f"The teacher-output cache needs {need / 1e6:.0f} MB in {self.folder}, but only "
                    f"{free / 1e6:.0f} MB are free. Free disk space, set AUTODISTILL_HOME to a larger disk, "
                    "or map fewer layers (distill.loss.layer_map)."
                )
            if progress:
                print(f"teacher cache: writing {need / 1e6:.1f} MB to {self.folder}", flush=True)
        if meta is not None and not (self.folder / "meta.json").exists():
            write_json(self.folder / "meta.json", meta)
        for split, enc in encoded.items():
            missing = self._missing(split, hidden, attention, qkv, enc)
            if missing:
                self._compute(
                    model,
                    split,
                    enc,
                    pad_id,
                    missing,
                    hidden,
                    attention,
                    qkv,
                    label_order,
                    batch_size,
                    device,
                    progress,
                )

    def open(self, splits: list[str], hidden: list[int], attention: list[int], qkv: list[int] = ()) -> TeacherOutputs:
        out = {}
        for split in splits:
            missing = self._missing(split, hidden, attention, qkv)
            if missing:
                raise TeacherCacheError(
                    f"The teacher-output cache in {str(self.folder)!r} lacks {split}.{missing[0]}.npy. "
                    "Run again: the missing teacher outputs are computed then."
                )
            load = lambda what, s=split: np.load(self._path(s, what), mmap_mode="r")  # noqa: E731
            offsets = np.asarray(load("offsets"))
            s = SplitOutputs(logits=load("logits"), offsets=offsets, lengths=np.diff(offsets))
            s.files = split_files(self.folder, split)
            s.hidden = {j: load(f"hidden{j}") for j in hidden}
            s.qkv = {j: (load(f"q{j}"), load(f"k{j}"), load(f"v{j}")) for j in qkv}
            if attention:
                s.attention = {j: load(f"attn{j}") for j in attention}
                s.attn_offsets = np.asarray(load("attn_offsets"))
                first = s.attention[attention[0]]
                s.heads = int(round(len(first) / max(1, int((s.lengths.astype(np.int64) ** 2).sum()))))
            out[split] = s
        return TeacherOutputs(out, cache=self)

    @torch.no_grad()
    def _compute(
        self, model, split, enc, pad_id, missing, hidden, attention, qkv, label_order, batch_size, device, progress
    ):
        from autodistill.losses.capture import capture_qkv

        model.eval().to(device)
        want_hidden = [j for j in hidden if f"hidden{j}" in missing]
        want_attn = [j for j in attention if f"attn{j}" in missing]
        want_qkv = [j for j in qkv if f"q{j}" in missing]
        n = len(enc.labels)
        lengths = enc.lengths.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        attn_offsets = np.concatenate([[0], np.cumsum(lengths**2 * getattr(model.config, "num_attention_heads", 0))])
        logits = np.zeros((n, model.config.num_labels), dtype=np.float16)
        hid = {j: np.zeros((int(offsets[-1]), model.config.hidden_size), dtype=np.float16) for j in want_hidden}
        att = {j: np.zeros(int(attn_offsets[-1]), dtype=np.float16) for j in want_attn}
        qkv_arr: dict[int, list[np.ndarray]] = {}
        batches = batch_indices(lengths, batch_size, shuffle=False, seed=0)
        for idx in tqdm(batches, desc=f"teacher outputs ({split})", disable=not progress, leave=False):
            batch = collate(enc, idx, pad_id)
            inputs = {
                k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
            }
            with capture_qkv(model, want_qkv) if want_qkv else contextlib.nullcontext({}) as captured:
                out = model(**inputs, output_hidden_states=bool(want_hidden), output_attentions=bool(want_attn))
            for j, tensors in captured.items():
                if j not in qkv_arr:
                    qkv_arr[j] = [np.zeros((int(offsets[-1]), t.shape[-1]), dtype=np.float16) for t in tensors]
            logits[idx] = out.logits.float().cpu().numpy()
            for row, i in enumerate(idx):
                L = int(lengths[i])
                for j in want_hidden:
                    hid[j][offsets[i] : offsets[i + 1]] = out.hidden_states[j][row, :L].float().cpu().numpy()
                for j in want_attn:
                    att[j][attn_offsets[i] : attn_offsets[i + 1]] = (
                        out.attentions[j][row, :, :L, :L].float().cpu().numpy().ravel()
                    )
                for j, tensors in captured.items():
                    for arr, t in zip(qkv_arr[j], tensors):
                        arr[offsets[i] : offsets[i + 1]] = t[row, :L].float().cpu().numpy()
        if label_order is not None:
            logits = logits[:, label_order]
        _refuse_non_finite(split, {"logits": logits, **{f"hidden{j}": a for j, a in hid.items()}})
        _refuse_non_finite(split, {f"attn{j}": a for j, a in att.items()})
        _refuse_non_finite(split, {f"{x}{j}": a for j, arrs in qkv_arr.items() for x, a in zip("qkv", arrs)})
        _save_atomic(self._path(split, "offsets"), offsets)
        if want_attn:
            _save_atomic(self._path(split, "attn_offsets"), attn_offsets)
        for j, arr in hid.items():
            _save_atomic(self._path(split, f"hidden{j}"), arr)
        for j, arr in att.items():
            _save_atomic(self._path(split, f"attn{j}"), arr)
        for j, arrs in qkv_arr.items():
            for x, arr in zip("qkv", arrs):
                _save_atomic(self._path(split, f"{x}{j}"), arr)
        # logits last: their presence marks the split as started by a complete writer
        if "logits" in missing:
            _save_atomic(self._path(split, "logits"), logits)


def _refuse_non_finite(split: str, arrays: dict[str, np.ndarray]) -> None:
    """The cache never stores what training would read as NaN: such outputs come from the teacher."""
    for what, arr in arrays.items():
        if not np.isfinite(arr).all():
            raise TeacherError(
                f"The teacher's {what} outputs on the {split} split hold NaN or infinite values (the cache "
                "stores float16, whose range ends at 65504), so they are not cached. Check the teacher's "
                "weights, or map other teacher layers in 'distill.loss.layer_map'."
            )
