"""GGUF export of a causal-LM student: one ``.gguf`` file that llama.cpp (and everything built on it:
Ollama, LM Studio, llama-cpp-python) runs as it is, with the tokenizer and chat template inside.

Llama-layout models only (llama, mistral, qwen2, qwen3): the file follows llama.cpp's own converter
(``convert_hf_to_gguf.py``): the architecture's hyperparameters under llama.cpp's keys, the weights
under the GGUF tensor names that ``gguf``'s ``TensorNameMap`` gives, Llama's query and key rows
reordered for llama.cpp's rotary layout, norms in f32, and the byte-level BPE vocabulary as
llama.cpp's "gpt2" tokenizer model. transformers reads such a file back
(``from_pretrained(folder, gguf_file=name)``), which is how the tests check it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from autodistill.errors import ConfigError
from autodistill.files import replacing_file

GGUF_DTYPES = ("f16", "f32")
# transformers model_type -> the llama.cpp architecture it is written as. A Mistral model without a
# sliding window is a Llama model (llama.cpp's converter writes it so); Qwen2 and Qwen3 have their
# own (Qwen2: attention biases; Qwen3: per-head query/key norms; both keep the rotary halves as
# transformers has them, so their rows are written unchanged)
ARCHS = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "mistral": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
    "qwen3": gguf.MODEL_ARCH.QWEN3,
}
# transformers rebuilds these configs from a GGUF file without reading a head size: the class
# default (hidden_size / heads for qwen2, 128 for qwen3) is the only one that reads back
QWEN_HEAD_DIM = {"qwen2": None, "qwen3": 128}
FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "f32": gguf.LlamaFileType.ALL_F32}
NUMPY_DTYPES = {"f16": np.float16, "f32": np.float32}


def gguf_supported(config: Any) -> str | None:
    """None if a model with this config can be written as GGUF, else the reason it cannot."""
    model_type = getattr(config, "model_type", None)
    if str(model_type).startswith("autodistill_"):
        return "a student with low-rank factors (low_rank) is no architecture llama.cpp reads; export hf or onnx"
    if model_type not in ARCHS:
        return f"GGUF export supports llama-layout models ({', '.join(ARCHS)}); got {model_type}"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"GGUF export supports the silu activation only; got hidden_act={config.hidden_act!r}"
    rope_type, _ = _rope(config)
    if rope_type != "default":
        return f"GGUF export supports plain rotary embeddings only; got rope_type={rope_type!r}"
    if model_type in QWEN_HEAD_DIM:
        return _qwen_problem(config)
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "GGUF export supports Llama models without attention or MLP biases"
    window = getattr(config, "sliding_window", None)
    if model_type == "mistral" and window is not None and window < config.max_position_embeddings:
        return (
            f"GGUF export writes Mistral as Llama, which has no sliding window; this model attends to "
            f"{window} tokens of its {config.max_position_embeddings}"
        )
    return None


def _qwen_problem(config: Any) -> str | None:
    if getattr(config, "use_sliding_window", False):
        return f"GGUF export supports {config.model_type} models without a sliding window (use_sliding_window=True)"
    if getattr(config, "attention_bias", False) and config.model_type == "qwen3":
        return "GGUF export supports qwen3 models without attention biases"
    wanted = QWEN_HEAD_DIM[config.model_type] or config.hidden_size // config.num_attention_heads
    if _head_dim(config) != wanted:
        return (
            f"GGUF export supports {config.model_type} models whose head_dim is {wanted} (the one transformers "
            f"reads back from GGUF); got {_head_dim(config)}"
        )
    return None


def gguf_tokenizer_supported(tokenizer: Any) -> str | None:
    """None if the tokenizer can be written as llama.cpp's "gpt2" (byte-level BPE) model, else why not."""
    spec = _tokenizer_json(tokenizer)
    if spec is None:
        return f"GGUF export needs a fast (tokenizers) tokenizer; got {type(tokenizer).__name__}"
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = model.get("type") if not model.get("byte_fallback") else "BPE with byte fallback (sentencepiece-style)"
        return f"GGUF export supports byte-level BPE tokenizers (like GPT-2's and SmolLM2's); got {kind}"
    if (spec.get("decoder") or {}).get("type") != "ByteLevel":
        return f"GGUF export supports byte-level BPE tokenizers; got the decoder {spec.get('decoder')}"
    if _pre_tokenizer_name(spec) is None:
        return (
            "GGUF export supports byte-level BPE tokenizers whose pre-tokenizer llama.cpp knows (GPT-2's "
            f"ByteLevel, SmolLM's digits + ByteLevel, Llama 3's or Qwen2's split); got {spec.get('pre_tokenizer')}"
        )
    return None


def write_gguf(model: Any, tokenizer: Any, path: Path, dtype: str = "f16") -> dict[str, Any]:
    """Write ``model`` and ``tokenizer`` as one GGUF file at ``path`` (replaced whole, never half
    written), 2-D weights in ``dtype`` ("f16" or "f32"), norms in f32. Returns the file's name, size
    in bytes, dtype and tensor count."""
    if dtype not in GGUF_DTYPES:
        raise ConfigError(f"The GGUF dtype must be one of {', '.join(GGUF_DTYPES)}. Got {dtype!r} instead.")
    reason = gguf_supported(model.config) or gguf_tokenizer_supported(tokenizer)
    if reason is not None:
        raise ConfigError(f"The export format 'gguf' cannot write this student: {reason}.")
    path = Path(path)
    arch = ARCHS[model.config.model_type]
    with replacing_file(path) as tmp:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[arch])
        try:
            _add_hyperparameters(writer, model.config, path.stem, dtype)
            _add_tokenizer(writer, tokenizer, model.config.vocab_size)
            count = 0
            for name, array in _tensors(model, arch, dtype):
                writer.add_tensor(name, array)
                count += 1
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    return {"file": path.name, "bytes": path.stat().st_size, "dtype": dtype, "tensors": count}


def _rope(config: Any) -> tuple[str, float]:
    """(rope type, base frequency): transformers 5 keeps both in ``rope_parameters``."""
    params = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    rope_type = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    theta = params.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0
    return rope_type, float(theta)


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _add_hyperparameters(writer: gguf.GGUFWriter, config: Any, name: str, dtype: str) -> None:
    heads = config.num_attention_heads
    head_dim = _head_dim(config)
    # transformers reads a llama file named exactly "mistral" as a Mistral one, which it then cannot map
    writer.add_name("mistral-llama" if name == "mistral" else name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_freq_base(_rope(config)[1])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(FILE_TYPES[dtype])


def _tensors(model: Any, arch: gguf.MODEL_ARCH, dtype: str) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, array) for every weight, the output projection only when it is not the embedding."""
    import torch

    config = model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    out, emb = model.get_output_embeddings(), model.get_input_embeddings()
    tied = out is not None and out.weight is emb.weight
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    with torch.no_grad():
        for hf_name, tensor in model.state_dict().items():
            base, suffix = hf_name.rsplit(".", 1)
            name = names.get_name(base)
            if name is None or not tensor.is_floating_point():
                raise ConfigError(
                    f"The export format 'gguf' cannot write this student: its weight {hf_name!r} "
                    f"({tensor.dtype}) has no place in a {gguf.MODEL_ARCH_NAMES[arch]} GGUF file."
                )
            if tied and name == gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT]:
                continue
            array = tensor.detach().to("cpu", torch.float32).numpy()
            if arch == gguf.MODEL_ARCH.LLAMA and name.endswith((".attn_q", ".attn_k")):
                array = rotary_rows_to_gguf(array, heads if name.endswith(".attn_q") else kv_heads)
            yield f"{name}.{suffix}", array.astype(np.float32 if array.ndim == 1 else NUMPY_DTYPES[dtype])


def rotary_rows_to_gguf(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder a Llama query or key projection's rows from transformers' rotary layout to llama.cpp's.

    transformers rotates dimension i of a head with dimension i + d/2 (the two halves); llama.cpp
    rotates neighbours 2i and 2i + 1. So within each head, row i of the first half goes to 2i and
    row i of the second half to 2i + 1. Written here because neither gguf nor transformers ships this
    direction (transformers' GGUF loader holds the inverse, which the tests use to undo it).
    """
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _tokenizer_json(tokenizer: Any) -> dict[str, Any] | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return json.loads(backend.to_str()) if backend is not None else None


def _pre_tokenizer_name(spec: dict[str, Any]) -> str | None:
    """llama.cpp's name for the way this tokenizer splits text before BPE ("gpt-2", "smollm", ...).

    llama.cpp's converter finds it by hashing how a known model tokenizes a test text; this reads the
    pre-tokenizer's structure instead, since a student's tokenizer is one of a few standard kinds.
    """
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if not kinds or kinds[-1] != "ByteLevel":
        return None
    byte_level_regex = steps[-1].get("use_regex", True)
    if kinds == ["ByteLevel"] and byte_level_regex:
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and byte_level_regex:
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not byte_level_regex:
        return _split_names().get((steps[0].get("pattern") or {}).get("Regex"))
    return None


def _split_names() -> dict[str, str]:
    """Split regex -> llama.cpp pre-tokenizer name, from the table transformers' GGUF reader uses the
    other way round (so what is written here reads back with the same split)."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    except ImportError:  # an older transformers: those splits are not supported
        return {}
    return {
        GGUF_PRE_TOKENIZER_SPLITS[name]: name for name in ("qwen2", "llama-bpe") if name in GGUF_PRE_TOKENIZER_SPLITS
    }


def _add_tokenizer(writer: gguf.GGUFWriter, tokenizer: Any, n_vocab: int) -> None:
    spec = _tokenizer_json(tokenizer)
    assert spec is not None  # gguf_tokenizer_supported checked it
    tokens, types = _vocabulary(tokenizer, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(spec))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # the merges as "left right" strings: byte-level pieces never hold a space, so the split is exact
    merges = spec["model"].get("merges") or []
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    _add_special_tokens(writer, tokenizer, n_vocab)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        writer.add_chat_template(template)


def _vocabulary(tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    """The token strings by id and their llama.cpp types, padded to the model's vocabulary size.

    As llama.cpp's converter does: a special added token is CONTROL (matched whole, never produced
    by BPE), another added token USER_DEFINED, an id the tokenizer does not use "[PAD<id>]" UNUSED.
    """
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    if max(by_id) >= n_vocab:
        raise ConfigError(
            f"The export format 'gguf' cannot write this student: its tokenizer has ids up to {max(by_id)}, "
            f"beyond the model's vocabulary of {n_vocab}."
        )
    added = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _add_special_tokens(writer: gguf.GGUFWriter, tokenizer: Any, n_vocab: int) -> None:
    """The bos/eos/unk/pad ids and whether encoding adds bos/eos.

    gguf's ``SpecialVocab`` reads these from a saved folder's files and guesses the add flags from the
    post-processor's template; with the tokenizer object at hand, its ids and one encoding are exact.
    """
    for kind in ("bos", "eos", "unk", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None and token_id < n_vocab:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    writer.add_add_bos_token(bos is not None and len(full) > len(plain) and full[0] == bos)
    writer.add_add_eos_token(eos is not None and len(full) > len(plain) and full[-1] == eos)
