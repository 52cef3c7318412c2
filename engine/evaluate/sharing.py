"""Which derived values are alike across the entities of a kind, so that each is computed once.

Two kinds of sharing, both found from the rules alone:

- a value whose rules do not name the entity (`shared`) is the same for every entity of its kind;
- a value of an entity made by a collection rule (an image) whose rules read the entity only
  through some of the attributes the rule gave it (``image.spws``, ``image.specmode``), directly
  or through other such values (`key_attrs`), is the same for every entity given the same values
  of those attributes: every image of one spw has the same ``frequency``, whatever its field
  (and, through none of them, only through values the same for every image: ``grid_passes``
  from ``image.nterms``, the same for every image).

A shared value is computed once per evaluation state (``Evaluation.memo``); the entities that
reuse it get the first entity's provenance with that entity replaced by their own
(`records.ProvMap`), which is what computing it again would have recorded. A value set by a
cascade or assumed by a test (an overlay) on one of the attributes read is not shared
(``Evaluation.unshared``); nor is an unknown value, whose message may name the entity.
"""

from __future__ import annotations

from typing import Any, Optional

from almarules.dsl import ast as A
from almarules.engine.evaluate.runtime import names_in


def shared(rules: list[A.Derive], kind: str) -> bool:
    """The rules of a derived attribute do not name the entity: its value, and the inputs it
    reads, are the same for every entity of the kind."""
    return kind != "dataset" and not any(kind in names_in((d.when, d.expr)) for d in rules)


class Keys:
    """Per derived attribute of a kind made by a collection rule: the attributes the rule gave
    its entities that its value depends on (`key_attrs`), and the attributes of the entity it
    reads, transitively (`reads`)."""

    def __init__(self, derives: dict[str, dict[str, list[A.Derive]]], kinds: dict[str, dict[str, Any]],
                 made: set[str]) -> None:
        self.derives = derives
        self.kinds = kinds
        self.made = made
        self._seen: dict[tuple[str, str], Optional[tuple[frozenset[str], frozenset[str]]]] = {}

    def key_attrs(self, kind: str, attr: str) -> Optional[tuple[str, ...]]:
        """The given attributes ``KIND.ATTR`` depends on (sorted), when it is worth sharing by
        them: not all of them (all of them tell every entity apart); none when it reads the entity
        only through values that are the same for every entity (``image.nterms``)."""
        if kind not in self.made:
            return None
        found = self._closure(kind, attr, frozenset())
        if found is None:
            return None
        keys = found[0]
        created = {a for a, info in self.kinds[kind].items() if info.origin == "created"}
        return tuple(sorted(keys)) if keys != created else None

    def reads(self, kind: str, attr: str) -> frozenset[str]:
        """The entity's attributes ``KIND.ATTR`` reads, transitively (itself included)."""
        found = self._closure(kind, attr, frozenset())
        assert found is not None
        return found[1] | {attr}

    def _closure(self, kind: str, attr: str, active: frozenset[tuple[str, str]]
                 ) -> Optional[tuple[frozenset[str], frozenset[str]]]:
        """(given attributes, every attribute) of the entity read by ``KIND.ATTR``'s rules and
        the rules of the derived values of the entity they read; None if they read anything
        else of it (a fact, a score, its key, the entity itself) or depend on themselves."""
        if (kind, attr) in self._seen:
            return self._seen[(kind, attr)]
        if (kind, attr) in active:
            return None
        given: set[str] = set()
        read: set[str] = set()
        ok = True
        for rule in self.derives[kind][attr]:
            for own in _own_reads((rule.when, rule.expr), kind):
                info = self.kinds[kind].get(own) if own is not None else None
                if info is not None and info.origin == "created":
                    given.add(own)
                    read.add(own)
                    continue
                inner = (self._closure(kind, own, active | {(kind, attr)})
                         if info is not None and info.origin == "derived" else None)
                if inner is None:
                    ok = False
                    break
                given |= inner[0]
                read |= inner[1] | {own}
            if not ok:
                break
        result = (frozenset(given), frozenset(read)) if ok else None
        if not active:  # (a result found inside a cycle's exploration may depend on where it started)
            self._seen[(kind, attr)] = result
        return result


def _own_reads(node: Any, kind: str) -> list[Optional[str]]:
    """The attributes read of the entity named `kind` in `node` (``image.spws`` -> "spws"); None
    for a use of the entity other than reading an attribute, or a variable hiding it."""
    out: list[Optional[str]] = []
    stack = [node]
    while stack:
        x = stack.pop()
        if x is None or isinstance(x, (str, int, float, bool)):
            continue
        if isinstance(x, (tuple, list)):
            stack.extend(x)
            continue
        if isinstance(x, A.Binder) and x.var == kind:
            out.append(None)
            continue
        if isinstance(x, A.Attr) and isinstance(x.obj, A.Name) and x.obj.id == kind:
            out.append(x.name)
            continue
        if isinstance(x, A.Name) and x.id == kind:
            out.append(None)
            continue
        if hasattr(x, "__dataclass_fields__"):
            stack.extend(getattr(x, f) for f in x.__dataclass_fields__ if f != "loc")
    return out


__all__ = ["Keys", "shared"]
