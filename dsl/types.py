"""Static types of rule expressions, and the schema of entity kinds they range over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from almarules.dsl.units import DIMENSIONLESS, Dim


class T:
    """Base of static types."""

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class NumT(T):
    dim: Dim = DIMENSIONLESS

    def describe(self) -> str:
        return "a number" if self.dim.is_dimensionless else f"a quantity in {self.dim.display_unit()}"


@dataclass(frozen=True)
class BoolT(T):
    def describe(self) -> str:
        return "a boolean"


@dataclass(frozen=True)
class StrT(T):
    """A string; `values` lists the possible values when they are known (labels, literals)."""

    values: Optional[frozenset[str]] = None

    def describe(self) -> str:
        return "a string"


@dataclass(frozen=True)
class EnumT(T):
    name: str
    members: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        return f"a {self.name}"


@dataclass(frozen=True)
class EntityT(T):
    kind: str

    def describe(self) -> str:
        return f"a {self.kind}"


@dataclass(frozen=True)
class CollT(T):
    elem: T

    def describe(self) -> str:
        return f"a collection of {self.elem.describe().removeprefix('a ').removeprefix('an ')}"


@dataclass(frozen=True)
class AnyT(T):
    """Unknown type (after an error): accepted everywhere, so one mistake gives one finding."""

    def describe(self) -> str:
        return "anything"


ANY = AnyT()
BOOL = BoolT()
NUM = NumT()
STR = StrT()


def is_any(t: T) -> bool:
    return isinstance(t, AnyT)


def symbolic(t: T) -> bool:
    return isinstance(t, (StrT, EnumT))


def compatible(a: T, b: T) -> bool:
    """Can values of `a` and `b` be compared for equality / stand in the same place?"""
    if is_any(a) or is_any(b):
        return True
    if isinstance(a, NumT) and isinstance(b, NumT):
        return a.dim == b.dim
    if symbolic(a) and symbolic(b):
        return True
    if isinstance(a, CollT) and isinstance(b, CollT):
        return compatible(a.elem, b.elem)
    return type(a) is type(b) and (not isinstance(a, EntityT) or a.kind == b.kind)


def symbol_values(t: T) -> Optional[frozenset[str]]:
    if isinstance(t, EnumT):
        return t.members
    if isinstance(t, StrT):
        return t.values
    return None


@dataclass
class AttrInfo:
    """One attribute of an entity kind."""

    type: T
    origin: str  # "fact", "derived", "score", "created", "builtin"
    unit: Optional[str] = None  # unit the value is shown in
    doc: Optional[str] = None
    fact_name: Optional[str] = None  # name in the facts model
    sources: Optional[str] = None  # for a fact computed from others: the facts to supply
    digits: Optional[int] = None  # significant digits shown in reports (derive ... digits N)


@dataclass
class Schema:
    """Entity kinds and their fact attributes, as the facts layer defines them."""

    kinds: dict[str, dict[str, AttrInfo]]
    # attributes of `dataset` that are collections, e.g. {"spws": "spw"}
    collections: dict[str, str]
    enums: dict[str, EnumT]

    def copy(self) -> "Schema":
        return Schema({k: dict(v) for k, v in self.kinds.items()}, dict(self.collections), dict(self.enums))
