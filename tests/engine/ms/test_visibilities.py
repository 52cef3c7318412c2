"""Data selection for imaging (`engine.ms.visibilities`): exact values on small MSs the tests write
themselves (from tests/tiny_ms.py, then edited in the test's tmp dir), and the shared
real and simulated MSs against the numbers of their README and truth file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from almarules.engine.ms.visibilities import DataSelectionError, bin_channels, lsrk_frequencies, select

from conftest import SHARED_DATA

_spec = importlib.util.spec_from_file_location("tiny_ms", Path(__file__).resolve().parents[2] / "tiny_ms.py")
tiny_ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_ms)
N_CHAN = tiny_ms.N_CHAN


# ---------------------------------------------------------------- helpers
def _table(path, **kw):
    from casacore.tables import table

    return table(str(path), ack=False, readonly=False, **kw)


def make_ms(tmp_path: Path, n_auto: int = 2) -> tuple[Path, dict]:
    """The tiny MS (12 cross rows: field 0 at time 0, field 1 at times 1-3) plus `n_auto`
    autocorrelation rows of field 1, with distinct XX/YY data and per-hand weights.
    Returns the path and the values written (DATA, WEIGHT, ...) for all rows."""
    path = tiny_ms.make_tiny_ms(tmp_path / "t.ms")
    t = _table(path)
    n0 = t.nrows()
    if n_auto:
        t.addrows(n_auto)
        for k in range(n_auto):
            r = n0 + k
            for col in ("TIME", "INTERVAL", "EXPOSURE", "FIELD_ID", "SCAN_NUMBER", "STATE_ID", "DATA_DESC_ID"):
                t.putcell(col, r, t.getcell(col, n0 - 1))
            t.putcell("ANTENNA1", r, k)
            t.putcell("ANTENNA2", r, k)
            t.putcell("UVW", r, np.zeros(3))
    n = t.nrows()
    r = np.arange(n)[:, None]
    c = np.arange(N_CHAN)[None, :]
    xx = (1.0 + r + 0.1 * c) + 1j * (0.5 * r - c)
    yy = (3.0 - 0.2 * r + 0.3 * c) + 1j * (2.0 + 0.25 * c)
    data = np.stack([xx, yy], axis=-1).astype(np.complex64)
    weight = np.stack([np.full(n, 2.0), np.full(n, 6.0)], axis=-1).astype(np.float32)
    t.putcol("DATA", data)
    t.putcol("WEIGHT", weight)
    t.putcol("FLAG", np.zeros((n, N_CHAN, 2), bool))
    values = {"DATA": data.astype(np.complex128), "WEIGHT": weight.astype(np.float64),
              "ANTENNA1": t.getcol("ANTENNA1"), "ANTENNA2": t.getcol("ANTENNA2"),
              "FIELD_ID": t.getcol("FIELD_ID"), "UVW": t.getcol("UVW"), "TIME": t.getcol("TIME")}
    t.close()
    freqs = _table(path / "SPECTRAL_WINDOW").getcell("CHAN_FREQ", 0)
    values["FREQ"] = np.asarray(freqs)
    return path, values


def collect(chunks) -> dict:
    chunks = list(chunks)
    assert chunks, "no chunk"
    out = {k: np.concatenate([getattr(c, k) for c in chunks])
           for k in ("uvw", "vis", "weight", "noise_weight", "flag", "time", "antenna1", "antenna2", "field_id",
                     "row")}
    for c in chunks:
        np.testing.assert_array_equal(c.freq, chunks[0].freq)
    out["freq"] = chunks[0].freq
    out["n_chunks"] = len(chunks)
    out["notes"] = chunks[0].notes
    out["column"] = chunks[0].column
    return out


# ---------------------------------------------------------------- exact values on the tiny MS
def test_stokes_i_values_weights_and_metadata(tmp_path):
    path, v = make_ms(tmp_path)
    got = collect(select(path, [1], 0))
    rows = np.flatnonzero((v["FIELD_ID"] == 1) & (v["ANTENNA1"] != v["ANTENNA2"]))
    assert rows.size == 9  # 3 times x 3 baselines; the 2 autocorrelation rows are skipped
    np.testing.assert_array_equal(got["row"], rows)
    xx, yy = v["DATA"][rows, :, 0], v["DATA"][rows, :, 1]
    np.testing.assert_allclose(got["vis"], (xx + yy) / 2, rtol=0, atol=0)
    # CASA's weight is the sum of the hands' weights 2 + 6 = 8; the inverse variance of
    # (XX + YY) / 2 is 4 / (1/2 + 1/6) = 6 on every sample
    np.testing.assert_array_equal(got["weight"], np.full((9, N_CHAN), 8.0))
    np.testing.assert_allclose(got["noise_weight"], np.full((9, N_CHAN), 6.0), rtol=1e-15)
    assert not got["flag"].any()
    np.testing.assert_array_equal(got["uvw"], v["UVW"][rows])
    np.testing.assert_array_equal(got["time"], v["TIME"][rows])
    np.testing.assert_array_equal(got["antenna1"], v["ANTENNA1"][rows])
    np.testing.assert_array_equal(got["antenna2"], v["ANTENNA2"][rows])
    np.testing.assert_array_equal(got["freq"], v["FREQ"])
    assert got["vis"].dtype == np.complex128 and got["uvw"].shape == (9, 3)
    # CORRECTED_DATA is absent: DATA is read, and said so
    assert got["column"] == "DATA"
    assert any("CORRECTED_DATA absent" in n for n in got["notes"])
    # several fields at once: all cross rows
    both = collect(select(path, (0, 1), 0))
    assert both["vis"].shape == (12, N_CHAN)


def test_flags_flag_row_and_bad_weights(tmp_path):
    path, v = make_ms(tmp_path, n_auto=0)
    t = _table(path)
    flag = np.zeros((12, N_CHAN, 2), bool)
    flag[3, 2, 0] = True  # XX only
    flag[4, 5, 1] = True  # YY only
    t.putcol("FLAG", flag)
    frow = np.zeros(12, bool)
    frow[6] = True
    t.putcol("FLAG_ROW", frow)
    w = v["WEIGHT"].copy()
    w[7, 1] = 0.0  # a zero-weight hand
    t.putcol("WEIGHT", w.astype(np.float32))
    t.close()
    got = collect(select(path, 1, 0))  # rows 3..11
    expect = np.zeros((9, N_CHAN), bool)
    expect[0, 2] = expect[1, 5] = True
    expect[3, :] = True  # FLAG_ROW
    expect[4, :] = True  # zero weight on YY
    np.testing.assert_array_equal(got["flag"], expect)
    assert np.all(got["weight"][expect] == 0) and np.all(got["noise_weight"][expect] == 0)
    assert np.all(got["vis"][expect] == 0)
    good = ~expect
    xx, yy = v["DATA"][3:, :, 0], v["DATA"][3:, :, 1]
    np.testing.assert_array_equal(got["vis"][good], ((xx + yy) / 2)[good])
    assert np.all(got["weight"][good] == 8.0) and np.allclose(got["noise_weight"][good], 6.0, rtol=1e-15)


def test_weight_spectrum_used_when_filled(tmp_path):
    from casacore.tables import makearrcoldesc, maketabdesc

    path, v = make_ms(tmp_path, n_auto=0)
    t = _table(path)
    t.addcols(maketabdesc([makearrcoldesc("WEIGHT_SPECTRUM", 0.0, valuetype="float", shape=[N_CHAN, 2])]))
    ws = np.empty((12, N_CHAN, 2))
    ws[:, :, 0] = 1.0 + np.arange(N_CHAN)  # 1..8
    ws[:, :, 1] = 3.0
    t.putcol("WEIGHT_SPECTRUM", ws.astype(np.float32))
    t.close()
    got = collect(select(path, [0, 1], 0))
    np.testing.assert_allclose(got["weight"], ws[:, :, 0] + ws[:, :, 1], rtol=1e-15)
    expect = 4.0 / (1.0 / ws[:, :, 0] + 1.0 / ws[:, :, 1])
    np.testing.assert_allclose(got["noise_weight"], expect, rtol=1e-15)


def test_binning_exact(tmp_path):
    path, v = make_ms(tmp_path, n_auto=0)
    t = _table(path)
    flag = np.zeros((12, N_CHAN, 2), bool)
    flag[:, 2, 0] = True  # channel 2 flagged: bin (2,3) of nbin=2 keeps only channel 3
    flag[5, 4:6, 1] = True  # row 5: bin (4,5) fully flagged
    t.putcol("FLAG", flag)
    w = v["WEIGHT"].copy()
    w[::2, 0] = 1.0  # rows with different I weights: 4/(1/1+1/6) = 24/7 instead of 6
    t.putcol("WEIGHT", w.astype(np.float32))
    t.close()
    got = collect(select(path, [0, 1], 0, chan_start=2, chan_stop=8, nbin=2))
    # independent reference: per row, per bin, weighted mean over unflagged channels
    wc = w[:, 0] + w[:, 1]  # CASA's weight of a Stokes I sample
    wi = 4.0 / (1.0 / w[:, 0] + 1.0 / w[:, 1])  # its inverse variance
    i_all = (v["DATA"][:, :, 0] + v["DATA"][:, :, 1]) / 2
    f_i = flag[:, :, 0] | flag[:, :, 1]
    exp_vis = np.zeros((12, 3), complex)
    exp_w = np.zeros((12, 3))
    exp_n = np.zeros((12, 3))
    exp_f = np.zeros((12, 3), bool)
    for r in range(12):
        for b, (c0, c1) in enumerate(((2, 4), (4, 6), (6, 8))):
            ok = [c for c in range(c0, c1) if not f_i[r, c]]
            if not ok:
                exp_f[r, b] = True
                continue
            exp_w[r, b] = wc[r] * len(ok)
            exp_n[r, b] = wi[r] * len(ok)  # the mean of k samples of equal variance
            exp_vis[r, b] = sum(wc[r] * i_all[r, c] for c in ok) / exp_w[r, b]
    np.testing.assert_array_equal(got["flag"], exp_f)
    assert exp_f[5, 1] and not exp_f[5, 0]
    np.testing.assert_allclose(got["vis"], exp_vis, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got["weight"], exp_w, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got["noise_weight"], exp_n, rtol=1e-14, atol=0)
    # bin (2,3) holds channel 3 alone
    np.testing.assert_allclose(got["vis"][:, 0], i_all[:, 3], rtol=1e-14)
    np.testing.assert_allclose(got["freq"], [(v["FREQ"][c] + v["FREQ"][c + 1]) / 2 for c in (2, 4, 6)], rtol=1e-15)
    # nbin=1 over a channel range is a plain slice
    one = collect(select(path, [0, 1], 0, chan_start=3, chan_stop=5))
    np.testing.assert_array_equal(one["freq"], v["FREQ"][3:5])
    assert one["vis"].shape == (12, 2)


def test_bin_channels_weighted_mean_unit():
    vis = np.array([[1 + 1j, 3 - 1j, 5, 7]])
    w = np.array([[1.0, 3.0, 2.0, 2.0]])
    f = np.array([[False, False, True, True]])
    noise = np.array([[0.5, 2.0, 1.0, 1.0]])  # inverse variances
    bv, bw, bn, bf = bin_channels(vis, w, noise, f, 2)
    np.testing.assert_allclose(bv, [[(1 + 1j + 3 * (3 - 1j)) / 4, 0]])
    np.testing.assert_array_equal(bw, [[4.0, 0.0]])
    # var((1 a + 3 b) / 4) = (1 / 0.5 + 9 / 2) / 16 = 6.5 / 16
    np.testing.assert_allclose(bn, [[16 / 6.5, 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(bf, [[False, True]])
    # equal weights and noise weights: the bin's noise weight is their sum
    _, bw, bn, _ = bin_channels(vis, w, w, np.zeros_like(f), 2)
    np.testing.assert_allclose(bn, bw, rtol=1e-15)


@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 100])
def test_chunking_gives_the_same_concatenation(tmp_path, chunk_rows):
    path, _ = make_ms(tmp_path)
    t = _table(path)
    flag = t.getcol("FLAG")
    flag[1::3, 1::2, 1] = True
    t.putcol("FLAG", flag)
    t.close()
    whole = collect(select(path, [0, 1], 0, nbin=4, chunk_rows=10_000))
    parts = collect(select(path, [0, 1], 0, nbin=4, chunk_rows=chunk_rows))
    assert whole["n_chunks"] == 1
    assert parts["n_chunks"] == -(-12 // chunk_rows)
    for k in ("uvw", "vis", "weight", "flag", "time", "antenna1", "antenna2", "field_id", "row", "freq"):
        np.testing.assert_array_equal(parts[k], whole[k], err_msg=k)


def test_corrected_data_is_preferred_and_other_columns_must_exist(tmp_path):
    from casacore.tables import makearrcoldesc, maketabdesc

    path, v = make_ms(tmp_path, n_auto=0)
    t = _table(path)
    t.addcols(maketabdesc([makearrcoldesc("CORRECTED_DATA", 0j, valuetype="complex", shape=[N_CHAN, 2])]))
    t.putcol("CORRECTED_DATA", (2 * v["DATA"]).astype(np.complex64))
    t.close()
    got = collect(select(path, 0, 0))
    assert got["column"] == "CORRECTED_DATA" and got["notes"] == ()
    np.testing.assert_array_equal(got["vis"], (v["DATA"][:3, :, 0] + v["DATA"][:3, :, 1]))
    data = collect(select(path, 0, 0, column="DATA"))
    np.testing.assert_array_equal(data["vis"], (v["DATA"][:3, :, 0] + v["DATA"][:3, :, 1]) / 2)
    with pytest.raises(DataSelectionError, match=r"main table\): missing column MODEL_DATA"):
        next(select(path, 0, 0, column="MODEL_DATA"))


def test_errors_name_table_and_column(tmp_path):
    path, _ = make_ms(tmp_path, n_auto=0)
    with pytest.raises(DataSelectionError, match=r"/FIELD: unknown field 7 \(the table has 2 rows\)"):
        next(select(path, [0, 7], 0))
    with pytest.raises(DataSelectionError, match=r"/SPECTRAL_WINDOW: unknown spw 3"):
        next(select(path, 0, 3))
    with pytest.raises(DataSelectionError, match=r"not a multiple of nbin=3"):
        next(select(path, 0, 0, nbin=3))
    with pytest.raises(DataSelectionError, match=r"chan_start=6, chan_stop=4"):
        next(select(path, 0, 0, chan_start=6, chan_stop=4))
    with pytest.raises(DataSelectionError, match=r"not a Measurement Set"):
        next(select(tmp_path / "nothing.ms", 0, 0))
    with pytest.raises(DataSelectionError, match=r"/FIELD: unknown field 5"):
        lsrk_frequencies(path, 0, 5)
    # correlations without parallel hands
    pol = _table(path / "POLARIZATION")
    pol.putcell("CORR_TYPE", 0, np.array([10, 11], dtype=np.int32))
    pol.close()
    with pytest.raises(DataSelectionError, match=r"/POLARIZATION: row 0 column CORR_TYPE holds XY, YX: no pair"):
        next(select(path, 0, 0))
    # RR/LL (in reversed order) form Stokes I as well
    pol = _table(path / "POLARIZATION")
    pol.putcell("CORR_TYPE", 0, np.array([8, 5], dtype=np.int32))
    pol.close()
    assert next(select(path, 0, 0)).vis.shape == (3, N_CHAN)
    # a missing main-table column
    t = _table(path)
    t.removecols("WEIGHT")
    t.close()
    with pytest.raises(DataSelectionError, match=r"main table\): missing column WEIGHT"):
        next(select(path, 0, 0))


def test_read_only_and_tables_closed(tmp_path):
    """The selection never writes: the MS's files are byte-identical afterwards."""
    path, _ = make_ms(tmp_path, n_auto=0)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != "table.lock"}
    collect(select(path, [0, 1], 0, nbin=2))
    lsrk_frequencies(path, 0, 1)
    gen = select(path, [0, 1], 0, chunk_rows=1)
    next(gen)
    gen.close()  # an abandoned generator closes its tables
    after = {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != "table.lock"}
    assert before == after
    t = _table(path)  # writable again: no lock left behind
    t.close()


def test_lsrk_on_tiny_ms(tmp_path):
    path, v = make_ms(tmp_path, n_auto=0)
    lsrk = lsrk_frequencies(path, 0, 1)
    topo = v["FREQ"]
    ratio = lsrk / topo - 1
    assert 0 < np.max(np.abs(ratio)) < 1e-4
    # a frame change is a Doppler factor, the same for every channel
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6, atol=1e-12)
    assert np.all(np.diff(lsrk) > 0)
    spw = _table(path / "SPECTRAL_WINDOW")
    spw.putcell("MEAS_FREQ_REF", 0, 1)
    spw.close()
    np.testing.assert_array_equal(lsrk_frequencies(path, 0, 1), topo)


# ---------------------------------------------------------------- shared MSs
def test_ngc5921_rows_channels_and_lsrk(shared_ms):
    from casacore.tables import taql

    ms = shared_ms("ngc5921.ms")
    got = collect(select(ms, [2], 0))
    # README: field 2 (N5921_2) has 12852 rows; 27 antennas with data -> autocorrelations
    n_auto = int(taql(f"select from '{ms}' where FIELD_ID==2 and ANTENNA1==ANTENNA2").nrows())
    assert n_auto > 0
    assert got["vis"].shape == (12852 - n_auto, 63)
    assert not np.any(got["antenna1"] == got["antenna2"])
    # 63 channels, 1412.665 - 1414.179 MHz, 24.414 kHz apart
    assert got["freq"][0] == pytest.approx(1412.665e6, abs=1e3)
    assert got["freq"][-1] == pytest.approx(1414.179e6, abs=1e3)
    np.testing.assert_allclose(np.diff(got["freq"]), 24.414e3, rtol=1e-4)
    assert got["column"] == "DATA"
    assert not got["flag"].any()  # README: no flags set
    # WEIGHT_SPECTRUM is filled (WEIGHT / 63 per channel and hand): it, not WEIGHT, gives the weights
    t = taql(f"select WEIGHT_SPECTRUM from '{ms}' where FIELD_ID==2 and ANTENNA1!=ANTENNA2")
    ws = t.getcol("WEIGHT_SPECTRUM")
    np.testing.assert_allclose(got["weight"], 4.0 / (1.0 / ws[:, :, 0] + 1.0 / ws[:, :, 1]), rtol=1e-15)
    # all fields together: the README's 21034 cross-correlation rows
    assert sum(c.nrow for c in select(ms, [0, 1, 2], 0)) == 21034
    # the spw is LSRK already: unchanged
    np.testing.assert_array_equal(lsrk_frequencies(ms, 0, 2), got["freq"])


def test_alma_sim_lsrk_against_topo_and_truth(shared_ms):
    ms = shared_ms("alma_sim.ms")
    chunk = next(select(ms, 3, 1))
    assert chunk.frame == "TOPO" and chunk.freq.shape == (120,)
    lsrk = lsrk_frequencies(ms, 1, 3)
    ratio = lsrk / chunk.freq - 1
    assert 1e-7 < np.max(np.abs(ratio)) < 1e-4  # a plausible Doppler shift (< 30 km/s)
    assert np.all(np.diff(lsrk) > 0)
    # the truth file: the line's LSRK centre is seen at this TOPO frequency at mid observation
    truth = json.loads((SHARED_DATA / "alma_sim.truth.json").read_text())
    line = truth["sky_model"]["target"]["components"][2]
    assert line["topo_freq_of_peak_hz_mid_obs"] * (1 + ratio[60]) == pytest.approx(line["centre_freq_lsrk_hz"],
                                                                                 abs=1e3)
    # README: WEIGHT = 9.146 per hand in spw 1 -> Stokes I 2 x 9.146; 780 baselines x 15 target integrations
    total = sum(c.nrow for c in select(ms, 3, 1, chunk_rows=5000))
    assert total == 780 * 15
    np.testing.assert_allclose(chunk.weight, 2 * 9.146, rtol=1e-3)


def test_full_polarisation_uses_parallel_hands(shared_ms):
    from casacore.tables import taql

    ms = shared_ms("day2_TDEM0003_10s_norx_1src_1spw.ms")
    got = collect(select(ms, 0, 0, column="DATA"))
    t = taql(f"select DATA, FLAG from '{ms}' where ANTENNA1!=ANTENNA2")
    data, flag = t.getcol("DATA"), t.getcol("FLAG")  # RR, RL, LR, LL
    assert got["vis"].shape == (1360, 64)
    good = ~(flag[:, :, 0] | flag[:, :, 3])
    np.testing.assert_array_equal(got["flag"], ~good)
    expect = (data[:, :, 0].astype(np.complex128) + data[:, :, 3]) / 2
    np.testing.assert_allclose(got["vis"][good], expect[good], rtol=1e-15)


# ---------------------------------------------------------------- clear errors (issue 10)
def test_truncated_data_file_names_the_column(tmp_path):
    """A main-table data file cut short: casacore's RuntimeError becomes a DataSelectionError that
    names the MS, the table and the column (it used to escape as a RuntimeError)."""
    from almarules.engine.ms.visibilities import field_rows, spw_axis

    path, _ = make_ms(tmp_path, n_auto=0)
    sizes = {p: p.stat().st_size for p in path.glob("table.f*") if p.suffix != ".lock"}
    biggest = max(sizes, key=sizes.get)  # the file holding the visibilities
    with open(biggest, "r+b") as f:
        f.truncate(sizes[biggest] // 4)
    with pytest.raises(DataSelectionError) as err:
        collect(select(path, [0, 1], 0))
    msg = str(err.value)
    assert msg.startswith(f"{path}: cannot read column ") and " of the main table: " in msg
    assert "\n" not in msg
    # subtables are still readable: metadata calls work
    assert field_rows(path, "TARGET_1") == [1] and spw_axis(path, 0).freq.size == N_CHAN


def test_no_data_column_at_all(tmp_path):
    from almarules.engine.ms.visibilities import data_column

    path, _ = make_ms(tmp_path, n_auto=0)
    assert data_column(path) == "DATA"
    t = _table(path)
    t.removecols("DATA")
    t.close()
    expected = f"{path} (main table): no DATA column (and no CORRECTED_DATA): no visibilities to image"
    with pytest.raises(DataSelectionError) as err:
        data_column(path)
    assert str(err.value) == expected
    with pytest.raises(DataSelectionError) as err:
        next(select(path, 0, 0))
    assert str(err.value) == expected
