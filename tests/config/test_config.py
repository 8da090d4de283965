from __future__ import annotations

import pytest
import yaml

from autodistill.config import RunConfig, apply_overrides, load_config, to_dict
from autodistill.errors import ConfigError


def write(tmp_path, data) -> str:
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_defaults_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, {}))
    assert cfg == RunConfig()
    again = load_config(write(tmp_path, to_dict(cfg)))
    assert again == cfg


def test_full_example_loads(tmp_path):
    data = {
        "task": "sequence-classification",
        "output_dir": str(tmp_path / "out"),
        "teacher": {"model": "builtin:minilm", "finetune": {"epochs": 2, "lr": 3e-5}},
        "data": {"source": "builtin:sms_spam", "metric": "macro_f1", "max_length": 64},
        "student": {"transforms": [{"name": "depth", "layers": 2, "choice": "first"}]},
        "distill": {"mode": "proxy", "proxy_steps": 10, "loss": {"temperature": 4, "terms": [{"name": "kl"}]}},
    }
    cfg = load_config(write(tmp_path, data))
    assert cfg.teacher.finetune.epochs == 2
    assert cfg.data.metric == "macro_f1"
    assert cfg.distill.loss.temperature == 4.0
    assert cfg.student.transforms[0]["layers"] == 2


@pytest.mark.parametrize(
    "data, key",
    [
        ({"distill": {"lr": -1}}, "distill.lr"),
        ({"distill": {"loss": {"temperature": 0}}}, "distill.loss.temperature"),
        ({"distill": {"bogus": 1}}, "distill.bogus"),
        ({"unknown_section": {}}, "unknown_section"),
        ({"data": {"metric": "auc"}}, "data.metric"),
        ({"data": {"max_length": "long"}}, "data.max_length"),
        ({"distill": {"mode": "fast"}}, "distill.mode"),
        ({"task": "translation"}, "task"),
        ({"student": {"transforms": [{"layers": 2}]}}, "student.transforms[0].name"),
        ({"distill": {"loss": {"terms": [{"name": "kl", "weight": -1}]}}}, "distill.loss.terms[0].weight"),
        ({"teacher": {"finetune": {"epochs": 0}}}, "teacher.finetune.epochs"),
        ({"teacher": {"finetune": {"seed": -1}}}, "teacher.finetune.seed"),
        ({"seed": -1}, "seed"),
        ({"data": {"split_seed": -2}}, "data.split_seed"),
        ({"distill": {"batch_size": True}}, "distill.batch_size"),
        ({"distill": {"prune_after": 0.95}}, "distill.prune_after"),
        ({"distill": {"prune_stages": 0}}, "distill.prune_stages"),
        ({"distill": {"ema": 1.0}}, "distill.ema"),
        ({"distill": {"dropout": -0.1}}, "distill.dropout"),
        ({"distill": {"qat": 1.5}}, "distill.qat"),
        ({"distill": {"qat": -0.1}}, "distill.qat"),
        ({"task": "causal-lm", "distill": {"qat": 0.5}}, "distill.qat"),
        ({"export": {"min_speedup": 0}}, "export.min_speedup"),
        ({"export": {"min_relative_quality": 2}}, "export.min_relative_quality"),
        ({"export": {"trial": 1, "max_params": 5}}, "export.trial"),
        ({"export": {"candidates": 2}}, "export.candidates"),
        ({"export": {"formats": ["hf", "tflite"]}}, "export.formats[1]"),
        ({"distill": {"augment": {"unlabeled_share": 1.5}}}, "distill.augment.unlabeled_share"),
        ({"budget": {"max_parameter_share": 1.5}}, "budget.max_parameter_share"),
        ({"budget": {"min_speedup": 0.5}}, "budget.min_speedup"),
        ({"student": {"calibration_examples": 0}}, "student.calibration_examples"),
        ({"search": {"calibration_examples": -3}}, "search.calibration_examples"),
    ],
)
def test_bad_values_name_the_key(tmp_path, data, key):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert repr(key) in str(err.value)
    assert "run.yaml" in str(err.value)


def test_unknown_key_lists_allowed(tmp_path):
    with pytest.raises(ConfigError, match="Allowed keys here: .*batch_size"):
        load_config(write(tmp_path, {"distill": {"batchsize": 8}}))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(top))


def test_overrides(tmp_path):
    path = write(tmp_path, {"distill": {"lr": 0.001}})
    cfg = load_config(path, ["distill.lr=2e-5", "distill.mode=proxy", "student.transforms[0].layers=2", "seed=7"])
    assert cfg.distill.lr == 2e-5
    assert cfg.distill.mode == "proxy"
    assert cfg.student.transforms[0]["layers"] == 2
    assert cfg.seed == 7


def test_override_errors(tmp_path):
    path = write(tmp_path, {})
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(path, ["distill.lr"])
    with pytest.raises(ConfigError, match="'distill.nope'"):
        load_config(path, ["distill.nope=1"])
    with pytest.raises(ConfigError, match="out of range"):
        load_config(path, ["student.transforms[5].layers=2"])
    with pytest.raises(ConfigError, match="'distill.lr'"):
        load_config(path, ["distill.lr=abc"])


def test_apply_overrides_does_not_mutate():
    data = {"distill": {"lr": 1.0}}
    out = apply_overrides(data, ["distill.lr=2"])
    assert data["distill"]["lr"] == 1.0 and out["distill"]["lr"] == 2


def test_field_rule_is_the_config_own_check():
    """One declaration: a flag or a search-space range asks the config class, not a copy of its bounds."""
    from autodistill.config.run import DistillConfig, LossConfig, SearchConfig
    from autodistill.config.schema import check_as, field_rule

    assert field_rule(DistillConfig, "lr", -1) == "must be > 0"
    assert field_rule(DistillConfig, "lr", 1e-4) is None
    assert field_rule(DistillConfig, "batch_size", 2.5) == "must be a whole number"
    assert field_rule(DistillConfig, "ema", 1.0) == "must be in [0, 1)"
    assert field_rule(DistillConfig, "dropout", None) is None
    assert field_rule(LossConfig, "temperature", "hot") == "must be a number"
    assert field_rule(SearchConfig, "n_trials", 0) == "must be >= 1"
    with pytest.raises(
        ConfigError, match=r"^The '--n-trials' flag must be >= 1, like the config's 'search.n_trials'\. Got 0"
    ):
        check_as(SearchConfig, "n_trials", 0, "'--n-trials' flag", "search.n_trials")
