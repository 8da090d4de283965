"""Hidden-state distillation of causal LMs: the two losses on hand-computed cases, the layer map
from the depth records, the projection (made only when widths differ, trained with the student,
never saved with it), the teacher's hidden states cached beside the top-k targets only when a loss
reads them (extended, not rebuilt), and `autodistill distill` end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from helpers import lm_texts, tiny_lm_dir, write_jsonl

from autodistill.errors import ConfigError
from autodistill.tasks.causal_lm.cache import hidden_file, topk_cache
from autodistill.tasks.causal_lm.distill import hidden_geometry, planned_geometry
from autodistill.tasks.causal_lm.losses import (
    LM_LOSSES,
    HiddenGeometry,
    HiddenInputs,
    build_lm_loss,
    layer_pairs,
)
from autodistill.tasks.causal_lm.student import build_student
from autodistill.tasks.causal_lm.topk import compress
from autodistill.tasks.causal_lm.train import train_lm

SAME = HiddenGeometry(student_layers=2, teacher_layers=2, student_hidden=4, teacher_hidden=4)


def hidden_loss(name: str, geometry: HiddenGeometry = SAME, **options):
    return LM_LOSSES.get(name)(geometry=geometry, **options)


def states(seed: int, layers: int = 3, shape=(2, 3, 4)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen) for _ in range(layers)]


MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])  # one padding position


def call(loss, student, teacher: dict, mask=MASK) -> float:
    logits, labels = torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long)
    return float(loss(logits, None, labels, 1.0, HiddenInputs(student, teacher, mask)).detach())


# --- the losses ---------------------------------------------------------------------------------


def test_identical_states_give_zero():
    t = states(0)
    for name in ("hidden_mse", "hidden_cos"):
        assert call(hidden_loss(name), t, {1: t[1], 2: t[2]}) < 1e-6


def test_mse_is_divided_by_the_teachers_square_at_each_real_token():
    t = states(1)
    student = [t[0], t[1] + 0.5, t[2] - 2.0]
    student[1][1, 2] = 1e6  # a padding position counts for nothing
    real = MASK.bool()

    def layer(c: float, h: torch.Tensor) -> float:  # offset c on d = 4 features: 4 c^2 / ||h||^2, mean over tokens
        return float((4 * c * c / h[real].pow(2).sum(-1)).mean())

    expected = (layer(0.5, t[1]) + layer(2.0, t[2])) / 2
    got = call(hidden_loss("hidden_mse"), student, {1: t[1], 2: t[2]})
    assert got == pytest.approx(expected, rel=1e-5)
    # the same relative error at a 1000 times larger scale gives the same value
    big = [h * 1000 for h in t]
    assert call(hidden_loss("hidden_mse"), [big[0], big[1] + 500, big[2] - 2000], {1: big[1], 2: big[2]}) == (
        pytest.approx(expected, rel=1e-4)
    )
    # a zero student scores 1 whatever the teacher's scale, token by token: a loud token weighs as much as any
    loud = [h.clone() for h in t]
    loud[1][0, 0] *= 1e4
    zeros = [torch.zeros_like(h) for h in t]
    assert call(hidden_loss("hidden_mse"), zeros, {1: loud[1], 2: t[2]}) == pytest.approx(1.0, rel=1e-6)
    # padding whose teacher state is 0 (as the cache pads) gives no 0 / 0
    padded = t[2].clone()
    padded[1, 2] = 0.0
    assert np.isfinite(call(hidden_loss("hidden_mse", HiddenGeometry(1, 1, 4, 4)), [t[0], t[1]], {1: padded}))


def test_cosine_by_hand():
    t = states(2)
    # opposite directions: 2 per token; a scaled copy: 0; mean over the two layers
    assert call(hidden_loss("hidden_cos"), [t[0], -t[1], 3 * t[2]], {1: t[1], 2: t[2]}) == pytest.approx(1.0)
    e0, e1 = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    e0[..., 0], e1[..., 1] = 1.0, 1.0
    e1[1, 2] = e0[1, 2]  # agrees only on the padding position, which does not count
    one = hidden_loss("hidden_cos", HiddenGeometry(1, 1, 4, 4))
    assert call(one, [e0, e0], {1: e1}) == pytest.approx(1.0)


def test_the_layer_map_follows_the_depth_record_or_the_option():
    cut = HiddenGeometry(3, 8, 4, 4, cut_from=(0, 4, 7))
    assert layer_pairs("uniform", cut, "k") == [(1, 1), (2, 5), (3, 8)]
    unknown = HiddenGeometry(3, 8, 4, 4)  # evenly spaced: round(i * 8 / 3)
    assert layer_pairs("uniform", unknown, "k") == [(1, 3), (2, 5), (3, 8)]
    assert layer_pairs([2, None, 6], cut, "k") == [(1, 2), (3, 6)]
    loss = build_lm_loss([{"name": "fkl"}, {"name": "hidden_cos", "layers": [8, None, 2]}], 1.0, cut)
    assert loss.needs_hidden and loss.teacher_hidden_layers() == [2, 8]
    assert not build_lm_loss([{"name": "fkl"}], 1.0).needs_hidden


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ("last", r"'distill\.loss\.terms\[1\]\.layers'.*'uniform' or a list"),
        ([0, 2, 3], r"'distill\.loss\.terms\[1\]\.layers'.*>= 1"),
        ([None, None, None], r"'distill\.loss\.terms\[1\]\.layers'"),
        (["a"], r"'distill\.loss\.terms\[1\]\.layers'.*a list"),
        ([1, 2], r"'distill\.loss\.terms\[1\]\.layers'.*one teacher hidden-state index.*\(3 entries\)"),
        ([1, 2, 9], r"'distill\.loss\.terms\[1\]\.layers'.*in \[1, 8\].*Got 9"),
    ],
)
def test_a_bad_layers_option_names_its_key(layers, message):
    with pytest.raises(ConfigError, match=message):
        build_lm_loss([{"name": "fkl"}, {"name": "hidden_mse", "layers": layers}], 1.0, HiddenGeometry(3, 8, 4, 4))


def test_the_projection_exists_only_when_widths_differ_and_starts_at_the_kept_channels():
    assert hidden_loss("hidden_mse").proj is None and not list(hidden_loss("hidden_mse").parameters())
    loss = hidden_loss("hidden_mse", HiddenGeometry(1, 1, 2, 4, channels=(3, 1)))
    w = loss.proj.weight.detach()
    assert w.shape == (4, 2) and w.tolist() == [[0, 0], [0, 1], [0, 0], [1, 0]]
    t = torch.randn(2, 3, 4)
    t[..., [0, 2]] = 0.0  # the teacher's dropped channels are 0: the selection matches it exactly
    assert call(loss, [t, t[..., [3, 1]]], {1: t}) < 1e-10


# --- geometry from the records ------------------------------------------------------------------


def tiny_teacher(layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_geometry_composes_the_depth_and_hidden_records():
    teacher = tiny_teacher()
    calibration = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    transforms = [
        {"name": "depth", "layers": 3, "choice": "uniform"},
        {"name": "depth", "layers": 2, "choice": "first"},
        {"name": "hidden", "keep": 0.5},
    ]
    student, records = build_student(teacher, transforms, calibration)
    g = hidden_geometry(teacher.config, student.config, records)
    assert (g.student_layers, g.teacher_layers, g.student_hidden, g.teacher_hidden) == (2, 4, 16, 32)
    assert g.cut_from == (0, 2)  # uniform 3 of 4 keeps 0, 2, 3; then the first 2 of those
    assert g.channels == tuple(records[2]["resolved"]["keep"])
    planned = planned_geometry(teacher.config, transforms)
    assert planned.cut_from == (0, 2) and planned.student_hidden == 16 and planned.channels is None
    assert planned_geometry(teacher.config, [{"name": "depth", "layers": 2, "choice": "importance"}]) is None


# --- the cache ----------------------------------------------------------------------------------


def toy_split(rows: int = 10, block: int = 12, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 64, (rows, block)).astype(np.int32)
    mask = np.ones((rows, block), dtype=np.int8)
    mask[1, 7:], mask[4, 3:] = 0, 0  # right padding on two rows
    ids[mask == 0] = 2
    labels = np.where(mask == 1, ids, -100).astype(np.int32)
    return SimpleNamespace(input_ids=ids, attention_mask=mask, labels=labels)


class Counted:
    """The teacher, counting how often it is loaded and how often its body and head run."""

    def __init__(self, model) -> None:
        self.model, self.loads, self.body, self.head = model, 0, 0, 0
        model.base_model.register_forward_pre_hook(lambda *_: self._count("body"))
        model.lm_head.register_forward_pre_hook(lambda *_: self._count("head"))

    def _count(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)

    def __call__(self):
        self.loads += 1
        return self.model


def cache(teacher: Counted, split, layers=(), k: int = 4):
    return topk_cache(teacher, "t", split, "d", k, 64, batch_size=4, progress=False, hidden_layers=layers)


def test_hidden_states_are_cached_only_when_asked_for_and_extend_the_top_k_cache():
    teacher, split = Counted(tiny_teacher()), toy_split()
    store = cache(teacher, split)
    assert store.hidden == {} and not list(store.folder.glob("hidden-*"))
    assert (teacher.loads, teacher.body, teacher.head) == (1, 3, 3)  # 10 rows in batches of 4
    values = store.folder / "values.npy"
    before = (values.stat().st_mtime_ns, values.stat().st_ino, np.array(store.values))

    store = cache(teacher, split, [4, 2])
    assert sorted(store.hidden) == [2, 4]
    assert (teacher.loads, teacher.body, teacher.head) == (2, 6, 3)  # one more pass, without the LM head
    assert (values.stat().st_mtime_ns, values.stat().st_ino) == before[:2]
    np.testing.assert_array_equal(store.values, before[2])

    store = cache(teacher, split, [2])  # held already: no teacher
    assert teacher.loads == 2 and sorted(store.hidden) == [2, 4]
    assert store.hidden[2].dtype == np.float16 and store.hidden[2].shape == (int(split.attention_mask.sum()), 32)

    # the cached states are the teacher's, padded back per row with zeros at padding
    rows = np.array([4, 1, 0])
    got = store.hidden_batch(rows, 12, [2, 4])
    with torch.inference_mode():
        ids = torch.as_tensor(split.input_ids[rows], dtype=torch.long)
        mask = torch.as_tensor(split.attention_mask[rows], dtype=torch.long)
        want = teacher.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for i in (2, 4):
        real = mask.bool()
        assert got[i].shape == (3, 12, 32) and got[i].dtype == torch.float32
        torch.testing.assert_close(got[i][real], want[i][real], atol=2e-3, rtol=2e-3)
        assert float(got[i][~real].abs().max()) == 0.0
    with pytest.raises(ValueError, match=r"indices \[3\]"):
        store.hidden_batch(rows, 12, [3])


def test_both_missing_are_filled_in_one_teacher_pass():
    teacher, split = Counted(tiny_teacher()), toy_split()
    store = cache(teacher, split, [1, 3])
    assert (teacher.loads, teacher.body, teacher.head) == (1, 3, 3)
    assert sorted(store.hidden) == [1, 3] and hidden_file(store.folder, 3).is_file()
    # the top-k arrays are those a cache without hidden states holds
    ids = torch.as_tensor(split.input_ids[:1], dtype=torch.long)
    with torch.inference_mode():
        t = compress(teacher.model(input_ids=ids).logits.float(), 4)
    torch.testing.assert_close(store.batch(np.array([0]), 12).values, t.values, atol=1e-2, rtol=1e-3)


# --- training -----------------------------------------------------------------------------------


def spec(steps: int):
    from autodistill.specs import TrainSpec

    return TrainSpec(steps=steps, batch_size=4, lr=1e-2, weight_decay=0.0, warmup_ratio=0.0, device="cpu", bf16=False)


def test_training_moves_the_projection_and_asks_for_hidden_states_only_when_needed():
    teacher_model, split = tiny_teacher(), toy_split()
    calibration = torch.as_tensor(split.input_ids[:4], dtype=torch.long)
    transforms = [{"name": "depth", "layers": 2, "choice": "uniform"}, {"name": "hidden", "keep": 0.5}]
    student, records = build_student(teacher_model, transforms, calibration)
    geometry = hidden_geometry(teacher_model.config, student.config, records)
    loss = build_lm_loss([{"name": "fkl"}, {"name": "hidden_mse"}], 1.0, geometry)
    assert loss.teacher_hidden_layers() == [1, 4]  # uniform 2 of 4 keeps teacher layers 0 and 3
    store = cache(Counted(teacher_model), split, loss.teacher_hidden_layers())
    seen = []
    student.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw.get("output_hidden_states")), with_kwargs=True)
    start = loss.terms["hidden_mse"].proj.weight.detach().clone()
    names = set(student.state_dict())
    result = train_lm(student, loss, split, store, np.arange(10), spec(3), progress=False, vocab=64)
    assert seen == [True] * 3 and result.steps == 3
    assert not torch.equal(loss.terms["hidden_mse"].proj.weight.detach(), start)
    assert all(np.isfinite(h["hidden_mse"]) and h["hidden_mse"] > 0 for h in result.history)
    assert set(student.state_dict()) == names  # the projection stays in the loss

    seen.clear()
    train_lm(student, build_lm_loss([{"name": "fkl"}], 1.0), split, store, np.arange(10), spec(2), progress=False)
    assert seen == [None, None]


# --- end to end ---------------------------------------------------------------------------------


def test_distill_with_a_hidden_loss_writes_a_student_that_reloads(tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from autodistill.cli import main
    from autodistill.config import load_config
    from autodistill.fingerprint import home
    from autodistill.specs import LossSpec, Step, StudentSpec, TrainSpec
    from autodistill.tasks.causal_lm.distill import distill_student
    from autodistill.tasks.causal_lm.prepare import prepare

    texts = lm_texts(200)
    cfg = {
        "task": "causal-lm",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": str(tiny_lm_dir(tmp_path / "teacher", texts))},
        "data": {"source": str(write_jsonl(tmp_path / "corpus.jsonl", texts)), "max_length": 32,
                 "validation_size": 0.1, "test_size": 0.1},
        "student": {"transforms": [{"name": "depth", "layers": 2, "choice": "uniform"}]},
        "distill": {"mode": "full", "epochs": 1, "lr": 2e-3, "batch_size": 8, "top_k": 8,
                    "loss": {"temperature": 1.0, "terms": [{"name": "fkl", "weight": 1},
                                                           {"name": "hidden_mse", "weight": 1}]}},
        "evaluate": {"repeats": 1, "warmup": 1, "new_tokens": 2, "seq_len": 8},
        "tracking": {"enabled": False},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["distill", str(path), "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["train"]["final_loss"]["hidden_mse"] > 0
    # only the train split's cache holds hidden states, at the teacher layers the student came from
    held = {p.parent.name: sorted(int(f.stem.split("-")[1]) for f in p.parent.glob("hidden-*.npy"))
            for p in home().glob("cache/lm-*/meta.json")}  # fmt: skip
    assert sorted(held.values()) == [[], [], [1, 4]]
    folder = home() / "cache" / result["fingerprints"]["cache"]
    assert held[folder.name] == [1, 4]
    # filled in the top-k targets' pass (written before its meta.json), not by a second one
    assert hidden_file(folder, 4).stat().st_mtime_ns <= (folder / "meta.json").stat().st_mtime_ns
    # a student whose layers are picked on data: its layers are added to the cache, nothing rebuilt
    values = folder / "values.npy"
    before = values.stat().st_mtime_ns
    prep = prepare(load_config(path), progress=False)
    student = StudentSpec((Step("depth", {"layers": 3, "choice": "importance"}),))
    loss = LossSpec((Step("fkl"), Step("hidden_cos", {"layers": [2, None, 3]})), temperature=1.0)
    run = distill_student(prep, student, loss, spec=TrainSpec(steps=2, batch_size=4, device="cpu", bf16=False))
    assert run.train.history[-1]["hidden_cos"] > 0
    assert sorted(prep.targets["train"].hidden) == [1, 2, 3, 4] and values.stat().st_mtime_ns == before
    # the student reloads with transformers alone, with exactly its own weights (no projection)
    model, info = AutoModelForCausalLM.from_pretrained(
        tmp_path / "out" / "student", dtype=torch.float32, output_loading_info=True
    )
    assert model.config.num_hidden_layers == 2
    assert not info["missing_keys"] and not info["unexpected_keys"]
    # a bad layers option stops the command before any work, naming its key
    cfg["distill"]["loss"]["terms"][1]["layers"] = "every"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["distill", str(path), "--quiet"]) != 0
    assert "distill.loss.terms[1].layers" in capsys.readouterr().err
