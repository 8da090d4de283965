from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory) -> Path:
    """One autodistill home for all slow tests, so the real teacher is fine-tuned once per run."""
    return Path(os.environ.get("AUTODISTILL_TEST_HOME") or tmp_path_factory.mktemp("shared-home"))


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path_factory, monkeypatch):
    """Fast tests get their own home; slow tests share one (set AUTODISTILL_TEST_HOME to keep it)."""
    if request.node.get_closest_marker("slow"):
        home = request.getfixturevalue("shared_home")
    else:
        home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("AUTODISTILL_HOME", str(home))
