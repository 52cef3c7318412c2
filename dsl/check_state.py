"""The checker's shared state: name scopes, findings, dependency edges, and wording helpers."""

from __future__ import annotations

import difflib
from typing import Iterable, Optional

from almarules.dsl import ast as A
from almarules.dsl.check_model import Node
from almarules.dsl.errors import Finding
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import EntityT, EnumT, NumT, Schema, T
from almarules.dsl.units import Dim


class Scope:
    """Names bound by generators and rule subjects (``image``, ``s`` in ``for s in spws``), nested."""

    def __init__(self, names: dict[str, T], parent: Optional["Scope"] = None):
        self.names = names
        self.parent = parent

    def get(self, name: str) -> Optional[T]:
        s: Optional[Scope] = self
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.parent
        return None

    def child(self, names: dict[str, T]) -> "Scope":
        return Scope(names, self)

    def all_names(self) -> list[str]:
        out: list[str] = []
        s: Optional[Scope] = self
        while s is not None:
            out.extend(s.names)
            s = s.parent
        return out


def mismatch(a: T, b: T) -> str:
    """The finding code for two types that do not fit together: two numbers differ in unit."""
    return "unit-mismatch" if isinstance(a, NumT) and isinstance(b, NumT) else "type-mismatch"


def article(word: str) -> str:
    """``an enum`` / ``a band``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def suggest(name: str, pool: Iterable[str]) -> Optional[str]:
    """``did you mean 'x'?`` for the closest name of `pool`, else None."""
    close = difflib.get_close_matches(name, sorted(set(pool)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class CheckerState:
    """A rule set under check: its findings so far, the typed schema it extends, the dependency
    graph (``deps``: node -> nodes it reads) and the node being checked (top of ``stack``)."""

    def __init__(self, rs: RuleSet, schema: Schema):
        self.rs = rs
        self.schema = schema.copy()
        self.findings: list[Finding] = list(rs.findings)
        self.deps: dict[Node, set[Node]] = {}
        self.node_loc: dict[Node, A.Loc] = {}
        self.stack: list[Node] = []
        self.used: set[Node] = set()
        self.attr_cache: dict[tuple[str, str], T] = {}
        self.in_progress: set[tuple[str, str]] = set()
        self.param_types: dict[str, T] = {}
        self.table_dims: dict[str, Dim] = {}
        self.table_result: dict[str, T] = {}
        self.enum_of_member: dict[str, EnumT] = {}
        self.digits: dict[tuple[str, str], int] = {}  # (kind, attr) -> significant digits shown
        self.outcome_of: dict[str, str] = {}  # dataset attribute -> the cascade whose outcome it is

    def error(self, loc: A.Loc, code: str, message: str, hint: Optional[str] = None) -> None:
        self.findings.append(Finding(loc, code, message, hint=hint))

    def depend(self, target: Node) -> None:
        """The node being checked reads `target`."""
        self.used.add(target)
        if self.stack:
            self.deps.setdefault(self.stack[-1], set()).add(target)

    def entity_scope(self, kind: str) -> Scope:
        """The names a rule about `kind` sees: ``dataset`` and the entity itself."""
        names: dict[str, T] = {"dataset": EntityT("dataset")}
        if kind != "dataset":
            names[kind] = EntityT(kind)
        return Scope(names)

    def members(self) -> frozenset[str]:
        """Every enum member (a bare name that is a symbol)."""
        return frozenset(self.enum_of_member)
