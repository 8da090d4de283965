"""An energy objective and budget in a tiny search: every trained trial records its training joules,
its energy per 1,000 predictions and that share of the teacher's as the objective and the budget."""

from __future__ import annotations

import optuna
import pytest
from test_search_tiny import tiny_search  # noqa: F401  (the fixture)

from autodistill.cli import main


def test_a_search_on_quality_and_energy_records_both_and_the_training_joules(tiny_search, capsys):  # noqa: F811
    path, tmp = tiny_search
    assert main(["search", str(path), "--quiet", "--n-trials", "2", "--set", "search.objectives=[quality,energy]",
                 "--set", "budget.max_energy_share=1.0"]) == 0  # fmt: skip
    study = optuna.load_study(study_name="out", storage=f"sqlite:///{tmp / 'out' / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    for t in done:
        m = t.user_attrs["metrics"]
        assert m["train_energy_j"] > 0 and m["energy_j_per_1000"] > 0
        assert t.values[1] == pytest.approx(m["energy"]) and 0 < m["energy"] < 5
        # the energy budget: the student's share of the teacher's energy over max_energy_share, less one
        assert t.constraints["budget"] == pytest.approx(max(0.0, m["energy"] / 1.0 - 1))
