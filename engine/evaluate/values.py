"""Run-time values: floats (canonical units), bools, strings, entities, tuples, and
`Unknown`, which says which facts a value waits for (or which error stopped it)."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from almarules.engine.evaluate.records import ProvMap


ACTIVE = object()  # an entity's cache holds this while the value is being computed
_EMPTY: frozenset[str] = frozenset()


class Unknown:
    """A value that cannot be computed yet: the facts it waits for, or the errors met."""

    __slots__ = ("waits", "errors")

    def __init__(self, waits: Iterable[str] = (), errors: Iterable[str] = ()):
        self.waits = frozenset(waits) if waits else _EMPTY
        self.errors = frozenset(errors) if errors else _EMPTY

    def merge(self, other: "Unknown") -> "Unknown":
        """Both together (one of them when it already holds the other's: values are immutable)."""
        if other.waits <= self.waits and other.errors <= self.errors:
            return self
        if self.waits <= other.waits and self.errors <= other.errors:
            return other
        return Unknown(self.waits | other.waits, self.errors | other.errors)

    def __repr__(self) -> str:
        if self.errors:
            return f"<error: {'; '.join(sorted(self.errors))}>"
        return f"<unknown: waits for {', '.join(sorted(self.waits))}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.waits == self.waits and other.errors == self.errors

    def __hash__(self) -> int:
        return hash((self.waits, self.errors))


def waits_of(value: Unknown) -> tuple[str, ...]:
    """What an unknown control condition waits for: its missing facts and its errors, sorted."""
    return tuple(sorted(value.waits | value.errors))


def merge_unknowns(values: Iterable[Any]) -> Optional[Unknown]:
    out: Optional[Unknown] = None
    for v in values:
        if isinstance(v, Unknown):
            out = v if out is None else out.merge(v)
    return out


class Entity:
    """One thing rules talk about: a spw, a field, an image... `path` names it in reports."""

    __slots__ = ("kind", "key", "model", "created", "path", "order", "cache", "prov", "src")

    def __init__(self, kind: str, key: str, model: Any = None, created: Optional[dict] = None,
                 path: Optional[str] = None, order: int = 0, home: Any = None):
        self.kind = kind
        self.key = key
        self.model = model
        self.created = created
        self.path = path or (kind if kind == "dataset" else f"{kind}[{key}]")
        self.order = order
        self.cache: dict[str, Any] = {}  # attribute -> value, for one evaluation state
        prov = self.prov = ProvMap()  # attribute -> Provenance (records.ProvMap)
        prov.home = home
        prov.owner = self
        self.src = ""  # where its facts sit in the summary, e.g. "spws[2]" (facts only)

    def __repr__(self) -> str:
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and other.kind == self.kind and other.key == self.key

    def __hash__(self) -> int:
        return hash((self.kind, self.key))


def key_text(value: Any) -> str:
    """How a value appears inside an entity key: entities by key, tuples joined by '_'."""
    if isinstance(value, Entity):
        return value.key
    if isinstance(value, (tuple, list, frozenset)):
        return "_".join(key_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
