from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from autodistill.config.schema import parse
from autodistill.errors import ConfigError
from autodistill.student.base import TRANSFORMS, BuildContext
from autodistill.student.lora import LoraOptions, is_wrapped, trainable_parameters
from autodistill.student.shape import LayerShape, ModelShape


def tiny(layers: int = 2) -> tuple[BertForSequenceClassification, ModelShape]:
    config = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    torch.manual_seed(0)
    shape = ModelShape("bert", 99, 32, 64, 2, 2, (LayerShape(4, 8, 64),) * layers)
    return BertForSequenceClassification(config), shape


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (4, 12), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1, 0])}


def resolved(**options: object) -> dict:
    t = TRANSFORMS.get("lora")()
    model, shape = tiny()
    opts = parse(LoraOptions, {**t.example_options, **options}, path="lora")
    assert t.plan(shape, opts, BuildContext()) == shape
    return t.resolve(model, shape, opts, BuildContext())


def test_plan_and_apply_leave_shape_and_state_alone() -> None:
    t = TRANSFORMS.get("lora")()
    model, shape = tiny()
    state = model.state_dict()
    rec = resolved()
    assert rec == {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["query", "value"]}
    new_state, new_shape = t.apply(state, shape, rec)
    assert new_shape == shape and new_state is state


def test_wrap_trains_only_adapters_and_head_and_unwrap_merges() -> None:
    t = TRANSFORMS.get("lora")()
    rec = resolved()
    model, shape = tiny()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = t.wrap(model, rec)
    assert is_wrapped(wrapped)
    r, hidden, layers = 4, 32, 2
    adapters = layers * 2 * r * (hidden + hidden)  # query and value: A (r x in) and B (out x r)
    head = hidden * 2 + 2
    assert trainable_parameters(wrapped) == adapters + head

    wrapped.train()
    opt = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # two steps: B moves on the first, then A too (B starts at zero)
        wrapped(**batch()).loss.backward()
        opt.step()
        opt.zero_grad()
    wrapped.eval()
    names = dict(wrapped.named_parameters())
    checked = {"frozen": 0, "head": 0}
    for name, p in names.items():
        if "lora_" in name:
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        if "modules_to_save" in name:
            assert not torch.equal(p, base[key.replace(".modules_to_save.default", "")]), name
            checked["head"] += 1
        elif ".original_module." not in name:
            assert torch.equal(p, base[key]), f"frozen weight {name} changed"
            checked["frozen"] += 1
    assert checked == {"frozen": len(base) - 2, "head": 2}  # every weight but the classifier's two
    assert all(not torch.equal(p, torch.zeros_like(p)) for n, p in names.items() if "lora_B" in n)

    inputs = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():
        want = wrapped(**inputs).logits
    merged = t.unwrap(wrapped, rec)
    assert type(merged) is BertForSequenceClassification
    assert not any(type(m).__module__.startswith("peft") for m in merged.modules())
    assert set(merged.state_dict()) == set(base)
    assert sum(p.numel() for p in merged.parameters()) == shape.num_parameters()
    merged.eval()
    with torch.no_grad():
        got = merged(**inputs).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(
        merged.bert.encoder.layer[0].attention.self.query.weight,
        base["bert.encoder.layer.0.attention.self.query.weight"],
    )  # the adapters were merged in
    assert torch.equal(
        merged.bert.encoder.layer[0].attention.self.key.weight, base["bert.encoder.layer.0.attention.self.key.weight"]
    )
    assert t.unwrap(merged, rec) is merged  # unwrap of a plain model is a no-op


def test_more_targets_more_trainable_parameters() -> None:
    t = TRANSFORMS.get("lora")()
    model, _ = tiny()
    wrapped = t.wrap(model, resolved(r=2, target_modules=["query", "key", "value", "dense"]))
    # per layer: q, k, v (32->32), attention.output.dense (32->32), intermediate (32->64), output (64->32);
    # pooler.dense (32->32) matches "dense" too
    per_layer = 2 * (4 * 64 + 2 * 96)
    assert trainable_parameters(wrapped) == 2 * per_layer + 2 * 64 + (32 * 2 + 2)


def test_options_and_bad_targets_fail_clearly() -> None:
    with pytest.raises(ConfigError, match="'lora.r' parameter must be > 0. Got 0 instead"):
        parse(LoraOptions, {"r": 0}, path="lora")
    with pytest.raises(ConfigError, match="'lora.dropout' parameter must be in \\[0, 1\\)"):
        parse(LoraOptions, {"dropout": 1.0}, path="lora")
    model, _ = tiny()
    with pytest.raises(ConfigError, match="'lora.target_modules' parameter .* Got \\['q_proj'\\]"):
        TRANSFORMS.get("lora")().wrap(model, resolved(target_modules=["q_proj"]))


def test_build_wraps_and_export_merges() -> None:
    from autodistill.specs import Step, StudentSpec
    from autodistill.student.build import build_student, rebuild_student

    model, shape = tiny()
    spec = StudentSpec((Step("depth", {"layers": 1}), Step("lora", {"r": 2})))  # LoRA on a truncated student
    built = build_student(model.eval(), spec, BuildContext())
    assert is_wrapped(built.model)
    plain = built.export_model()
    assert type(plain) is BertForSequenceClassification
    assert sum(p.numel() for p in plain.parameters()) == built.num_parameters() < shape.num_parameters()
    assert trainable_parameters(built.model) < built.num_parameters() // 4
    again = rebuild_student(model, built.resolved)
    assert is_wrapped(again.model) and again.resolved["transforms"] == built.resolved["transforms"]


def test_adapter_init_is_the_same_whatever_the_global_rng_state() -> None:
    t = TRANSFORMS.get("lora")()
    rec = resolved()

    def adapters(global_seed: int) -> dict[str, torch.Tensor]:
        model, _ = tiny()
        torch.manual_seed(global_seed)
        wrapped = t.wrap(model, rec)
        after = torch.rand(1)  # the global stream continues as if the adapters drew nothing
        torch.manual_seed(global_seed)
        assert torch.equal(after, torch.rand(1))
        return {n: p.detach().clone() for n, p in wrapped.named_parameters() if "lora_A" in n}

    a, b = adapters(1), adapters(2)
    assert a and a.keys() == b.keys()
    assert all(torch.equal(a[n], b[n]) for n in a)
