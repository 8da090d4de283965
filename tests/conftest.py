from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own autodistill home unless it sets one (slow tests share one)."""
    if "AUTODISTILL_TEST_HOME" in os.environ:
        monkeypatch.setenv("AUTODISTILL_HOME", os.environ["AUTODISTILL_TEST_HOME"])
    else:
        monkeypatch.setenv("AUTODISTILL_HOME", str(tmp_path_factory.mktemp("home")))
