"""The import rule of the architecture, checked on the source (module-level and function-level
imports alike): every part of the package has a layer, and no module imports a part of a higher
layer; the low layers import no heavy library; only the search, export and tracking see Optuna or
MLflow; the command line reaches the package only through the API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "autodistill"

# lowest first: a part may import its own modules and those of the parts before it, never after
LAYERS = [
    "errors",
    "registry",
    "specs",
    "fingerprint",
    "files",
    "config",
    "data",
    "weighting",
    "student",
    "losses",
    "evaluate",
    "train",
    "teacher",
    "components",
    "tasks",
    "tracking",
    "search",
    "export",
    "api",
    "cli",
    "__main__",
]
LOW = ["registry", "specs", "errors", "fingerprint", "files", "config"]
NO_TRACKING = ["student", "losses", "weighting", "train", "evaluate", "data", "teacher", "components", "tasks"]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path} uses a relative import; the rule is checked on absolute ones")
    return names


def part_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def files(sub: str) -> list[Path]:
    target = PKG / sub
    return sorted(target.rglob("*.py")) if target.is_dir() else [PKG / f"{sub}.py"]


def package_modules() -> list[Path]:
    return [f for f in sorted(PKG.rglob("*.py")) if f != PKG / "__init__.py"]


def test_every_part_has_a_layer():
    parts = {part_of(f) for f in package_modules()}
    assert parts <= set(LAYERS), f"parts without a layer: {sorted(parts - set(LAYERS))}"


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_imports_a_higher_layer(path):
    mine = LAYERS.index(part_of(path))
    for name in imports_of(path):
        if not name.startswith("autodistill."):
            continue
        other = name.split(".")[1]
        assert other in LAYERS, f"{path.name} imports {name}, which has no layer"
        assert LAYERS.index(other) <= mine, f"{path.relative_to(PKG)} ({LAYERS[mine]}) imports {name} (higher: {other})"


def test_the_package_init_only_registers_the_model_classes():
    assert {n for n in imports_of(PKG / "__init__.py") if n.startswith("autodistill")} <= {
        "autodistill.student",
        "autodistill.tasks.causal_lm",
    }


def test_cli_reaches_the_package_only_through_the_api():
    own = {n for n in imports_of(PKG / "cli.py") if n.split(".")[0] == "autodistill"}
    other = {
        n
        for n in own
        if n.split(".")[:2]
        not in (["autodistill"], ["autodistill", "api"], ["autodistill", "config"], ["autodistill", "errors"])
    }
    assert not other, f"cli.py imports {sorted(other)}"


@pytest.mark.parametrize("sub", LOW)
def test_low_layers_import_no_heavy_library(sub):
    for f in files(sub):
        for name in imports_of(f):
            assert name.split(".")[0] not in {"torch", "transformers", "optuna", "mlflow", "peft"}, (
                f"{f.name} imports {name}"
            )


@pytest.mark.parametrize("sub", NO_TRACKING)
def test_model_layers_never_import_optuna_or_mlflow(sub):
    for f in files(sub):
        for name in imports_of(f):
            assert name.split(".")[0] not in {"optuna", "mlflow"}, f"{f} imports {name}"


def test_only_tracking_imports_mlflow():
    for f in sorted(PKG.rglob("*.py")):
        if "tracking" in f.relative_to(PKG).parts:
            continue
        assert not any(n.split(".")[0] == "mlflow" for n in imports_of(f)), f"{f} imports mlflow"


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The rule can fail: a data module importing the search is reported."""
    fake = tmp_path / "autodistill"
    (fake / "data").mkdir(parents=True)
    bad = fake / "data" / "bad.py"
    bad.write_text("def f():\n    from autodistill.search.run import Search\n")
    globals()["PKG"] = fake
    try:
        with pytest.raises(AssertionError, match="higher: search"):
            test_no_module_imports_a_higher_layer(bad)
    finally:
        globals()["PKG"] = Path(__file__).resolve().parents[1] / "autodistill"
