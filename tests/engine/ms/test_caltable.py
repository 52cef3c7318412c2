"""CASA calibration tables written and read by `engine.ms.caltable` (python-casacore only).

The layout constants (column set, keywords, G-table channel frequency of NGC 5921) were measured
on tables CASA 6.7.0-31 wrote: `gaincal`/`bandpass` on ngc5921 (refant '15', G with
spw='0:6~56'), dumped with casatools `tb.getdesc`, `getkeywords`, `info`. That CASA reads, lists
and applies these tables is checked by benchmarks/compare_applycal.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from almarules.engine.ms import caltable as ct
from almarules.kernels.gaincal import GainTable

from tiny_ms import N_ANT, N_CHAN, make_tiny_ms

# measured: CASA 6.7.0-31 gaincal/bandpass tables (see the module doc)
CASA_MAIN_COLUMNS = {"TIME", "FIELD_ID", "SPECTRAL_WINDOW_ID", "ANTENNA1", "ANTENNA2", "INTERVAL", "SCAN_NUMBER",
                     "OBSERVATION_ID", "CPARAM", "PARAMERR", "FLAG", "SNR", "WEIGHT"}
CASA_KEYWORDS = {"ParType", "MSName", "VisCal", "PolBasis", "CASA_Version", "ANTENNA", "FIELD", "SPECTRAL_WINDOW",
                 "OBSERVATION", "HISTORY"}
CASA_VALUE_TYPES = {"TIME": "double", "INTERVAL": "double", "FIELD_ID": "int", "CPARAM": "complex",
                    "PARAMERR": "float", "FLAG": "boolean", "SNR": "float", "WEIGHT": "float"}
# CASA 6.7.0-31 gaincal spw='0:6~56' on ngc5921: its G table's SPECTRAL_WINDOW row 0
NGC5921_G_CHAN_FREQ = 1413421909.7060006  # Hz
NGC5921_G_CHAN_WIDTH = 1245117.1875  # Hz (51 x 24414.0625)
TINY_FREQ0, TINY_DF = 230e9, 15.625e6  # tests/tiny_ms.py: channel k at 230 GHz + k x 15.625 MHz


@pytest.fixture
def tiny(tmp_path) -> Path:
    return make_tiny_ms(tmp_path / "tiny.ms")


def _gain_table(nt: int = 3, nant: int = N_ANT, npol: int = 2, seed: int = 0) -> GainTable:
    rng = np.random.default_rng(seed)
    g = rng.normal(1, 0.2, (nt, nant, npol)) * np.exp(1j * rng.uniform(-np.pi, np.pi, (nt, nant, npol)))
    g[1, 2, 0] = np.nan  # one missing solution
    return GainTable(times=5.0e9 + 6.048 * np.arange(nt) + 3.0, gains=g, flags=~np.isfinite(g),
                     converged=np.ones((nt, npol), bool), n_used=rng.integers(1, 50, (nt, nant, npol)),
                     refant=np.full((nt, npol), 1))


def _bandpass(nant: int = N_ANT, nchan: int = N_CHAN, npol: int = 2) -> np.ndarray:
    """b[a, c, p] = (1 + a) + 0.01 c + 1j (0.1 p + 0.001 c): every cell distinct and recognisable."""
    a, c, p = np.meshgrid(np.arange(nant), np.arange(nchan), np.arange(npol), indexing="ij")
    return (1.0 + a + 0.01 * c) + 1j * (0.1 * p + 0.001 * c)


def _table(path: Path, readonly: bool = True):
    from casacore.tables import table

    return table(str(path), ack=False, readonly=readonly)


# ---------------------------------------------------------------- converters
def test_from_gain_table_rows_follow_time_then_antenna():
    gt = _gain_table()
    sol = ct.from_gain_table(gt, field_id=1, spw_id=0, interval=6.048, scans=np.array([2, 2, 3]))
    assert (sol.nrow, sol.nchan, sol.npol) == (3 * N_ANT, 1, 2)
    row = 2 * N_ANT + 1  # time 2, antenna 1
    assert sol.antenna1[row] == 1 and sol.time[row] == gt.times[2] and sol.scan[row] == 3
    np.testing.assert_array_equal(sol.cparam[row, 0], gt.gains[2, 1])
    np.testing.assert_array_equal(sol.antenna2, 1)
    np.testing.assert_array_equal(sol.interval, 6.048)
    np.testing.assert_array_equal(sol.field_id, 1)


def test_nan_gains_become_flagged_unit_solutions():
    sol = ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.0)
    row = 1 * N_ANT + 2
    assert sol.flag[row, 0, 0] and not sol.flag[row, 0, 1]
    assert sol.cparam[row, 0, 0] == 1 + 0j and sol.snr[row, 0, 0] == 0 and sol.paramerr[row, 0, 0] == 0
    assert sol.flag.sum() == 1


def test_t_jones_needs_one_polarisation():
    with pytest.raises(ct.CalTableError, match="T Jones needs 1"):
        ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.0, vis_cal="T Jones")
    sol = ct.from_gain_table(_gain_table(npol=1), field_id=0, spw_id=0, interval=6.0, vis_cal="T Jones")
    assert sol.npol == 1 and sol.vis_cal == "T Jones"


def test_concat_refuses_different_channel_counts():
    b8 = ct.from_bandpass(_bandpass(), None, time=1.0, interval=1.0, field_id=0, spw_id=0, refant=0)
    b4 = ct.from_bandpass(_bandpass(nchan=4), None, time=1.0, interval=1.0, field_id=0, spw_id=1, refant=0)
    with pytest.raises(ct.CalTableError, match="part 1 has"):
        ct.concat([b8, b4])
    both = ct.concat([b8, b8])
    assert both.nrow == 2 * N_ANT


# ---------------------------------------------------------------- writing and reading back
def test_gain_table_round_trip(tiny, tmp_path):
    g0 = ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.048, scans=1)
    g1 = ct.from_gain_table(_gain_table(seed=1), field_id=1, spw_id=0, interval=6.048, scans=2)
    sol = ct.concat([g0, g1])
    path = ct.write_caltable(tmp_path / "x.G", sol, tiny)
    back = ct.read_caltable(path)
    assert back.vis_cal == "G Jones"
    for name in ("time", "interval", "field_id", "spw_id", "antenna1", "antenna2", "scan", "obs_id", "flag"):
        np.testing.assert_array_equal(getattr(back, name), getattr(sol, name), err_msg=name)
    # CPARAM is single precision in CASA's layout
    np.testing.assert_array_equal(back.cparam, sol.cparam.astype(np.complex64))
    np.testing.assert_array_equal(back.weight, sol.weight.astype(np.float32))


def test_bandpass_cells_hold_channel_and_polarisation_where_casa_looks(tiny, tmp_path):
    bp = _bandpass()
    bp[2, 5, 1] = np.nan
    sol = ct.from_bandpass(bp, None, time=5.0e9, interval=24.0, field_id=0, spw_id=0, refant=1, scan=1)
    path = ct.write_caltable(tmp_path / "x.B", sol, tiny)
    with _table(path) as t:
        # python-casacore shows a cell as (nchan, npol), i.e. CASA's [npol, nchan]
        assert t.getcolshapestring("CPARAM")[0] == f"[{N_CHAN}, 2]"
        for ant, chan, pol in ((0, 0, 0), (1, 7, 1), (2, 3, 0)):
            row = int(np.flatnonzero(t.getcol("ANTENNA1") == ant)[0])
            cell = t.getcell("CPARAM", row)
            assert cell[chan, pol] == pytest.approx((1.0 + ant + 0.01 * chan) + 1j * (0.1 * pol + 0.001 * chan),
                                                    rel=1e-7)
        flags = t.getcol("FLAG")
        assert flags.sum() == 1 and flags[2, 5, 1]
        assert t.getcell("CPARAM", 2)[5, 1] == 1 + 0j
        np.testing.assert_array_equal(t.getcol("ANTENNA2"), 1)


def test_layout_matches_casa(tiny, tmp_path):
    sol = ct.from_gain_table(_gain_table(), field_id=1, spw_id=0, interval=6.048)
    path = ct.write_caltable(tmp_path / "x.G", sol, tiny)
    with _table(path) as t:
        assert set(t.colnames()) == CASA_MAIN_COLUMNS
        assert t.info()["type"] == "Calibration" and t.info()["subType"] == "G Jones"
        kw = t.getkeywords()
        assert set(kw) == CASA_KEYWORDS
        assert (kw["ParType"], kw["VisCal"], kw["PolBasis"], kw["MSName"]) == ("Complex", "G Jones", "unknown",
                                                                                 "tiny.ms")
        assert t.getcolkeywords("TIME") == {"QuantumUnits": ["s"], "MEASINFO": {"type": "epoch", "Ref": "UTC"}}
        assert t.getcolkeywords("INTERVAL") == {"QuantumUnits": ["s"]}
        for col, vt in CASA_VALUE_TYPES.items():
            assert t.getcoldesc(col)["valueType"] == vt, col
        assert t.getcoldesc("CPARAM")["ndim"] == -1  # any shape, as CASA's
        assert [d["TYPE"] for d in t.getdminfo().values()] == ["StandardStMan"]
    expected_rows = {"ANTENNA": N_ANT, "FIELD": 2, "SPECTRAL_WINDOW": 1, "OBSERVATION": 1, "HISTORY": 0}
    for name, nrow in expected_rows.items():
        with _table(path / name) as s:
            assert s.nrows() == nrow, name
            assert set(ct.SUBTABLE_COLUMNS[name]) <= set(s.colnames()), name
    with _table(path / "ANTENNA") as s:
        assert list(s.getcol("NAME")) == ["DA41", "DA42", "DA43"]
    with _table(path / "FIELD") as s:
        assert list(s.getcol("NAME")) == ["J1733-1304", "TARGET_1"]


def test_single_channel_spectral_window(tiny, tmp_path):
    sol = ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.0)
    whole = ct.write_caltable(tmp_path / "a.G", sol, tiny)
    part = ct.write_caltable(tmp_path / "b.G", sol, tiny, solved_channels={0: (0, 3)})
    with _table(whole / "SPECTRAL_WINDOW") as s:
        assert s.getcell("NUM_CHAN", 0) == 1 and not s.getcell("FLAG_ROW", 0)
        assert s.getcell("CHAN_FREQ", 0)[0] == pytest.approx(TINY_FREQ0 + 3.5 * TINY_DF, rel=1e-15)
        assert s.getcell("CHAN_WIDTH", 0)[0] == pytest.approx(N_CHAN * TINY_DF)
    with _table(part / "SPECTRAL_WINDOW") as s:
        assert s.getcell("CHAN_FREQ", 0)[0] == pytest.approx(TINY_FREQ0 + 1.5 * TINY_DF, rel=1e-15)
        assert s.getcell("CHAN_WIDTH", 0)[0] == pytest.approx(4 * TINY_DF)
    with pytest.raises(ct.CalTableError, match="channels 0..7, got 3~9"):
        ct.write_caltable(tmp_path / "c.G", sol, tiny, solved_channels={0: (3, 9)})


def test_bandpass_spectral_window_is_the_ms_channels(tiny, tmp_path):
    sol = ct.from_bandpass(_bandpass(), None, time=5.0e9, interval=24.0, field_id=0, spw_id=0, refant=0)
    path = ct.write_caltable(tmp_path / "x.B", sol, tiny)
    with _table(path / "SPECTRAL_WINDOW") as s:
        np.testing.assert_array_equal(s.getcell("CHAN_FREQ", 0), TINY_FREQ0 + TINY_DF * np.arange(N_CHAN))
        assert s.getcell("NUM_CHAN", 0) == N_CHAN
    wrong = ct.from_bandpass(_bandpass(nchan=4), None, time=5.0e9, interval=24.0, field_id=0, spw_id=0, refant=0)
    with pytest.raises(ct.CalTableError, match="the MS has 8 channels, the solutions 4"):
        ct.write_caltable(tmp_path / "y.B", wrong, tiny)


def test_indices_outside_the_ms_are_refused(tiny, tmp_path):
    sol = ct.from_gain_table(_gain_table(nant=5), field_id=0, spw_id=0, interval=6.0)
    with pytest.raises(ct.CalTableError, match=r"antenna1 spans 0..4, but .*ANTENNA has 3 rows"):
        ct.write_caltable(tmp_path / "x.G", sol, tiny)
    assert not (tmp_path / "x.G").exists()


# ---------------------------------------------------------------- atomicity
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_failure_mid_write_leaves_nothing(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    sol = ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.0)
    calls = []

    def boom(path, sub):
        calls.append(sub.name)
        if sub.name == "SPECTRAL_WINDOW":  # main table and two subtables already on disk
            raise OSError("disk full")
        return real(path, sub)

    real = ct._make_subtable
    monkeypatch.setattr(ct, "_make_subtable", boom)
    with pytest.raises(OSError, match="disk full"):
        ct.write_caltable(out / "x.G", sol, tiny)
    assert calls == ["ANTENNA", "FIELD", "SPECTRAL_WINDOW"]
    assert not (out / "x.G").exists()
    assert list(out.iterdir()) == []


def test_overwrite_replaces_only_a_finished_table(tiny, tmp_path, monkeypatch):
    path = tmp_path / "x.G"
    first = ct.from_gain_table(_gain_table(seed=1), field_id=0, spw_id=0, interval=6.0)
    ct.write_caltable(path, first, tiny)
    with pytest.raises(ct.CalTableError, match="already exists"):
        ct.write_caltable(path, first, tiny)
    second = ct.from_gain_table(_gain_table(seed=2), field_id=0, spw_id=0, interval=6.0)

    def boom(path, sub):
        raise OSError("interrupted")

    with monkeypatch.context() as m:
        m.setattr(ct, "_make_subtable", boom)
        with pytest.raises(OSError):
            ct.write_caltable(path, second, tiny, overwrite=True)
    np.testing.assert_array_equal(ct.read_caltable(path).cparam, first.cparam.astype(np.complex64))
    ct.write_caltable(path, second, tiny, overwrite=True)
    np.testing.assert_array_equal(ct.read_caltable(path).cparam, second.cparam.astype(np.complex64))
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------- reading tables that are not ours
def test_reads_a_table_with_empty_weight_cells_as_casa_writes(tiny, tmp_path):
    from casacore.tables import makearrcoldesc, maketabdesc

    sol = ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.0)
    path = ct.write_caltable(tmp_path / "x.G", sol, tiny)
    with _table(path, readonly=False) as t:  # CASA 6.7 leaves every WEIGHT cell empty
        t.removecols("WEIGHT")
        t.addcols(maketabdesc(makearrcoldesc("WEIGHT", 0.0, valuetype="float")))
        t.putcol("INTERVAL", np.zeros(t.nrows()))  # and writes INTERVAL 0
    back = ct.read_caltable(path)
    assert np.isnan(back.weight).all() and back.weight.shape == sol.cparam.shape
    np.testing.assert_array_equal(back.interval, 0.0)


def test_spws_of_different_channel_counts_read_one_at_a_time(tiny, tmp_path):
    sol = ct.from_bandpass(_bandpass(), None, time=5.0e9, interval=24.0, field_id=0, spw_id=0, refant=0)
    path = ct.write_caltable(tmp_path / "x.B", sol, tiny)
    with _table(path, readonly=False) as t:  # a second spw of 4 channels, as CASA writes multi-spw B tables
        t.addrows(1)
        r = t.nrows() - 1
        for col, value in (("CPARAM", np.full((4, 2), 2 + 0j)), ("PARAMERR", np.zeros((4, 2))),
                           ("FLAG", np.zeros((4, 2), bool)), ("SNR", np.zeros((4, 2))), ("WEIGHT", np.ones((4, 2)))):
            t.putcell(col, r, value)
        t.putcell("SPECTRAL_WINDOW_ID", r, 1)
    with pytest.raises(ct.CalTableError, match=r"column CPARAM has cells of different shapes .*spw="):
        ct.read_caltable(path)
    assert ct.read_caltable(path, spw=0).nrow == N_ANT
    one = ct.read_caltable(path, spw=1)
    assert one.cparam.shape == (1, 4, 2) and one.cparam[0, 3, 1] == 2 + 0j


def test_bad_tables_give_errors_naming_them(tiny, tmp_path):
    missing = tmp_path / "nothing.G"
    with pytest.raises(ct.CalTableError, match=f"{missing}: no such calibration table"):
        ct.read_caltable(missing)
    with pytest.raises(ct.CalTableError, match=r"tiny.ms: not a calibration table"):
        ct.read_caltable(tiny)
    sol = ct.from_gain_table(_gain_table(), field_id=0, spw_id=0, interval=6.0)
    path = ct.write_caltable(tmp_path / "x.G", sol, tiny)
    with _table(path, readonly=False) as t:
        t.removecols("CPARAM")
    with pytest.raises(ct.CalTableError, match=r"x.G: missing column CPARAM"):
        ct.read_caltable(path)
    path2 = ct.write_caltable(tmp_path / "y.G", sol, tiny)
    with _table(path2, readonly=False) as t:
        t.putkeyword("ParType", "Float")
    with pytest.raises(ct.CalTableError, match=r"y.G: keyword ParType is 'Float'"):
        ct.read_caltable(path2)
    with pytest.raises(ct.CalTableError, match="the directory .*nodir does not exist"):
        ct.write_caltable(tmp_path / "nodir" / "x.G", sol, tiny)
    with pytest.raises(ct.CalTableError, match="nothing.ms: not a Measurement Set"):
        ct.write_caltable(tmp_path / "w.G", sol, tmp_path / "nothing.ms")
    (tmp_path / "z.G").mkdir()
    with pytest.raises(ValueError, match="z.G: not a casacore table"):
        ct.read_caltable(tmp_path / "z.G")


# ---------------------------------------------------------------- the real NGC 5921
def test_ngc5921_solutions_round_trip(ngc5921_calibrated, tmp_path):
    """vlacal's real solutions written for ngc5921 and read back; the G table's single channel sits
    where CASA 6.7's gaincal puts it for spw '0:6~56'."""
    from casacore.tables import table
    from vlacal import GAIN_CHANNELS, load_solutions

    ms = ngc5921_calibrated
    sol = load_solutions(ms)
    b = ct.from_bandpass(sol["bandpass"], None, time=4.30448e9, interval=600.0, field_id=0, spw_id=0, refant=14)
    g = ct.concat([ct.from_gain_table(sol["flux"], field_id=0, spw_id=0, interval=30.0),
                   ct.from_gain_table(sol["phase"], field_id=1, spw_id=0, interval=30.0)])
    chans = {0: (GAIN_CHANNELS.start, GAIN_CHANNELS.stop - 1)}
    pb = ct.write_caltable(tmp_path / "n.B", b, ms)
    pg = ct.write_caltable(tmp_path / "n.G", g, ms, solved_channels=chans)
    for path, s in ((pb, b), (pg, g)):
        back = ct.read_caltable(path)
        np.testing.assert_array_equal(back.cparam, s.cparam.astype(np.complex64))
        np.testing.assert_array_equal(back.flag, s.flag)
        np.testing.assert_array_equal(back.time, s.time)
    nant, nchan = sol["bandpass"].shape[:2]
    assert (b.nrow, b.nchan) == (nant, nchan) == (28, 63)
    assert g.flag[g.antenna1 == 22].all()  # antenna '23' (VLA:OUT) has no data
    with table(str(pg / "SPECTRAL_WINDOW"), ack=False) as s:
        assert s.getcell("CHAN_FREQ", 0)[0] == pytest.approx(NGC5921_G_CHAN_FREQ, rel=1e-12)
        assert s.getcell("CHAN_WIDTH", 0)[0] == pytest.approx(NGC5921_G_CHAN_WIDTH, rel=1e-12)
    with table(str(pb / "SPECTRAL_WINDOW"), ack=False) as s, table(str(ms / "SPECTRAL_WINDOW"), ack=False) as m:
        np.testing.assert_array_equal(s.getcell("CHAN_FREQ", 0), m.getcell("CHAN_FREQ", 0))


# CASA 6.7.0-31 on alma_sim.ms, gaincal(field='0', spw='0:10~20', refant='DA41', solint='int') and
# bandpass(field='0', spw='1', refant='DA41', solint='inf', combine='scan'): their SPECTRAL_WINDOW rows
ALMA_SIM_G_SPW = {"NUM_CHAN": [1, 1], "FLAG_ROW": [False, True], "CHAN_FREQ": [2.30484375e11, 2.29e11],
                  "CHAN_WIDTH": [3.4375e8, 2.34375e8]}
ALMA_SIM_B_SPW = {"NUM_CHAN": [64, 120], "FLAG_ROW": [True, False], "CHAN_FREQ0": [2.30015625e11, 2.288837890625e11]}


def test_spectral_windows_of_a_two_spw_ms_as_casa_writes_them(shared_ms, tmp_path):
    """Solutions for one spw of alma_sim: the other spw's row is flagged, and a G table collapses
    every spw to one channel, exactly where CASA 6.7 puts them (constants above)."""
    from casacore.tables import table

    ms = shared_ms("alma_sim.ms")
    with table(str(ms / "ANTENNA"), ack=False) as t:
        nant = t.nrows()
    gt = _gain_table(nt=2, nant=nant)
    g = ct.from_gain_table(gt, field_id=0, spw_id=0, interval=36.288, scans=1)
    pg = ct.write_caltable(tmp_path / "a.G", g, ms, solved_channels={0: (10, 20)})
    with table(str(pg / "SPECTRAL_WINDOW"), ack=False) as s:
        assert list(s.getcol("NUM_CHAN")) == ALMA_SIM_G_SPW["NUM_CHAN"]
        assert list(s.getcol("FLAG_ROW")) == ALMA_SIM_G_SPW["FLAG_ROW"]
        for r in range(2):
            assert s.getcell("CHAN_FREQ", r)[0] == pytest.approx(ALMA_SIM_G_SPW["CHAN_FREQ"][r], rel=1e-12)
            assert s.getcell("CHAN_WIDTH", r)[0] == pytest.approx(ALMA_SIM_G_SPW["CHAN_WIDTH"][r], rel=1e-12)
    b = ct.from_bandpass(_bandpass(nant=nant, nchan=120), None, time=5.2e9, interval=100.0, field_id=0, spw_id=1,
                         refant=0)
    pb = ct.write_caltable(tmp_path / "a.B", b, ms)
    with table(str(pb / "SPECTRAL_WINDOW"), ack=False) as s:
        assert list(s.getcol("NUM_CHAN")) == ALMA_SIM_B_SPW["NUM_CHAN"]
        assert list(s.getcol("FLAG_ROW")) == ALMA_SIM_B_SPW["FLAG_ROW"]
        for r in range(2):
            assert s.getcell("CHAN_FREQ", r)[0] == pytest.approx(ALMA_SIM_B_SPW["CHAN_FREQ0"][r], rel=1e-12)
    assert ct.read_caltable(pb).spw_id.tolist() == [1] * nant
