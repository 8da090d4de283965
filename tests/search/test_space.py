from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from autodistill.errors import ConfigError
from autodistill.search.budget import RandomPoint
from autodistill.search.space import SPACES_DIR, check_components, load_space
from autodistill.specs import LossSpec, StudentSpec
from autodistill.tasks import get_task

CLASSIFIER = get_task("sequence-classification").components()

SHIPPED = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def test_the_promised_spaces_ship():
    assert {"default", "fast", "pruning", "low_rank"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_space_loads_checks_and_samples(name):
    space = load_space(name)
    check_components(space, get_task(space.spec.task).components())
    assert space.size() > 1
    names = set()
    for seed in range(20):
        sample = space.sample(RandomPoint(seed))
        assert isinstance(sample.student, StudentSpec) and isinstance(sample.loss, LossSpec)
        assert sample.student.transforms and sample.loss.terms
        names |= {s.name for s in sample.student.transforms}
    assert "depth" in names and ("vocab" in names or space.spec.task == "causal-lm")
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
        ({"train": {"dropout": {"float": [0.0, 1.0]}}}, "train.dropout"),
        ({"train": {"qat": {"float": [0.0, 1.5]}}}, "train.qat"),
        ({"task": "causal-lm", "train": {"qat": 0.5}}, "train.qat"),
        ({"train": {"lr": {"float": [-1, -0.5]}}}, "train.lr"),
        ({"train": {"lr": {"normal": [1, 4]}}}, "train.lr"),
        ({"train": {"batch_size": {"float": [8, 64]}}}, "train.batch_size"),
        ({"train": {"batch_size": {"choice": [16, 0]}}}, "train.batch_size"),
        ({"loss": {"terms": [{"name": "kl"}], "temperature": {"float": [-2, 0]}}}, "loss.temperature"),
        ({"loss": {"terms": [{"name": "kl"}], "temperature": {"normal": [1, 4]}}}, "loss.temperature"),
        ({"loss": {"terms": [{"name": "kl"}], "temperature": {"float": [1, 2], "int": [1, 2]}}}, "loss.temperature"),
        ({"loss": {"terms": [{"name": "kl", "weight": {"float": [-1, 1]}}]}}, "loss.terms[0].weight"),
    ],
)
def test_bad_space_names_the_key(tmp_path, patch, key):
    with pytest.raises(ConfigError) as err:
        load_space(write(tmp_path, {**BASE, **patch}))
    assert repr(key) in str(err.value) and "search space" in str(err.value)


def test_unknown_components_and_options(tmp_path):
    space = load_space(write(tmp_path, {**BASE, "transforms": [{"name": "shrink"}]}))
    with pytest.raises(ConfigError, match="'transforms\\[0\\].name'.*depth"):
        check_components(space, CLASSIFIER)
    space = load_space(write(tmp_path, {**BASE, "transforms": [{"name": "depth", "layerz": 2}]}))
    with pytest.raises(ConfigError, match="layerz"):
        check_components(space, CLASSIFIER)
    space = load_space(write(tmp_path, {**BASE, "loss": {"terms": [{"name": "klx"}]}}))
    with pytest.raises(ConfigError, match="'loss.terms\\[0\\].name'"):
        check_components(space, CLASSIFIER)
    with pytest.raises(ConfigError, match="Shipped spaces: .*fast"):
        load_space("nonexistent")


def test_cached_needs_names_what_plan_sizes_the_cache_for():
    from autodistill.losses import cached_needs
    from autodistill.specs import Step

    assert cached_needs(Step("kl")) == set() and cached_needs(Step("ce")) == set()
    assert cached_needs(Step("hidden_mse")) == {"hidden"} and cached_needs(Step("contrastive")) == {"hidden"}
    assert cached_needs(Step("attention_mse")) == {"attentions"}
    assert cached_needs(Step("attention_relation")) == {"qkv"}
    assert cached_needs(Step("attention_relation", {"source": "hidden"})) == {"hidden", "attentions"}


def test_train_knobs_sample_into_the_trial_train_spec(tmp_path):
    from dataclasses import replace

    from autodistill.specs import TrainSpec

    train = {"ema": {"float": [0.9, 0.99]}, "prune_after": 0.5, "prune_stages": 2, "qat": {"choice": [0.0, 0.25]}}
    space = load_space(write(tmp_path, {**BASE, "train": train}))
    for seed in range(5):
        sample = space.sample(RandomPoint(seed))
        spec = replace(TrainSpec(steps=10), **sample.train)
        assert 0.9 <= spec.ema <= 0.99 and sample.params["train.ema"] == spec.ema
        assert (spec.prune_after, spec.prune_stages) == (0.5, 2) and spec.qat in (0.0, 0.25)


@pytest.mark.parametrize(
    "patch, key, rule",
    [
        ({"train": {"lr": {"float": [-1, -0.5]}}}, "train.lr", "must be > 0"),
        ({"loss": {"terms": [{"name": "kl"}], "temperature": {"float": [-2, 0]}}}, "loss.temperature", "must be > 0"),
        ({"train": {"warmup_ratio": {"choice": [0.1, 1]}}}, "train.warmup_ratio", "must be in [0, 1)"),
    ],
)
def test_space_range_error_names_file_key_and_allowed_range(tmp_path, patch, key, rule):
    path = write(tmp_path, {**BASE, **patch})
    with pytest.raises(ConfigError) as err:
        load_space(path)
    msg = str(err.value)
    assert f"The {key!r} parameter of search space 't' ({path})" in msg
    assert rule in msg and "like the config's 'distill." in msg


def test_unknown_distribution_is_refused_at_load_not_in_a_trial(tmp_path):
    path = write(tmp_path, {**BASE, "loss": {"terms": [{"name": "kl"}], "temperature": {"normal": [1, 4]}}})
    with pytest.raises(ConfigError, match=r"'loss.temperature'.*one of the distributions .*\{'normal': \[1, 4\]\}"):
        load_space(path)


@pytest.mark.parametrize(
    "knob", ["lr", "batch_size", "weight_decay", "warmup_ratio", "prune_after", "prune_stages", "ema", "dropout", "qat"]
)
def test_train_knobs_accept_exactly_what_their_distill_key_accepts(tmp_path, knob):
    """The bounds are the config's own: every probe value is accepted by the space iff DistillConfig accepts it."""
    from autodistill.config.run import DistillConfig
    from autodistill.config.schema import parse

    for value in (-1, 0, 1e-4, 0.5, 0.9, 0.95, 0.999, 1, 1.5, 2, 8, 9, 64):
        try:
            parse(DistillConfig, {knob: value})
            config_ok = True
        except ConfigError:
            config_ok = False
        try:
            load_space(write(tmp_path, {**BASE, "train": {knob: value}}))
            space_ok = True
        except ConfigError:
            space_ok = False
        assert space_ok == config_ok, (knob, value)


@pytest.mark.parametrize(
    "block, key, needle",
    [
        ({"name": "heads", "ratio": {"float": [0.5, 1.5]}}, "transforms[0].ratio", "Got 1.5 instead"),
        ({"name": "depth", "layers": {"normal": [1, 4]}}, "transforms[0].layers", "one of the distributions"),
        ({"name": "depth", "layers": {"float": [1, 4]}}, "transforms[0].layers", "{int: [low, high]}"),
        ({"name": "depth", "layers": {"choice": [2, 0]}}, "transforms[0].layers", "Got 0 instead"),
    ],
)
def test_component_options_are_checked_at_every_end(tmp_path, block, key, needle):
    space = load_space(write(tmp_path, {**BASE, "transforms": [block]}))
    with pytest.raises(ConfigError) as err:
        check_components(space, CLASSIFIER)
    assert repr(key) in str(err.value) and needle in str(err.value) and str(space.source) in str(err.value)


def test_a_bad_space_stops_the_search_before_any_trial(tmp_path):
    """The search refuses the space in its setup: no study, no trial left RUNNING."""
    from autodistill import api

    space = write(tmp_path, {**BASE, "loss": {"terms": [{"name": "kl"}], "temperature": {"float": [-2, 0]}}})
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "search": {"space": space}}))
    with pytest.raises(ConfigError, match="'loss.temperature'"):
        api.search(str(cfg), progress=False)
    assert not (tmp_path / "out" / "study.db").exists()


def test_a_space_made_for_another_task_is_refused_naming_the_key(tmp_path):
    from autodistill.config.run import RunConfig, SearchConfig
    from autodistill.search.run import setup

    cfg = RunConfig(output_dir=str(tmp_path / "out"), search=SearchConfig(space="lm_fast"))
    with pytest.raises(ConfigError, match=r"'search\.space'.*task 'causal-lm'.*task is 'sequence-classification'"):
        setup(cfg)
    assert not (tmp_path / "out").exists()


def test_the_strategies_space_offers_each_strategy_on_and_off():
    space = load_space("strategies")
    seen: dict[str, set] = {"assistant": set(), "qat": set(), "self_kl": set(), "weighting": set()}
    for seed in range(40):
        s = space.sample(RandomPoint(seed))
        seen["assistant"].add(s.train["assistant"])
        seen["qat"].add(s.train["qat"])
        seen["self_kl"].add(any(t.name == "self_kl" for t in s.loss.terms))
        seen["weighting"].add(s.loss.weighting.name)
    assert seen == {"assistant": {None, 4}, "qat": {0.0, 0.5}, "self_kl": {False, True},
                    "weighting": {"static", "progressive"}}  # fmt: skip
