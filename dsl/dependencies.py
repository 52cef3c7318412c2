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
    """What each value can depend on: attribute names, parameters, tables, collections.

    Targets are (kind, attribute) for rules, (None, name) for tables and collections. A name
    read in an expression stands for that attribute on every kind (an over-approximation), but
    a rule's own dependencies are its own: ``image.product_size`` does not inherit those of
    ``dataset.product_size``."""

    def __init__(self, rs: RuleSet, collections: dict[str, str]):
        direct: dict[tuple, set[str]] = {}
        for target, rules in rs.derives.items():
            kind, attr = target.split(".", 1)
            direct.setdefault((kind, attr), set()).update(names_in([(r.expr, r.when) for r in rules]))
        for s in rs.scores.values():
            direct.setdefault((s.kind, s.attr), set()).update(names_in([s.start, s.when, s.clamp, s.terms]))
        for t in list(rs.tables.values()) + list(rs.bands.values()):
            direct.setdefault((None, t.name), set()).update(names_in([r for r in t.rows]) - {t.arg})
        for coll, kind in collections.items():
            if kind in rs.collections:
                direct.setdefault((None, coll), set()).update(names_in(rs.collections[kind].body))
        self.direct = direct
        self.targets: dict[str, list[tuple]] = {}  # name -> the targets it can stand for
        for key in direct:
            self.targets.setdefault(key[1], []).append(key)
        self._closure: dict[tuple, frozenset[str]] = {}

    def of(self, name: str, kind: object = None) -> frozenset[str]:
        """Every name the value of (kind, name) can depend on, itself included; without a kind,
        of every target of that name."""
        key = (kind, name)
        hit = self._closure.get(key)
        if hit is None:
            seen = {name}
            todo = [key] if key in self.direct else list(self.targets.get(name, ()))
            done: set[tuple] = set()
            while todo:
                t = todo.pop()
                if t in done:
                    continue
                done.add(t)
                for m in self.direct.get(t, ()):
                    seen.add(m)
                    todo.extend(self.targets.get(m, ()))
            hit = self._closure[key] = frozenset(seen)
        return hit

    def touches(self, name: str, changed: Iterable[str], kind: object = None) -> bool:
        deps = self.of(name, kind)
        return any(c in deps for c in changed)

    def direct_names(self, name: str) -> set[str]:
        out: set[str] = set()
        for t in self.targets.get(name, ()):
            out |= self.direct[t]
        return out
