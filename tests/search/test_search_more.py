"""``autodistill search --more N`` goes on after a finished search: N trained trials beyond those
the study holds, however many that is."""

from __future__ import annotations

from test_search_tiny import tiny_search  # noqa: F401  (the fixture)

from autodistill.cli import main


def test_more_trains_that_many_beyond_the_study(tiny_search, capsys):  # noqa: F811
    path, tmp = tiny_search
    assert main(["search", str(path), "--quiet", "--n-trials", "1"]) == 0
    assert "1 trained trials" in capsys.readouterr().out
    assert main(["search", str(path), "--quiet", "--more", "2"]) == 0
    assert "3 trained trials" in capsys.readouterr().out
    assert main(["search", str(path), "--quiet"]) == 0  # the config's 3: nothing left to do
    assert "3 trained trials" in capsys.readouterr().out
