"""Compile checked expressions into Python functions ``fn(ev, env) -> value``.

`compile_expr` generates Python source for an expression (`codegen`); an expression nested too
deeply for Python's compiler is compiled here instead, into nested closures (`closure_expr`),
which evaluate it exactly alike.

Logic is three-valued: `Unknown` propagates through arithmetic and comparisons;
``false and unknown`` is false and ``true or unknown`` is true (Kleene), so a
decision that does not need a missing fact is still made.
"""

from __future__ import annotations

import itertools
import operator
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

from almarules.dsl import ast as A
from almarules.dsl.functions import CONSTANTS, FUNCTIONS, percentile
from almarules.dsl.units import parse_unit
from almarules.engine.evaluate import codegen
from almarules.engine.evaluate.arith import ARITH, finite_result
from almarules.engine.evaluate.runtime import (ONE_ARGUMENT_AGGREGATES, REDUCERS, foldable, join_index, join_parts,
                                               lookup_in, narrow)
from almarules.engine.evaluate.values import ACTIVE, Entity, Unknown, merge_unknowns
from almarules.engine.evaluate.world import FactReaders

Fn = Callable[[Any, dict], Any]
_MISSING = object()

_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass
class Names:
    """What bare names mean in this rule set."""

    params: set[str]
    enum_members: set[str]
    tables: set[str]
    bands: set[str]
    collections: set[str]  # dataset collection attributes (facts and created)
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)  # the schema's kind -> attribute -> AttrInfo
    readers: Optional[FactReaders] = None  # how facts are read (one reader per kind and attribute)
    shared: dict[tuple[str, str], int] = field(default_factory=dict)  # derived values alike for all entities -> memo key
    keyed: dict[tuple[str, str], tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # (sharing.Keys) -> (memo key, attributes)
    key_reads: dict[int, tuple[str, frozenset[str]]] = field(default_factory=dict)  # shared or keyed memo key -> (kind, attributes read)
    functions: dict[tuple[str, str], str] = field(default_factory=dict)  # derived value -> its function's name in ns
    ns: dict[str, Any] = field(default_factory=dict)  # the generated functions' globals (codegen)
    memo_keys: Iterator[int] = field(default_factory=itertools.count)  # (codegen.memo_key)


def compile_expr(e: A.Expr, names: Names, local: frozenset[str]) -> Fn:
    """`e` as a function ``fn(ev, env)``, `env` binding the names in `local`."""
    try:
        return codegen.expr_function(e, names, local, partial(constant, names=names))
    except codegen.TooDeep:
        return closure_expr(e, names, local)


def constant(e: A.Expr, names: Names) -> Any:
    """The value of a constant expression (`runtime.foldable`), computed once, at compile time."""
    return _compile(e, names, frozenset())(None, {})


def closure_expr(e: A.Expr, names: Names, local: frozenset[str]) -> Fn:
    """`e` as nested closures (any depth the parser accepts); constant subexpressions folded."""
    if not isinstance(e, (A.Num, A.Str, A.Bool)) and foldable(e, names, local):
        value = _compile(e, names, local)(None, {})  # a constant subexpression: computed once
        return lambda ev, env: value
    return _compile(e, names, local)


def _compile(e: A.Expr, names: Names, local: frozenset[str]) -> Fn:
    c = partial(closure_expr, names=names, local=local)  # no Python frame per nesting level
    if isinstance(e, A.Num):
        value = e.value * (parse_unit(e.unit)[0] if e.unit else 1.0)
        return lambda ev, env: value
    if isinstance(e, (A.Str, A.Bool)):
        value = e.value
        return lambda ev, env: value
    if isinstance(e, A.Name):
        return _name(e.id, names, local)
    if isinstance(e, A.Attr):
        obj = c(e.obj)
        attr = e.name

        def attr_(ev, env):
            o = obj(ev, env)
            if o.__class__ is Entity:  # fast path: a value already computed
                v = o.cache.get(attr, _MISSING)
                if v is not _MISSING and v is not ACTIVE:
                    frames = ev.frames
                    if frames:
                        fr = frames[-1]
                        fr.append(o)
                        fr.append(attr)
                    return v
            return ev.attr(o, attr)
        return attr_
    if isinstance(e, A.Unary):
        inner = c(e.operand)
        if e.op == "not":
            def not_(ev, env):
                v = inner(ev, env)
                return v if isinstance(v, Unknown) else not v
            return not_

        def neg(ev, env):
            v = inner(ev, env)
            return v if isinstance(v, Unknown) else -v
        return neg
    if isinstance(e, A.Binary):
        return _binary(e, c)
    if isinstance(e, A.IfElse):
        cond, then, other = c(e.cond), c(e.then), c(e.else_)

        def if_(ev, env):
            k = cond(ev, env)
            if isinstance(k, Unknown):
                return k
            return then(ev, env) if k else other(ev, env)
        return if_
    if isinstance(e, A.Call):
        return _call(e, names, local, c)
    if isinstance(e, A.Aggregate):
        return _aggregate(e, names, local)
    if isinstance(e, A.SetLit):
        items = [c(i) for i in e.items]

        def set_(ev, env):
            vals = [i(ev, env) for i in items]
            return merge_unknowns(vals) or frozenset(vals)
        return set_
    if isinstance(e, A.ListLit):
        items = [c(i) for i in e.items]

        def list_(ev, env):
            vals = [i(ev, env) for i in items]
            return merge_unknowns(vals) or tuple(vals)
        return list_
    raise TypeError(f"cannot compile {type(e).__name__}")


def _name(name: str, names: Names, local: frozenset[str]) -> Fn:
    """A bare name: a variable in scope, a parameter (read through the cascades' overlay and
    recorded as an input), a constant, an enum member, ``dataset`` or a dataset collection."""
    if name in local:
        return lambda ev, env: env[name]
    if name in names.params:
        key = f"param:{name}"

        def param_(ev, env):
            frames = ev.frames
            if frames:
                frames[-1].append(key)
            return ev.param_values[name]
        return param_
    if name in CONSTANTS:
        value = CONSTANTS[name][0]
        return lambda ev, env: value
    if name in names.enum_members:
        return lambda ev, env: name
    if name == "dataset":
        return lambda ev, env: ev.dataset
    if name in names.collections:
        return lambda ev, env: ev.attr(ev.dataset, name)
    raise ValueError(f"unresolved name {name!r} (the checker should have caught it)")


def _binary(e: A.Binary, c) -> Fn:
    left, right = c(e.left), c(e.right)
    op = e.op
    if op == "and":
        def and_(ev, env):
            a = left(ev, env)
            if a is False:
                return False
            b = right(ev, env)
            if b is False:
                return False
            if isinstance(a, Unknown) or isinstance(b, Unknown):
                return merge_unknowns((a, b))
            return True
        return and_
    if op == "or":
        def or_(ev, env):
            a = left(ev, env)
            if a is True:
                return True
            b = right(ev, env)
            if b is True:
                return True
            if isinstance(a, Unknown) or isinstance(b, Unknown):
                return merge_unknowns((a, b))
            return False
        return or_
    if op in ("in", "notin"):
        negate = op == "notin"

        def in_(ev, env):
            a, b = left(ev, env), right(ev, env)
            if isinstance(a, Unknown) or isinstance(b, Unknown):
                return merge_unknowns((a, b))
            return (a in b) != negate
        return in_
    fn = _COMPARE.get(op) or ARITH[op]

    def bin_(ev, env):
        a = left(ev, env)
        b = right(ev, env)
        if a.__class__ is Unknown or b.__class__ is Unknown:
            return merge_unknowns((a, b))
        return fn(a, b)
    return bin_


def _call(e: A.Call, names: Names, local, c) -> Fn:
    args = list(map(c, e.args))
    func = e.func
    if func in names.tables or func in names.bands:
        arg = args[0]
        lookup = "table" if func in names.tables else "band"

        def table_(ev, env):
            x = arg(ev, env)
            if isinstance(x, Unknown):
                return x
            return ev.lookup(lookup, func, x)
        return table_
    if func == "known":
        arg = args[0]
        return lambda ev, env: not isinstance(arg(ev, env), Unknown)
    if func == "lookup":
        coll_fn, key_fn = args
        coll_name = e.args[0].id if isinstance(e.args[0], A.Name) else "collection"

        def lookup_(ev, env):
            coll, key = coll_fn(ev, env), key_fn(ev, env)
            if isinstance(coll, Unknown) or isinstance(key, Unknown):
                return merge_unknowns((coll, key))
            return lookup_in(ev, coll, key, coll_name)
        return lookup_
    if len(args) == 1 and func in ONE_ARGUMENT_AGGREGATES:
        arg = args[0]
        reducer = REDUCERS[func]

        def agg_(ev, env):
            coll = arg(ev, env)
            if isinstance(coll, Unknown):
                return coll
            return finite_result(func, ("...",), reducer(list(coll), None, f"{func}()"))
        return agg_
    impl = FUNCTIONS[func].impl
    errors = (ValueError, ZeroDivisionError, OverflowError)
    if len(args) == 1:
        (a0,) = args

        def call1(ev, env):
            v = a0(ev, env)
            if v.__class__ is Unknown:
                return v
            try:
                return finite_result(func, (v,), impl(v))
            except errors as exc:
                return Unknown(errors=[f"{func}(): {exc}"])
        return call1
    if len(args) == 2:
        a0, a1 = args

        def call2(ev, env):
            v0 = a0(ev, env)
            v1 = a1(ev, env)
            if v0.__class__ is Unknown or v1.__class__ is Unknown:
                return merge_unknowns((v0, v1))
            try:
                return finite_result(func, (v0, v1), impl(v0, v1))
            except errors as exc:
                return Unknown(errors=[f"{func}(): {exc}"])
        return call2

    def call_(ev, env):
        vals = [a(ev, env) for a in args]
        unknown = merge_unknowns(vals)
        if unknown is not None:
            return unknown
        try:
            return finite_result(func, tuple(vals), impl(*vals))
        except errors as exc:
            return Unknown(errors=[f"{func}(): {exc}"])
    return call_


def _joined(src: Fn, join: Optional[tuple[tuple[str, ...], list[Fn]]]) -> Fn:
    """The binder's source narrowed to the elements whose join attributes equal the row's values
    (`runtime.join_index`), in their original order. The where is still evaluated on them, so the
    result is the full scan's; an element whose joined attribute is unknown (or not a fact)
    leaves the full collection to scan, as without a join."""
    if join is None:
        return src
    attrs, others = join

    def narrowed(ev, env):
        coll = src(ev, env)
        if coll.__class__ is Unknown or not coll:
            return coll
        index = join_index(ev, coll, attrs)
        if index is None:
            return coll
        return narrow(index, coll, tuple(fn(ev, env) for fn in others))
    return narrowed


# ---------------------------------------------------------------- for-variables
CBinder = tuple[str, Fn, Optional[Fn]]  # a compiled ``var in source where cond``: (var, source, where)


def compile_binders(binders: Sequence[A.Binder], names: Names, local: frozenset[str],
                    join: bool = False, compile_fn: Optional[Callable[..., Fn]] = None
                    ) -> tuple[list[CBinder], frozenset[str]]:
    """Compile ``v1 in c1 where p1, v2 in c2 where p2, ...`` (an aggregate's or an emit ``for``'s)
    with `compile_fn` (default `closure_expr`).

    Each source sees the names bound before it, each where its own variable too. Returns the
    compiled binders and the scope after the last one (for the element or the body). With `join`,
    a source is narrowed by its where's equality conjuncts (`_joined`; the result is unchanged)."""
    cx = compile_fn or closure_expr
    out: list[CBinder] = []
    scope = set(local)
    for b in binders:
        src = cx(b.source, names, frozenset(scope))
        if join:
            parts = join_parts(b)
            outer = frozenset(scope)
            src = _joined(src, None if parts is None else (parts[0], [cx(x, names, outer) for x in parts[1]]))
        scope.add(b.var)
        where = cx(b.where, names, frozenset(scope)) if b.where is not None else None
        out.append((b.var, src, where))
    return out, frozenset(scope)


def binder_rows(ev: Any, binders: list[CBinder], env: dict, unknowns: list[Unknown]) -> Iterator[dict]:
    """The environments binding every combination of the binders' elements whose wheres are true,
    in order (the first binder outermost), each a new dict extending `env` (`env` itself when
    there are no binders). An unknown source or where is appended to `unknowns` and skipped.
    Lazy: a caller's work on one row happens before the next row's wheres are evaluated."""
    return _rows_from(ev, binders, 0, env, unknowns)


def _rows_from(ev: Any, binders: list[CBinder], i: int, env: dict, unknowns: list[Unknown]) -> Iterator[dict]:
    if i == len(binders):
        yield env
        return
    var, src, where = binders[i]
    coll = src(ev, env)
    if isinstance(coll, Unknown):
        unknowns.append(coll)
        return
    for item in coll:
        inner = dict(env)
        inner[var] = item
        if where is not None:
            keep = where(ev, inner)
            if isinstance(keep, Unknown):
                unknowns.append(keep)
                continue
            if not keep:
                continue
        yield from _rows_from(ev, binders, i + 1, inner, unknowns)


def _aggregate(e: A.Aggregate, names: Names, local: frozenset[str]) -> Fn:
    """Evaluate ``func(element for v1 in c1 where p1, v2 in c2 ... else default)``.

    Elements whose membership or value is unknown make the result unknown, except
    where the answer is already decided (any() found true, all() found false).
    """
    binders, scope = compile_binders(e.binders, names, local, join=True)
    element = closure_expr(e.element, names, scope)
    lead = [closure_expr(x, names, local) for x in e.lead]
    default = closure_expr(e.default, names, local) if e.default is not None else None
    func = e.func
    what = f"{func}()"

    single = len(binders) == 1

    def collect(ev, env, values, unknowns):
        if single:  # the common case: one binder, one reused environment
            var, src, where = binders[0]
            coll = src(ev, env)
            if coll.__class__ is Unknown:
                unknowns.append(coll)
                return
            inner = dict(env)
            for item in coll:
                inner[var] = item
                if where is not None:
                    keep = where(ev, inner)
                    if keep.__class__ is Unknown:
                        unknowns.append(keep)
                        continue
                    if not keep:
                        continue
                v = element(ev, inner)
                if v.__class__ is Unknown:
                    unknowns.append(v)
                else:
                    values.append(v)
            return
        envs = list(binder_rows(ev, binders, env, unknowns))  # every where before any element
        for inner in envs:
            v = element(ev, inner)
            if v.__class__ is Unknown:
                unknowns.append(v)
            else:
                values.append(v)

    def agg(ev, env):
        values: list = []
        unknowns: list[Unknown] = []
        collect(ev, env, values, unknowns)
        if func == "any" and any(values):
            return True
        if func == "all" and not all(values):
            return False
        if unknowns:
            return merge_unknowns(unknowns)
        if func == "percentile":
            q = lead[0](ev, env)
            if isinstance(q, Unknown):
                return q
            if not values:
                return default(ev, env) if default else Unknown(errors=["percentile() of nothing"])
            try:
                return finite_result(func, (q,), percentile(values, q))
            except ValueError as exc:
                return Unknown(errors=[f"percentile(): {exc}"])
        d = default(ev, env) if default is not None and not values else None
        if isinstance(d, Unknown):
            return d
        return finite_result(func, ("...",), REDUCERS[func](values, d, what))
    return agg


__all__ = ["CBinder", "Fn", "Names", "binder_rows", "closure_expr", "compile_binders", "compile_expr", "constant"]
