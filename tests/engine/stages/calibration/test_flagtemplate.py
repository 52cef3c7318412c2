"""Flag templates: parsing with located errors, selections against numpy truth computed from the MS
columns and against row sets CASA 6.7's flagdata flagged on the same MS, apply counts, FLAG_CMD."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_ms import INTERVAL, make_tiny_ms

from almarules.engine.stages.calibration import flagtemplate as ft

NROW = 24  # 12 cross-correlation rows (3 baselines x 4 times), then 12 auto-correlation rows


def _add_autocorrelations(path: Path) -> Path:
    """The tiny MS plus one auto-correlation row per antenna and time (rows 12..23, time-major)."""
    from casacore.tables import table

    with table(str(path), readonly=False, ack=False) as t:
        n0 = t.nrows()
        times, fields = t.getcol("TIME")[::3], t.getcol("FIELD_ID")[::3]
        n = 3 * len(times)
        t.addrows(n)
        t.putcol("TIME", np.repeat(times, 3), n0, n)
        for col in ("INTERVAL", "EXPOSURE"):
            t.putcol(col, np.full(n, INTERVAL), n0, n)
        ant = np.tile(np.arange(3, dtype=np.int32), len(times))
        t.putcol("ANTENNA1", ant, n0, n)
        t.putcol("ANTENNA2", ant, n0, n)
        t.putcol("FIELD_ID", np.repeat(fields, 3).astype(np.int32), n0, n)
        t.putcol("STATE_ID", np.repeat(fields, 3).astype(np.int32), n0, n)
        t.putcol("SCAN_NUMBER", np.repeat(np.arange(1, len(times) + 1, dtype=np.int32), 3), n0, n)
        t.putcol("DATA_DESC_ID", np.zeros(n, np.int32), n0, n)
        t.putcol("UVW", np.zeros((n, 3)), n0, n)
        t.putcol("DATA", np.ones((n, 8, 2), np.complex64), n0, n)
        t.putcol("FLAG", np.zeros((n, 8, 2), bool), n0, n)
        t.putcol("WEIGHT", np.ones((n, 2), np.float32), n0, n)
        t.putcol("SIGMA", np.ones((n, 2), np.float32), n0, n)
    return path


@pytest.fixture(scope="module")
def auto_ms(tmp_path_factory) -> Path:
    return _add_autocorrelations(make_tiny_ms(tmp_path_factory.mktemp("flagtemplate") / "auto.ms"))


@pytest.fixture
def ms(auto_ms, tmp_path) -> Path:
    dst = tmp_path / "work.ms"
    shutil.copytree(auto_ms, dst)
    return dst


def _columns(path: Path) -> dict[str, np.ndarray]:
    from casacore.tables import table

    with table(str(path), ack=False) as t:
        return {c: t.getcol(c) for c in ("ANTENNA1", "ANTENNA2", "TIME", "INTERVAL", "FIELD_ID", "SCAN_NUMBER",
                                         "STATE_ID", "FLAG", "FLAG_ROW")}


def _flag_after(path: Path, text: str) -> np.ndarray:
    ft.apply(path, ft.parse(text))
    return _columns(path)["FLAG"]


def _rows(flag: np.ndarray) -> list[int]:
    return np.flatnonzero(flag.any(axis=(1, 2))).tolist()


# MS day is 2017/04/27 (TIME 5e9 s + (k + 0.5) * 6.048 s: 08:53:23.024, :29.072, :35.120, :41.168).
# Row sets measured with CASA 6.7 flagdata(mode='manual', flagbackup=False, **selection) on this
# same MS (built the same way in a CASA-free process, then copied per selection).
CASA_ROWS = {
    "antenna='DA41'": [0, 1, 3, 4, 6, 7, 9, 10],
    "antenna='DA41&DA42'": [0, 3, 6, 9],
    "antenna='DA41,DA42&'": [0, 3, 6, 9],
    "antenna='DA41&&'": [12, 15, 18, 21],
    "antenna='DA41&&&'": [12, 15, 18, 21],
    "antenna='DA41&&*'": [0, 1, 3, 4, 6, 7, 9, 10, 12, 15, 18, 21],
    "antenna='!DA41'": [2, 5, 8, 11] + list(range(12, 24)),
    "antenna='!DA41&&&'": [r for r in range(24) if r not in (12, 15, 18, 21)],
    "antenna='!DA41&DA42'": [r for r in range(24) if r not in (0, 3, 6, 9)],
    "antenna='DA41&&&;DA42'": [0, 2, 3, 5, 6, 8, 9, 11, 12, 15, 18, 21],
    "antenna='DA41;!DA42'": [1, 4, 7, 10],
    "antenna='0~1'": list(range(12)),
    "antenna='DA4*'": list(range(12)),
    "antenna='1&2'": [2, 5, 8, 11],
    "timerange='2017/04/27/08:53:25~2017/04/27/08:53:31'": [3, 4, 5, 15, 16, 17],
    "timerange='08:53:30~08:53:36'": [6, 7, 8, 18, 19, 20],
    "timerange='08:53:30'": [3, 4, 5, 15, 16, 17],
    "timerange='2017/04/27/08:53:30'": [3, 4, 5, 15, 16, 17],
    "timerange='<08:53:30'": [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17],
    "timerange='>2017/04/27/08:53:36'": [9, 10, 11, 21, 22, 23],
    "timerange='08:53:20~08:53:24,08:53:40~08:53:45'": [0, 1, 2, 9, 10, 11, 12, 13, 14, 21, 22, 23],
    "field='TARGET_1'": [3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 16, 17, 18, 19, 20, 21, 22, 23],
    "field='0'": [0, 1, 2, 12, 13, 14],
    "field='J1733*'": [0, 1, 2, 12, 13, 14],
    "scan='1,3~4'": [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 18, 19, 20, 21, 22, 23],
    "scan='>2'": [6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23],
    "scan='<3'": [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17],
    "intent='*PHASE*'": [0, 1, 2, 12, 13, 14],
    "intent='OBSERVE_TARGET#ON_SOURCE'": [3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 16, 17, 18, 19, 20, 21, 22, 23],
}

DAY = 57870 * 86400.0  # MJD 57870 = 2017-04-27


def _hms(h: int, m: int, s: float) -> float:
    return DAY + h * 3600 + m * 60 + s


# The same selections from the MS columns with numpy (independent of CASA and of the code).
NUMPY_ROWS = {
    "antenna='DA41'": lambda c: ((c["ANTENNA1"] == 0) | (c["ANTENNA2"] == 0)) & (c["ANTENNA1"] != c["ANTENNA2"]),
    "antenna='DA41&DA42'": lambda c: (c["ANTENNA1"] == 0) & (c["ANTENNA2"] == 1),
    "antenna='DA41&&&'": lambda c: (c["ANTENNA1"] == 0) & (c["ANTENNA2"] == 0),
    "antenna='DA41&&*'": lambda c: (c["ANTENNA1"] == 0) | (c["ANTENNA2"] == 0),
    "antenna='!DA41'": lambda c: ~(((c["ANTENNA1"] == 0) | (c["ANTENNA2"] == 0)) & (c["ANTENNA1"] != c["ANTENNA2"])),
    "timerange='08:53:30~08:53:36'": lambda c: (c["TIME"] >= _hms(8, 53, 30)) & (c["TIME"] <= _hms(8, 53, 36)),
    "timerange='08:53:30'": lambda c: np.abs(c["TIME"] - _hms(8, 53, 30)) < c["INTERVAL"] / 2,
    "field='TARGET_1'": lambda c: c["FIELD_ID"] == 1,
    "scan='1,3~4'": lambda c: np.isin(c["SCAN_NUMBER"], [1, 3, 4]),
    "intent='*PHASE*'": lambda c: c["STATE_ID"] == 0,
}


@pytest.mark.parametrize("text", sorted(CASA_ROWS))
def test_rows_match_casa_flagdata(ms, text):
    flag = _flag_after(ms, text)
    assert _rows(flag) == CASA_ROWS[text]
    assert flag[CASA_ROWS[text]].all()  # whole rows: no channel or correlation selection


@pytest.mark.parametrize("text", sorted(NUMPY_ROWS))
def test_rows_match_numpy(ms, text):
    expected = np.flatnonzero(NUMPY_ROWS[text](_columns(ms))).tolist()
    assert expected  # each case selects something
    assert _rows(_flag_after(ms, text)) == expected


def test_channels_and_correlations(ms):
    flag = _flag_after(ms, "spw='0:0~2;5' correlation='YY' antenna='DA42&&*' scan='2~3'")
    c = _columns(ms)
    rows = ((c["ANTENNA1"] == 1) | (c["ANTENNA2"] == 1)) & np.isin(c["SCAN_NUMBER"], [2, 3])
    expected = rows[:, None, None] & np.isin(np.arange(8), [0, 1, 2, 5])[None, :, None] & (np.arange(2) == 1)[None, None, :]
    np.testing.assert_array_equal(flag, expected)
    assert not c["FLAG_ROW"].any()  # no row is whole


def test_select_yields_rows_and_masks(ms):
    sels = list(ft.select(ms, ft.parse("spw='*:7' field='0'\ncorrelation='xx' antenna='DA43&&&'")))
    assert len(sels) == 2
    rows, chan, corr = sels[0]
    assert rows.tolist() == [0, 1, 2, 12, 13, 14] and chan.tolist() == [False] * 7 + [True] and corr.all()
    rows, chan, corr = sels[1]
    assert rows.tolist() == [14, 17, 20, 23] and chan.all() and corr.tolist() == [True, False]


def test_no_rl_in_linear_data_selects_nothing(ms):
    assert _rows(_flag_after(ms, "correlation='RR'")) == []


def test_apply_counts_new_and_already_flagged(tmp_path):
    path = _add_autocorrelations(make_tiny_ms(tmp_path / "f.ms", flag_fraction=0.25))  # channels 0, 1 of the 12 cross rows
    rep = ft.apply(path, ft.parse("spw='0:0~3' antenna='DA41'  # 8 rows\nantenna='DA41&DA42' reason='bad'\n"))
    first, second = rep.commands
    assert (first.rows_selected, first.visibilities_selected) == (8, 8 * 4 * 2)
    assert (first.already_flagged, first.newly_flagged, first.rows_newly_flagged) == (8 * 2 * 2, 8 * 2 * 2, 8)
    # rows 0, 3, 6, 9: channels 0-3 flagged by now, 4-7 new
    assert (second.rows_selected, second.already_flagged, second.newly_flagged) == (4, 4 * 4 * 2, 4 * 4 * 2)
    assert second.reason == "bad" and second.where.endswith(":2") and first.where.endswith(":1")
    assert (rep.visibilities, rep.flagged_before) == (24 * 16, 12 * 4)
    c = _columns(path)
    assert rep.flagged_after == int(c["FLAG"].sum()) == 12 * 4 + 8 * 2 * 2 + 4 * 4 * 2
    assert np.flatnonzero(c["FLAG_ROW"]).tolist() == [0, 3, 6, 9] and rep.rows_flag_row_set == 4


def test_flag_row_counts_as_flagged(ms):
    from casacore.tables import table

    with table(str(ms), readonly=False, ack=False) as t:
        t.putcell("FLAG_ROW", 0, True)
    rep = ft.apply(ms, ft.parse("antenna='DA41&DA42'"))
    assert (rep.commands[0].already_flagged, rep.commands[0].newly_flagged) == (16, 3 * 16)
    assert rep.flagged_before == 16 and _columns(ms)["FLAG"][0].all()


def test_ngc5921_matches_casa(shared_ms, tmp_path):
    """Real VLA data, TIME in TAI, antenna names '1'..'28' (names win over ids). Flagged counts
    measured with CASA 6.7 flagdata(mode='manual') on copies of ngc5921.ms."""
    from casacore.tables import table

    for text, nflag, nrows, rowsum in [
            ("antenna='5&&*' timerange='1995/04/13/09:30:00~09:40:00' spw='0:10~20' correlation='LL'", 2079, 189, 1443106),
            ("antenna='!5' field='1' spw='0:0~4;58~62'", 98560, 4928, 64028776)]:
        dst = tmp_path / "n.ms"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(shared_ms("ngc5921.ms"), dst)
        rep = ft.apply(dst, ft.parse(text))
        with table(str(dst), ack=False) as t:
            rows = np.flatnonzero(t.getcol("FLAG").any(axis=(1, 2)))
        assert (rep.commands[0].newly_flagged, len(rows), int(rows.sum())) == (nflag, nrows, rowsum)


# ------------------------------------------------------------------ parsing and errors


def test_parse_template():
    text = ("# ALMA flag template\n\n"
            "mode='manual' antenna='DA41' spw='0:0~3;60~63,1' reason='QA0:edge'\n"
            "  field=\"TARGET_1\"   scan=1,3~5  # trailing comment\n")
    a, b = ft.parse(text, "x.flagtemplate.txt")
    assert (a.mode, a.antenna, a.spw, a.reason, a.line, a.columns["spw"]) == ("manual", "DA41", "0:0~3;60~63,1", "QA0:edge", 3, 35)
    assert (b.field, b.scan, b.line, b.where) == ("TARGET_1", "1,3~5", 4, "x.flagtemplate.txt:4")


@pytest.mark.parametrize("text, message", [
    ("antenna='DA41' spw='0:0~3", "t.txt:2:20: unterminated quoted value: expected a closing '"),
    ("antenna='DA41' bogus='1'", "t.txt:2:16: unknown key 'bogus' (expected one of mode, antenna, spw"),
    ("antenna 'DA41'", "t.txt:2:1: expected key='value'"),
    ("mode='clip' antenna='DA41'", "t.txt:2:7: mode: mode 'clip' is not supported (expected 'manual')"),
    ("mode='shadow'", "t.txt:2:7: mode: mode 'shadow' is not supported"),
    ("scan='1' scan='2'", "t.txt:2:10: scan given twice"),
    ("antenna='DA41'spw='0'", "t.txt:2:15: expected a blank between key='value' pairs"),
])
def test_parse_errors(text, message):
    with pytest.raises(ft.FlagTemplateError) as err:
        ft.parse("# header\n" + text, "t.txt")
    assert str(err.value).startswith(message)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("text, message", [
    ("scan='2'  antenna='DA99'", "t.txt:1:20: antenna: no antenna 'DA99' in the MS"),
    ("antenna='DA41,!DA42'", "t.txt:1:10: antenna: '!' negates a whole expression"),
    ("spw='0:3~9'", "t.txt:1:6: spw: channels '3~9' out of range: spw 0 has 8 channels (0~7)"),
    ("spw='0:1~6^2'", "t.txt:1:6: spw: channel steps ('^') are not supported"),
    ("spw='3'", "t.txt:1:6: spw: spw id '3' out of range"),
    ("field='NOPE'", "t.txt:1:8: field: no field 'NOPE' in the MS"),
    ("timerange='2017/13/01/00:00:00~01:00:00'", "t.txt:1:12: timerange: bad date"),
    ("timerange='yesterday'", "t.txt:1:12: timerange: expected a time 'YYYY/MM/DD/hh:mm:ss' or 'hh:mm:ss'"),
    ("timerange='09:00:00~08:00:00'", "t.txt:1:12: timerange: the range '09:00:00~08:00:00' ends before it starts"),
    ("correlation='XQ'", "t.txt:1:14: correlation: unknown correlation 'XQ'"),
    ("intent='*BANDPASS*'", "t.txt:1:9: intent: no STATE OBS_MODE of the MS matches '*BANDPASS*'"),
    ("scan='two'", "t.txt:1:7: scan: expected scan numbers"),
])
def test_resolution_errors_are_located_and_write_nothing(ms, text, message):
    with pytest.raises(ft.FlagTemplateError) as err:
        ft.apply(ms, ft.parse("antenna='DA41'\n" + text, "t.txt")[1:])
    assert str(err.value).startswith(message.replace("t.txt:1:", "t.txt:2:"))
    assert not _columns(ms)["FLAG"].any()


# ------------------------------------------------------------------ FLAG_CMD


def _write_flag_cmd(path: Path, rows: list[tuple[str, str, bool, str]]) -> None:
    from casacore.tables import table

    with table(f"{path}/FLAG_CMD", readonly=False, ack=False) as t:
        t.addrows(len(rows))
        for i, (kind, command, applied, reason) in enumerate(rows):
            t.putcell("TYPE", i, kind)
            t.putcell("COMMAND", i, command)
            t.putcell("APPLIED", i, applied)
            t.putcell("REASON", i, reason)


def test_flag_cmd_round_trip(ms):
    assert ft.online_flags(ms) == []  # default_ms makes an empty FLAG_CMD
    _write_flag_cmd(ms, [
        ("FLAG", "antenna='DA42&&*' timerange='2017/04/27/08:53:26.1~2017/04/27/08:53:32.1'", False, "Mount_is_off_source"),
        ("FLAG", "antenna='DA43&&*'", True, "already applied"),
        ("UNFLAG", "antenna='DA41&&*'", False, "not a flag"),
        ("FLAG", "antenna='DV99&&*' spw='\"BB_1#SQLD\",\"ALMA_RB_06#BB_1#SW-01#FULL_RES\"'", False, "ACD"),
    ])
    cmds = ft.online_flags(ms)
    assert [(c.antenna, c.reason, c.line) for c in cmds] == [("DA42&&*", "Mount_is_off_source", 1), ("DV99&&*", "ACD", 4)]
    assert cmds[0].timerange == "2017/04/27/08:53:26.1~2017/04/27/08:53:32.1" and cmds[0].lenient
    rep = ft.apply(ms, cmds)
    c = _columns(ms)
    expected = ((c["ANTENNA1"] == 1) | (c["ANTENNA2"] == 1)) & (c["TIME"] >= _hms(8, 53, 26.1)) & (c["TIME"] <= _hms(8, 53, 32.1))
    assert _rows(c["FLAG"]) == np.flatnonzero(expected).tolist() == [3, 5, 16]
    # an antenna the MS lacks is a note (CASA's flagcmd skips it), not an error, and flags nothing
    assert rep.commands[1].newly_flagged == 0
    assert any("no antenna 'DV99'" in n for n in rep.commands[1].notes)
    assert any("no spw '\"BB_1#SQLD\"'" in n for n in rep.commands[1].notes)


def test_absent_flag_cmd(ms):
    shutil.rmtree(ms / "FLAG_CMD")
    assert ft.online_flags(ms) == []


def test_alma_online_flags_match_casa(shared_ms, tmp_path):
    """X5707 (real ALMA, split to 1 spw and 2 antennas) carries 3633 unapplied FLAG_CMD rows; CASA
    6.7 flagcmd(inpmode='table', action='apply') skipped those naming absent antennas/spws and
    flagged 0 visibilities of this MS."""
    dst = tmp_path / "x.ms"
    shutil.copytree(shared_ms("X5707_1spw_1scan_10chan_1time_1bl_noatm.ms"), dst)
    cmds = ft.online_flags(dst)
    assert len(cmds) == 3633
    assert (cmds[0].antenna, cmds[0].timerange) == ("DA50&&*", "2018/03/16/05:30:15.026~2018/03/16/05:30:15.239")
    rep = ft.apply(dst, cmds)
    assert rep.flagged_after - rep.flagged_before == 0
