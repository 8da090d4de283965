from __future__ import annotations

import pytest

from autodistill.registry import Registry, RegistryError


def test_register_get_names():
    reg: Registry[int] = Registry("thing")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2


def test_miss_lists_valid_names_and_duplicates_refused():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(RegistryError, match="Unknown thing 'z'. Valid names: a."):
        reg.get("z")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a")(3)


def test_unregister_frees_the_name_and_a_miss_lists_valid_names():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    reg.register("b")(2)
    assert reg.unregister("a") == 1
    assert reg.names() == ["b"] and "a" not in reg
    reg.register("a")(3)  # the name is free again
    assert reg.get("a") == 3
    with pytest.raises(RegistryError, match="Unknown thing 'z'. Valid names: a, b."):
        reg.unregister("z")
