"""Which cached values a cascade action can make stale, so that only those are computed again.

An action changes names: a parameter (``set max_cube_size = ...``), an attribute set on some
entities (``set spw.nbin = ...``), or a collection (a ``drop`` or ``keep`` of its entities). A
cached value is stale when the rules it is computed by can read a changed name, directly or
through the rules of what they read (`dsl.dependencies`, over-approximated by name). Facts never
change; a dataset's collection changes when its name does. A collection made by a rule whose
body can read a changed name is made anew: then nothing cached is kept (its entities are new).
"""

from __future__ import annotations

from dataclasses import dataclass

from almarules.dsl.checker import plural
from almarules.dsl.dependencies import Dependencies
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import Schema


@dataclass(frozen=True)
class Stale:
    """What a change makes stale."""

    remake: bool  # a rule-made collection must be made anew: forget everything
    attrs: dict[str, tuple[str, ...]]  # kind -> the cached attributes to forget
    refiltered: tuple[str, ...]  # the kinds of rule-made collections some of whose entities were dropped or kept


class StaleValues:
    """`Stale` per set of changed names, worked out once per program and change."""

    def __init__(self, rs: RuleSet, schema: Schema) -> None:
        self.deps = Dependencies(rs, schema.collections)
        self.made_by_rules = {plural(kind): kind for kind in rs.collections}
        self.computed = {kind: tuple(a for a, info in attrs.items() if info.origin in ("derived", "score"))
                         for kind, attrs in schema.kinds.items()}
        self.collections = tuple(schema.collections)
        self._known: dict[frozenset[str], Stale] = {}

    def of(self, changed: frozenset[str]) -> Stale:
        hit = self._known.get(changed)
        if hit is None:
            hit = self._known[changed] = self._work_out(changed)
        return hit

    def _work_out(self, changed: frozenset[str]) -> Stale:
        deps = self.deps
        for coll in self.made_by_rules:
            if any(deps.touches(m, changed) for m in deps.direct.get((None, coll), ()) if m != coll):
                return Stale(True, {}, ())
        attrs: dict[str, tuple[str, ...]] = {}
        for kind, names in self.computed.items():
            stale = [a for a in names if deps.touches(a, changed, kind if (kind, a) in deps.direct else None)]
            if kind == "dataset":
                stale += [c for c in self.collections if c in changed]
            if stale:
                attrs[kind] = tuple(stale)
        refiltered = tuple(kind for coll, kind in self.made_by_rules.items() if coll in changed)
        return Stale(False, attrs, refiltered)


__all__ = ["Stale", "StaleValues"]
