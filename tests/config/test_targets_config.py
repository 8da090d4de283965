"""Config checks of several teachers (teacher.extra, teacher.weights, distill.combine) and the
teacher assistant (distill.assistant): each refusal names the key."""

from __future__ import annotations

import pytest
import yaml

from autodistill.config import load_config
from autodistill.errors import ConfigError

EXTRA = {"extra": [{"model": "builtin:minilm", "finetune": {"seed": 1}}]}


def _load(tmp_path, data):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_extra_teachers_and_assistant_load(tmp_path):
    cfg = _load(
        tmp_path,
        {"teacher": {**EXTRA, "weights": [1, 3]}, "distill": {"combine": "learned", "assistant": 4}},
    )
    assert cfg.teacher.extra[0].finetune.seed == 1 and cfg.teacher.weights == [1.0, 3.0]
    assert cfg.distill.combine == "learned" and cfg.distill.assistant == 4


@pytest.mark.parametrize(
    "data, key",
    [
        ({"teacher": {**EXTRA, "weights": [1.0]}}, "teacher.weights"),  # one weight per teacher
        ({"teacher": {**EXTRA, "weights": [0, 0]}}, "teacher.weights"),
        ({"teacher": {"extra": [{"model": " "}]}}, "teacher.extra[0].model"),
        ({"teacher": {"extra": [{"model": "x", "adapt": True}]}}, "teacher.extra[0].adapt"),  # not a key there
        ({"distill": {"combine": "vote"}}, "distill.combine"),
        ({"distill": {"assistant": 0}}, "distill.assistant"),
        ({"teacher": EXTRA, "distill": {"augment": {"ratio": 1}}}, "distill.augment.ratio"),
        ({"distill": {"assistant": 3}, "data": {"unlabeled": ["builtin:sms_spam"]}}, "data.unlabeled"),
        ({"task": "causal-lm", "distill": {"assistant": 3}}, "distill.assistant"),
    ],
)
def test_bad_targets_are_refused_by_name(tmp_path, data, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        _load(tmp_path, data)
