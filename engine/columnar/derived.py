"""Derived columns of a corpus evaluation: derive rules by priority, scores, table and band lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from almarules.dsl.types import BoolT, CollT, EntityT, EnumT, NumT, StrT
from almarules.engine.columnar.columns import Col, Unsupported, mask_of, truth, unk_or
from almarules.engine.columnar.vcompile import Frame

if TYPE_CHECKING:
    from almarules.engine.columnar.corpus_evaluation import CorpusEvaluation


def derive_column(ev: CorpusEvaluation, kind: str, attr: str) -> Col:
    """`kind.attr` from its rules, highest priority first: each row takes the first rule whose
    condition holds; a row is unknown once a condition before it is unknown, or when none holds."""
    rules = ev.vp.derives[(kind, attr)]
    fr = ev.frame(kind)
    n = fr.n
    if len(rules) == 1 and rules[0].when is None:
        return rules[0].expr(ev, fr)
    remaining = np.ones(n, dtype=bool)
    unk = np.zeros(n, dtype=bool)
    out: Optional[Col] = None
    for rule in rules:
        if rule.when is not None:
            cond = rule.when(ev, fr)
            cu = mask_of(cond.unk, n) & remaining
            applies = truth(cond, n) & remaining
            unk |= cu
            remaining &= ~(cu | applies)
        else:
            applies, remaining = remaining, np.zeros(n, dtype=bool)
        if not applies.any():
            continue
        v = rule.expr(ev, fr)
        unk |= applies & mask_of(v.unk, n)
        out = _merge(out, v, applies, n)
    unk |= remaining
    if out is None:
        return _empty_of(ev.schema.kinds[kind][attr].type, n)
    return Col(out.t, out.v, unk, out.ekind, out.base)


def score_column(ev: CorpusEvaluation, kind: str, attr: str) -> Col:
    """A score: start plus (or minus) every term whose condition holds, then clamped; records in
    ``ev.reasons`` which terms applied (bit i: term i)."""
    score = ev.vp.scores[(kind, attr)]
    fr = ev.frame(kind)
    n = fr.n
    s = score.start(ev, fr)
    value = s.full(n).astype(np.float64)
    unk = mask_of(s.unk, n).copy()
    if score.when is not None:
        w = score.when(ev, fr)
        unk |= ~truth(w, n)
    reasons = np.zeros(n, dtype=np.int64)
    for i, (sign, amount_fn, cond_fn) in enumerate(score.terms):
        cond = cond_fn(ev, fr)
        unk |= mask_of(cond.unk, n)
        on = truth(cond, n)
        if not on.any():
            continue
        amount = amount_fn(ev, fr)
        au = mask_of(amount.unk, n)
        unk |= on & au
        applied = on & ~au
        reasons |= applied.astype(np.int64) << i
        value = np.where(applied, value + sign * np.broadcast_to(amount.v, (n,)), value)
    if score.clamp is not None:
        lo, hi = score.clamp[0](ev, fr), score.clamp[1](ev, fr)
        unk |= mask_of(unk_or(lo, hi), n)
        value = np.minimum(np.maximum(value, lo.v), hi.v)
    ev.reasons[(kind, attr)] = reasons
    return Col("num", value, unk)


def table_lookup(ev: CorpusEvaluation, name: str, x: Col, fr: Frame) -> Col:
    """Table or band `name` at x: the first span holding x picks the row (none: unknown)."""
    t = ev.vp.tables[name]
    n = fr.n
    xv = np.broadcast_to(np.asarray(x.v, dtype=np.float64), (n,))
    row = np.full(n, -1, dtype=np.int64)
    for i, sp in enumerate(t.spans):
        inside = (sp.lo <= xv) & (xv <= sp.hi)
        if not sp.lo_closed:
            inside &= xv != sp.lo
        if not sp.hi_closed:
            inside &= xv != sp.hi
        row[inside & (row < 0)] = i
    unk = unk_or(x, row < 0)
    if t.labels is not None:
        return Col("str", t.labels[np.maximum(row, 0)], unk)
    sub = Frame(n, fr.ds, {t.arg: x})
    out = np.zeros(n)
    for i, fn in enumerate(t.rows):
        sel = row == i
        if not sel.any():
            continue
        c = fn(ev, sub)
        out = np.where(sel, c.v, out)
        if c.unk is not None:
            unk = unk_or(unk, sel & c.unk)
    return Col("num", out, unk)


def overlay_column(c: Col, hit: tuple[np.ndarray, Col], n: int) -> Col:
    """`c` with the values a cascade set ``(mask, values)`` in place where the mask is true."""
    mask, vals = hit
    v = np.where(mask, vals.full(n), c.full(n))
    unk = (mask & mask_of(vals.unk, n)) | (~mask & mask_of(c.unk, n))
    return Col(c.t, v, unk, c.ekind, c.base)


def _merge(out: Optional[Col], v: Col, applies: np.ndarray, n: int) -> Col:
    if out is None:
        return Col(v.t, v.full(n).copy() if v.t != "rel" else v.full(n), None, v.ekind, v.base)
    if v.t == "rel" or out.t == "rel":
        raise Unsupported("several rules giving collections")
    return Col(out.t, np.where(applies, v.full(n), out.v), None, out.ekind or v.ekind, out.base)


def _empty_of(t: Any, n: int) -> Col:
    """An all-unknown column of n rows of type t."""
    unk = np.ones(n, dtype=bool)
    if isinstance(t, NumT):
        return Col("num", np.zeros(n), unk)
    if isinstance(t, BoolT):
        return Col("bool", np.zeros(n, dtype=bool), unk)
    if isinstance(t, (StrT, EnumT)):
        return Col("str", np.zeros(n, dtype=np.int32), unk)
    if isinstance(t, EntityT):
        return Col("ent", np.zeros(n, dtype=np.int64), unk, ekind=t.kind)
    if isinstance(t, CollT) and isinstance(t.elem, EntityT):
        return Col("rel", np.zeros(n, dtype=np.int64), unk, ekind=t.elem.kind,
                   base=(np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int64)))
    raise Unsupported(f"values of type {t}")
