from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from autodistill.errors import ConfigError
from autodistill.search.budget import RandomPoint
from autodistill.search.space import SPACES_DIR, check_components, load_space
from autodistill.specs import LossSpec, StudentSpec

SHIPPED = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def test_the_promised_spaces_ship():
    assert {"default", "fast", "pruning", "low_rank"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_space_loads_checks_and_samples(name):
    space = load_space(name)
    check_components(space)
    assert space.size() > 1
    names = set()
    for seed in range(20):
        sample = space.sample(RandomPoint(seed))
        assert isinstance(sample.student, StudentSpec) and isinstance(sample.loss, LossSpec)
        assert sample.student.transforms and sample.loss.terms
        names |= {s.name for s in sample.student.transforms}
    assert "vocab" in names and "depth" in names
    # and through a real optuna trial, with conditional knobs
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        sample = space.sample(trial)
        assert set(sample.params) == set(trial.params)
        study.tell(trial, [0.5, 1.0])


def test_conditional_knob_only_when_enabled():
    space = load_space("fast")
    seen_on = seen_off = False
    for seed in range(40):
        s = space.sample(RandomPoint(seed))
        on = any(t.name == "ffn" for t in s.student.transforms)
        assert ("ffn.ratio" in s.params) == on
        seen_on |= on
        seen_off |= not on
    assert seen_on and seen_off


def write(tmp_path: Path, data: dict) -> str:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


BASE = {"name": "t", "transforms": [{"name": "depth", "layers": 2}], "loss": {"terms": [{"name": "kl"}]}}


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"proxy_steps": 0}, "proxy_steps"),
        ({"bogus": 1}, "bogus"),
        ({"transforms": [{"layers": 2}]}, "transforms[0].name"),
        ({"transforms": [{"name": "depth", "layers": {"int": [4, 1]}}]}, "transforms[0].layers"),
        ({"transforms": [{"name": "depth", "layers": {"int": [1, 4], "spread": 2}}]}, "transforms[0].layers"),
        ({"loss": {"terms": [{"name": "kl"}], "temperature": {"float": [0, 2], "log": True}}}, "loss.temperature"),
        ({"loss": {"terms": []}}, "loss.terms"),
        ({"loss": {"terms": [{"name": "kl"}], "extra": 1}}, "loss.extra"),
        ({"train": {"momentum": 0.9}}, "train.momentum"),
        ({"train": {"prune_after": 1.5}}, "train.prune_after"),
        ({"train": {"prune_after": {"float": [0.0, 0.95]}}}, "train.prune_after"),
        ({"train": {"prune_stages": {"int": [1, 9]}}}, "train.prune_stages"),
        ({"train": {"prune_stages": 1.5}}, "train.prune_stages"),
        ({"train": {"ema": 1.0}}, "train.ema"),
        ({"train": {"ema": {"float": [0.9, 1.0]}}}, "train.ema"),
        ({"train": {"dropout": {"float": [0.0, 0.95]}}}, "train.dropout"),
    ],
)
def test_bad_space_names_the_key(tmp_path, patch, key):
    with pytest.raises(ConfigError) as err:
        load_space(write(tmp_path, {**BASE, **patch}))
    assert repr(key) in str(err.value) and "search space" in str(err.value)


def test_unknown_components_and_options(tmp_path):
    space = load_space(write(tmp_path, {**BASE, "transforms": [{"name": "shrink"}]}))
    with pytest.raises(ConfigError, match="'transforms\\[0\\].name'.*depth"):
        check_components(space)
    space = load_space(write(tmp_path, {**BASE, "transforms": [{"name": "depth", "layerz": 2}]}))
    with pytest.raises(ConfigError, match="layerz"):
        check_components(space)
    space = load_space(write(tmp_path, {**BASE, "loss": {"terms": [{"name": "klx"}]}}))
    with pytest.raises(ConfigError, match="'loss.terms\\[0\\].name'"):
        check_components(space)
    with pytest.raises(ConfigError, match="Shipped spaces: .*fast"):
        load_space("nonexistent")


def test_cached_needs_names_what_plan_sizes_the_cache_for():
    from autodistill.controller import cached_needs
    from autodistill.specs import Step

    assert cached_needs(Step("kl")) == set() and cached_needs(Step("ce")) == set()
    assert cached_needs(Step("hidden_mse")) == {"hidden"} and cached_needs(Step("contrastive")) == {"hidden"}
    assert cached_needs(Step("attention_mse")) == {"attentions"}
    assert cached_needs(Step("attention_relation")) == {"qkv"}
    assert cached_needs(Step("attention_relation", {"source": "hidden"})) == {"hidden", "attentions"}


def test_train_knobs_sample_into_the_trial_train_spec(tmp_path):
    from dataclasses import replace

    from autodistill.specs import TrainSpec

    train = {"ema": {"float": [0.9, 0.99]}, "prune_after": 0.5, "prune_stages": 2}
    space = load_space(write(tmp_path, {**BASE, "train": train}))
    for seed in range(5):
        sample = space.sample(RandomPoint(seed))
        spec = replace(TrainSpec(steps=10), **sample.train)
        assert 0.9 <= spec.ema <= 0.99 and sample.params["train.ema"] == spec.ema
        assert (spec.prune_after, spec.prune_stages) == (0.5, 2)
