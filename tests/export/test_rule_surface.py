"""The export rule is declared once, in ``specs.PickRule``: the CLI's rule flags, ``api.export``'s
rule arguments and the config's ``export`` keys all come from its fields, and "no rule given means
the config's rule" is decided in one place (``api.export``)."""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml

from autodistill import api
from autodistill.cli import build_parser, main
from autodistill.config import load_config
from autodistill.config.run import ExportConfig
from autodistill.errors import PickError
from autodistill.specs import PickRule, flag_of, rule_options


@pytest.fixture
def stub_export(monkeypatch):
    """``run_export`` records the rule it is handed instead of exporting."""
    calls = []

    def record(cfg, rule=None, *, from_config=False, **kw):
        calls.append((rule, from_config, kw))
        return {"rule": rule}

    monkeypatch.setattr("autodistill.export.run.run_export", record)
    return calls


def _config(tmp_path, export=None):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "export": export or {}}))
    return path


def test_every_rule_field_is_a_flag_an_argument_and_a_config_key():
    names = [f.name for f in fields(PickRule)]
    assert [o.name for o in rule_options()] == names
    assert all(o.help for o in rule_options())
    export_flags = build_parser()._subparsers._group_actions[0].choices["export"]
    flags = {a.option_strings[0]: a for a in export_flags._actions if a.option_strings}
    for o in rule_options():
        assert flags[o.flag].type is o.type and flags[o.flag].help == o.help and flags[o.flag].default is None
    assert set(names) <= {f.name for f in fields(ExportConfig)}


def test_rule_flags_are_parsed_with_the_fields_types():
    args = build_parser().parse_args(["export", "c.yaml", "--max-params", "5", "--min-speedup", "2.5", "--trial", "3"])
    assert (args.max_params, args.min_speedup, args.trial) == (5, 2.5, 3)
    assert args.candidates is None and args.min_quality is None  # unset: the config's rule


def test_rule_arguments_replace_the_configs_rule_as_a_whole(tmp_path, stub_export):
    path = _config(tmp_path, {"min_speedup": 3})
    api.export(path, max_params=1000)
    rule, from_config, _ = stub_export[-1]
    assert rule == PickRule(max_params=1000) and from_config is False


def test_no_rule_arguments_take_the_configs_rule(tmp_path, stub_export):
    api.export(_config(tmp_path, {"min_speedup": 3}))
    assert stub_export[-1][:2] == (PickRule(min_speedup=3), True)
    api.export(_config(tmp_path))  # no rule in the config either: the knee, said as such
    assert stub_export[-1][:2] == (PickRule(), False)


def test_candidates_alone_apply_to_the_configs_rule(tmp_path, stub_export):
    api.export(_config(tmp_path, {"max_params": 1000}), candidates=3)
    assert stub_export[-1][:2] == (PickRule(max_params=1000, candidates=3), False)


def test_the_cli_hands_each_rule_flag_to_the_api(tmp_path, stub_export, capsys, monkeypatch):
    seen = {}

    def fake_export(config, **kw):
        seen.update(kw)
        raise PickError("stop here")

    monkeypatch.setattr(api, "export", fake_export)
    argv = ["export", str(_config(tmp_path)), "--quiet"]
    for o in rule_options():
        argv += [o.flag, "2"]
    assert main(argv) == 2
    assert "stop here" in capsys.readouterr().err
    assert {o.name: seen[o.name] for o in rule_options()} == {o.name: o.type(2) for o in rule_options()}


def test_an_unknown_rule_argument_names_the_valid_ones(tmp_path, stub_export):
    with pytest.raises(TypeError, match=r"argument 'max_parms'; the rule's arguments are max_params"):
        api.export(_config(tmp_path), max_parms=10)
    assert stub_export == []


def test_a_bad_rule_argument_is_refused_by_the_rules_own_check(tmp_path, stub_export):
    with pytest.raises(PickError, match=r"The '--max-params' option must be > 0. Got -1 instead."):
        api.export(_config(tmp_path), max_params=-1)
    with pytest.raises(Exception, match=r"'export.max_params' .*must be > 0"):
        load_config(_config(tmp_path, {"max_params": -1}))
    assert stub_export == []


def test_flags_are_the_field_names_with_dashes():
    assert flag_of("min_relative_quality") == "--min-relative-quality"
    assert PickRule(max_params=5, candidates=2).given() == {"--max-params": 5, "--candidates": 2}
