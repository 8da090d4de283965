"""Layer-map rules and the errors a user sees for bad loss options."""

from __future__ import annotations

import pytest

from autodistill.errors import ConfigError
from autodistill.losses import CompositeLoss, LossDims, resolve_layer_map
from autodistill.specs import LossSpec, Step

DIMS = LossDims(student_hidden=16, teacher_hidden=24, student_heads=(2, 2), teacher_heads=4)


@pytest.mark.parametrize(
    ("rule", "n_s", "n_t", "expected"),
    [
        ("uniform", 2, 4, [(1, 2), (2, 4)]),
        ("uniform", 3, 12, [(1, 4), (2, 8), (3, 12)]),
        ("uniform", 4, 6, [(1, 2), (2, 3), (3, 5), (4, 6)]),
        ("uniform", 4, 2, [(1, 1), (2, 1), (3, 2), (4, 2)]),
        ("uniform", 6, 6, [(i, i) for i in range(1, 7)]),
        ("last", 2, 6, [(2, 6)]),
        ((1, 3), 2, 4, [(1, 1), (2, 3)]),
        ([4, 4], 2, 4, [(1, 4), (2, 4)]),
    ],
)
def test_layer_map_rules(rule, n_s, n_t, expected):
    assert resolve_layer_map(rule, n_s, n_t) == expected


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("middle", "'uniform', 'last'"),
        ([1], "one teacher layer per student layer"),
        ([0, 2], "[1, 4]"),
        ([1, 5], "[1, 4]"),
        ([1, "a"], "list of integers"),
        (3, "list of integers"),
    ],
)
def test_bad_layer_map_names_the_key(rule, fragment):
    with pytest.raises(ConfigError, match=r"distill\.loss\.layer_map") as err:
        resolve_layer_map(rule, 2, 4)
    assert fragment in str(err.value)


def composite(*terms, weighting=None, layer_map=((1, 2), (2, 4)), dims=DIMS):
    spec = LossSpec(
        terms=tuple(Step.from_dict(t) for t in terms), weighting=Step.from_dict(weighting or {"name": "static"})
    )
    return CompositeLoss(spec, dims, list(layer_map))


@pytest.mark.parametrize(
    ("terms", "weighting", "key", "fragment"),
    [
        ([{"name": "jsd", "beta": 1.5}], None, "distill.loss.terms[0].beta", "(0, 1)"),
        ([{"name": "ce"}, {"name": "kl", "tau": 2}], None, "distill.loss.terms[1].tau", "not a known key"),
        ([{"name": "contrastive", "temperature": 0}], None, "distill.loss.terms[0].temperature", "> 0"),
        ([{"name": "contrastive", "pool": "max"}], None, "distill.loss.terms[0].pool", "'mean'"),
        ([{"name": "attention_relation", "relations": ["qk"]}], None, "distill.loss.terms[0].relations", "qq"),
        (
            [{"name": "attention_relation", "source": "hidden", "relation_heads": 5}],
            None,
            "distill.loss.terms[0].relation_heads",
            "not divisible",
        ),
        (
            [{"name": "hidden_mse", "shared_projection": "yes"}],
            None,
            "distill.loss.terms[0].shared_projection",
            "true or false",
        ),
        ([{"name": "kl", "weight": -1}], None, "distill.loss.terms[0].weight", ">= 0"),
        ([{"name": "kld"}], None, "distill.loss.terms[0].name", "Valid names"),
        ([{"name": "kl"}, {"name": "kl"}], None, "distill.loss.terms[1].name", "repeats"),
        ([{"name": "kl"}], {"name": "softmax"}, "distill.loss.weighting.name", "dwa, lag, progressive, static"),
        ([{"name": "hidden_mse"}], {"name": "dwa", "window": 0}, "distill.loss.weighting.window", ">= 1"),
        ([{"name": "hidden_mse"}], {"name": "dwa", "speed": 1}, "distill.loss.weighting.speed", "not a known key"),
        ([{"name": "hidden_mse"}], {"name": "lag", "ema": 1.0}, "distill.loss.weighting.ema", "[0, 1)"),
        ([{"name": "hidden_mse"}], {"name": "uncertainty", "bound": -1}, "distill.loss.weighting.bound", "> 0"),
        (
            [{"name": "hidden_mse"}],
            {"name": "static", "weights": {"hidden_mse/s9_t9": 2.0}},
            "distill.loss.weighting.weights.hidden_mse/s9_t9",
            "hidden_mse/s1_t2",
        ),
        (
            [{"name": "hidden_mse"}],
            {"name": "static", "weights": {"hidden_mse/s1_t2": 0}},
            "distill.loss.weighting.weights.hidden_mse/s1_t2",
            "> 0",
        ),
        ([{"name": "hidden_mse"}], {"name": "static", "scope": "terms"}, "distill.loss.weighting.scope", "'all'"),
        ([{"name": "hidden_mse"}], {"name": "lag", "log_every": 0}, "distill.loss.weighting.log_every", ">= 1"),
        ([{"name": "hidden_mse"}], {"name": "progressive", "floor": 0}, "distill.loss.weighting.floor", "(0, 1]"),
        ([{"name": "self_kl", "source": "ema"}], None, "distill.loss.terms[0].source", "'checkpoint'"),
        ([{"name": "self_kl", "decay": 1.0}], None, "distill.loss.terms[0].decay", "(0, 1)"),
        ([{"name": "self_kl", "start": 1.0}], None, "distill.loss.terms[0].start", "[0, 1)"),
    ],
)
def test_bad_options_name_the_key(terms, weighting, key, fragment):
    with pytest.raises(ConfigError) as err:
        composite(*terms, weighting=weighting)
    message = str(err.value)
    assert f"'{key}'" in message and fragment in message, message


def test_attention_mse_with_different_heads_points_to_relation_loss():
    with pytest.raises(ConfigError, match="attention_relation") as err:
        composite({"name": "attention_mse"})
    assert "distill.loss.terms[0]" in str(err.value) and "2 heads" in str(err.value)


def test_per_layer_loss_without_layer_map_is_a_config_error():
    with pytest.raises(ConfigError, match="layer_map"):
        composite({"name": "hidden_mse"}, layer_map=())
