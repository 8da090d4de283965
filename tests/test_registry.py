from __future__ import annotations

import ast
from pathlib import Path

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


PKG = Path(__file__).resolve().parents[1] / "autodistill"


def _registers(path: Path) -> bool:
    """Does the module register a component (``@register`` or ``@REG.register(...)``)?"""
    for node in ast.walk(ast.parse(path.read_text())):
        for dec in getattr(node, "decorator_list", []):
            target = dec.func if isinstance(dec, ast.Call) else dec
            if (isinstance(target, ast.Name) and target.id == "register") or (
                isinstance(target, ast.Attribute) and target.attr == "register"
            ):
                return True
    return False


def _imported_by_init(package: str) -> set[str]:
    tree = ast.parse((PKG / package / "__init__.py").read_text())
    return {
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == f"autodistill.{package}"
        for alias in node.names
    }


@pytest.mark.parametrize("package", ["student", "losses", "weighting"])
def test_every_registering_module_is_imported_by_its_package(package):
    """Importing a family's package registers all of it: no module is found by a name list or
    skipped when missing, so a component cannot silently be absent."""
    registering = {p.stem for p in (PKG / package).glob("*.py") if p.stem != "__init__" and _registers(p)}
    assert registering, package
    assert registering <= _imported_by_init(package), sorted(registering - _imported_by_init(package))


@pytest.mark.parametrize("package", ["student", "losses", "weighting"])
def test_a_package_imports_its_modules_without_a_guard(package):
    tree = ast.parse((PKG / package / "__init__.py").read_text())
    guards = [n for n in ast.walk(tree) if isinstance(n, ast.Try)]
    assert not guards, f"autodistill/{package}/__init__.py guards an import"
    assert "importlib" not in {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
