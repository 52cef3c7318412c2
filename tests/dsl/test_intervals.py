"""Property tests of interval membership and coverage (dsl/intervals.py), and of table
lookups through the whole engine (rule text -> load -> check -> evaluate).

Bounds are drawn from a small grid so that rows often share ends; the brute-force
oracle tests every bound and a point inside every stretch between consecutive bounds,
which decides membership everywhere (membership is constant on each open stretch).
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from almarules.dsl.intervals import Span, coverage_problems, find_row

INF = math.inf
SETTINGS = settings(max_examples=200, deadline=None)

# A small grid (with halves and a tiny value) makes shared and touching ends common.
GRID = [-10.0, -3.0, -1.0, -0.5, 0.0, 1e-05, 0.5, 1.0, 2.0, 2.5, 3.0, 7.0, 10.0]
grid = st.sampled_from(GRID)
finite = st.one_of(grid, grid, grid, st.floats(-20, 20, allow_nan=False).map(lambda v: round(v, 2)))
end = st.one_of(finite, finite, finite, st.just(INF), st.just(-INF))


@st.composite
def spans(draw, allow_empty: bool = False) -> Span:
    a, b = draw(end), draw(end)
    lo, hi = min(a, b), max(a, b)
    lo_closed = draw(st.booleans()) and not math.isinf(lo)
    hi_closed = draw(st.booleans()) and not math.isinf(hi)
    span = Span(lo, hi, lo_closed, hi_closed)
    if not allow_empty and span.empty():  # a == b: make it a point (or, at infinity, everything)
        span = Span(-INF, INF, False, False) if math.isinf(lo) else Span(lo, lo, True, True)
    return span


def direct(span: Span, x: float) -> bool:
    """``lo < x < hi`` with the right ends: the definition membership must agree with."""
    above = span.lo < x or (span.lo_closed and x == span.lo)
    below = x < span.hi or (span.hi_closed and x == span.hi)
    return above and below


def probe_points(spans_: list[Span]) -> list[float]:
    """Every finite bound, a point between consecutive bounds, and one beyond each end."""
    bounds = sorted({v for s in spans_ for v in (s.lo, s.hi) if math.isfinite(v)})
    if not bounds:
        return [-1e300, 0.0, 1e300]
    points = list(bounds)
    points += [(a + b) / 2 for a, b in pairwise(bounds)]
    points += [bounds[0] - 1.0, bounds[-1] + 1.0, -1e300, 1e300]
    return points


def points_in(span: Span) -> list[float]:
    """Points of a (non-empty) span: its closed ends and an interior point."""
    out = []
    if span.lo_closed:
        out.append(span.lo)
    if span.hi_closed:
        out.append(span.hi)
    if span.lo < span.hi:
        if math.isinf(span.lo) and math.isinf(span.hi):
            out.append(0.0)
        elif math.isinf(span.lo):
            out.append(span.hi - 1.0)
        elif math.isinf(span.hi):
            out.append(span.lo + 1.0)
        else:
            out.append((span.lo + span.hi) / 2)
    return out


# ---------------------------------------------------------------- membership
@SETTINGS
@given(st.lists(spans(allow_empty=True), max_size=6), st.data())
def test_find_row_agrees_with_direct_comparison(rows, data):
    candidates = probe_points(rows) + [INF, -INF, math.nan]
    for x in candidates + [data.draw(st.floats(allow_nan=True, allow_infinity=True))]:
        expected = next((i for i, r in enumerate(rows) if direct(r, x)), -1)
        assert find_row(rows, x) == expected, (rows, x)
        for r in rows:
            assert r.contains(x) == direct(r, x), (r, x)


@SETTINGS
@given(spans(allow_empty=True))
def test_empty_means_no_point_inside(span):
    pts = probe_points([span]) + [INF, -INF]
    if span.empty():
        assert not any(span.contains(x) for x in pts)
    else:
        assert any(span.contains(x) for x in pts)


# ---------------------------------------------------------------- coverage
def _count(rows: list[Span], x: float) -> int:
    return sum(direct(r, x) for r in rows)


def is_partition(domain: Span, rows: list[Span]) -> bool:
    for x in probe_points([domain] + rows):
        n = _count(rows, x)
        if direct(domain, x) and n != 1:
            return False
        if not direct(domain, x) and n != 0:
            return False
    return True


@SETTINGS
@given(spans(), st.lists(spans(), min_size=1, max_size=6))
def test_no_coverage_problem_exactly_when_rows_partition_the_domain(domain, rows):
    problems = coverage_problems(domain, rows)
    assert (not problems) == is_partition(domain, rows), (domain, rows, problems)


@SETTINGS
@given(spans(), st.lists(spans(), min_size=1, max_size=6))
# regressions: a row wholly beyond the domain made a gap reaching outside the domain ...
@example(Span(0, 10, True, True), [Span(0, 4, True, True), Span(20, 30, True, True)])
@example(Span(0, 10, True, True), [Span(0, 10, True, True), Span(20, 30, True, True)])
# ... and an overlap ending where both rows end included that end when one row excludes it
@example(Span(-INF, -10, False, True), [Span(-INF, -10, False, True), Span(-INF, -10, False, False)])
@example(Span(0, 10, True, True), [Span(0, 5, True, True), Span(1, 5, True, False), Span(5, 10, False, True)])
def test_each_coverage_problem_is_real_and_every_defect_is_reported(domain, rows):
    problems = coverage_problems(domain, rows)
    gaps = [p.span for p in problems if p.kind == "gap"]
    overlaps = [p.span for p in problems if p.kind == "overlap"]
    outside = {p.row for p in problems if p.kind == "outside"}
    for p in problems:
        assert -1 <= p.row < len(rows)
        assert not p.span.empty(), p
    for g in gaps:  # a gap lies inside the domain, and no row covers it
        for x in points_in(g):
            assert direct(domain, x) and _count(rows, x) == 0, (domain, rows, g, x)
    for o in overlaps:  # an overlap lies inside the domain, and two rows cover it
        for x in points_in(o):
            assert direct(domain, x) and _count(rows, x) >= 2, (domain, rows, o, x)
    for i, r in enumerate(rows):  # a row is "outside" exactly when some point of it is
        pokes_out = any(direct(r, x) and not direct(domain, x) for x in probe_points([domain] + rows))
        assert (i in outside) == pokes_out, (domain, r)
    for x in probe_points([domain] + rows):  # every uncovered / doubly covered domain point is reported
        if not direct(domain, x):
            continue
        n = _count(rows, x)
        if n == 0:
            assert any(direct(g, x) for g in gaps), (domain, rows, x, problems)
        if n >= 2:
            assert any(direct(o, x) for o in overlaps), (domain, rows, x, problems)


@st.composite
def partitions(draw) -> tuple[Span, list[Span]]:
    """A domain and rows that partition it exactly (in random row order)."""
    cuts = sorted(set(draw(st.lists(st.sampled_from(GRID), min_size=0, max_size=5))))
    lo = draw(st.sampled_from([-INF] + [v for v in GRID if not cuts or v < cuts[0]]))
    hi = draw(st.sampled_from([INF] + [v for v in GRID if v > (cuts[-1] if cuts else lo)]))
    lo_closed = draw(st.booleans()) and math.isfinite(lo)
    hi_closed = draw(st.booleans()) and math.isfinite(hi)
    rows = []
    prev, prev_closed = lo, lo_closed
    for c in cuts:
        left_has_cut = draw(st.booleans())
        rows.append(Span(prev, c, prev_closed, left_has_cut))
        prev, prev_closed = c, not left_has_cut
    rows.append(Span(prev, hi, prev_closed, hi_closed))
    order = draw(st.permutations(range(len(rows))))
    return Span(lo, hi, lo_closed, hi_closed), [rows[i] for i in order]


@SETTINGS
@given(partitions())
def test_generated_partitions_have_no_problems(part):
    domain, rows = part
    assert is_partition(domain, rows)
    assert coverage_problems(domain, rows) == []


# ---------------------------------------------------------------- through the engine
def _num(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def _iv(s: Span) -> str:
    return f"{'[' if s.lo_closed else '('}{_num(s.lo)}, {_num(s.hi)}{']' if s.hi_closed else ')'}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions(), st.data())
def test_table_lookup_in_rules_finds_the_row_a_direct_comparison_finds(tmp_path_factory, part, data):
    from almarules.engine.evaluate.api import load_program, run
    from almarules.engine.facts.model import Dataset
    from almarules.engine.evaluate.values import Unknown

    domain, rows = part
    finite_points = [x for x in probe_points([domain] + rows) if abs(x) < 1e200]
    x = data.draw(st.sampled_from(finite_points))
    lines = [f"param x = {_num(x)}", "", f"table t(v) over {_iv(domain)}:"]
    lines += [f"    {_iv(r)} -> {i}" for i, r in enumerate(rows)]
    lines += ["", "derive dataset.y = t(x)", ""]
    path = Path(tmp_path_factory.mktemp("table")) / "t.rules"
    path.write_text("\n".join(lines))

    program = load_program([path])  # the rows partition the domain: no findings
    ev = run(program, Dataset())
    y = ev.attr(ev.dataset, "y")
    expected = next((i for i, r in enumerate(rows) if direct(r, x)), None)
    if expected is None:
        assert not direct(domain, x)
        assert isinstance(y, Unknown), (lines, y)
    else:
        assert y == expected, "\n".join(lines)
