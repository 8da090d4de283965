"""Synthetic distillation batches (built in tests/loss_contract.py, which the contract checks share)."""

from __future__ import annotations

import pytest
from loss_contract import identical_batch, make_batch


@pytest.fixture
def batch_factory():
    return make_batch


@pytest.fixture
def identical_factory():
    return identical_batch
