"""Contract tests run over every registered loss (and the option variants that change what it
reads). The checks live in tests/loss_contract.py, shared with tests/test_extending.py."""

from __future__ import annotations

import loss_contract as contract
import pytest

from autodistill.losses import LOSSES, cached_needs
from autodistill.specs import Step

# (registered name, options); every registered name must appear at least once
CASES = [
    ("ce", {}),
    ("kl", {}),
    ("reverse_kl", {}),
    ("jsd", {"beta": 0.3}),
    ("hidden_mse", {}),
    ("hidden_mse", {"shared_projection": False, "include_embeddings": True}),
    ("hidden_cosine", {}),
    ("attention_mse", {}),
    ("attention_relation", {}),
    ("attention_relation", {"source": "hidden", "layers": "all"}),
    ("attention_relation", {"source": "hidden", "relations": ["hh"]}),
    ("attention_relation", {"source": "hidden", "relations": ["attn"]}),
    ("attention_relation", {"source": "qkv", "relations": ["vv"], "relation_heads": 8}),
    ("contrastive", {}),
    ("contrastive", {"pool": "cls", "symmetric": True, "temperature": 0.5}),
    ("self_kl", {}),
    ("self_kl", {"source": "checkpoint", "start": 0.0}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
ZERO = [c for c in CASES if LOSSES.get(c[0]).zero_on_identical]
ZERO_IDS = [i for i, c in zip(IDS, CASES) if LOSSES.get(c[0]).zero_on_identical]


def test_every_registered_loss_is_covered():
    assert {n for n, _ in CASES} == set(LOSSES.names())


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_shape_and_declared_inputs(name, options):
    contract.check_shape_and_declared_inputs(name, options)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_cached_needs_are_what_the_built_loss_reads(name, options):
    contract.check_cached_needs(name, options)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_finite_gradients(name, options):
    contract.check_finite_gradients(name, options)


@pytest.mark.parametrize(("name", "options"), ZERO, ids=ZERO_IDS)
def test_zero_on_identical_inputs(name, options):
    contract.check_zero_on_identical_inputs(name, options)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_padded_positions_do_not_count(name, options):
    contract.check_padded_positions_do_not_count(name, options)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_teacher_layers_come_from_the_map(name, options):
    contract.check_teacher_layers_come_from_the_map(name, options)


def test_cached_needs_follow_the_options():
    assert cached_needs(Step("attention_relation")) == {"qkv"}
    assert cached_needs(Step("attention_relation", {"source": "hidden"})) == {"hidden", "attentions"}
    assert cached_needs(Step("attention_relation", {"source": "hidden", "relations": ["hh"]})) == {"hidden"}
    assert cached_needs(Step("hidden_mse", {"include_embeddings": True})) == {"hidden"}
    assert cached_needs(Step("kl")) == set()
