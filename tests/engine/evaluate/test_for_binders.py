"""``for`` variables, compiled and iterated once (`compile_binders`, `binder_rows`) for both an
emit's ``for`` and an aggregate: the rows, their order, what an unknown source or where does."""

from __future__ import annotations

import textwrap
from pathlib import Path

from almarules.engine.evaluate.api import load_program, run
from almarules.engine.evaluate.values import Unknown
from almarules.engine.facts.model import Dataset

RULES = """
collection pair:
    for f in fields where TARGET in f.intents, s in spws where s.nchan > 64:
        emit field = f, spw = s
    for f in fields where CHECK in f.intents:
        for s in spws where s.id == 1:
            emit field = f, spw = s

derive dataset.ordered = count(1 for s in spws, t in spws where t.id > s.id)
derive dataset.wide_pairs = count(1 for f in fields, s in spws where s.nchan > 64)
derive dataset.npairs = count(p for p in pairs)
"""


def program(tmp_path: Path):
    path = tmp_path / "r.rules"
    path.write_text(textwrap.dedent(RULES))
    return load_program([path])


def dataset(nchans: list[int | None]) -> Dataset:
    fields = [{"id": 0, "name": "A", "intents": ["TARGET"]}, {"id": 1, "name": "B", "intents": ["CHECK", "TARGET"]}]
    spws = [{"id": i} if n is None else {"id": i, "nchan": n} for i, n in enumerate(nchans)]
    return Dataset.model_validate({"fields": fields, "spws": spws})


def test_an_emit_for_binds_its_variables_outermost_first_and_filters_by_each_where(tmp_path):
    ev = run(program(tmp_path), dataset([128, 32, 256]))
    # TARGET fields (A, B) x spws with more than 64 channels (0, 2), first binder outermost;
    # then the CHECK field (B) x spw 1, from the nested for
    assert [e.path for e in ev.all_of("pair")] == ["pair[A.0]", "pair[A.2]", "pair[B.0]", "pair[B.2]", "pair[B.1]"]
    assert ev.attr(ev.dataset, "npairs") == 5.0


def test_an_aggregate_over_two_variables_counts_every_row_whose_where_holds(tmp_path):
    ev = run(program(tmp_path), dataset([128, 32, 256, 8]))
    assert ev.attr(ev.dataset, "ordered") == 4 * 3 / 2  # pairs s < t of 4 spws
    assert ev.attr(ev.dataset, "wide_pairs") == 2 * 2  # 2 fields x 2 spws over 64 channels


def test_an_unknown_where_makes_the_collection_and_the_aggregate_wait_for_its_fact(tmp_path):
    ev = run(program(tmp_path), dataset([128, None]))
    pairs = ev.all_of("pair")
    assert isinstance(pairs, Unknown) and pairs.waits == {"spw[1].nchan"} and not pairs.errors
    wide = ev.attr(ev.dataset, "wide_pairs")
    assert isinstance(wide, Unknown) and wide.waits == {"spw[1].nchan"}
    assert ev.attr(ev.dataset, "ordered") == 1.0  # its where does not read nchan
