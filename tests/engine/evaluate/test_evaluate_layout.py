"""The interpreter's layout (issue 12): small modules, each saying what it holds, importing only
the packages before it and no other module's private names."""

from __future__ import annotations

import ast

import pytest

from conftest import REPO

MODULES = sorted((REPO / "engine" / "evaluate").glob("*.py"))
ALLOWED = ("almarules.dsl", "almarules.kernels", "almarules.engine.io", "almarules.engine.facts",
           "almarules.engine.ms", "almarules.engine.evaluate", "almarules.rules")


def imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Every import, lazy ones (inside functions or ``if TYPE_CHECKING``) included."""
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_module_is_small_and_starts_with_a_docstring(path):
    text = path.read_text()
    assert len(text.splitlines()) < 800
    assert ast.get_docstring(ast.parse(text)), f"{path.name} says nothing about what it holds"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_module_imports_only_earlier_packages_and_no_private_names(path):
    for node in imports(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith("almarules"):
                assert module == "almarules" or module.startswith(ALLOWED), f"{path.name} imports {module}"
                assert not any(a.name.startswith("_") and not a.name.startswith("__") for a in node.names), (
                    f"{path.name} imports a private name from {module}")
        else:
            for alias in node.names:
                assert not alias.name.startswith("almarules") or alias.name.startswith(ALLOWED)
