"""benchmarks/proxy_fidelity.py: its rank correlations and bootstrap, the record `autodistill plan`
reads, and the script end to end on the tiny search fixture."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_search_tiny import tiny_search  # noqa: F401  (the fixture)

from autodistill.errors import ConfigError
from autodistill.search.plan import fidelity_path, fidelity_record
from autodistill.search.space import load_space

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "proxy_fidelity.py"


@pytest.fixture(scope="module")
def pf():
    sys.path.insert(0, str(BENCH.parent))  # the benchmarks import their siblings by name
    spec = importlib.util.spec_from_file_location("proxy_fidelity", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spearman_by_hand(pf):
    # one swapped neighbour pair of 4: 1 - 6 * (1 + 1) / (4 * 15)
    assert pf.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # tied x ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5)
    assert pf.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert pf.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_kendall_by_hand(pf):
    # 6 pairs, one swapped: (5 - 1) / 6
    assert pf.kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with one pair tied in x: 5 concordant, 0 discordant, sqrt((6 - 1) * 6)
    assert pf.kendall([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / np.sqrt(30))


def test_bootstrap_holds_the_estimate_and_narrows_with_more_students(pf):
    rng = np.random.default_rng(0)

    def width(n):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        ci = pf.bootstrap(pf.spearman, x, y, seed=1)
        assert ci["low"] <= ci["value"] <= ci["high"]
        assert ci["value"] == pytest.approx(pf.spearman(x, y))
        return ci["high"] - ci["low"]

    assert width(200) < width(12) / 2
    assert pf.bootstrap(pf.kendall, [1, 2, 3], [1, 2, 3], seed=0) == pf.bootstrap(
        pf.kendall, [1, 2, 3], [1, 2, 3], seed=0
    )


def test_students_all_scored_alike_have_no_correlation(pf):
    tied = pf.bootstrap(pf.spearman, [0.5, 0.5, 0.5], [0.4, 0.6, 0.7], seed=0)
    assert tied == {"value": None, "low": None, "high": None}
    assert pf.shown(tied) == "n/a (scores tied)"


def test_the_record_is_found_for_its_space_and_teacher_only(tmp_path):
    fast, default = load_space("fast"), load_space("default")
    assert fidelity_record(fast, "a" * 64) is None
    path = fidelity_path(fast, "a" * 64)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"students": 12}))
    assert fidelity_record(fast, "a" * 64) == {"students": 12}
    assert fidelity_record(default, "a" * 64) is None  # another space
    assert fidelity_record(fast, "b" * 64) is None  # another teacher
    path.write_text("{broken")
    assert fidelity_record(fast, "a" * 64) is None


def test_the_plan_line():
    from autodistill.cli import _fidelity_line

    assert "not measured for this space" in _fidelity_line(None)
    ci = {"value": 0.81, "low": 0.5, "high": 0.95}
    rec = {"measured": "2030-01-02", "students": 12, "fidelities": [{"label": "the proxy length", "spearman": ci}]}
    assert _fidelity_line(rec) == (
        "proxy fidelity (measured 2030-01-02 on 12 students): Spearman 0.81 [0.50, 0.95] at the proxy length"
    )
    tied = {"value": None, "low": None, "high": None}
    rec["fidelities"].append({"label": "half of it", "spearman": tied})
    rec.update(full_steps=12, full_steps_capped=True)
    assert _fidelity_line(rec).endswith(
        "12 students; full length capped at 12 steps): Spearman 0.81 [0.50, 0.95] at the proxy length, "
        "Spearman n/a (scores tied) at half of it"
    )


@pytest.mark.parametrize(("flags", "flag"), [(["--n", "1"], "'--n'"), (["--full-steps", "0"], "'--full-steps'")])
def test_bad_flags_are_named(pf, flags, flag):
    with pytest.raises(ConfigError, match=flag):
        pf.parse_args(["run.yaml", *flags])


def test_end_to_end_on_the_tiny_search(pf, tiny_search, capsys):  # noqa: F811
    from autodistill.cli import main

    path, tmp = tiny_search
    out = tmp / "fidelity.json"
    result = pf.main([str(path), "--n", "3", "--full-steps", "12", "--seed", "3", "--out", str(out)])
    assert not (tmp / "out" / "study.db").exists()  # it samples without a study
    written = json.loads(out.read_text())
    assert len(written["students"]) == 3
    for row in written["students"]:
        assert row["student"]["transforms"] and row["loss"]["terms"] and "lr" in row["train"]
        assert row["predicted_parameters"] > 0
        assert [row[k]["steps"] for k in ("proxy", "half", "quarter")] == [6, 3, 2]
        assert row["full"]["steps"] == 12 and row["full"]["capped"]
        assert all(0 <= row[k]["validation"] <= 1 for k in ("proxy", "half", "quarter", "full"))
    assert [f["name"] for f in written["fidelities"]] == ["proxy", "half", "quarter"]
    for f in written["fidelities"]:
        for stat in ("spearman", "kendall"):
            assert set(f[stat]) == {"value", "low", "high"}
    assert written["fidelities"] == json.loads(json.dumps(result["fidelities"]))

    assert "Spearman" in capsys.readouterr().out
    assert main(["plan", str(path), "--quiet", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["proxy_fidelity"]
    assert rec["students"] == 3 and rec["full_steps"] == 12 and rec["full_steps_capped"]
    assert rec["fidelities"] == written["fidelities"]
    assert main(["plan", str(path), "--quiet"]) == 0
    assert "proxy fidelity (measured " in capsys.readouterr().out
    assert main(["plan", str(path), "--quiet", "--set", "search.space=fast"]) == 0
    assert "proxy fidelity: not measured for this space" in capsys.readouterr().out
