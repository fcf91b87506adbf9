"""The package's layers: arrows point inward only, and the old module paths still import.

The centre (the rule, the checks, the NumPy and torch references) knows nothing of the layers
around it; the layers (``hf``, ``viz``, ``testing``) never import a command. Read from the
source's import statements, so a new import that breaks the layering fails here.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dinat_ref"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """Every ``dinat_ref`` module that ``path`` imports, at the top or inside a function."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dinat_ref")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            if base.startswith("dinat_ref"):
                found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


LIBRARY = sorted(p for p in PACKAGE.rglob("*.py")
                 if "commands" not in p.relative_to(PACKAGE).parts and p.name not in ("cli.py", "_moved.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_library_module_imports_a_command(path):
    commands = sorted(m for m in project_imports(path) if m.startswith(("dinat_ref.commands", "dinat_ref.cli")))
    assert not commands, f"{module_name(path)} imports the command module(s) {commands}"


CENTRE = ["neighborhood.py", "checks.py", "numpy/attention.py", "numpy/layers.py", "torch/functional.py"]


@pytest.mark.parametrize("name", CENTRE)
def test_the_centre_imports_only_the_centre(name):
    outer = sorted(m for m in project_imports(PACKAGE / name)
                   if m.startswith(("dinat_ref.hf", "dinat_ref.viz", "dinat_ref.testing", "dinat_ref.commands")))
    assert not outer, f"dinat_ref/{name} imports the outer layer(s) {outer}"


def test_old_module_paths_warn_and_give_the_moved_module():
    for name in [m for m in list(sys.modules) if m in ("dinat_ref.weights", "dinat_ref.viz.neighborhood")]:
        del sys.modules[name]
    with pytest.warns(DeprecationWarning, match=r"dinat_ref\.weights moved to dinat_ref\.hf\.weights"):
        old = importlib.import_module("dinat_ref.weights")
    assert old is importlib.import_module("dinat_ref.hf.weights")
    pytest.importorskip("matplotlib")
    with pytest.warns(DeprecationWarning, match="dinat_ref.viz.windows"):
        from dinat_ref.viz.neighborhood import plot_neighborhood
    from dinat_ref.viz.windows import plot_neighborhood as moved

    assert plot_neighborhood is moved


def test_the_public_names_import_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from dinat_ref import DinatConfig, DinatImageProcessor  # noqa: F401
        from dinat_ref.numpy import DinatModel, na2d  # noqa: F401
        from dinat_ref.testing import verify  # noqa: F401
