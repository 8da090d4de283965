"""The causal-LM ``lora`` transform on tiny in-process Llama and GPT-2 teachers: only the adapters
train, the merged export computes what the adapted student computes and is a plain model of the
teacher's class, the saved folder reloads with transformers alone, parameter counts are those of
the shape before LoRA, records rebuild the untrained student exactly, and misplaced or wrong
options are refused naming their key."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import lm_texts, tiny_lm_dir, write_jsonl
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.distill import LMBuild
from autodistill.tasks.causal_lm.student import (
    build_student,
    is_adapted,
    predict_parameters,
    rebuild_student,
    untrained_model,
)

VOCAB = 100
DEPTH = {"name": "depth", "layers": 2, "choice": "uniform"}
IDS = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29], [2, 4, 8, 16, 32, 64, 3, 7]])


def teacher(kind: str = "llama", tied: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=64, bos_token_id=0)
        config.eos_token_id = 0
        return GPT2LMHeadModel(config).eval()
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config).eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def train_steps(model: torch.nn.Module, steps: int = 3) -> None:
    """A few Adam steps towards random next tokens, on whatever ``model`` leaves trainable."""
    torch.manual_seed(1)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    labels = torch.randint(0, VOCAB, IDS.shape)
    for _ in range(steps):
        out = model(input_ids=IDS).logits
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, VOCAB), labels.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def trainable(model: torch.nn.Module) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class NoTokenizer:
    def save_pretrained(self, folder) -> None:
        pass


# --- what trains ---------------------------------------------------------------------------------


def test_only_the_adapters_train_with_the_hand_counted_sizes():
    student, records = build_student(teacher(), [DEPTH, {"name": "lora", "r": 4}], None)
    assert is_adapted(student)
    names = trainable(student)
    assert all(".lora_A." in n or ".lora_B." in n for n in names)
    # per layer, r * (in + out) for each projection: q 32->32, k and v 32->16, o 32->32,
    # gate and up 32->64, down 64->32
    per_layer = 4 * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 3 * (32 + 64))
    assert per_layer == 2048 and sum(names.values()) == 2 * per_layer
    assert records[1]["resolved"] == {
        "r": 4,
        "alpha": 8.0,
        "dropout": 0.0,
        "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "train_embeddings": False,
        "init_seed": 0,
    }


def test_train_embeddings_adds_the_embeddings_and_lm_head_once_each():
    lora = {"name": "lora", "r": 2, "targets": ["q_proj"], "train_embeddings": True}
    tied, _ = build_student(teacher(tied=True), [lora], None)
    untied, _ = build_student(teacher(tied=False), [lora], None)
    adapters = 4 * 2 * (32 + 32)  # q_proj in four layers
    assert sum(trainable(tied).values()) == adapters + VOCAB * 32  # one tied tensor
    assert sum(trainable(untied).values()) == adapters + 2 * VOCAB * 32
    assert not any("norm" in n for n in trainable(untied))  # norms frozen, as peft leaves them
    merged = LMBuild(tied, []).export_model()
    assert merged.lm_head.weight is merged.model.embed_tokens.weight  # still one tied tensor


def test_gpt2_adapts_its_conv1d_projections():
    student, records = build_student(teacher("gpt2"), [{"name": "lora", "r": 2, "alpha": 3}], None)
    names = trainable(student)
    assert records[0]["resolved"]["targets"] == ["c_attn", "c_proj", "c_fc"]
    assert records[0]["resolved"]["alpha"] == 3.0
    # per layer: c_attn 32->96, attn.c_proj 32->32, c_fc 32->128, mlp.c_proj 128->32
    assert sum(names.values()) == 4 * 2 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32))
    assert all(".lora_" in n for n in names)


# --- merged export --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_export_after_training_computes_what_the_adapted_student_does(kind):
    t = teacher(kind)
    transforms = [DEPTH, {"name": "lora", "r": 4}]
    student, records = build_student(t, transforms, None)
    base = logits(build_student(t, [DEPTH], None)[0])
    assert torch.equal(logits(student), base)  # B starts at zero: the adapters change nothing yet
    train_steps(student)
    build = LMBuild(student, records)
    adapted = logits(student)
    merged = build.export_model()
    assert type(merged) is type(t) and not is_adapted(merged)
    assert not any("lora" in k for k in merged.state_dict())
    assert torch.allclose(logits(merged), adapted, atol=1e-5)
    assert (logits(merged) - base).abs().max() > 1e-2  # the trained adapters are in the weights
    assert count(merged) == predict_parameters(t.config, transforms) == predict_parameters(t.config, [DEPTH])
    assert all(p.requires_grad for p in merged.parameters())
    # the training model keeps its adapters: it trains on and the next export follows it
    assert is_adapted(build.model) and sum(trainable(build.model).values()) > 0
    train_steps(build.model, steps=1)
    assert not torch.allclose(logits(build.model), adapted, atol=1e-4)
    assert torch.allclose(logits(build.export_model()), logits(build.model), atol=1e-5)


def test_save_writes_a_folder_transformers_alone_reloads(tmp_path):
    t = teacher(tied=False)
    student, records = build_student(t, [DEPTH, {"name": "lora", "r": 4, "train_embeddings": True}], None)
    train_steps(student)
    build = LMBuild(student, records)
    assert build.resolved["architecture"] == "LlamaForCausalLM"
    build.save(tmp_path, NoTokenizer())
    assert not (tmp_path / "adapter_config.json").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 2
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is LlamaForCausalLM
    assert torch.allclose(logits(loaded), logits(student), atol=1e-5)
    assert is_adapted(build.model)  # saving merged a copy


# --- counts and rebuilds ---------------------------------------------------------------------------


def test_predicted_and_untrained_counts_are_the_shape_before_lora():
    t = teacher()
    with_lora = [DEPTH, {"name": "lora", "r": 8}]
    depth_only = build_student(t, [DEPTH], None)[0]
    assert predict_parameters(t.config, with_lora) == count(depth_only)
    assert count(untrained_model(t.config, with_lora)) == count(depth_only)
    assert count(untrained_model(t.config, [{"name": "lora"}])) == count(t)


def test_rebuild_gives_the_untrained_adapted_student_exactly():
    t = teacher()
    student, records = build_student(t, [DEPTH, {"name": "lora", "r": 4, "dropout": 0.1}], None)
    rebuilt = rebuild_student(t, json.loads(json.dumps(records)))
    a, b = student.state_dict(), rebuilt.state_dict()
    assert a.keys() == b.keys() and any("lora_A" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert trainable(rebuilt) == trainable(student)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transforms", "match"),
    [
        ([{"name": "lora"}, DEPTH], r"student\.transforms\[0\]\.name.*'lora'.*last"),
        ([DEPTH, {"name": "lora", "r": 0}], r"student\.transforms\[1\]\.r.*must be >= 1.*Got 0"),
        ([{"name": "lora", "alpha": 0}], r"student\.transforms\[0\]\.alpha.*must be > 0.*Got 0"),
        ([{"name": "lora", "alpha": -2.0}], r"student\.transforms\[0\]\.alpha.*must be > 0"),
        ([{"name": "lora", "dropout": 1.0}], r"student\.transforms\[0\]\.dropout.*\[0, 1\)"),
        (
            [DEPTH, {"name": "lora", "targets": ["q_proj", "c_fc"]}],
            r"student\.transforms\[1\]\.targets.*\(lora\).*llama.*q_proj, k_proj, v_proj, o_proj, gate_proj, "
            r"up_proj, down_proj.*c_fc",
        ),
        ([{"name": "lora", "targets": []}], r"student\.transforms\[0\]\.targets.*must name a projection"),
        (
            [{"name": "prune"}],
            r"transforms\[0\]\.name.*depth, heads, hidden, low_rank, mlp, or, last, lora\. Got 'prune'",
        ),
    ],
)
def test_wrong_lora_steps_are_refused_naming_the_key(transforms, match):
    with pytest.raises(ConfigError, match=match):
        build_student(teacher(), transforms, None)
    with pytest.raises(ConfigError, match=match):
        predict_parameters(teacher().config, transforms)


def test_gpt2_lists_its_own_target_names():
    with pytest.raises(ConfigError, match=r"student\.transforms\[0\]\.targets.*gpt2.*c_attn, c_proj, c_fc"):
        build_student(teacher("gpt2"), [{"name": "lora", "targets": ["q_proj"]}], None)


# --- end to end ----------------------------------------------------------------------------------


def test_distill_with_depth_then_lora_writes_a_plain_student(tmp_path):
    from autodistill.cli import main

    texts = lm_texts(200)
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(tiny_lm_dir(tmp_path / "teacher", texts))},
        "data": {"source": str(write_jsonl(tmp_path / "corpus.jsonl", texts)), "max_length": 32,
                 "validation_size": 0.1, "test_size": 0.1},
        "student": {"transforms": [DEPTH, {"name": "lora", "r": 4}]},
        "distill": {"mode": "full", "epochs": 1, "lr": 5e-3, "batch_size": 8, "top_k": 16, "on_policy": 0.25,
                    "loss": {"temperature": 1.0, "terms": [{"name": "fkl", "weight": 1.0}]}},
        "evaluate": {"repeats": 1, "warmup": 1, "new_tokens": 4, "seq_len": 8},
        "tracking": {"enabled": False},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["distill", str(path), "--quiet"]) == 0
    folder = tmp_path / "out" / "student"
    assert not (folder / "adapter_config.json").exists()
    student = AutoModelForCausalLM.from_pretrained(folder)
    assert type(student) is LlamaForCausalLM and student.config.num_hidden_layers == 2
    assert not any("lora" in k for k in student.state_dict())
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["student"]["parameters"]["total"] == count(student)
    teacher_model = AutoModelForCausalLM.from_pretrained(tmp_path / "teacher")
    assert count(student) == predict_parameters(teacher_model.config, [DEPTH])
    # the frozen weights came through training unchanged: embeddings and norms are the teacher's
    assert torch.equal(student.model.embed_tokens.weight, teacher_model.model.embed_tokens.weight)
    assert torch.equal(student.model.norm.weight, teacher_model.model.norm.weight)
    # and the adapters trained: the kept layers' projections moved off the teacher's
    kept = student.model.layers[1].self_attn.q_proj.weight
    assert not torch.allclose(kept, teacher_model.model.layers[3].self_attn.q_proj.weight)
