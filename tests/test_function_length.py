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
