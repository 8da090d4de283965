from __future__ import annotations

import numpy as np
import pytest

from autodistill.config.run import METRICS as CONFIG_METRICS
from autodistill.evaluate import METRICS, agreement, task_metrics
from autodistill.registry import RegistryError

# 8 negatives, 2 positives (spam-like imbalance).
LABELS = np.array([0] * 8 + [1] * 2)
MAJORITY = np.zeros(10, dtype=int)  # always "ham": 8/10 right, no spam caught
CATCHER = np.array([0] * 5 + [1] * 3 + [1, 1])  # catches both spams, 3 false alarms: 7/10 right


def test_registry_holds_exactly_the_config_metric_names():
    assert METRICS.names() == sorted(CONFIG_METRICS)


def test_majority_predictor_hand_computed():
    m = {name: METRICS.get(name)(LABELS, MAJORITY) for name in METRICS}
    # ham F1 = 2 * 0.8 * 1 / 1.8 = 8/9; spam F1 = 0.
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((8 / 9 + 0) / 2)
    assert m["weighted_f1"] == pytest.approx(0.8 * 8 / 9)
    assert m["balanced_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["mcc"] == pytest.approx(0.0)


def test_catcher_hand_computed():
    m = {name: METRICS.get(name)(LABELS, CATCHER) for name in METRICS}
    # ham: tp 5, fn 3, fp 0 -> F1 = 10/13; spam: tp 2, fp 3, fn 0 -> P 0.4, R 1, F1 = 4/7.
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["macro_f1"] == pytest.approx((10 / 13 + 4 / 7) / 2)
    assert m["balanced_accuracy"] == pytest.approx((5 / 8 + 1.0) / 2)
    # MCC with spam positive: tp 2, tn 5, fp 3, fn 0.
    assert m["mcc"] == pytest.approx((2 * 5 - 3 * 0) / np.sqrt((2 + 3) * (2 + 0) * (5 + 3) * (5 + 0)))


def test_accuracy_and_macro_f1_disagree_on_imbalanced_data():
    a, b = task_metrics(LABELS, MAJORITY, "macro_f1"), task_metrics(LABELS, CATCHER, "macro_f1")
    assert a["accuracy"] > b["accuracy"]  # accuracy prefers the useless majority predictor
    assert a["macro_f1"] < b["macro_f1"]  # macro-F1 prefers the one that finds the spam
    assert a["quality"] < b["quality"]


def test_task_metrics_keys_and_quality():
    out = task_metrics(LABELS, CATCHER, "mcc")
    assert set(out) == {"accuracy", "macro_f1", "balanced_accuracy", "mcc", "quality"}
    assert out["quality"] == out["mcc"] == pytest.approx(METRICS.get("mcc")(LABELS, CATCHER))
    acc = task_metrics(LABELS, CATCHER, "accuracy")
    assert set(acc) == {"accuracy", "macro_f1", "balanced_accuracy", "quality"} and acc["quality"] == pytest.approx(0.7)
    assert all(isinstance(v, float) for v in out.values())


def test_task_metrics_errors():
    with pytest.raises(RegistryError, match="Valid names: accuracy, balanced_accuracy"):
        task_metrics(LABELS, CATCHER, "f2")
    with pytest.raises(ValueError, match="same length"):
        task_metrics(LABELS, CATCHER[:-1], "accuracy")
    with pytest.raises(ValueError, match="empty"):
        task_metrics(np.array([]), np.array([]), "accuracy")


def test_agreement():
    assert agreement(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == pytest.approx(0.75)
    assert agreement(CATCHER, CATCHER) == 1.0
    with pytest.raises(ValueError, match="equal length"):
        agreement(np.array([0, 1]), np.array([0]))


def test_per_class_recall_and_the_classes_a_student_drops():
    import numpy as np

    from autodistill.evaluate.metrics import dropped_classes, per_class_recall

    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    assert per_class_recall(labels, np.array([0, 0, 0, 1, 1, 0, 0, 0]), 4) == [0.75, 0.5, 0.0, None]
    names = ["a", "b", "c", "d"]
    teacher = [0.9, 0.8, 0.4, None]
    # b: the teacher handles it (0.8), the student recalls under half of that; c: the teacher does not
    assert dropped_classes([0.9, 0.39, 0.0, None], teacher, names) == ["b"]
    assert dropped_classes([0.9, 0.4, 0.0, None], teacher, names) == []
