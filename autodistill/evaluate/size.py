"""Parameter counts and size on disk.

"Parameters" in every budget means the total; the count without embeddings is reported next to
it because embeddings dominate small students (a 30k-token vocabulary at hidden 384 is 11.7M).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from autodistill.errors import AutodistillError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
NOT_WEIGHTS = {"training_args.bin"}  # written by HF Trainer next to the weights; not part of the model
MB = 1e6


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)) or type(module).__name__.endswith("Norm")


def embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that make up the input embeddings, found without model-specific names.

    Every ``nn.Embedding`` (word, position, token type) counts. When its parent is an embeddings
    block (its class name says so, as BertEmbeddings and DistilBERT's Embeddings do, or it holds
    nothing but embeddings and norms) the whole block counts, so its LayerNorm and any projection
    a vocabulary transform added come with it. A parent that is the whole model (Llama's
    ``embed_tokens`` sits directly in LlamaModel) contributes only the embedding itself.
    """
    parents = {name: mod for name, mod in model.named_modules()}
    found: dict[int, nn.Module] = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Embedding):
            continue
        parent_name = name.rpartition(".")[0]
        parent = parents.get(parent_name) if parent_name else None
        if parent is not None and _is_embeddings_block(parent):
            found[id(parent)] = parent
        else:
            found[id(mod)] = mod
    # An embedding inside an embeddings block already counted is not a second root.
    roots = list(found.values())
    return [m for m in roots if not any(m is not r and _contains(r, m) for r in roots)]


def _is_embeddings_block(module: nn.Module) -> bool:
    if "Embedding" in type(module).__name__:
        return True
    with_params = [c for c in module.children() if any(True for _ in c.parameters())]
    own = any(True for _ in module.parameters(recurse=False))
    return not own and all(isinstance(c, nn.Embedding) or _is_norm(c) for c in with_params)


def _contains(outer: nn.Module, inner: nn.Module) -> bool:
    return any(m is inner for m in outer.modules())


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``{"total": ..., "without_embeddings": ...}``; tied weights (shared tensors) count once."""
    total = sum(p.numel() for p in model.parameters())  # parameters() already skips shared tensors
    emb_params = {id(p): p for m in embedding_modules(model) for p in m.parameters()}
    embeddings = sum(p.numel() for p in emb_params.values())
    return {"total": int(total), "without_embeddings": int(total - embeddings)}


def size_on_disk_mb(folder: str | Path) -> float:
    """Megabytes (1e6 bytes) of the weight files (``*.safetensors``, ``*.bin``) in a model folder."""
    path = Path(folder)
    if not path.is_dir():
        raise AutodistillError(f"The model folder '{path}' does not exist or is not a folder.")
    files = [
        f for f in path.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES) and f.name not in NOT_WEIGHTS
    ]
    if not files:
        raise AutodistillError(f"The model folder '{path}' holds no weight files (*.safetensors or *.bin).")
    return sum(f.stat().st_size for f in files) / MB


def state_size_mb(model: nn.Module) -> float:
    """The size the model's weights take when saved as safetensors, as an export would write them."""
    from safetensors.torch import save_model  # dedupes tied tensors, as from_pretrained expects

    with tempfile.TemporaryDirectory(prefix="autodistill-size-") as tmp:
        save_model(model, str(Path(tmp) / "model.safetensors"))
        return size_on_disk_mb(tmp)


def weights_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers resident in memory (shared tensors once)."""
    seen: dict[tuple[int, int], int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        key = (t.untyped_storage().data_ptr(), t.device.index or 0)
        seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
    return sum(seen.values())


__all__ = ["embedding_modules", "parameter_counts", "size_on_disk_mb", "state_size_mb", "weights_bytes", "MB"]
