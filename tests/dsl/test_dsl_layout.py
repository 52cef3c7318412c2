"""The layout rules of the rule-language package ``dsl/``: no module over 800 lines, no module
importing another's private (underscore) names, no import cycles among its modules (imports
inside functions count), and the checker's entry point keeps its public names."""

from __future__ import annotations

import ast
from pathlib import Path

DSL = Path(__file__).resolve().parents[2] / "dsl"
MAX_LINES = 800


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(DSL.glob("*.py"))}


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` -- a script entry, never run when the module is imported."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Every import statement of a module, at any depth, except under a ``__main__`` guard."""
    found: list[ast.ImportFrom | ast.Import] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if _is_main_guard(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _dsl_deps(tree: ast.Module, names: set[str]) -> set[str]:
    """The dsl modules a module imports (``from almarules.dsl.x import``, ``from almarules.dsl import x``)."""
    deps: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "almarules.dsl":
            deps |= {a.name for a in node.names} & names
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("almarules.dsl."):
            deps.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            deps |= {a.name.split(".")[2] for a in node.names if a.name.startswith("almarules.dsl.")}
    return deps


def test_no_dsl_module_is_over_800_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in DSL.glob("*.py")}
    assert sizes and {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_no_dsl_module_imports_a_private_name_of_another():
    bad = [(name, node.module, a.name)
           for name, tree in _modules().items() for node in _imports(tree)
           if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("almarules.dsl")
           for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert bad == []


def test_dsl_modules_import_no_cycle():
    trees = _modules()
    graph = {name: _dsl_deps(tree, set(trees)) - {name} for name, tree in trees.items()}
    assert graph["checker"] >= {"check_decls", "check_exprs"}  # the walk sees the split checker
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state[m] == 1:
                cycles.append(path[path.index(m):] + [m])
            elif state[m] == 0:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(graph):
        if state[n] == 0:
            visit(n, [n])
    assert cycles == []


def test_the_checker_entry_point_keeps_its_names(tmp_path):
    """engine/ and the tests import these from dsl.checker; a checked rule set shows them at work."""
    from almarules.dsl.checker import OUTCOMES, CheckResult, check, outcome_attr, plural
    from almarules.dsl.loader import load_ruleset
    from almarules.dsl.types import Schema, StrT

    (tmp_path / "t.rules").write_text(
        'param limit = 1\n'
        'collection spw:\n    emit nchan = 4\n'
        'cascade size:\n    until count(spws) <= limit\n    step "a":\n        drop spw where spw.nchan > 2\n')
    result = check(load_ruleset([tmp_path]), Schema(kinds={"dataset": {}}, collections={}, enums={}))
    assert isinstance(result, CheckResult) and result.ok, result.findings
    # README: every cascade NAME defines dataset.NAME_outcome, one of these five words
    words = {"not needed", "mitigated", "still exceeded", "error", "unknown"}
    assert outcome_attr("size") == "size_outcome"
    assert result.schema.kinds["dataset"]["size_outcome"].type == StrT(frozenset(words))
    assert set(OUTCOMES) == words
    assert plural("spw") == "spws" and result.schema.collections == {"spws": "spw"}
