"""Interval arithmetic for tables and bands: membership, and coverage of a domain."""

from __future__ import annotations

from dataclasses import dataclass

from almarules.dsl.ast import Interval


@dataclass(frozen=True)
class Span:
    """A numeric interval in canonical units; ends at +/-inf are always open."""

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    def contains(self, x: float) -> bool:
        if not self.lo <= x <= self.hi:  # also False for NaN
            return False
        if x == self.lo and not self.lo_closed:
            return False
        if x == self.hi and not self.hi_closed:
            return False
        return True

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))

    def text(self, fmt=lambda v: f"{v:g}") -> str:
        return f"{'[' if self.lo_closed else '('}{fmt(self.lo)}, {fmt(self.hi)}{']' if self.hi_closed else ')'}"


def span_of(interval: Interval, scale_of) -> Span:
    """Canonical span of an AST interval; `scale_of(unit_text|None) -> float`."""
    lo = interval.lo.value if interval.lo.infinite else interval.lo.value * scale_of(interval.lo.unit)
    hi = interval.hi.value if interval.hi.infinite else interval.hi.value * scale_of(interval.hi.unit)
    return Span(lo, hi, interval.lo_closed, interval.hi_closed)


@dataclass(frozen=True)
class CoverageProblem:
    kind: str  # "gap", "overlap", "outside"
    row: int  # index of the row the problem is reported at (-1: the domain's end)
    span: Span


def coverage_problems(domain: Span, rows: list[Span]) -> list[CoverageProblem]:
    """Gaps, overlaps and parts outside `domain` of the union of `rows` (in row order)."""
    problems: list[CoverageProblem] = []
    order = sorted(range(len(rows)), key=lambda i: (rows[i].lo, not rows[i].lo_closed))
    for i in order:
        r = rows[i]
        if r.lo < domain.lo or (r.lo == domain.lo and r.lo_closed and not domain.lo_closed):
            problems.append(CoverageProblem("outside", i, r))
        elif r.hi > domain.hi or (r.hi == domain.hi and r.hi_closed and not domain.hi_closed):
            problems.append(CoverageProblem("outside", i, r))
    # frontier: every point below v is covered; v itself still needs covering iff need
    v, need = domain.lo, domain.lo_closed
    started = False
    for i in order:
        r = rows[i]
        # the part of the row inside the domain (the part outside is reported above)
        lo, lo_closed = (r.lo, r.lo_closed) if r.lo > domain.lo else \
            (domain.lo, domain.lo_closed and (r.lo_closed or r.lo < domain.lo))
        hi, hi_closed = (r.hi, r.hi_closed) if r.hi < domain.hi else \
            (domain.hi, domain.hi_closed and (r.hi_closed or r.hi > domain.hi))
        if Span(lo, hi, lo_closed, hi_closed).empty():
            continue  # wholly outside the domain
        if lo > v or (lo == v and need and not lo_closed):
            problems.append(CoverageProblem("gap", i, Span(v, lo, need, not lo_closed)))
        elif started and (lo < v or (lo == v and not need and lo_closed)):
            end_hi, end_closed = (v, not need) if v < hi else (hi, hi_closed and (v > hi or not need))
            problems.append(CoverageProblem("overlap", i, Span(lo, end_hi, lo_closed, end_closed)))
        started = True
        if hi > v or (hi == v and need and hi_closed):
            v, need = hi, not hi_closed
    if v < domain.hi or (v == domain.hi and need and domain.hi_closed):
        problems.append(CoverageProblem("gap", -1, Span(v, domain.hi, need, domain.hi_closed)))
    return problems


def find_row(rows: list[Span], x: float) -> int:
    """Index of the first row containing x, or -1."""
    for i, r in enumerate(rows):
        if r.contains(x):
            return i
    return -1
