"""The vectorised evaluator's parts: its re-exports, and helpers checked against plain Python."""

from __future__ import annotations

import math

import numpy as np

from almarules.dsl.intervals import Span
from almarules.engine.columnar import cascade, corpus_evaluation, vevaluate
from almarules.engine.columnar.columns import STRINGS, Col, Unsupported
from almarules.engine.columnar.derived import table_lookup
from almarules.engine.columnar.emits import value_identity
from almarules.engine.columnar.keep import text_rank
from almarules.engine.columnar.membership import member
from almarules.engine.columnar.vcompile import Frame
from almarules.engine.columnar.vnodes import VTable

def test_vevaluate_still_exports_what_callers_import():
    # engine/plan/corpus.py, engine/plan/diff.py, benchmarks and tests import these from vevaluate
    assert vevaluate.CorpusEvaluation is corpus_evaluation.CorpusEvaluation
    assert vevaluate.CascadeResult is cascade.CascadeResult
    assert vevaluate.Unsupported is Unsupported
    assert {"VProgram", "CorpusEvaluation", "CascadeResult", "Unsupported"} <= set(vevaluate.__all__)


def test_text_rank_orders_codes_by_their_text():
    for word in ["zeta", "Alpha", "beta", "alpha", "Zeta", "10", "9"]:
        STRINGS.code(word)
    rank = text_rank()
    by_text = sorted(STRINGS.texts)
    assert [int(rank[c]) for c in range(len(STRINGS.texts))] == [by_text.index(t) for t in STRINGS.texts]


def random_lists(rng: np.random.Generator, n: int) -> tuple[list[tuple[int, ...]], tuple[np.ndarray, np.ndarray]]:
    """n lists of 0-3 small integers, as Python tuples and as CSR (offsets, items)."""
    lists = [tuple(int(x) for x in rng.integers(0, 3, size=rng.integers(0, 4))) for _ in range(n)]
    offsets = np.r_[0, np.cumsum([len(t) for t in lists])].astype(np.int64)
    items = np.array([x for t in lists for x in t], dtype=np.int64)
    return lists, (offsets, items)


def test_value_identity_of_lists_is_equal_exactly_when_the_lists_are():
    rng = np.random.default_rng(5)
    lists, base = random_lists(rng, 200)
    owner = rng.permutation(200).astype(np.int64)  # rows read the lists in another order
    ids = value_identity(Col("rel", owner, ekind="spw", base=base), 200)
    for i in range(200):
        for j in range(200):
            assert (ids[i] == ids[j]) == (lists[owner[i]] == lists[owner[j]]), (i, j)


def test_value_identity_of_numbers_is_equal_exactly_when_the_numbers_are():
    values = np.array([1.0, 2.5, 1.0, math.inf, -3.0, 2.5, 1e300, -math.inf])
    ids = value_identity(Col("num", values), len(values))
    assert [[a == b for b in ids] for a in ids] == [[a == b for b in values] for a in values]


def test_member_of_per_row_lists_is_pythons_in():
    rng = np.random.default_rng(6)
    lists, base = random_lists(rng, 100)
    x = rng.integers(0, 4, size=100)
    got = member(None, Col("num", x.astype(np.float64)), Col("nums", np.arange(100), base=base), 100)
    assert got.tolist() == [int(v) in t for v, t in zip(x.tolist(), lists, strict=True)]
    got = member(None, Col("ent", x), Col("rel", np.arange(100), ekind="spw", base=base), 100)
    assert got.tolist() == [int(v) in t for v, t in zip(x.tolist(), lists, strict=True)]


class _Tables:
    """The part of a corpus evaluation `table_lookup` reads: ``ev.vp.tables``."""

    def __init__(self, tables: dict[str, VTable]):
        self.vp = self
        self.tables = tables


def test_bands_pick_the_first_span_holding_x_and_respect_open_ends():
    spans = [Span(0.0, 1.0, True, False), Span(1.0, 2.0, True, True), Span(0.0, 10.0, True, True),
             Span(2.0, math.inf, False, False)]
    labels = np.array([STRINGS.code(t) for t in ["a", "b", "c", "d"]], dtype=np.int32)
    ev = _Tables({"band": VTable(spans, [], labels, "x")})
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 11.0, math.nan, math.inf])
    expected = [None, "a", "a", "b", "b", "c", "d", None, None]  # written out from the spans above
    got = table_lookup(ev, "band", Col("num", x), Frame(len(x), np.zeros(len(x), dtype=np.int64), {}))
    unk = got.unk if got.unk is not None else np.zeros(len(x), dtype=bool)
    assert [None if u else STRINGS.texts[c] for c, u in zip(got.v.tolist(), unk.tolist(), strict=True)] == expected


def test_tables_take_each_rows_formula_where_x_falls_in_its_span():
    spans = [Span(0.0, 10.0, True, True), Span(10.0, 100.0, False, True)]
    rows = [lambda ev, fr: Col("num", np.float64(1.0)),
            lambda ev, fr: Col("num", fr.var("x").v / 10, fr.var("x").v > 50)]  # unknown above 50
    ev = _Tables({"steps": VTable(spans, rows, None, "x")})
    x = np.array([5.0, 10.0, 20.0, 60.0, 200.0])
    got = table_lookup(ev, "steps", Col("num", x), Frame(len(x), np.zeros(len(x), dtype=np.int64), {}))
    assert got.v.tolist()[:3] == [1.0, 1.0, 2.0]
    assert got.unk.tolist() == [False, False, False, True, True]


def test_value_identity_follows_the_key_text_for_signed_zeros_and_nans():
    """The interpreter keys an emitted value by its text: -0.0 and 0.0 are both "0", every NaN is
    "nan"; the vectorised keys made two entities of 0 and -0."""
    from almarules.dsl.units import format_number

    payload_nan = np.array([0x7FF8000000000001], dtype=np.int64).view(np.float64)[0]
    values = np.array([0.0, -0.0, math.nan, payload_nan, 1.0])
    ids = value_identity(Col("num", values), len(values))
    texts = [format_number(float(v)) for v in values]
    assert [[a == b for b in ids] for a in ids] == [[a == b for b in texts] for a in texts]
