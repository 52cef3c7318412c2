"""Interval checks of tables and bands: units of the bounds, open infinite ends, empty rows, and
exact coverage of the declared domain (no gaps, no overlaps, nothing outside)."""

from __future__ import annotations

import math
from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.check_state import CheckerState
from almarules.dsl.intervals import Span, coverage_problems, span_of
from almarules.dsl.units import DIMENSIONLESS, Dim, UnitError, parse_unit


def check_spans(ck: CheckerState, decl: A.Table | A.Bands, rows: list[A.Interval], what: str) -> None:
    """Check the intervals of a table or bands (`what`: "table" or "bands"); records the
    dimension of its domain in ``ck.table_dims``."""
    dom_dim = _domain_dim(ck, decl.domain)
    if dom_dim is None:
        return
    ck.table_dims[decl.name] = dom_dim
    if not _bounds_ok(ck, decl, rows, dom_dim, what):
        return
    scale = lambda unit: 1.0 if unit is None else parse_unit(unit)[0]  # noqa: E731
    dom = span_of(decl.domain, scale)
    spans = [span_of(iv, scale) for iv in rows]
    if dom.empty():
        ck.error(decl.domain.loc, "bad-interval", f"the domain {decl.domain} is empty")
        return
    bad = False
    for iv, sp in zip(rows, spans, strict=True):
        if sp.empty():
            ck.error(iv.loc, "bad-interval", f"interval {iv} is empty")
            bad = True
    if bad:
        return
    _coverage(ck, decl, rows, dom, spans, what)


def _domain_dim(ck: CheckerState, iv: A.Interval) -> Optional[Dim]:
    """The dimension of the domain's first finite bound (plain numbers if none); None after
    reporting an unknown unit."""
    dims = []
    for b in (iv.lo, iv.hi):
        if b.infinite:
            continue
        if b.unit is None:
            dims.append(DIMENSIONLESS)
            continue
        try:
            dims.append(parse_unit(b.unit)[1])
        except UnitError:
            ck.error(b.loc, "unknown-unit", f"unknown unit {b.unit!r}")
            return None
    return dims[0] if dims else DIMENSIONLESS


def _bounds_ok(ck: CheckerState, decl: A.Table | A.Bands, rows: list[A.Interval], dom_dim: Dim,
               what: str) -> bool:
    """Every bound of the domain and the rows: an infinite end open, a finite one in the domain's
    dimension (a bare 0 fits any). Reports each problem; True if there is none."""
    ok = True
    for iv in [decl.domain] + rows:
        for b, closed in ((iv.lo, iv.lo_closed), (iv.hi, iv.hi_closed)):
            if b.infinite and closed:
                ck.error(b.loc, "bad-interval", "an infinite end must be open: write '(-inf' or 'inf)'")
                ok = False
            elif not b.infinite:
                try:
                    d = DIMENSIONLESS if b.unit is None else parse_unit(b.unit)[1]
                except UnitError:
                    ck.error(b.loc, "unknown-unit", f"unknown unit {b.unit!r}")
                    ok = False
                    continue
                if d != dom_dim and not (b.value == 0 and b.unit is None):
                    ck.error(b.loc, "unit-mismatch",
                             f"bound {b.value:g}{' ' + b.unit if b.unit else ''} does not match the "
                             f"{what}'s domain, which is in {dom_dim.display_unit() or 'plain numbers'}")
                    ok = False
    return ok


def _span_text(span: Span, unit: Optional[str]) -> str:
    """A gap or overlap as written in the rule's unit: ``(20, 30] GHz``, or one point ``20 GHz``."""
    fmt = (lambda v: ("inf" if v > 0 else "-inf") if math.isinf(v) else
           f"{v / parse_unit(unit)[0]:g}" if unit else f"{v:g}")
    if span.lo == span.hi:  # a single point
        return fmt(span.lo) + (f" {unit}" if unit else "")
    return span.text(fmt) + (f" {unit}" if unit else "")


def _coverage(ck: CheckerState, decl: A.Table | A.Bands, rows: list[A.Interval], dom: Span,
              spans: list[Span], what: str) -> None:
    unit = None
    for iv in [decl.domain] + rows:
        unit = unit or iv.lo.unit or iv.hi.unit
    for prob in coverage_problems(dom, spans):
        loc = rows[prob.row].loc if prob.row >= 0 else decl.domain.loc
        text = _span_text(prob.span, unit)
        if prob.kind == "gap":
            ck.error(loc, "coverage-gap", f"{what} {decl.name!r} leaves {text} uncovered")
        elif prob.kind == "overlap":
            ck.error(loc, "coverage-overlap", f"{what} {decl.name!r}: this row overlaps an earlier row on {text}")
        else:
            ck.error(loc, "coverage-outside",
                     f"{what} {decl.name!r}: row {rows[prob.row]} reaches outside the domain {decl.domain}")
