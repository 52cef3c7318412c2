"""What compiled expressions share, whichever compiler made them (`codegen`'s Python source or
`compile`'s closures): the aggregate reducers, the join index of an aggregate's binder,
``lookup()``, and which subexpressions are constant (folded once, at compile time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from almarules.dsl import ast as A
from almarules.dsl.functions import CONSTANTS, FUNCTIONS
from almarules.engine.evaluate.values import Entity, Unknown, key_text

if TYPE_CHECKING:
    from almarules.engine.evaluate.compile import Names


# ---------------------------------------------------------------- aggregates
def _count(values: list, default: Any, what: str) -> Any:
    return float(len(values))


def _sum(values: list, default: Any, what: str) -> Any:
    return float(sum(values)) if values else 0.0


def _extreme(pick: Callable[[list], Any]) -> Callable[[list, Any, str], Any]:
    def reduce(values: list, default: Any, what: str) -> Any:
        if not values:
            return default if default is not None else Unknown(errors=[f"{what} of nothing (add 'else <value>')"])
        return pick(values)
    return reduce


def _mean(values: list, default: Any, what: str) -> Any:
    if not values:
        return default if default is not None else Unknown(errors=[f"{what} of nothing (add 'else <value>')"])
    return sum(values) / len(values)


def _the(values: list, default: Any, what: str) -> Any:
    if len(values) == 1:
        return values[0]
    if not values:
        return default if default is not None else Unknown([f"{what}: nothing matches"])
    return Unknown(errors=[f"{what}: {len(values)} elements match, expected exactly one"])


REDUCERS = {
    "count": _count, "sum": _sum, "min": _extreme(min), "max": _extreme(max), "mean": _mean,
    "any": lambda v, d, w: any(v), "all": lambda v, d, w: all(v), "the": _the,
    "list": lambda v, d, w: tuple(v),
}
"""Aggregate name -> reduce(values, default, what): the known values in order, the ``else`` value
(None without one), and the text an error names ("max()")."""

ONE_ARGUMENT_AGGREGATES = ("count", "sum", "min", "max", "mean", "any", "all", "the")
"""Aggregates that may also be called on a collection value: ``count(spws)``."""


# ---------------------------------------------------------------- joins
def join_parts(b: A.Binder) -> Optional[tuple[tuple[str, ...], list[A.Expr]]]:
    """The equality conjuncts ``var.attr == expr`` of a binder's where (expr not naming var):
    the attributes and the expressions they equal, or None without any."""
    def conjuncts(x: Optional[A.Expr]) -> list[A.Expr]:
        if isinstance(x, A.Binary) and x.op == "and":
            return conjuncts(x.left) + conjuncts(x.right)
        return [] if x is None else [x]

    attrs, others = [], []
    for c in conjuncts(b.where):
        if isinstance(c, A.Binary) and c.op == "==":
            for mine, other in ((c.left, c.right), (c.right, c.left)):
                if (isinstance(mine, A.Attr) and isinstance(mine.obj, A.Name) and mine.obj.id == b.var
                        and b.var not in names_in(other)):
                    attrs.append(mine.name)
                    others.append(other)
                    break
    return (tuple(attrs), others) if attrs else None


def names_in(e: Any) -> set[str]:
    """Every bare name an expression mentions."""
    out: set[str] = set()
    if isinstance(e, A.Name):
        out.add(e.id)
    if isinstance(e, tuple):
        for item in e:
            out |= names_in(item)
    elif hasattr(e, "__dataclass_fields__"):
        for f in e.__dataclass_fields__:
            if f != "loc":
                out |= names_in(getattr(e, f))
    return out


def join_index(ev: Any, coll: Any, attrs: tuple[str, ...]) -> Optional[dict]:
    """{(attr values): [elements in order]} of a collection, built once per evaluation state
    (cached in ``ev.indexes``), or None if some element's value is not a known fact (derived
    values may change within an evaluation). Its reads are not recorded as inputs."""
    key = (id(coll), attrs)
    hit = ev.indexes.get(key)
    if hit is None or hit[0] is not coll:
        hit = ev.indexes[key] = (coll, _index(ev, coll, attrs))
    return hit[1]


def _index(ev: Any, coll: Any, attrs: tuple[str, ...]) -> Optional[dict]:
    frames, ev.frames = ev.frames, []
    try:
        index: dict = {}
        origins = ev.p.origins
        for item in coll:
            if item.__class__ is not Entity:
                return None
            values = []
            for attr in attrs:
                if origins[item.kind].get(attr) != "fact":
                    return None
                v = ev.attr(item, attr)
                if v.__class__ is Unknown:
                    return None
                values.append(v)
            index.setdefault(tuple(values), []).append(item)
        return index
    finally:
        ev.frames = frames


def narrow(index: Optional[dict], coll: Any, want: tuple) -> Any:
    """The elements of `coll` whose join attributes equal `want` (all of `coll` without an index,
    with an unknown wanted value, or an unhashable one)."""
    if index is None or any(v.__class__ is Unknown for v in want):
        return coll
    try:
        return index.get(want, ())
    except TypeError:  # an unhashable value: scan everything
        return coll


# ---------------------------------------------------------------- emit
def emit_entity(ev: Any, kind: str, made: dict, unknowns: list, cov: tuple, names: tuple[str, ...],
                values: tuple) -> None:
    """An ``emit`` of a collection rule: the entity of `kind` given `values` (those of the
    attributes `names`) is added to `made` under its key (the values' texts joined by '.') unless
    one is there already; a value unknown makes none, and goes to `unknowns`."""
    given = {}
    parts = []
    bad = None
    for name, value in zip(names, values, strict=True):
        cls = value.__class__
        if cls is str:
            parts.append(value)
        elif cls is Entity:
            parts.append(value.key)
        elif cls is Unknown:
            bad = value if bad is None else bad.merge(value)
        else:
            if cls is tuple:  # equal tuples made one (sharing keys values by identity)
                value = ev.interned.setdefault(value, value)
            parts.append(key_text(value))
        given[name] = value
    if bad is not None:
        unknowns.append(bad)
        return
    key = ".".join(parts)
    if key not in made:
        made[key] = Entity(kind, key, None, given, order=len(made), home=ev.home)
        ev.coverage.add(cov)


# ---------------------------------------------------------------- lookup()
def lookup_in(ev: Any, coll: Any, key: Any, coll_name: str) -> Any:
    """``lookup(coll, key)``: the element of `coll` whose key is `key` (the first of equals)."""
    cached = ev.indexes.get(id(coll))
    if cached is None or cached[0] is not coll:  # index each collection once (by key)
        cached = (coll, {item.key: item for item in reversed(coll) if isinstance(item, Entity)})
        ev.indexes[id(coll)] = cached
    found = cached[1].get(key)
    return found if found is not None else Unknown([f"{coll_name}[{key}]"])


# ---------------------------------------------------------------- constants
def foldable(e: A.Expr, names: "Names", local: frozenset[str]) -> bool:
    """No facts, parameters or variables: literals, constants, enum members, pure functions.

    Iterative (an explicit stack), so any depth the parser accepts is fine."""
    todo: list[A.Expr] = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, (A.Num, A.Str, A.Bool)):
            continue
        if isinstance(x, A.Name):
            if x.id in local or x.id in names.params or not (
                    x.id in CONSTANTS or x.id in names.enum_members):
                return False
        elif isinstance(x, A.Unary):
            todo.append(x.operand)
        elif isinstance(x, A.Binary):
            todo += (x.left, x.right)
        elif isinstance(x, A.IfElse):
            todo += (x.cond, x.then, x.else_)
        elif isinstance(x, A.Call):
            if (x.func not in FUNCTIONS or x.func in ("known", "lookup") or x.func in names.tables
                    or x.func in names.bands):
                return False
            todo += x.args
        elif isinstance(x, (A.SetLit, A.ListLit)):
            todo += x.items
        else:
            return False
    return True


__all__ = ["ONE_ARGUMENT_AGGREGATES", "REDUCERS", "foldable", "join_index", "join_parts", "lookup_in", "names_in",
           "narrow"]
