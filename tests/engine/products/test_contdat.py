"""cont.dat: parsing, the exact layout written back, the error catalogue with positions, the
channel selection by hand, and the round trip on random files."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from almarules.engine.products.contdat import (FRAMES, ContDat, ContDatError, ContRange, SpwContinuum, channel_mask,
                                      format_contdat, lookup, parse_contdat, read_contdat, write_contdat)

EXAMPLE = """\
Field: NGC253

SpectralWindow: 25
Flags: ALLCONT
214.4892469235~216.2235771905GHz LSRK
214.0~214.2GHz LSRK

SpectralWindow: 27
NONE

"""


# ---------------------------------------------------------------- parsing and writing
def test_parse_example():
    c = parse_contdat(EXAMPLE)
    assert list(c.fields) == ["NGC253"]
    s25 = lookup(c, "NGC253", 25)
    assert s25 == SpwContinuum(spw=25, flags=["ALLCONT"], kind="ranges", ranges=[
        ContRange(low_hz=214489246923.5, high_hz=216223577190.5, frame="LSRK"),
        ContRange(low_hz=214.0e9, high_hz=214.2e9, frame="LSRK"),
    ])
    assert lookup(c, "NGC253", 27) == SpwContinuum(spw=27, kind="none")
    assert lookup(c, "NGC253", 29) is None
    assert lookup(c, "M83", 25) is None


def test_format_example_exactly():
    assert format_contdat(parse_contdat(EXAMPLE)) == EXAMPLE
    # without the final blank line too
    assert format_contdat(parse_contdat(EXAMPLE.rstrip("\n") + "\n")) == EXAMPLE


def test_messy_file_is_a_fixed_point_after_one_round():
    messy = ("# written by hand\r\n"
             "  Field :  J1924-2914 + friends  \r\n"
             "SpectralWindow:16\r\n"
             "\tFlags: LOWBANDWIDTH, ALLCONT\r\n"
             "  214000.5 ~ 214100MHz   SOURCE  \r\n"
             "   # a comment inside a block\n"
             "214.3~214.4 GHz\n"
             "SpectralWindow: 18\n"
             "Flags: ALLCONT\n"
             "ALL\n"
             "\n\n"
             "Field: 3C 279\n"
             "SpectralWindow: 0\n"
             "123456789~123456790Hz TOPO\n"
             "SpectralWindow: 1\n"
             "5~6kHz BARY\n")
    c = parse_contdat(messy)
    once = format_contdat(c)
    assert once == textwrap.dedent("""\
        Field: J1924-2914 + friends

        SpectralWindow: 16
        Flags: LOWBANDWIDTH ALLCONT
        214.0005~214.1GHz SOURCE
        214.3~214.4GHz

        SpectralWindow: 18
        Flags: ALLCONT
        ALL

        Field: 3C 279

        SpectralWindow: 0
        0.123456789~0.12345679GHz TOPO

        SpectralWindow: 1
        0.000005~0.000006GHz BARY

        """)
    assert parse_contdat(once) == c
    assert format_contdat(parse_contdat(once)) == once


def test_old_file_without_frame_and_all():
    c = parse_contdat("Field: X\nSpectralWindow: 3\n100~101GHz\n100.5~102GHz\nSpectralWindow: 5\nALL\n")
    assert [r.frame for r in lookup(c, "X", 3).ranges] == [None, None]
    assert lookup(c, "X", 5).kind == "all"
    assert parse_contdat("") == ContDat() and format_contdat(ContDat()) == ""
    assert parse_contdat("# only a comment\n\n   \n") == ContDat()


@pytest.mark.parametrize("text, hz", [
    ("1.5~2.5GHz", (1.5e9, 2.5e9)),
    ("1500~2500MHz", (1.5e9, 2.5e9)),
    ("1500000~2500000kHz", (1.5e9, 2.5e9)),
    ("1500000000~2500000000Hz", (1.5e9, 2.5e9)),
    ("0.1~0.3GHz", (1e8, 3e8)),  # decimal, exactly: not 0.1 * 1e9 in floats
    ("115.2712018~115.2712018GHz", (115271201800.0, 115271201800.0)),  # zero width
    (".5~1.GHz", (5e8, 1e9)),
    ("1e2~2.5E2MHz", (1e8, 2.5e8)),
])
def test_units(text, hz):
    r = lookup(parse_contdat(f"Field: F\nSpectralWindow: 0\n{text}\n"), "F", 0).ranges[0]
    assert (r.low_hz, r.high_hz) == hz
    assert r.frame is None


@pytest.mark.parametrize("frame", FRAMES)
def test_frames(frame):
    r = lookup(parse_contdat(f"Field: F\nSpectralWindow: 0\n1~2GHz {frame}\n"), "F", 0).ranges[0]
    assert r.frame == frame


def test_read_and_write(tmp_path):
    path = tmp_path / "cont.dat"
    c = parse_contdat(EXAMPLE)
    write_contdat(path, c)
    assert path.read_text() == EXAMPLE
    assert read_contdat(path) == c
    assert [p.name for p in tmp_path.iterdir()] == ["cont.dat"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "cont.dat"
    bad.write_text("Field: F\nSpectralWindow: 1\n1~2GHz LSRK\n2~1GHz LSRK\n")
    with pytest.raises(ContDatError, match=rf"^{bad}:4:1: low frequency 2 > high frequency 1$"):
        read_contdat(bad)
    with pytest.raises(ContDatError, match=rf"^{tmp_path / 'missing.dat'}: cannot read"):
        read_contdat(tmp_path / "missing.dat")
    bad.write_bytes(b"Field: F\nSpectralWindow: 1\n1~2GHz \xff\n")
    with pytest.raises(ContDatError, match=rf"^{bad}:3:8: not UTF-8 text$"):
        read_contdat(bad)


def test_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "cont.dat"
    path.write_text("old\n")
    import almarules.engine.products.contdat as mod

    monkeypatch.setattr(mod, "format_contdat", lambda c: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_contdat(path, ContDat())
    assert path.read_text() == "old\n"


# ---------------------------------------------------------------- the error catalogue
HEAD = "Field: F\nSpectralWindow: 1\n"  # lines 1-2


@pytest.mark.parametrize("text, where, what", [
    ("214~215GHz LSRK\n", "1:1", "range before any 'Field:' line"),
    ("  Field: F\n\n  214~215GHz\n", "3:3", "range before any 'SpectralWindow:' line in field 'F'"),
    ("Flags: ALLCONT\n", "1:1", "'Flags:' before any 'Field:' line"),
    ("Field: F\nNONE\n", "2:1", "NONE before any 'SpectralWindow:' line in field 'F'"),
    ("SpectralWindow: 3\n", "1:1", "'SpectralWindow:' before any 'Field:' line"),
    (HEAD + "215~214GHz LSRK\n", "3:1", "low frequency 215 > high frequency 214"),
    (HEAD + "  215.0 ~ 214.9GHz\n", "3:3", "low frequency 215.0 > high frequency 214.9"),
    (HEAD + "214~215GHZ LSRK\n", "3:8", "unknown unit 'GHZ' (expected GHz, MHz, kHz, Hz)"),
    (HEAD + "214~215 THz\n", "3:9", "unknown unit 'THz' (expected GHz, MHz, kHz, Hz)"),
    (HEAD + "214~215GHzLSRK\n", "3:8", "unknown unit 'GHzLSRK' (expected GHz, MHz, kHz, Hz)"),
    (HEAD + "214~215\n", "3:8", "expected a unit (GHz, MHz, kHz, Hz) after the high frequency"),
    (HEAD + "214~215GHz lsrk\n", "3:12", "unknown frame 'lsrk' (expected LSRK, TOPO, BARY, SOURCE)"),
    (HEAD + "214~215GHz LSRD\n", "3:12", "unknown frame 'LSRD' (expected LSRK, TOPO, BARY, SOURCE)"),
    (HEAD + "214~215GHz LSRK x\n", "3:17", "unexpected 'x' after the frame"),
    (HEAD + "214-215GHz LSRK\n", "3:4", "expected '~' after the low frequency"),
    (HEAD + "214~ GHz\n", "3:6", "expected a number after '~'"),
    (HEAD + "214~-215GHz\n", "3:5", "expected a number after '~'"),
    (HEAD + "1~1e999999GHz\n", "3:3", "frequency 1e999999GHz is out of range"),
    (HEAD + "1~2GHz\nSpectralWindow:  1\n", "4:18",
     "duplicate SpectralWindow 1 in field 'F' (first at line 2)"),
    ("Field: F\nSpectralWindow: 2.5\n", "2:17", "spw id must be a non-negative integer, not '2.5'"),
    ("Field: F\nSpectralWindow: -1\n", "2:17", "spw id must be a non-negative integer, not '-1'"),
    ("Field: F\nSpectralWindow: spw25\n", "2:17", "spw id must be a non-negative integer, not 'spw25'"),
    ("Field: F\nSpectralWindow: 25 LSRK\n", "2:20", "unexpected 'LSRK' after the spw id"),
    ("Field: F\nSpectralWindow:\n", "2:16", "missing spw id after 'SpectralWindow:'"),
    ("Field:   \n", "1:7", "missing field name after 'Field:'"),
    ("Field: F\nSpectralWindow: 1\nNONE\nField:  F\n", "4:9", "duplicate Field 'F' (first at line 1)"),
    (HEAD + "Flags:\n", "3:7", "missing flags after 'Flags:'"),
    (HEAD + "Flags: ALLCONT allcont\n", "3:16", "bad flag 'allcont' (upper-case letters, digits and _)"),
    (HEAD + "Flags: ALLCONT, ALLCONT\n", "3:17", "duplicate flag 'ALLCONT'"),
    (HEAD + "NONE\nNONE\n", "4:1", "NONE in SpectralWindow 1, which is already NONE"),
    (HEAD + "ALL\nNONE\n", "4:1", "NONE in SpectralWindow 1, which is already ALL"),
    (HEAD + "1~2GHz\n ALL\n", "4:2", "ALL in SpectralWindow 1, which already has ranges"),
    (HEAD + "NONE\n1~2GHz\n", "4:1", "range in SpectralWindow 1, which is NONE"),
    (HEAD + "\nField: G\n", "2:1",
     "SpectralWindow 1 has no ranges: write NONE (no continuum) or ALL (all channels)"),
    (HEAD + "Flags: ALLCONT\n", "2:1",
     "SpectralWindow 1 has no ranges: write NONE (no continuum) or ALL (all channels)"),
    (HEAD + "none\n", "3:1",
     "expected 'Field:', 'SpectralWindow:', 'Flags:', NONE, ALL or a frequency range, not 'none'"),
    (HEAD + "NONE LSRK\n", "3:1",
     "expected 'Field:', 'SpectralWindow:', 'Flags:', NONE, ALL or a frequency range, not 'NONE LSRK'"),
    (HEAD + "\u0662~3GHz\n", "3:1",  # digits are ASCII
     "expected 'Field:', 'SpectralWindow:', 'Flags:', NONE, ALL or a frequency range, not '\u0662~3GHz'"),
    ("field: F\n", "1:1",
     "expected 'Field:', 'SpectralWindow:', 'Flags:', NONE, ALL or a frequency range, not 'field: F'"),
])
def test_error_catalogue(text, where, what):
    with pytest.raises(ContDatError) as info:
        parse_contdat(text, source="my/cont.dat")
    assert str(info.value) == f"my/cont.dat:{where}: {what}"
    line, column = map(int, where.split(":"))
    assert (info.value.source, info.value.line, info.value.column) == ("my/cont.dat", line, column)


def test_default_source_name():
    with pytest.raises(ContDatError, match=r"^cont\.dat:1:1: "):
        parse_contdat("1~2GHz\n")


@pytest.mark.parametrize("make", [
    lambda: ContRange(low_hz=2.0, high_hz=1.0),
    lambda: ContRange(low_hz=-1.0, high_hz=1.0),
    lambda: ContRange(low_hz=1.0, high_hz=float("inf")),
    lambda: ContRange(low_hz=1.0, high_hz=2.0, frame="LSRD"),
    lambda: SpwContinuum(spw=1),
    lambda: SpwContinuum(spw=-1, kind="none"),
    lambda: SpwContinuum(spw=1, kind="none", ranges=[ContRange(low_hz=1.0, high_hz=2.0)]),
    lambda: SpwContinuum(spw=1, kind="all", flags=["ALLCONT", "ALLCONT"]),
    lambda: SpwContinuum(spw=1, kind="all", flags=["all cont"]),
    lambda: ContDat(fields={" F": {}}),
    lambda: ContDat(fields={"a\nb": {}}),
    lambda: ContDat(fields={"F": {1: SpwContinuum(spw=2, kind="all")}}),
])
def test_models_refuse_what_the_file_cannot_hold(make):
    with pytest.raises(ValidationError):
        make()


# ---------------------------------------------------------------- channel selection
def sel(*ranges: tuple[float, float], kind: str = "ranges") -> SpwContinuum:
    return SpwContinuum(spw=0, kind=kind, ranges=[ContRange(low_hz=lo, high_hz=hi) for lo, hi in ranges])


def test_channel_mask_increasing_edges_inclusive():
    freqs = 100.0 + 10.0 * np.arange(10)  # 100, 110, ..., 190 Hz
    m = channel_mask(freqs, 10.0, sel((110.0, 130.0), (170.0, 175.0)))
    #                      100    110   120   130   140    150    160    170   180    190
    assert m.tolist() == [False, True, True, True, False, False, False, True, False, False]
    assert m.dtype == bool and m.shape == (10,)


def test_channel_mask_decreasing():
    freqs = 190.0 - 10.0 * np.arange(10)  # 190, 180, ..., 100 Hz (lower sideband)
    m = channel_mask(freqs, -10.0, sel((110.0, 130.0), (170.0, 175.0)))
    #                      190    180    170   160    150    140    130   120   110   100
    assert m.tolist() == [False, False, True, False, False, False, True, True, True, False]


def test_channel_mask_edge_tolerance_is_a_thousandth_of_a_channel():
    width = 1000.0
    freqs = np.array([9_998.9, 9_999.5, 10_000.0, 11_000.0, 11_000.9, 11_001.5])
    m = channel_mask(freqs, width, sel((10_000.0, 11_000.0)))
    assert m.tolist() == [False, True, True, True, True, False]
    # per-channel widths, sign ignored; zero width: exact edges
    m = channel_mask(freqs, np.array([-1000.0, -1000.0, 0.0, 0.0, 0.0, 0.0]), sel((10_000.0, 11_000.0)))
    assert m.tolist() == [False, True, True, True, False, False]


def test_channel_mask_real_edge_rounded_in_the_file():
    # channel centres at 0.04 Hz precision; the file holds them rounded to 0.1 Hz (10 decimals in GHz)
    freqs = 214_489_246_923.46 + 488_281.25 * np.arange(8)
    text = "Field: F\nSpectralWindow: 0\n214.4892469235~214.4892469235GHz\n"
    s = lookup(parse_contdat(text), "F", 0)
    assert channel_mask(freqs, 488_281.25, s).tolist() == [True] + [False] * 7


def test_channel_mask_all_and_none():
    freqs = np.linspace(1e11, 1.01e11, 5)
    assert channel_mask(freqs, 1e6, sel(kind="all")).tolist() == [True] * 5
    assert channel_mask(freqs, 1e6, sel(kind="none")).tolist() == [False] * 5
    assert channel_mask(np.array([]), 1e6, sel((1.0, 2.0))).tolist() == []


def test_channel_mask_refuses_bad_shapes():
    with pytest.raises(ValueError, match="one-dimensional"):
        channel_mask(np.zeros((2, 2)), 1.0, sel((1.0, 2.0)))
    with pytest.raises(ValueError, match="scalar or of shape"):
        channel_mask(np.zeros(3), np.ones(2), sel((1.0, 2.0)))


# ---------------------------------------------------------------- random round trips
hz = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
ranges = st.builds(lambda a, b, f: ContRange(low_hz=min(a, b), high_hz=max(a, b), frame=f),
                   hz, hz, st.sampled_from([None, *FRAMES]))
flags = st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,11}", fullmatch=True), unique=True, max_size=3)


@st.composite
def spw_sel(draw, spw: int) -> SpwContinuum:
    kind = draw(st.sampled_from(["ranges", "none", "all"]))
    rs = draw(st.lists(ranges, min_size=1, max_size=4)) if kind == "ranges" else []
    return SpwContinuum(spw=spw, kind=kind, ranges=rs, flags=draw(flags))


names = st.text(min_size=1, max_size=20).filter(lambda s: s == s.strip() and "\n" not in s and "\r" not in s)


@st.composite
def contdats(draw) -> ContDat:
    fields = {}
    for name in draw(st.lists(names, unique=True, max_size=4)):
        ids = draw(st.lists(st.integers(0, 10**9), unique=True, max_size=4))
        fields[name] = {i: draw(spw_sel(i)) for i in ids}
    return ContDat(fields=fields)


@settings(max_examples=300, deadline=None)
@given(contdats())
def test_round_trip_property(c):
    text = format_contdat(c)
    back = parse_contdat(text)
    assert back == c
    assert list(back.fields) == list(c.fields)  # order kept
    assert all(list(back.fields[f]) == list(c.fields[f]) for f in c.fields)
    assert format_contdat(back) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False),
                          st.sampled_from(["GHz", "MHz", "kHz", "Hz"])), min_size=1, max_size=5))
def test_written_files_are_a_fixed_point(values):
    lines = "".join(f"{d}~{d}{unit}\n" for d, unit in values)
    once = format_contdat(parse_contdat("Field: F\nSpectralWindow: 7\n" + lines))
    assert format_contdat(parse_contdat(once)) == once
