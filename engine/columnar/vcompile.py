"""Compile checked rule expressions to vectorised closures ``fn(ev, frame) -> Col``.

A frame is a set of rows (entities of one kind across the corpus, or the rows an
aggregate's binders expand to); each variable is a column over those rows. The
semantics are the interpreter's (`almarules.engine.evaluate.compile`): Kleene logic,
unknowns propagate, domain errors become unknown, aggregates over unknown
elements are unknown unless any()/all() are already decided.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Optional

import numpy as np

from almarules.dsl import ast as A
from almarules.dsl.functions import CONSTANTS, percentile
from almarules.dsl.units import parse_unit
from almarules.engine.columnar.columns import (
    STRINGS, Col, Unsupported, expand, falsity, first_of, mask_of, seg_any, seg_count, seg_sum,
    truth, unk_or,
)
from almarules.engine.columnar.vfunctions import VFUNCS
from almarules.engine.evaluate.compile import Names
from almarules.engine.evaluate.runtime import join_parts
from almarules.kernels.segments import segment_reduce


class Frame:
    """Rows being evaluated: their count, dataset index, and variable columns. A frame made from
    another (`sub`) gathers the other's variables only when they are read."""

    __slots__ = ("n", "ds", "vars", "_src", "_idx")

    def __init__(self, n: int, ds: np.ndarray, vars: dict[str, Col], src: Optional["Frame"] = None,
                 idx: Optional[np.ndarray] = None):
        self.n = n
        self.ds = ds
        self.vars = vars
        self._src = src
        self._idx = idx

    def var(self, name: str) -> Col:
        c = self.vars.get(name)
        if c is None:
            if self._src is None:
                raise KeyError(name)
            c = self.vars[name] = self._src.var(name).take(self._idx)
        return c

    def sub(self, idx: np.ndarray) -> "Frame":
        """The frame of rows idx of this one."""
        return Frame(len(idx), self.ds[idx], {}, self, idx)


VFn = Callable[[Any, Frame], Col]

_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


def constant_value(e: A.Expr, names: Names) -> Any:
    """The Python value of a constant expression (literals, constants, enum members), else raise."""
    if isinstance(e, A.Num):
        return e.value * (parse_unit(e.unit)[0] if e.unit else 1.0)
    if isinstance(e, (A.Str, A.Bool)):
        return e.value
    if isinstance(e, A.Name) and e.id in names.enum_members and e.id not in names.params:
        return e.id
    if isinstance(e, A.Name) and e.id in CONSTANTS:
        return CONSTANTS[e.id][0]
    if isinstance(e, A.Unary) and e.op == "-":
        return -constant_value(e.operand, names)
    raise Unsupported("not a constant")


def scalar(value: Any) -> Col:
    if isinstance(value, bool):
        return Col("bool", np.bool_(value))
    if isinstance(value, str):
        return Col("str", np.int32(STRINGS.code(value)))
    return Col("num", np.float64(value))


class Compiler:
    def __init__(self, names: Names):
        self.names = names

    def expr(self, e: Optional[A.Expr], local: frozenset[str]) -> Optional[VFn]:
        if e is None:
            return None
        try:
            value = constant_value(e, self.names) if not isinstance(e, A.Name) or e.id not in local else None
        except Unsupported:
            value = None
        if value is not None:
            col = scalar(value)
            return lambda ev, fr: col
        return self._compile(e, local)

    def _compile(self, e: A.Expr, local: frozenset[str]) -> VFn:
        if isinstance(e, A.Name):
            return self._name(e.id, local)
        if isinstance(e, A.Attr):
            obj = self.expr(e.obj, local)
            attr = e.name
            return lambda ev, fr: ev.attr_of(obj(ev, fr), attr, fr.n)
        if isinstance(e, A.Unary):
            inner = self.expr(e.operand, local)
            if e.op == "not":
                return lambda ev, fr: _not(inner(ev, fr))
            return lambda ev, fr: _neg(inner(ev, fr))
        if isinstance(e, A.Binary):
            return self._binary(e, local)
        if isinstance(e, A.IfElse):
            cond, then, other = (self.expr(x, local) for x in (e.cond, e.then, e.else_))
            return lambda ev, fr: _if(cond(ev, fr), then(ev, fr), other(ev, fr), fr.n)
        if isinstance(e, A.Call):
            return self._call(e, local)
        if isinstance(e, A.Aggregate):
            return self._aggregate(e, local)
        if isinstance(e, A.ListLit):
            items = [self.expr(x, local) for x in e.items]
            return lambda ev, fr: _list_of([f(ev, fr) for f in items], fr.n)
        raise Unsupported(f"{type(e).__name__} at {e.loc}")

    def _name(self, name: str, local: frozenset[str]) -> VFn:
        if name in local:
            return lambda ev, fr: fr.var(name)
        if name in self.names.params:
            return lambda ev, fr: ev.param(name, fr.ds)
        if name == "dataset":
            return lambda ev, fr: Col("ent", fr.ds, ekind="dataset")
        if name in self.names.collections:
            return lambda ev, fr: ev.column("dataset", name).take(fr.ds)
        raise Unsupported(f"name {name!r}")

    # ------------------------------------------------------------ operators
    def _binary(self, e: A.Binary, local: frozenset[str]) -> VFn:
        op = e.op
        if op in ("in", "notin"):
            return self._in(e, local)
        left, right = self.expr(e.left, local), self.expr(e.right, local)
        if op == "and":
            return lambda ev, fr: _and(left(ev, fr), right(ev, fr), fr.n)
        if op == "or":
            return lambda ev, fr: _or(left(ev, fr), right(ev, fr), fr.n)
        if op in _ARITH:
            ufunc = _ARITH[op]

            def arith(ev, fr):
                a, b = left(ev, fr), right(ev, fr)
                if a.t != "num" or b.t != "num":
                    raise Unsupported(f"arithmetic on {a.t} and {b.t} at {e.loc}")
                with np.errstate(all="ignore"):
                    v = ufunc(a.v, b.v)
                unk = unk_or(a, b)
                bad = ~np.isfinite(v)  # overflow, 0 ^ -1, (-8) ^ 0.5, inf - inf, x / 0: error values
                if bad.any():
                    bad = np.broadcast_to(bad, (fr.n,))
                    unk = bad if unk is None else (unk | bad)
                return Col("num", v, unk)
            return arith
        cmp = _COMPARE[op]

        def compare(ev, fr):
            a, b = left(ev, fr), right(ev, fr)
            if a.t != b.t and not (a.t == "num" and b.t == "num"):
                raise Unsupported(f"comparing {a.t} with {b.t} at {e.loc}")
            if a.t in ("str", "bool", "ent") and op not in ("==", "!="):
                raise Unsupported(f"ordering {a.t} values at {e.loc}")
            if a.t in ("rel", "set", "obj"):
                raise Unsupported(f"comparing {a.t} values at {e.loc}")
            return Col("bool", cmp(a.v, b.v), unk_or(a, b))
        return compare

    def _in(self, e: A.Binary, local: frozenset[str]) -> VFn:
        negate = e.op == "notin"
        left = self.expr(e.left, local)
        if isinstance(e.right, (A.SetLit, A.ListLit)):
            try:
                consts = [constant_value(x, self.names) for x in e.right.items]
            except Unsupported:
                consts = None
            if consts is not None:
                def in_consts(ev, fr):
                    a = left(ev, fr)
                    if a.t == "str":
                        keys = np.array([STRINGS.code(c) for c in consts if isinstance(c, str)], dtype=np.int32)
                    elif a.t == "num":
                        keys = np.array([c for c in consts if isinstance(c, float)], dtype=np.float64)
                    else:
                        raise Unsupported(f"membership of {a.t} at {e.loc}")
                    v = np.isin(a.v, keys)
                    return Col("bool", v != negate, a.unk)
                return in_consts
        right = self.expr(e.right, local)

        def in_(ev, fr):
            a, b = left(ev, fr), right(ev, fr)
            v = ev.member(a, b, fr.n)
            return Col("bool", v != negate, unk_or(a, b))
        return in_

    # ------------------------------------------------------------ calls
    def _call(self, e: A.Call, local: frozenset[str]) -> VFn:
        func = e.func
        args = [self.expr(a, local) for a in e.args]
        if func in self.names.tables or func in self.names.bands:
            arg = args[0]
            return lambda ev, fr: ev.table(func, arg(ev, fr), fr)
        if func == "known":
            arg = args[0]
            return lambda ev, fr: Col("bool", ~mask_of(arg(ev, fr).unk, fr.n))
        if func == "lookup" and isinstance(e.args[1], A.Attr) and e.args[1].name == "key":
            coll, ent = args[0], self.expr(e.args[1].obj, local)
            return lambda ev, fr: ev.lookup_entity(coll(ev, fr), ent(ev, fr), fr.n)
        if func == "lookup":
            coll, key = args
            return lambda ev, fr: ev.lookup(coll(ev, fr), key(ev, fr), fr.n)
        if len(args) == 1 and func in ("count", "sum", "min", "max", "mean", "any", "all", "the"):
            arg = args[0]

            def agg1(ev, fr):
                coll = arg(ev, fr)
                if coll.t != "rel":
                    raise Unsupported(f"{func}() of a {coll.t} at {e.loc}")
                parent, elem, _ = expand(np.broadcast_to(coll.v, (fr.n,)), *coll.base)
                values = Col("ent", elem, ekind=coll.ekind)
                return _reduce(func, values, parent, fr.n, coll.unk, None, None)
            return agg1
        impl = VFUNCS.get(func)
        if impl is None:
            raise Unsupported(f"function {func}() at {e.loc}")

        def call(ev, fr):
            cols = [a(ev, fr) for a in args]
            for c in cols:
                if c.t != "num":
                    raise Unsupported(f"{func}() of a {c.t} at {e.loc}")
            v, bad = impl(*[c.v for c in cols])
            unk = unk_or(*cols)
            if not np.all(np.isfinite(v)):  # a result beyond the floats is an error value, as in the interpreter
                bad = ~np.isfinite(v) if bad is None else (bad | ~np.isfinite(v))
            if bad is not None:
                bad = np.broadcast_to(bad, (fr.n,))
                unk = bad if unk is None else (unk | bad)
            return Col("num", v, unk)
        return call

    # ------------------------------------------------------------ aggregates
    def binders(self, binders: tuple[A.Binder, ...], local: frozenset[str]) -> tuple[list, frozenset[str]]:
        """Compiled (var, source, where) triples and the scope after them."""
        out = []
        scope = set(local)
        for b in binders:
            src = self._source(b.source, frozenset(scope))
            join = self._join(b, frozenset(scope))
            scope.add(b.var)
            out.append((b.var, src, self.expr(b.where, frozenset(scope)), join))
        return out, frozenset(scope)

    def _join(self, b: A.Binder, outer: frozenset[str]) -> Optional[list[tuple[str, VFn]]]:
        """The equality conjuncts ``var.attr == expr`` of the binder's where (`runtime.join_parts`):
        the expansion then pairs each row only with the elements whose attributes match (a join)."""
        parts = join_parts(b)
        if parts is None:
            return None
        return [(attr, self.expr(other, outer)) for attr, other in zip(*parts, strict=True)]

    def _source(self, e: A.Expr, local: frozenset[str]) -> VFn:
        if isinstance(e, (A.ListLit, A.SetLit)):
            try:
                consts = [constant_value(x, self.names) for x in e.items]
            except Unsupported:
                consts = None
            if consts is not None:
                cols = [scalar(c) for c in consts]
                return lambda ev, fr: ("const", cols)
        return self.expr(e, local)

    def _aggregate(self, e: A.Aggregate, local: frozenset[str]) -> VFn:
        binders, scope = self.binders(e.binders, local)
        element = self.expr(e.element, scope)
        lead = [self.expr(x, local) for x in e.lead]
        default = self.expr(e.default, local)
        func = e.func

        def agg(ev, fr):
            inner, root, pending = expand_binders(ev, fr, binders)
            values = element(ev, inner)
            d = default(ev, fr) if default is not None else None
            q = lead[0](ev, fr) if lead else None
            return _reduce(func, values, root, fr.n, pending, d, q)
        return agg


def expand_binders(ev: Any, fr: Frame, binders: list) -> tuple[Frame, np.ndarray, Optional[np.ndarray]]:
    """Expand a frame by each binder in turn: (inner frame, outer row of each inner row,
    outer rows with an unknown source or where)."""
    root = np.arange(fr.n, dtype=np.int64)
    pending = np.zeros(fr.n, dtype=bool)
    inner = fr
    for var, src, where, join in binders:
        inner, parent, unknown_src = expand_source(ev, inner, var, src, join)
        if unknown_src is not None:
            pending[root[unknown_src]] = True
        root = root[parent]
        if where is not None:
            w = where(ev, inner)
            if w.unk is not None:
                pending[root[w.unk]] = True
            keep = np.flatnonzero(truth(w, inner.n))
            if len(keep) != inner.n:
                inner = inner.sub(keep)
                root = root[keep]
    return inner, root, (pending if pending.any() else None)


def expand_source(ev: Any, fr: Frame, var: str, src: VFn, join: Optional[tuple[str, VFn]] = None
                  ) -> tuple[Frame, np.ndarray, Optional[np.ndarray]]:
    """The frame with one row per (row, element of its collection), `var` bound to the element
    (with a join: only the elements whose join attribute equals the row's value)."""
    coll = src(ev, fr)
    if join is not None and not isinstance(coll, tuple) and coll.t == "rel":
        joined = _join_expand(ev, fr, coll, join)
        if joined is not None:
            parent, elem = joined
            inner = fr.sub(parent)
            inner.vars[var] = Col("ent", elem, ekind=coll.ekind)
            return inner, parent, coll.unk
    if isinstance(coll, tuple):  # a constant list: every row times each item
        cols = coll[1]
        k = len(cols)
        parent = np.repeat(np.arange(fr.n, dtype=np.int64), k)
        inner = fr.sub(parent)
        item = np.tile(np.arange(k), fr.n)
        first = cols[0]
        vals = np.array([c.v for c in cols])[item] if k else np.array([], dtype=np.asarray(first.v).dtype)
        inner.vars[var] = Col(first.t if k else "num", vals)
        return inner, parent, None
    if coll.t != "rel":
        raise Unsupported(f"iterating over a {coll.t}")
    unk = coll.unk
    key = (id(coll.v), id(coll.base[0]), id(coll.base[1]))
    hit = ev.expand_cache.get(key) if unk is None and isinstance(coll.v, np.ndarray) else None
    if hit is not None and hit[0] is coll.v and hit[1] is coll.base:
        parent, elem = hit[2], hit[3]
    else:
        owner = np.broadcast_to(np.asarray(coll.v, dtype=np.int64), (fr.n,))
        if unk is not None:
            owner = np.where(unk, len(coll.base[0]) - 1, owner)  # the last offset: an empty range
        parent, elem, _ = expand(owner, *_with_empty(coll.base))
        if unk is None and isinstance(coll.v, np.ndarray):  # the same collection column: expand once
            ev.expand_cache[key] = (coll.v, coll.base, parent, elem)
    inner = fr.sub(parent)
    inner.vars[var] = Col("ent", elem, ekind=coll.ekind)
    return inner, parent, unk


def _join_expand(ev: Any, fr: Frame, coll: Col, joins: list[tuple[str, VFn]]
                 ) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(parent row, element) pairs whose join keys are all equal, by sorting; None when a key is
    unknown (then the general expansion keeps the exact semantics of unknowns)."""
    offsets, items = coll.base
    n = fr.n
    key_cols, row_keys, used = [], [], []
    no_match = np.zeros(n, dtype=bool)
    for attr, other_fn in joins:
        keys = ev.column(coll.ekind, attr)
        other = other_fn(ev, fr)
        if other.unk is not None or keys.t != other.t or keys.t not in ("str", "ent", "num", "bool"):
            return None
        if np.ndim(other.v) == 0:  # a constant: the where's mask is cheaper than sorting
            continue
        ik = keys.take(items) if len(items) else keys
        if ik.unk is not None:
            return None
        ikey, qkey = _key_array(ik, len(items), keys.t), _key_array(other, n, keys.t)
        if keys.t == "num":  # integral numbers (ids, counts) join as integers
            if np.all(ikey == np.floor(ikey)) and np.all(np.abs(ikey) < 2.0 ** 53):
                integral = (qkey == np.floor(qkey)) & (np.abs(qkey) < 2.0 ** 53)
                no_match |= ~integral  # a fractional value matches no integral key
                ikey = ikey.astype(np.int64)
                qkey = np.where(integral, qkey, 0).astype(np.int64)
        key_cols.append(ikey)
        row_keys.append(qkey)
        used.append(attr)
    if not key_cols:
        return None
    facts = all(ev.p.origins[coll.ekind].get(attr) == "fact" for attr in used)
    owner = np.broadcast_to(np.asarray(coll.v, dtype=np.int64), (n,))
    ok = ~no_match if coll.unk is None else ~(coll.unk | no_match)
    # integer keys whose ranges multiply within 62 bits combine directly: (owner, k1, k2, ...)
    widths = [len(offsets)] + [int(max(ik.max(initial=0), qk.max(initial=0))) + 1 for ik, qk in zip(key_cols, row_keys)]
    direct = (all(ik.dtype == np.int64 and ik.min(initial=0) >= 0 and qk.min(initial=0) >= 0
                  for ik, qk in zip(key_cols, row_keys)) and float(np.prod([float(w) for w in widths])) < 2.0 ** 62)
    cache_key = (id(offsets), id(items), tuple(used), tuple(widths) if direct else None)
    hit = ev.join_cache.get(cache_key) if facts else None
    if hit is None or hit[0] is not offsets:
        owner_of_item = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
        levels, comb = [], owner_of_item
        for ik, w in zip(key_cols, widths[1:]):
            if direct:
                comb = comb * w + ik
                continue
            u, inv = np.unique(ik, return_inverse=True)  # dense codes, re-densified (no overflow)
            uc, comb = np.unique(comb * len(u) + inv.reshape(-1), return_inverse=True)
            comb = comb.reshape(-1)
            levels.append((u, uc))
        order = np.argsort(comb, kind="stable")
        hit = (offsets, levels, order, comb[order])
        if facts:
            ev.join_cache[cache_key] = hit
    _, levels, order, ordered = hit
    code = owner.copy()
    if direct:
        for qk, w in zip(row_keys, widths[1:]):
            code = code * w + qk
    for (u, uc), qk in zip(levels, row_keys):
        pos = np.minimum(np.searchsorted(u, qk), max(len(u) - 1, 0))
        ok &= (u[pos] == qk) if len(u) else False
        q = code * len(u) + pos
        pos2 = np.minimum(np.searchsorted(uc, q), max(len(uc) - 1, 0))
        ok &= (uc[pos2] == q) if len(uc) else False
        code = pos2
    lo = np.searchsorted(ordered, code, "left")
    hi = np.searchsorted(ordered, code, "right")
    counts = np.where(ok, hi - lo, 0)
    parent = np.repeat(np.arange(n, dtype=np.int64), counts)
    within = np.arange(len(parent), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    elem = items[order[np.repeat(lo, counts) + within]]
    return parent, elem


def _key_array(c: Col, n: int, t: str) -> np.ndarray:
    v = np.broadcast_to(np.asarray(c.v), (n,))
    return v.astype(np.float64) + 0.0 if t == "num" else v.astype(np.int64)  # -0.0 == 0.0


def _with_empty(base: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets, items = base
    return np.append(offsets, offsets[-1]), items


def _reduce(func: str, values: Col, root: np.ndarray, n: int, pending: Optional[np.ndarray],
            default: Optional[Col], q: Optional[Col]) -> Col:
    """Reduce inner rows to their outer row, as the interpreter's aggregates do."""
    vunk = values.unk
    if vunk is not None:
        bad = np.zeros(n, dtype=bool)
        bad[root[vunk]] = True
        pending = bad if pending is None else (pending | bad)
    m = len(root)
    known_rows = ~vunk if vunk is not None else None
    if func == "any":
        found = seg_any(root, truth(values, m), n)
        return Col("bool", found, (~found & pending) if pending is not None else None)
    if func == "all":
        found = seg_any(root, falsity(values, m), n)
        return Col("bool", ~found, (~found & pending) if pending is not None else None)
    r, vals = (root, values.full(m)) if known_rows is None else (root[known_rows], values.full(m)[known_rows])
    count = seg_count(r, n)
    empty = count == 0
    if func == "count":
        return Col("num", count, pending)
    if func == "sum":
        with np.errstate(all="ignore"):
            return _finite(Col("num", seg_sum(r, vals.astype(np.float64), n), pending))
    if func == "list":
        if values.t != "ent":
            raise Unsupported(f"a list of {values.t} values")
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(count.astype(np.int64), out=offsets[1:])
        return Col("rel", np.arange(n, dtype=np.int64), pending, ekind=values.ekind, base=(offsets, vals))
    if func in ("min", "max"):
        if values.t != "num":
            raise Unsupported(f"{func}() of {values.t} values")
        out, _ = segment_reduce(r, vals, n, np.minimum if func == "min" else np.maximum)
        return _with_default(Col("num", out, pending), empty, default, n)
    if func == "mean":
        with np.errstate(all="ignore"):
            out = seg_sum(r, vals, n) / count
        return _with_default(_finite(Col("num", out, pending), empty), empty, default, n)
    if func == "the":
        first, _ = first_of(r, n)
        kidx = np.flatnonzero(known_rows) if known_rows is not None else np.arange(m)
        if len(kidx) == 0:
            return _with_default(Col("num", np.zeros(n), pending), empty, default, n)
        picked = values.take(kidx[np.where(first >= 0, first, 0)])
        unk = unk_or(pending, count > 1)
        return _with_default(Col(picked.t, picked.full(n), unk, picked.ekind, picked.base), empty, default, n)
    if func == "percentile":
        out = np.zeros(n)
        qv = np.broadcast_to(q.v, (n,))
        bad = mask_of(unk_or(pending, q), n).copy()
        order = np.argsort(r, kind="stable")
        splits = np.searchsorted(r[order], np.arange(n + 1))
        for i in range(n):
            seg = vals[order[splits[i]:splits[i + 1]]]
            if len(seg) == 0:
                continue
            try:
                out[i] = percentile(list(seg), float(qv[i]))
            except ValueError:
                bad[i] = True
        return _with_default(Col("num", out, bad), empty, default, n)
    raise Unsupported(f"aggregate {func}")


def _finite(c: Col, empty: Optional[np.ndarray] = None) -> Col:
    """Rows whose number overflowed (not finite) become error values, as in the interpreter
    (rows in `empty` are left to the default)."""
    bad = ~np.isfinite(c.v)
    if empty is not None:
        bad &= ~empty
    return c if not bad.any() else Col(c.t, c.v, unk_or(c, bad), c.ekind, c.base)


def _with_default(c: Col, empty: np.ndarray, default: Optional[Col], n: int) -> Col:
    """Empty aggregates take the default, or are unknown (an error) without one; pending
    unknowns win over the default, as in the interpreter."""
    if not empty.any():
        return c
    if default is None:
        return Col(c.t, c.v, unk_or(c, empty), c.ekind, c.base)
    v = np.where(empty, default.v, c.full(n))
    unk = c.unk
    if default.unk is not None:
        unk = unk_or(unk, empty & np.broadcast_to(default.unk, (n,)))
    return Col(c.t, v, unk, c.ekind, c.base)


# ---------------------------------------------------------------- logic
def _not(c: Col) -> Col:
    return Col("bool", np.logical_not(c.v), c.unk)


def _neg(c: Col) -> Col:
    return Col("num", np.negative(c.v), c.unk)


def _and(a: Col, b: Col, n: int) -> Col:
    false = falsity(a, n) | falsity(b, n)
    unk = unk_or(a, b)
    if unk is not None:
        unk = unk & ~false
    return Col("bool", np.logical_and(a.v, b.v) & ~false, unk)


def _or(a: Col, b: Col, n: int) -> Col:
    true = truth(a, n) | truth(b, n)
    unk = unk_or(a, b)
    if unk is not None:
        unk = unk & ~true
    return Col("bool", true | np.logical_or(a.v, b.v), unk)


def _if(c: Col, then: Col, other: Col, n: int) -> Col:
    if then.t != other.t:
        if {then.t, other.t} != {"num"}:
            raise Unsupported(f"if/else of {then.t} and {other.t}")
    if then.t == "rel" and then.base is not other.base:
        raise Unsupported("if/else choosing between collections")
    cond = np.broadcast_to(np.asarray(c.v, dtype=bool), (n,))
    v = np.where(cond, then.v, other.v)
    unk = unk_or(c)
    if then.unk is not None:
        unk = unk_or(unk, cond & then.unk)
    if other.unk is not None:
        unk = unk_or(unk, ~cond & other.unk)
    return Col(then.t, v, unk, then.ekind or other.ekind, then.base)


def _list_of(items: list[Col], n: int) -> Col:
    """``[a, b]`` of entities: a per-row collection."""
    if not items or any(c.t != "ent" for c in items):
        raise Unsupported("list literals other than of entities")
    k = len(items)
    offsets = np.arange(0, n * k + 1, k, dtype=np.int64)
    stacked = np.stack([np.broadcast_to(c.v, (n,)) for c in items], axis=1).reshape(-1)
    return Col("rel", np.arange(n, dtype=np.int64), unk_or(*items), ekind=items[0].ekind, base=(offsets, stacked))


__all__ = ["Compiler", "Frame", "expand_binders", "expand_source", "scalar", "constant_value", "Unsupported"]
