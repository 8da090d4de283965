"""What a search spent (proxy steps per checkpoint) and ``--compare-random``: random sampling of
the same config for the same proxy steps, its front's hypervolume beside the search's."""

from __future__ import annotations

import re
from types import SimpleNamespace

import optuna
import pytest
from test_search_tiny import tiny_search  # noqa: F401  (the fixture)

from autodistill.cli import main
from autodistill.search.effort import effort, hypervolumes


def _trial(checkpoints: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(user_attrs={"checkpoints": checkpoints})


def test_effort_counts_each_trial_to_its_last_checkpoint_and_per_rung():
    trials = [
        _trial({"20": 0.6, "40": 0.7, "60": 0.8}),
        _trial({"20": 0.5}),
        _trial({"20": 0.6, "40": 0.6}),
        _trial({}),
    ]
    e = effort(trials)
    assert e["steps"] == 60 + 20 + 40 and e["trials"] == 4
    assert e["rungs"] == [
        {"step": 20, "trials": 3, "steps": 60},
        {"step": 40, "trials": 2, "steps": 40},
        {"step": 60, "trials": 1, "steps": 20},
    ]


def _front(*points: tuple[float, float]) -> list[dict]:
    return [{"objectives": {"quality": q, "parameters": n}} for q, n in points]


def test_hypervolumes_share_one_scale_and_a_dominating_front_scores_higher():
    better = _front((0.9, 10), (0.8, 5))
    worse = _front((0.85, 10), (0.7, 6))
    a, b = hypervolumes([better, worse], ["quality", "parameters"])
    assert a > b > 0
    # the same front against itself: equal; an empty front: 0
    same = hypervolumes([better, better], ["quality", "parameters"])
    assert same[0] == pytest.approx(same[1])
    assert hypervolumes([better, []], ["quality", "parameters"])[1] == 0.0
    # each axis scaled to [0, 1] over both fronts: the box is about 1 x 1
    assert a <= 1.02**2


def test_compare_random_spends_the_same_proxy_steps_and_reports_both_fronts(tiny_search, capsys, monkeypatch):  # noqa: F811
    from autodistill.search import study

    path, tmp = tiny_search
    made = []
    real = study.make_sampler
    monkeypatch.setattr(study, "make_sampler", lambda cfg, *a: made.append(cfg.search.sampler) or real(cfg, *a))
    assert main(["search", str(path), "--quiet", "--n-trials", "2", "--compare-random"]) == 0
    out = capsys.readouterr().out
    spent = re.search(r"proxy steps spent: (\d+) by 2 trained trials \(2 reached step 2, 2 reached step 4", out)
    assert spent, out
    line = re.search(
        r"study 'out-random': (\d+) trials, (\d+) steps\): front hypervolume ([\d.]+) here against ([\d.]+)", out
    )
    assert line, out
    trials, steps = int(line.group(1)), int(line.group(2))
    # no pruning here: every trial runs its 6 proxy steps, so equal steps mean equal trials
    assert int(spent.group(1)) == 12 and steps == 12 and trials == 2
    storage = f"sqlite:///{tmp / 'out' / 'study.db'}"
    random_study = optuna.load_study(study_name="out-random", storage=storage)
    assert len([t for t in random_study.trials if t.user_attrs.get("trained")]) == 2
    assert made == ["tpe", "random"]  # the config's sampler, then random sampling for the comparison


def test_a_new_study_warm_starts_from_another_studys_front(tiny_search):  # noqa: F811
    """search.warm_start: the other study's front trials are the new study's first trials, with
    the same parameters, once; a study of another space is refused by name before any training."""
    import yaml

    from autodistill.config import load_config
    from autodistill.errors import ConfigError
    from autodistill.search.front import pareto_front
    from autodistill.search.run import Search

    path, tmp = tiny_search
    first = Search(load_config(path), progress=False)
    out = first.run(n_trials=2)
    front = pareto_front(first.study, out["objectives"])
    warm = Search(load_config(path, ["search.study_name=warm", "search.warm_start=out"]), progress=False)
    warm.run(n_trials=len(front))
    trials = sorted(warm.study.trials, key=lambda t: t.number)[: len(front)]
    assert [t.params for t in trials] == [r["params"] for r in front]
    assert [t.user_attrs["warm_start"] for t in trials] == [f"out:{r['number']}" for r in front]
    assert warm.study.user_attrs["warm_start"] == {"study": "out", "trials": [r["number"] for r in front]}
    # resumed, it enqueues nothing more
    again = Search(load_config(path, ["search.study_name=warm", "search.warm_start=out"]), progress=False)
    assert len(again.study.trials) == len(warm.study.trials)
    # another space: refused, naming the key
    other = tmp / "other.yaml"
    space = yaml.safe_load((tmp / "tiny.yaml").read_text())
    other.write_text(yaml.safe_dump({**space, "name": "other", "proxy_steps": 8}))
    cfg = load_config(path, ["search.study_name=elsewhere", "search.warm_start=out", f"search.space={other}"])
    with pytest.raises(ConfigError, match="'search.warm_start' study 'out' was made with a different space"):
        Search(cfg, progress=False)
    with pytest.raises(ConfigError, match="'search.warm_start' parameter names study 'nope'"):
        Search(load_config(path, ["search.study_name=x", "search.warm_start=nope"]), progress=False)
