"""The top of the house stays readable: no function in the API, the command line, the search or
the export is longer than 60 lines (its whole body, docstring included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "autodistill"
LIMIT = 60
CHECKED = [
    PKG / "api.py",
    PKG / "cli.py",
    *sorted((PKG / "search").glob("*.py")),
    *sorted((PKG / "export").glob("*.py")),
]


def long_functions(path: Path, limit: int = LIMIT) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(PKG)))
def test_no_function_is_longer_than_60_lines(path):
    assert not long_functions(path), f"{path.name}: {long_functions(path)}"


def test_the_length_check_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    f = tmp_path / "long.py"
    f.write_text(f"def too_long():\n{body}\n")
    assert long_functions(f) == [f"too_long ({LIMIT + 1} lines, line 1)"]


def attributes_set_outside_init(path: Path, class_name: str) -> list[str]:
    """``self.x = ...`` (or ``+=``) in any method of ``class_name`` but ``__init__``."""
    cls = next(n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef) and n.name == class_name)
    found = []
    for method in (m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name != "__init__"):
        for node in ast.walk(method):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    found.append(f"{method.name} sets self.{t.attr}")
    return found


def test_the_search_sets_its_attributes_only_in_init():
    assert attributes_set_outside_init(PKG / "search" / "run.py", "Search") == []


def test_the_attribute_check_can_fail(tmp_path):
    f = tmp_path / "late.py"
    f.write_text(
        "class Search:\n    def __init__(self):\n        self.a = 1\n\n    def run(self):\n        self.b = 2\n"
    )
    assert attributes_set_outside_init(f, "Search") == ["run sets self.b"]
