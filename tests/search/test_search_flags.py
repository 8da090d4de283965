"""The search's --n-trials and --timeout (and api.search's arguments) accept what the config's
search.n_trials and search.timeout accept, and nothing else: before, 0 fell back to the config's
count and negative values ran nothing and exited 0."""

from __future__ import annotations

import pytest
import yaml

from autodistill import api
from autodistill.cli import main
from autodistill.errors import ConfigError


@pytest.fixture
def stub_search(tmp_path, monkeypatch):
    """A config and a Search that records what it was asked to run instead of running it."""
    calls = []

    class Recorder:
        def __init__(self, cfg, **kw):
            pass

        def run(self, n_trials=None, timeout=None, more=None):
            calls.append((n_trials, timeout) if more is None else (n_trials, timeout, more))
            effort = {"steps": 0, "trials": 0, "rungs": []}
            return {
                "study": "s",
                "trained": 0,
                "seconds": 0.0,
                "front": [],
                "objectives": ["quality"],
                "effort": effort,
            }

    monkeypatch.setattr("autodistill.search.run.Search", Recorder)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out")}))
    return path, calls


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--n-trials", "0"], "The '--n-trials' flag must be >= 1, like the config's 'search.n_trials'. Got 0"),
        (["--n-trials", "-1"], "The '--n-trials' flag must be >= 1"),
        (["--timeout", "-5"], "The '--timeout' flag must be > 0, like the config's 'search.timeout'. Got -5.0"),
        (["--timeout", "0"], "The '--timeout' flag must be > 0"),
        (["--timeout", "nan"], "The '--timeout' flag must be > 0"),
        (["--more", "0"], "The '--more' flag must be >= 1, like the config's 'search.n_trials'. Got 0"),
        (["--more", "2", "--n-trials", "3"], "either a total of trained trials (--n-trials) or more of them (--more)"),
    ],
)
def test_bad_search_flags_are_refused(stub_search, capsys, flags, needle):
    path, calls = stub_search
    assert main(["search", str(path), "--quiet", *flags]) == 2
    assert needle in capsys.readouterr().err
    assert calls == []  # nothing ran


def test_good_search_flags_reach_the_search(stub_search, capsys):
    path, calls = stub_search
    assert main(["search", str(path), "--quiet", "--n-trials", "3", "--timeout", "60"]) == 0
    assert main(["search", str(path), "--quiet"]) == 0
    assert main(["search", str(path), "--quiet", "--more", "4"]) == 0
    assert calls == [(3, 60.0), (None, None), (None, None, 4)]


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"n_trials": 0}, "The 'n_trials' argument of api.search must be >= 1"),
        ({"n_trials": -1}, "The 'n_trials' argument of api.search must be >= 1"),
        ({"n_trials": 2.5}, "The 'n_trials' argument of api.search must be a whole number"),
        ({"timeout": -5}, "The 'timeout' argument of api.search must be > 0"),
        ({"more": 0}, "The 'more' argument of api.search must be >= 1"),
    ],
)
def test_bad_api_search_arguments_are_refused(stub_search, kw, needle):
    path, calls = stub_search
    with pytest.raises(ConfigError) as err:
        api.search(str(path), progress=False, **kw)
    assert needle in str(err.value) and calls == []
