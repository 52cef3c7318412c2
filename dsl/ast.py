"""The typed syntax tree of rule files.

Nodes are frozen dataclasses. Source locations (`loc`) and source text are kept
out of equality, so ``parse(fmt(x)) == parse(x)`` compares meaning, not layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True, order=True)
class Loc:
    """A span in a rule file; lines and columns count from 1 (ordered by file, line, column)."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Loc("<builtin>", 0, 0)


def _loc() -> Loc:
    return field(default=NOWHERE, compare=False, repr=False)


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    value: float
    unit: Optional[str] = None
    loc: Loc = _loc()
    text: Optional[str] = field(default=None, compare=False, repr=False)  # the digits as written


@dataclass(frozen=True)
class Str:
    value: str
    loc: Loc = _loc()


@dataclass(frozen=True)
class Bool:
    value: bool
    loc: Loc = _loc()


@dataclass(frozen=True)
class Name:
    id: str
    loc: Loc = _loc()


@dataclass(frozen=True)
class Attr:
    obj: "Expr"
    name: str
    loc: Loc = _loc()


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: "Expr"
    loc: Loc = _loc()


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / ^ and or == != < <= > >= in notin
    left: "Expr"
    right: "Expr"
    loc: Loc = _loc()


@dataclass(frozen=True)
class IfElse:
    cond: "Expr"
    then: "Expr"
    else_: "Expr"
    loc: Loc = _loc()


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Expr", ...]
    loc: Loc = _loc()


@dataclass(frozen=True)
class Binder:
    var: str
    source: "Expr"
    where: Optional["Expr"] = None
    loc: Loc = _loc()


@dataclass(frozen=True)
class Aggregate:
    """``func(lead..., element for binders else default)``; func "list" is ``[element for binders]``."""

    func: str
    lead: tuple["Expr", ...]
    element: "Expr"
    binders: tuple[Binder, ...]
    default: Optional["Expr"] = None
    loc: Loc = _loc()


@dataclass(frozen=True)
class SetLit:
    items: tuple["Expr", ...]
    loc: Loc = _loc()


@dataclass(frozen=True)
class ListLit:
    items: tuple["Expr", ...]
    loc: Loc = _loc()


Expr = Union[Num, Str, Bool, Name, Attr, Unary, Binary, IfElse, Call, Aggregate, SetLit, ListLit]


# ---------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Bound:
    """An interval end: a number (with unit) or +/- infinity."""

    value: float
    unit: Optional[str] = None
    loc: Loc = _loc()
    text: Optional[str] = field(default=None, compare=False, repr=False)  # the digits as written

    @property
    def infinite(self) -> bool:
        return self.value in (float("inf"), float("-inf"))


@dataclass(frozen=True)
class Interval:
    lo: Bound
    hi: Bound
    lo_closed: bool
    hi_closed: bool
    loc: Loc = _loc()

    def __str__(self) -> str:
        def b(x: Bound) -> str:
            if x.infinite:
                return "inf" if x.value > 0 else "-inf"
            from almarules.dsl.units import format_number

            return format_number(x.value, 12) + (f" {x.unit}" if x.unit else "")

        return f"{'[' if self.lo_closed else '('}{b(self.lo)}, {b(self.hi)}{']' if self.hi_closed else ')'}"


@dataclass(frozen=True)
class Import:
    path: str
    loc: Loc = _loc()


@dataclass(frozen=True)
class EnumDecl:
    name: str
    members: tuple[str, ...]
    override: bool = False
    loc: Loc = _loc()


@dataclass(frozen=True)
class Allowed:
    """What a parameter accepts: ``in (0, 1]`` (an interval, for numbers; ends in the
    parameter's unit) or ``in {"airy", "gaussian"}`` (a set of strings)."""

    interval: Optional[Interval] = None
    values: tuple[str, ...] = ()
    loc: Loc = _loc()

    def __str__(self) -> str:
        if self.interval is not None:
            return str(self.interval)
        return "{" + ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in self.values) + "}"


@dataclass(frozen=True)
class Param:
    name: str
    value: Expr
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()
    allowed: Optional[Allowed] = None  # the `in ...` clause


@dataclass(frozen=True)
class Derive:
    kind: str
    attr: str
    expr: Expr
    when: Optional[Expr] = None
    priority: Optional[int] = None
    unit: Optional[str] = None
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()
    digits: Optional[int] = None  # significant digits in reports

    @property
    def target(self) -> str:
        return f"{self.kind}.{self.attr}"


@dataclass(frozen=True)
class TableRow:
    interval: Interval
    expr: Expr
    loc: Loc = _loc()


@dataclass(frozen=True)
class Table:
    name: str
    arg: str
    domain: Interval
    rows: tuple[TableRow, ...]
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()


@dataclass(frozen=True)
class BandRow:
    label: str
    interval: Interval
    loc: Loc = _loc()


@dataclass(frozen=True)
class Bands:
    name: str
    arg: str
    domain: Interval
    rows: tuple[BandRow, ...]
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()


@dataclass(frozen=True)
class ScoreTerm:
    sign: str  # "+" or "-"
    amount: Expr
    reason: str
    when: Expr
    loc: Loc = _loc()


@dataclass(frozen=True)
class Score:
    kind: str
    attr: str
    start: Optional[Expr]
    terms: tuple[ScoreTerm, ...]
    clamp: Optional[tuple[Expr, Expr]] = None
    when: Optional[Expr] = None
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()

    @property
    def target(self) -> str:
        return f"{self.kind}.{self.attr}"


@dataclass(frozen=True)
class Emit:
    assigns: tuple[tuple[str, Expr], ...]
    loc: Loc = _loc()


@dataclass(frozen=True)
class EmitFor:
    binders: tuple[Binder, ...]
    body: tuple[Union["EmitFor", Emit], ...]
    loc: Loc = _loc()


@dataclass(frozen=True)
class Collection:
    kind: str
    body: tuple[Union[EmitFor, Emit], ...]
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()


@dataclass(frozen=True)
class SetAction:
    kind: Optional[str]  # None: a parameter
    name: str
    value: Expr
    where: Optional[Expr] = None
    loc: Loc = _loc()


@dataclass(frozen=True)
class KeepAction:
    """``keep KIND where W group by G ranked by R1, R2 while C`` (or ``limit N`` instead of while)."""

    kind: str
    where: Optional[Expr] = None
    group: Optional[Expr] = None
    rank: Optional[Expr] = None  # the first ranking key (None: first-seen order)
    while_: Optional[Expr] = None
    loc: Loc = _loc()
    limit: Optional[Expr] = None  # number of groups to keep (dataset scope)
    then_by: tuple[Expr, ...] = ()  # further ranking keys: ``ranked by rank, then_by[0], ...``

    @property
    def rank_keys(self) -> tuple[Expr, ...]:
        """Every ranking key in order, compared lexicographically."""
        return ((self.rank,) if self.rank is not None else ()) + self.then_by


@dataclass(frozen=True)
class DropAction:
    kind: str
    where: Expr
    loc: Loc = _loc()


@dataclass(frozen=True)
class ErrorAction:
    """``error "message" when C``: stops the cascade with status "error" (C in dataset scope)."""

    message: str
    when: Optional[Expr] = None
    loc: Loc = _loc()


@dataclass(frozen=True)
class RepeatAction:
    """``repeat "a", "b"``: re-applies the actions of earlier steps, in order."""

    steps: tuple[str, ...]
    loc: Loc = _loc()


Action = Union[SetAction, KeepAction, DropAction, ErrorAction, RepeatAction]


@dataclass(frozen=True)
class Step:
    name: str
    actions: tuple[Action, ...]
    position: Optional[tuple[str, str]] = None  # ("after"|"before", step name)
    doc: Optional[str] = None
    loc: Loc = _loc()
    when: Optional[Expr] = None  # the step applies only when this holds (dataset scope)


@dataclass(frozen=True)
class Cascade:
    name: str
    until: Optional[Expr]
    steps: tuple[Step, ...]
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()


@dataclass(frozen=True)
class Stage:
    name: str
    args: tuple[Expr, ...] = ()
    when: Optional[Expr] = None
    loc: Loc = _loc()


@dataclass(frozen=True)
class Recipe:
    name: str
    stages: tuple[Stage, ...]
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()


@dataclass(frozen=True)
class Warn:
    """``warn "message" when C``: a warning the evaluation reports when C holds (dataset scope)."""

    message: str
    when: Expr
    doc: Optional[str] = None
    override: bool = False
    loc: Loc = _loc()


Decl = Union[Import, EnumDecl, Param, Derive, Table, Bands, Score, Collection, Cascade, Recipe, Warn]


@dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str


@dataclass(frozen=True)
class Module:
    path: str
    doc: Optional[str]
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)


def decl_name(decl: Decl) -> str:
    """The name a declaration is known by (for duplicates and overrides)."""
    if isinstance(decl, (Derive, Score)):
        return decl.target
    if isinstance(decl, Collection):
        return decl.kind
    if isinstance(decl, Import):
        return decl.path
    if isinstance(decl, Warn):
        return decl.message
    return decl.name


def decl_keyword(decl: Decl) -> str:
    return {
        Import: "import", EnumDecl: "enum", Param: "param", Derive: "derive", Table: "table",
        Bands: "bands", Score: "score", Collection: "collection", Cascade: "cascade",
        Recipe: "recipe", Warn: "warn",
    }[type(decl)]
