"""The metadata readers of engine.ms.metadata: intents of rows, fields grouped into mosaics, and
intents declared per field (by name or FIELD id) on the real NGC 5921 MS, which has none."""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.engine.ms.facts import read_ms
from almarules.engine.ms.metadata import MainIndex, RowIntents, field_entries

# NGC 5921: FIELD id of each scan 1-7, measured with CASA 6.7 (casatools msmetadata.fieldsforscan);
# all seven scans are in spw 0
NGC5921_SCAN_FIELDS = [0, 1, 2, 1, 1, 2, 1]
NGC5921_FIELDS = ["1331+30500002_0", "1445+09900002_0", "N5921_2"]


def _index(fld: list[int], state: list[int]) -> MainIndex:
    n = len(fld)
    zeros = np.zeros(n)
    ints = np.zeros(n, dtype=int)
    return MainIndex(time=zeros, interval=zeros, a1=ints, a2=ints + 1, fld=np.array(fld), ddid=ints,
                     scan=ints + 1, state=np.array(state), time_ref="UTC")


def test_row_intents_from_state_are_the_union_of_the_rows_states():
    idx = _index([0, 0, 1, 1], [0, 1, -1, 2])
    intents = RowIntents(idx, [{"TARGET"}, {"PHASE"}, {"BANDPASS", "AMPLITUDE"}], True, {})
    assert intents.of_rows(np.array([True, True, False, False])) == ["PHASE", "TARGET"]
    assert intents.of_rows(np.array([False, False, True, False])) == [], "rows without a state: none"
    assert intents.of_rows(np.ones(4, bool)) == ["AMPLITUDE", "BANDPASS", "PHASE", "TARGET"]


def test_declared_row_intents_are_unknown_when_one_field_is_undeclared():
    intents = RowIntents(_index([0, 0, 1, 1], [-1] * 4), [], False, {0: {"PHASE"}})
    assert intents.of_rows(np.array([True, True, False, False])) == ["PHASE"]
    assert intents.of_rows(np.ones(4, bool)) is None


def test_a_mosaic_across_ra_zero_is_one_field_with_small_offsets():
    # FIELD rows 0 and 1: one mosaic "M" either side of RA = 0; row 2 another source
    phase_dir = np.array([[[2 * math.pi - 0.001, 0.5]], [[0.001, 0.5001]], [[1.0, -0.2]]])
    idx = _index([0, 1, 2, 1], [-1] * 4)
    fields = field_entries(["M", "M", "C"], phase_dir, idx, {0: {"TARGET"}, 1: {"PHASE"}, 2: {"CHECK"}})
    assert list(fields) == ["M", "C"]
    m = fields["M"]
    assert m["id"] == 0 and m["ra"] == pytest.approx(360.0 - math.degrees(0.001))
    assert m["dec"] == pytest.approx(math.degrees(0.5)) and m["intents"] == ["PHASE", "TARGET"]
    assert m["pointings"][0] == {"ra_offset": 0.0, "dec_offset": 0.0}
    # 0.002 rad east at dec 0.5 rad, 1e-4 rad north, in arcsec
    assert m["pointings"][1]["ra_offset"] == pytest.approx(0.002 * 180 / math.pi * 3600 * math.cos(0.5))
    assert m["pointings"][1]["dec_offset"] == pytest.approx(1e-4 * 180 / math.pi * 3600)
    assert "_centre" not in m
    fields = field_entries(["M", "M", "C"], phase_dir, idx, {0: {"TARGET"}, 2: {"CHECK"}})
    assert fields["M"]["intents"] is None and fields["C"]["intents"] == ["CHECK"]


def test_ngc5921_intents_declared_by_field_id(shared_ms):
    d = read_ms([shared_ms("ngc5921.ms")], intents={"0": ["AMPLITUDE", "BANDPASS"], "1": ["PHASE"], "2": ["TARGET"]})
    by_field = [["AMPLITUDE", "BANDPASS"], ["PHASE"], ["TARGET"]]
    assert [(f.name, f.intents) for f in d.fields] == list(zip(NGC5921_FIELDS, by_field, strict=True))
    assert [s.intents for s in d.scans] == [by_field[f] for f in NGC5921_SCAN_FIELDS]
    assert d.spws[0].intents == ["AMPLITUDE", "BANDPASS", "PHASE", "TARGET"]


def test_ngc5921_partly_declared_intents_leave_the_rest_unknown(shared_ms):
    # the name wins over the id; field 1 (1445+099) is not declared
    d = read_ms([shared_ms("ngc5921.ms")], intents={"N5921_2": ["TARGET"], "2": ["CHECK"],
                                                    "1331+30500002_0": ["AMPLITUDE"]})
    by_field = [["AMPLITUDE"], None, ["TARGET"]]
    assert [f.intents for f in d.fields] == by_field
    assert [s.intents for s in d.scans] == [by_field[f] for f in NGC5921_SCAN_FIELDS]
    assert d.spws[0].intents is None, "spw 0 holds the undeclared field"
