"""Dependency-graph checks: cycles (strongly connected components), unused declarations, and the
order in which cascades run."""

from __future__ import annotations

from almarules.dsl import ast as A
from almarules.dsl.check_model import Node, node_label
from almarules.dsl.check_state import CheckerState


def cascade_order(ck: CheckerState) -> list[str]:
    """Cascades in declaration order, except that one whose rules read another's outcome runs after it."""
    names = list(ck.rs.cascades)
    needs = {n: {m for m in names if m != n and ("cascade", m) in reachable(ck.deps, ("cascade", n))}
             for n in names}
    order: list[str] = []
    while len(order) < len(names):
        ready = [n for n in names if n not in order and needs[n] <= set(order)]
        order.append(ready[0] if ready else next(n for n in names if n not in order))  # a cycle: reported
    return order


def reachable(deps: dict[Node, set[Node]], start: Node) -> set[Node]:
    """Every node `start` reads, directly or through others."""
    seen: set[Node] = set()
    todo = list(deps.get(start, ()))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(deps.get(n, ()))
    return seen


def _components(deps: dict[Node, set[Node]]) -> list[list[Node]]:
    """Strongly connected components of the graph (Tarjan), nodes and edges visited in sorted order."""
    index: dict[Node, int] = {}
    low: dict[Node, int] = {}
    on: set[Node] = set()
    stack: list[Node] = []
    sccs: list[list[Node]] = []
    counter = [0]

    def visit(v: Node) -> None:  # iterative Tarjan would be longer; graphs are small
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return sccs


def check_cycles(ck: CheckerState) -> None:
    """One finding per dependency cycle, at its first node in file order, naming the path."""
    for comp in _components(ck.deps):
        if len(comp) == 1 and comp[0] not in ck.deps.get(comp[0], ()):
            continue
        comp = sorted(comp, key=lambda n: (ck.node_loc.get(n, A.NOWHERE).file, ck.node_loc.get(n, A.NOWHERE).line))
        path = _cycle_path(ck.deps, comp)
        first = comp[0]
        ck.error(ck.node_loc.get(first, A.NOWHERE), "cycle",
                 "dependency cycle: " + " -> ".join(node_label(n) for n in path))


def _cycle_path(deps: dict[Node, set[Node]], comp: list[Node]) -> list[Node]:
    members = set(comp)
    path = [comp[0]]
    seen = {comp[0]}
    while True:
        nxt = sorted(w for w in deps.get(path[-1], ()) if w in members)
        if not nxt:
            return path
        w = next((x for x in nxt if x not in seen), nxt[0])
        path.append(w)
        if w in seen:
            return path[path.index(w):]
        seen.add(w)


def check_unused(ck: CheckerState) -> None:
    """Parameters, tables and bands nothing reads."""
    for p in ck.rs.params.values():
        if ("param", p.name) not in ck.used:
            ck.error(p.loc, "unused", f"parameter {p.name!r} is never used")
    for t in ck.rs.tables.values():
        if ("table", t.name) not in ck.used:
            ck.error(t.loc, "unused", f"table {t.name!r} is never used")
    for b in ck.rs.bands.values():
        if ("bands", b.name) not in ck.used:
            ck.error(b.loc, "unused", f"bands {b.name!r} are never used")
