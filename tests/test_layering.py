"""The import rule of the architecture: low layers import nothing above them; student,
losses, weighting, train and evaluate never import optuna or mlflow; only controller-level
code joins search, train, evaluate and tracking. Checked on the source (module-level and
function-level imports alike)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "autodistill"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(sub: str) -> list[Path]:
    target = PKG / sub
    return [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))


LOW = ["registry.py", "specs.py", "errors.py", "config"]
NO_TRACKING = ["student", "losses", "weighting", "train", "evaluate", "data", "teacher"]


@pytest.mark.parametrize("sub", LOW)
def test_low_layers_import_no_heavy_or_higher_modules(sub):
    for f in files(sub):
        for name in imports_of(f):
            top = name.split(".")[0]
            assert top not in {"torch", "transformers", "optuna", "mlflow", "peft"}, f"{f.name} imports {name}"
            if name.startswith("autodistill."):
                part = name.split(".")[1]
                assert part in {"registry", "specs", "errors", "config"}, f"{f.name} imports {name}"


@pytest.mark.parametrize("sub", NO_TRACKING)
def test_model_layers_never_import_optuna_or_mlflow(sub):
    for f in files(sub):
        for name in imports_of(f):
            assert name.split(".")[0] not in {"optuna", "mlflow"}, f"{f} imports {name}"
            assert not name.startswith(("autodistill.search", "autodistill.tracking", "autodistill.controller")), (
                f"{f} imports {name}"
            )


def test_only_tracking_imports_mlflow():
    for f in sorted(PKG.rglob("*.py")):
        if "tracking" in f.relative_to(PKG).parts:
            continue
        assert not any(n.split(".")[0] == "mlflow" for n in imports_of(f)), f"{f} imports mlflow"
