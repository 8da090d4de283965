"""Fixtures for the student tests (helpers live in student_helpers.py)."""

from __future__ import annotations

import pytest
from student_helpers import build_context, tiny_teacher
from transformers import BertForSequenceClassification

from autodistill.student.base import BuildContext


@pytest.fixture(scope="module")
def teacher() -> BertForSequenceClassification:
    return tiny_teacher()


@pytest.fixture(scope="module")
def ctx() -> BuildContext:
    return build_context()
