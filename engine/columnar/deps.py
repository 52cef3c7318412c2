"""Which names a rule's value can depend on (attribute names, parameters, collections),
transitively through the rules of the attributes it reads. Over-approximates by name
(an attribute name stands for that attribute on every kind): used to invalidate only
the columns a cascade step can change."""

from __future__ import annotations

from typing import Any, Iterable

from almarules.dsl import ast as A
from almarules.dsl.loader import RuleSet


def names_in(node: Any) -> set[str]:
    """Attribute names, bare names and called tables/functions in an AST node."""
    out: set[str] = set()
    stack = [node]
    while stack:
        e = stack.pop()
        if e is None:
            continue
        if isinstance(e, (tuple, list)):
            stack.extend(e)
            continue
        if isinstance(e, A.Attr):
            out.add(e.name)
        elif isinstance(e, A.Name):
            out.add(e.id)
        elif isinstance(e, A.Call):
            out.add(e.func)
        if hasattr(e, "__dataclass_fields__"):
            for f in e.__dataclass_fields__:
                if f != "loc":
                    v = getattr(e, f)
                    if not isinstance(v, (str, int, float, bool)) and v is not None:
                        stack.append(v)
    return out


class Dependencies:
    """name -> every name its value can depend on (itself included)."""

    def __init__(self, rs: RuleSet, collections: dict[str, str]):
        direct: dict[str, set[str]] = {}
        for target, rules in rs.derives.items():
            attr = target.split(".", 1)[1]
            direct.setdefault(attr, set()).update(names_in([(r.expr, r.when) for r in rules]))
        for s in rs.scores.values():
            direct.setdefault(s.attr, set()).update(names_in([s.start, s.when, s.clamp, s.terms]))
        for t in list(rs.tables.values()) + list(rs.bands.values()):
            direct.setdefault(t.name, set()).update(names_in([r for r in t.rows]) - {t.arg})
        for coll, kind in collections.items():
            if kind in rs.collections:
                direct.setdefault(coll, set()).update(names_in(rs.collections[kind].body))
        self.direct = direct
        self._closure: dict[str, frozenset[str]] = {}

    def of(self, name: str) -> frozenset[str]:
        hit = self._closure.get(name)
        if hit is None:
            seen = {name}
            todo = [name]
            while todo:
                for m in self.direct.get(todo.pop(), ()):
                    if m not in seen:
                        seen.add(m)
                        todo.append(m)
            hit = self._closure[name] = frozenset(seen)
        return hit

    def touches(self, name: str, changed: Iterable[str]) -> bool:
        deps = self.of(name)
        return any(c in deps for c in changed)
