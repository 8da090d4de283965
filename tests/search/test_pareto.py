from __future__ import annotations

import numpy as np

from autodistill.search.pareto import hypervolume_2d, knee, non_dominated

UP_DOWN = (True, False)  # quality up, parameters down


def test_non_dominated_by_hand():
    pts = np.array([[0.9, 10], [0.8, 5], [0.85, 12], [0.7, 5], [0.95, 20]])
    assert sorted(non_dominated(pts, UP_DOWN).tolist()) == [0, 1, 4]


def test_hypervolume_by_hand():
    pts = np.array([[0.9, 10.0], [0.8, 5.0]])
    # reference quality 0.5, params 20: rectangles (0.9-0.5)*(20-10) + (0.8-0.5)*(10-5)
    assert np.isclose(hypervolume_2d(pts, UP_DOWN, (0.5, 20.0)), 0.4 * 10 + 0.3 * 5)
    assert hypervolume_2d(np.array([[0.4, 30.0]]), UP_DOWN, (0.5, 20.0)) == 0.0
    # adding a dominated point changes nothing
    more = np.vstack([pts, [[0.7, 12.0]]])
    assert np.isclose(hypervolume_2d(more, UP_DOWN, (0.5, 20.0)), 5.5)


def test_knee_picks_the_bend():
    pts = np.array([[0.70, 1.0], [0.88, 2.0], [0.90, 6.0], [0.91, 10.0]])
    assert knee(pts, UP_DOWN) == 1
