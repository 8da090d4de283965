"""Heads, FFN, hidden and low-rank transforms: they keep what matters and shrink as promised."""

from __future__ import annotations

import pytest
import torch
from student_helpers import build_context, calibration_batches, count, logits, tiny_teacher

from autodistill.errors import ConfigError
from autodistill.specs import Step, StudentSpec
from autodistill.student.arch import shape_from_config
from autodistill.student.build import build_student, predict_parameters


def _build(teacher, steps, ctx=None):
    return build_student(teacher, StudentSpec(tuple(Step(n, o) for n, o in steps)), ctx)


def _dead_heads_teacher(dead: dict[int, list[int]]):
    """A teacher whose listed heads write nothing (zero output columns): removing them is exact."""
    model = tiny_teacher()
    with torch.no_grad():
        for i, heads in dead.items():
            dense = model.bert.encoder.layer[i].attention.output.dense
            for h in heads:
                dense.weight[:, h * 8 : (h + 1) * 8] = 0
    return model


@pytest.mark.parametrize("score", ["gradient", "fisher"])
def test_heads_gradient_score_drops_dead_heads_exactly(score) -> None:
    dead = {0: [1, 3], 1: [0, 2], 2: [2, 3], 3: [0, 1]}
    teacher = _dead_heads_teacher(dead)
    built = _build(teacher, [("heads", {"ratio": 0.5, "score": score})], build_context())
    keep = built.resolved["transforms"][0]["resolved"]["keep"]
    assert keep == [sorted(set(range(4)) - set(d)) for d in dead.values()]
    batch = calibration_batches(n=1, seed=5)[0]
    torch.testing.assert_close(logits(built.model, batch), logits(teacher, batch), rtol=0, atol=1e-5)
    assert built.kind == "registered" and [layer.heads for layer in built.shape.layers] == [2, 2, 2, 2]


def test_heads_ratio_per_layer_and_global(teacher, ctx) -> None:
    built = _build(teacher, [("heads", {"ratio": [1.0, 0.75, 0.5, 0.1]})], ctx)
    assert [layer.heads for layer in built.shape.layers] == [4, 3, 2, 1]  # at least one head
    glob = _build(teacher, [("heads", {"ratio": 0.25, "scope": "global"})], ctx)
    heads = [layer.heads for layer in glob.shape.layers]
    assert sum(heads) == 4 and min(heads) >= 1
    assert count(glob.model) == predict_parameters(
        shape_from_config(teacher.config), StudentSpec((Step("heads", {"ratio": 0.25, "scope": "global"}),))
    )
    # 12 heads removed, each with its q/k/v rows and biases and its output columns
    assert count(teacher) - count(glob.model) == 12 * (3 * (32 * 8 + 8) + 8 * 32)


@pytest.mark.parametrize("score", ["gradient", "fisher"])
def test_ffn_gradient_score_drops_dead_neurons_exactly(score) -> None:
    teacher = tiny_teacher()
    dead = torch.arange(0, 64, 2)  # every even neuron writes nothing
    with torch.no_grad():
        for layer in teacher.bert.encoder.layer:
            layer.output.dense.weight[:, dead] = 0
    built = _build(teacher, [("ffn", {"ratio": 0.5, "score": score})], build_context())
    for keep in built.resolved["transforms"][0]["resolved"]["keep"]:
        assert keep == list(range(1, 64, 2))
    batch = calibration_batches(n=1, seed=5)[0]
    torch.testing.assert_close(logits(built.model, batch), logits(teacher, batch), rtol=0, atol=1e-5)
    assert built.kind == "stock" and built.model.config.intermediate_size == 32
    assert count(teacher) - count(built.model) == 4 * 32 * (32 + 1 + 32)


@pytest.mark.parametrize("scores", ["head_scores", "ffn_scores"])
def test_fisher_sums_each_examples_squared_gradient(teacher, scores) -> None:
    """One backward pass with a gate row per example gives what one pass per example gives."""
    from autodistill.student import importance

    batches = calibration_batches(n=2, seed=3)
    fisher = getattr(importance, scores)(teacher, batches, fisher=True)
    alone = [{k: v[i : i + 1] for k, v in b.items()} for b in batches for i in range(b["input_ids"].shape[0])]
    expected = [torch.zeros_like(f) for f in fisher]
    for one in alone:  # |dL/dgate| of one example is its own gradient; squared, summed
        for e, g in zip(expected, getattr(importance, scores)(teacher, [one])):
            e += g.pow(2)
    for f, e in zip(fisher, expected):
        torch.testing.assert_close(f, e, rtol=1e-4, atol=1e-9)
    plain = getattr(importance, scores)(teacher, batches)
    assert any(not torch.allclose(f, p.pow(2)) for f, p in zip(fisher, plain))  # not the batch gradient squared


def test_ffn_multiple_of_and_magnitude(teacher) -> None:
    built = _build(teacher, [("ffn", {"ratio": 0.3, "multiple_of": 8, "score": "magnitude"})])
    assert [layer.ffn for layer in built.shape.layers] == [16] * 4  # round(19.2) = 19 -> 16


def test_hidden_keeps_one_channel_subset_everywhere(teacher, ctx) -> None:
    built = _build(teacher, [("hidden", {"ratio": 0.5})], ctx)
    keep = torch.tensor(built.resolved["transforms"][0]["resolved"]["keep"])
    assert built.shape.hidden == 16 == len(keep) and built.kind == "registered"
    s, t = built.model.state_dict(), teacher.state_dict()
    for key in ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.attention.self.key.weight"):
        assert torch.equal(s[key], t[key][:, keep])
    for key in ("bert.encoder.layer.2.output.LayerNorm.bias", "bert.encoder.layer.3.attention.output.dense.weight"):
        assert torch.equal(s[key], t[key][keep])
    assert torch.equal(s["bert.pooler.dense.weight"], t["bert.pooler.dense.weight"][keep][:, keep])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"][:, keep])
    assert built.shape.layers[0].attn_dim == 32  # heads keep their width (Minitron)


def test_hidden_ratio_one_is_the_teacher(teacher, ctx) -> None:
    built = _build(teacher, [("hidden", {"ratio": 1.0})], ctx)
    batch = calibration_batches(n=1, seed=5)[0]
    torch.testing.assert_close(logits(built.model, batch), logits(teacher, batch), rtol=0, atol=1e-6)


def test_hidden_plus_heads_can_be_stock(teacher, ctx) -> None:
    # 16 channels and 2 heads of 8: heads * head_dim == hidden again
    built = _build(teacher, [("hidden", {"ratio": 0.5}), ("heads", {"ratio": 0.5})], ctx)
    assert built.kind == "stock"


@pytest.mark.parametrize("aware", [False, True])
def test_full_rank_svd_reproduces_the_layer(teacher, ctx, aware) -> None:
    steps = [
        (
            "low_rank",
            {
                "targets": ["query", "value", "ffn_in", "ffn_out"],
                "rank": 32,
                "activation_aware": aware,
                "embedding_rank": 32,
            },
        )
    ]
    built = _build(teacher, steps, ctx)
    batch = calibration_batches(n=1, seed=5)[0]
    torch.testing.assert_close(logits(built.model, batch), logits(teacher, batch), rtol=0, atol=1e-4)
    assert built.shape.embedding_rank == 32 and built.shape.layers[0].ranks["ffn_out"] == 32


def test_low_rank_shrinks_and_errs_less_with_more_rank(teacher, ctx) -> None:
    batch = calibration_batches(n=1, seed=5)[0]
    ref = logits(teacher, batch)
    errors, counts = [], []
    for rank in (2, 8, 24):
        built = _build(teacher, [("low_rank", {"rank": rank})], ctx)
        errors.append(float((logits(built.model, batch) - ref).abs().max()))
        counts.append(count(built.model))
    assert errors[0] > errors[2] and counts[0] < counts[1] < counts[2]
    assert count(teacher) - counts[0] == 4 * 2 * (32 * 64 - 2 * (32 + 64))


def test_low_rank_energy_is_bounded_by_its_plan(teacher, ctx) -> None:
    spec = StudentSpec((Step("low_rank", {"targets": ["attn_out"], "energy": 0.5}),))
    built = build_student(teacher, spec, ctx)
    ranks = [layer.ranks["attn_out"] for layer in built.shape.layers]
    assert all(1 <= r <= 16 for r in ranks) and max(ranks) < 16  # half the energy of a random 32x32 matrix
    assert count(built.model) <= predict_parameters(shape_from_config(teacher.config), spec)
    assert built.resolved["plan_exactness"] == "bound"


@pytest.mark.parametrize(
    ("step", "key"),
    [
        (("heads", {"ratio": 0}), "ratio"),
        (("heads", {"ratio": [0.5, 0.5]}), "ratio"),
        (("heads", {"ratio": [0.5] * 4, "scope": "global"}), "scope"),
        (("ffn", {"ratio": 1.5}), "ratio"),
        (("hidden", {}), "ratio"),
        (("low_rank", {"rank": 40}), "rank"),
        (("low_rank", {"rank": 4, "energy": 0.9}), "rank"),
        (("low_rank", {"targets": ["dense"], "rank": 4}), "targets"),
        (("low_rank", {"targets": [], "embedding_rank": 64}), "embedding_rank"),
        (("low_rank", {"layers": [9], "rank": 4}), "layers"),
    ],
)
def test_bad_options_name_the_key(teacher, ctx, step, key) -> None:
    with pytest.raises(ConfigError, match=rf"'student\.transforms\[0\]\.{key}'"):
        _build(teacher, [step], ctx)


@pytest.mark.parametrize("name", ["heads", "ffn", "hidden"])
def test_scores_without_calibration_are_a_clear_error(teacher, name) -> None:
    with pytest.raises(ConfigError, match="calibration batches"):
        _build(teacher, [(name, {"ratio": 0.5})])


def test_global_pruning_after_uneven_ranks_is_refused(teacher, ctx) -> None:
    steps = [
        ("low_rank", {"targets": ["ffn_in"], "rank": 4, "layers": [0]}),
        ("ffn", {"ratio": 0.5, "scope": "global"}),
    ]
    with pytest.raises(ConfigError, match=r"'student\.transforms\[1\]\.scope'"):
        _build(teacher, steps, ctx)
