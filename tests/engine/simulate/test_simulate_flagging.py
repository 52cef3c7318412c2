"""`almarules simulate` corruptions for flagging tests (issue 14): outlier visibilities and low-gain
antennas. Checked against the same config without them (everything else byte-identical), against
the analytic visibility of a point source at the phase centre with unit gains, and the truth file's
outlier list against the MS's own columns."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from casacore.tables import table

from almarules.engine.simulate import SimConfigError, parse_sim_config, simulate
from almarules.kernels import corrupt as kcorrupt

from conftest import REPO

FLAGGING = REPO / "examples" / "sim" / "alma_12m_band6_flagging.yaml"
SMALL = REPO / "examples" / "sim" / "alma_12m_band6_small.yaml"
COLUMNS = ("DATA", "FLAG", "FLAG_ROW", "WEIGHT", "SIGMA", "UVW", "TIME", "ANTENNA1", "ANTENNA2", "DATA_DESC_ID",
           "FIELD_ID", "SCAN_NUMBER", "STATE_ID")


def _raw(path: Path = FLAGGING) -> dict:
    return yaml.safe_load(path.read_text())


def _without(data: dict, *keys: str) -> dict:
    data = copy.deepcopy(data)
    for k in keys:
        data["corruptions"].pop(k)
    return data


def _run(data: dict, path: Path) -> tuple[dict, dict]:
    """Simulate `data` into `path`: (truth of the EB, main-table columns; DATA and FLAG only when every
    spw has the same number of channels)."""
    res = simulate(parse_sim_config(data, "test"), path)
    truth = res["execution_blocks"][0]
    uniform = len({s["nchan"] for s in truth["spectral_windows"]}) == 1
    with table(str(path), ack=False) as t:
        cols = {c: t.getcol(c) for c in COLUMNS if uniform or c not in ("DATA", "FLAG")}
    return truth, cols


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The flagging example seven ways (each ~0.4 s): as shipped, without outliers, without the
    low-gain antenna, without both; noiseless with and without outliers; the bare model (no noise,
    no corruptions)."""
    root = tmp_path_factory.mktemp("simflag")
    data = _raw()
    quiet = copy.deepcopy(data)
    quiet["noise"]["enabled"] = False
    bare = copy.deepcopy(quiet)
    bare["corruptions"]["enabled"] = False
    return {"full": _run(data, root / "full.ms"),
            "no_outliers": _run(_without(data, "outliers"), root / "no_outliers.ms"),
            "no_low_gain": _run(_without(data, "low_gain_antennas"), root / "no_low_gain.ms"),
            "clean": _run(_without(data, "outliers", "low_gain_antennas"), root / "clean.ms"),
            "quiet": _run(quiet, root / "quiet.ms"),
            "quiet_no_outliers": _run(_without(quiet, "outliers"), root / "quiet_no_outliers.ms"),
            "model": _run(bare, root / "model.ms")}


def _outlier_mask(truth: dict, nrow: int) -> np.ndarray:
    """(nrow, npol) True at the (row, correlation) pairs the truth file lists as outliers."""
    mask = np.zeros((nrow, 2), bool)
    for v in truth["corruptions"]["outliers"]["visibilities"]:
        mask[v["row"], v["correlation"]] = True
    return mask


# ---------------------------------------------------------------- the truth file against the MS
def test_recorded_outliers_are_the_ms_rows_they_name(runs):
    truth, cols = runs["full"]
    rec = truth["corruptions"]["outliers"]
    vis = rec["visibilities"]
    # candidates counted from the MS itself: unflagged rows x 2 correlations; 0.1 % of them, rounded half up
    n_candidates = 2 * int(np.count_nonzero(~cols["FLAG_ROW"]))
    assert rec["n_candidates"] == n_candidates == 2 * 28500
    assert rec["count"] == len(vis) == math.floor(0.001 * n_candidates + 0.5) == 57
    assert rec["amplitude_factor"] == 20.0
    names = [a["name"] for a in truth["observation"]["antennas"]]
    fields = {f["field_ids"][0]: f["name"] for f in truth["fields"]}
    keys = set()
    for v in vis:
        r = v["row"]
        assert cols["TIME"][r] == v["time_mjd_s"]
        assert cols["ANTENNA1"][r] == v["antenna1"] and cols["ANTENNA2"][r] == v["antenna2"]
        assert cols["DATA_DESC_ID"][r] == v["spw"] == v["data_desc_id"]
        assert cols["FIELD_ID"][r] == v["field_id"] and fields[v["field_id"]] == v["field"]
        assert cols["SCAN_NUMBER"][r] == v["scan"]
        assert names[v["antenna1"]] == v["antenna1_name"] and names[v["antenna2"]] == v["antenna2_name"]
        assert v["corr_type"] == ("XX", "YY")[v["correlation"]]
        keys.add((v["time_mjd_s"], v["spw"], v["antenna1"], v["antenna2"], v["correlation"]))
    assert len(keys) == len(vis)  # the tuples identify the visibilities
    assert len({v["field"] for v in vis}) >= 3  # spread over calibrators and target


def _spectra(cols: dict) -> np.ndarray:
    return cols["DATA"].transpose(0, 2, 1)  # (nrow, npol, nchan)


def test_outlier_spectra_are_the_factor_times_the_model_without_them(runs):
    truth, full = runs["full"]
    mask = _outlier_mask(truth, full["DATA"].shape[0])
    # noiseless: every channel of an outlier pair is 20 times the corrupted model (complex64 product)
    truth_q, quiet = runs["quiet"]
    assert truth_q["corruptions"]["outliers"]["visibilities"] == truth["corruptions"]["outliers"]["visibilities"]
    q, q_ref = _spectra(quiet), _spectra(runs["quiet_no_outliers"][1])
    assert q[mask].shape == (57, 16)
    np.testing.assert_allclose(q[mask], 20.0 * q_ref[mask], rtol=2e-7, atol=0)
    assert np.array_equal(q[~mask], q_ref[~mask])
    # with noise: the noise is not scaled, DATA - DATA(without outliers) = 19 x the corrupted model
    d, d_ref = _spectra(full), _spectra(runs["no_outliers"][1])
    np.testing.assert_allclose(d[mask] - d_ref[mask], 19.0 * q_ref[mask], rtol=0, atol=2e-5)
    assert np.array_equal(d[~mask], d_ref[~mask])  # everything else byte-identical
    for c in COLUMNS[1:]:  # FLAG, WEIGHT, SIGMA, metadata untouched
        assert np.array_equal(full[c], runs["no_outliers"][1][c]), c
    # the recorded |model| is that of the uncorrupted, noiseless run, averaged over the channels
    model = _spectra(runs["model"][1])[mask].mean(axis=1)
    recorded = {(v["row"], v["correlation"]): v["model_amplitude_jy"]
                for v in truth["corruptions"]["outliers"]["visibilities"]}
    np.testing.assert_allclose([recorded[k] for k in zip(*np.nonzero(mask), strict=True)], np.abs(model), rtol=1e-6)


def test_calibrated_outliers_stand_out_after_channel_averaging(runs):
    """Divided by the true gains and bandpasses, the metric |corrected| - |model| of channel-averaged
    data puts every outlier >= 30 robust sigma (1.4826 MAD) from the median of its field, where the other
    baselines without the low-gain antenna stay within 6 sigma."""
    truth, full = runs["full"]
    model = runs["model"][1]["DATA"].mean(axis=1)
    g = truth["corruptions"]["gains"]
    gains = (np.array(g["amplitude"]) * np.exp(1j * np.radians(g["phase_deg"]))).transpose(2, 0, 1)
    it = np.searchsorted(g["times_mjd_s"], full["TIME"])
    a1, a2, ddid = full["ANTENNA1"], full["ANTENNA2"], full["DATA_DESC_ID"]
    corrected = np.empty_like(full["DATA"])
    for spw in (0, 1):
        r = ddid == spw
        pars = truth["corruptions"]["bandpass"]["per_spw"][str(spw)]
        nchan = full["DATA"].shape[1]
        x = ((np.arange(nchan) - (nchan - 1) / 2) / (nchan - 1))[None, :, None]
        bp = {k: np.asarray(v)[:, None, :] for k, v in pars.items() if k != "nu_centre"}
        freq = (truth["spectral_windows"][spw]["first_chan_centre_hz"]
                + truth["spectral_windows"][spw]["chan_width_hz"] * np.arange(nchan))[None, :, None]
        amp = 1 + bp["slope"] * x + bp["ripple"] * np.cos(2 * np.pi * bp["cycles"] * x + bp["ripple_phase"])
        band = amp * np.exp(1j * (bp["phase0"] + 2 * np.pi * bp["delay"] * (freq - pars["nu_centre"])))  # truth formula
        c = gains[it[r], a1[r]][:, None] * np.conj(gains[it[r], a2[r]])[:, None] * band[a1[r]] * np.conj(band[a2[r]])
        corrected[r] = full["DATA"][r] / c
    metric = np.abs(corrected.mean(axis=1)) - np.abs(model)  # (nrow, npol)
    mask = _outlier_mask(truth, metric.shape[0])
    k = truth["corruptions"]["low_gain_antennas"][0]["index"]
    normal = ~mask & ((a1 != k) & (a2 != k))[:, None]
    # radiometer equation, 12-m dishes, Tsys 100 K, aperture efficiency 0.7, 125 MHz, 6.048 s; 16 channels averaged
    sefd = 2 * 1.380649e-23 * 100 / (0.7 * math.pi * 12**2 / 4) / 1e-26
    sigma_avg = sefd / math.sqrt(2 * 125e6 * 6.048) / math.sqrt(16)  # 0.0224 Jy
    for fid in range(4):
        on = (full["FIELD_ID"] == fid)[:, None]
        ref = metric[on & normal]
        med = np.median(ref)
        sd = 1.4826 * np.median(np.abs(ref - med))
        assert abs(sd / sigma_avg - 1) < 0.15
        assert np.max(np.abs(ref - med)) < 6 * sd
        assert np.min(metric[on & mask] - med) > 30 * sd


def test_low_gain_antenna_gains_are_the_factor_times_the_drawn_gains(runs):
    (truth, full), (truth_ref, ref) = runs["full"], runs["no_low_gain"]
    g, g_ref = truth["corruptions"]["gains"], truth_ref["corruptions"]["gains"]
    k = g["antennas"].index("DV07")
    amp, amp_ref = np.array(g["amplitude"]), np.array(g_ref["amplitude"])  # [antenna][pol][integration]
    # the truth rounds amplitudes to 1e-7
    np.testing.assert_allclose(amp[k], 0.3 * amp_ref[k], rtol=0, atol=1.5e-7)
    assert 0.2 < amp[k].mean() < 0.4 and 0.8 < np.delete(amp, k, axis=0).mean() < 1.2
    assert np.array_equal(np.delete(amp, k, axis=0), np.delete(amp_ref, k, axis=0))
    assert np.array_equal(np.array(g["phase_deg"]), np.array(g_ref["phase_deg"]))
    assert g["parameters"] == g_ref["parameters"]
    assert truth["corruptions"]["low_gain_antennas"] == [
        {"antenna": "DV07", "station": "A039", "index": k, "factor": 0.3,
         "model": "g_a,p(t) = factor * drawn gain, both pols, every integration; included in gains.amplitude"}]
    # baselines without DV07 are byte-identical (noise included), those with it differ
    with_k = (full["ANTENNA1"] == k) | (full["ANTENNA2"] == k)
    assert np.array_equal(full["DATA"][~with_k], ref["DATA"][~with_k])
    assert not np.any(full["DATA"][with_k] == ref["DATA"][with_k])


def test_without_the_sections_nothing_else_changes(runs, tmp_path):
    """The shipped config against its clean twin: only the outlier pairs and DV07's baselines differ,
    so no other random draw moved; FLAG, WEIGHT, SIGMA and the metadata are identical."""
    (truth, full), (truth_clean, clean) = runs["full"], runs["clean"]
    assert "outliers" not in truth_clean["corruptions"] and "low_gain_antennas" not in truth_clean["corruptions"]
    k = truth["corruptions"]["low_gain_antennas"][0]["index"]
    touched = _outlier_mask(truth, full["DATA"].shape[0])
    touched |= ((full["ANTENNA1"] == k) | (full["ANTENNA2"] == k))[:, None]
    d_full, d_clean = full["DATA"].transpose(0, 2, 1), clean["DATA"].transpose(0, 2, 1)
    assert np.array_equal(d_full[~touched], d_clean[~touched])
    for c in COLUMNS[1:]:
        assert np.array_equal(full[c], clean[c]), c
    # and a present-but-empty section is the same as none
    data = _without(_raw(), "outliers", "low_gain_antennas")
    data["corruptions"].update({"outliers": {"count": 0}, "low_gain_antennas": []})
    truth_empty, empty = _run(data, tmp_path / "empty.ms")
    assert truth_empty["corruptions"]["outliers"]["visibilities"] == []
    for c in COLUMNS:
        assert np.array_equal(empty[c], clean[c]), c


# ---------------------------------------------------------------- analytic truth
def test_outliers_and_low_gains_against_the_analytic_point_source(tmp_path):
    """Noise off, unit gains, no bandpass: the bandpass calibrator (2.5 Jy at 223 GHz, index -0.3,
    at the phase centre) has V = S(nu) on every baseline; outliers are 7 S(nu), a baseline with a
    low-gain antenna f S(nu), with two f1 f2 S(nu)."""
    data = _raw()
    data["noise"] = {"enabled": False}
    data["corruptions"] = {
        "gain_amplitude": 0, "gain_amplitude_drift": 0, "gain_phase": 0, "gain_phase_pol": 0, "gain_phase_drift": 0,
        "bandpass": False, "outliers": {"count": 40, "amplitude_factor": 7, "fields": ["J1520-2500"]},
        "low_gain_antennas": [{"antenna": "DV07", "factor": 0.3}, {"antenna": "A008", "factor": 0.5}]}
    truth, cols = _run(data, tmp_path / "analytic.ms")
    names = [a["name"] for a in truth["observation"]["antennas"]]
    lg = {names.index("DV07"): 0.3, names.index("DA48"): 0.5}  # pad A008 is antenna DA48
    assert [(e["antenna"], e["factor"]) for e in truth["corruptions"]["low_gain_antennas"]] == [("DV07", 0.3),
                                                                                                ("DA48", 0.5)]
    vis = truth["corruptions"]["outliers"]["visibilities"]
    assert len(vis) == 40 and {v["field"] for v in vis} == {"J1520-2500"}
    with table(str(tmp_path / "analytic.ms" / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = [t.getcell("CHAN_FREQ", s) for s in range(2)]
    cal = cols["FIELD_ID"] == 0
    mask = _outlier_mask(truth, cols["DATA"].shape[0])
    f_ant = np.ones(len(names))
    for a, f in lg.items():
        f_ant[a] = f
    n_checked = 0
    for spw in (0, 1):
        rows = np.flatnonzero(cal & (cols["DATA_DESC_ID"] == spw))
        s_nu = 2.5 * (freqs[spw] / 223e9) ** -0.3
        expect = (f_ant[cols["ANTENNA1"][rows]] * f_ant[cols["ANTENNA2"][rows]])[:, None, None] * s_nu[None, :, None]
        expect = np.where(mask[rows][:, None, :], 7.0 * expect, expect)
        np.testing.assert_allclose(cols["DATA"][rows], np.broadcast_to(expect, (rows.size, 16, 2)), rtol=1e-6, atol=0)
        n_checked += int(mask[rows].sum())
    assert n_checked == 40
    # the baseline between the two low-gain antennas was among those checked (0.3 x 0.5 S)
    assert np.any(cal & (cols["ANTENNA1"] == min(lg)) & (cols["ANTENNA2"] == max(lg)))


# ---------------------------------------------------------------- choice of the outliers
def test_outliers_avoid_flagged_rows_and_follow_their_seed(tmp_path):
    data = _raw(SMALL)  # DV03 flagged in full
    data["flags"]["channels"] = {0: [[0, 9]]}  # one-sided: the mean over unflagged channels differs
    data["corruptions"]["outliers"] = {"fraction": 0.05, "amplitude_factor": 3, "fields": ["SIMGAL_1", "J1607-2730"]}
    truth, cols = _run(data, tmp_path / "a.ms")
    rec = truth["corruptions"]["outliers"]
    on_fields = np.isin(cols["FIELD_ID"], [1, 3])
    assert rec["n_candidates"] == 2 * int(np.count_nonzero(on_fields & ~cols["FLAG_ROW"]))
    assert rec["count"] == math.floor(0.05 * rec["n_candidates"] + 0.5) > 100
    rows = np.array([v["row"] for v in rec["visibilities"]])
    assert not cols["FLAG_ROW"][rows].any()
    assert "DV03" not in {v["antenna1_name"] for v in rec["visibilities"]} | {v["antenna2_name"]
                                                                              for v in rec["visibilities"]}
    assert {v["field"] for v in rec["visibilities"]} == {"SIMGAL_1", "J1607-2730"}
    # model amplitudes are averaged over the unflagged channels only (spw 0: channels 10..31)
    bare = copy.deepcopy(data)
    bare["noise"], bare["corruptions"] = {"enabled": False}, {"enabled": False}
    _run(bare, tmp_path / "model.ms")
    with table(str(tmp_path / "model.ms"), ack=False) as t:
        for v in rec["visibilities"][:40]:
            spec = t.getcell("DATA", v["row"])[:, v["correlation"]]
            chans = slice(10, 32) if v["spw"] == 0 else slice(None)
            assert v["model_amplitude_jy"] == pytest.approx(abs(spec[chans].mean()), rel=1e-6)
    assert {v["spw"] for v in rec["visibilities"][:40]} == {0, 1}
    # the same seed chooses the same pairs; another outlier seed others, and leaves the rest of the data alone
    truth_b, cols_b = _run(data, tmp_path / "b.ms")
    assert truth_b["corruptions"]["outliers"]["visibilities"] == rec["visibilities"]
    data["corruptions"]["outliers"]["seed"] = 99
    truth_c, cols_c = _run(data, tmp_path / "c.ms")
    rows_c = {v["row"] for v in truth_c["corruptions"]["outliers"]["visibilities"]}
    assert truth_c["corruptions"]["outliers"]["seed"] == 99 and rows_c != set(rows.tolist())
    untouched = np.ones(cols["FLAG_ROW"].size, bool)
    untouched[list(rows_c | set(rows.tolist()))] = False
    with table(str(tmp_path / "a.ms"), ack=False) as ta, table(str(tmp_path / "c.ms"), ack=False) as tc:
        for spw in (0, 1):  # spws of 32 and 64 channels: read per DATA_DESC_ID
            sel = np.flatnonzero(untouched & (cols["DATA_DESC_ID"] == spw))
            da = np.stack([ta.getcell("DATA", int(r)) for r in sel[::7]])
            dc = np.stack([tc.getcell("DATA", int(r)) for r in sel[::7]])
            assert np.array_equal(da, dc)


def test_no_corruptions_turns_them_off(tmp_path):
    data = _raw()
    data["corruptions"]["enabled"] = False
    truth, cols = _run(data, tmp_path / "off.ms")
    assert "outliers" not in truth["corruptions"] and "low_gain_antennas" not in truth["corruptions"]
    data["corruptions"] = {"enabled": False}
    _, ref = _run(data, tmp_path / "ref.ms")
    assert np.array_equal(cols["DATA"], ref["DATA"])


# ---------------------------------------------------------------- config errors
BAD = [
    ({"outliers": {"fraction": 0.1, "count": 3}}, "corruptions.outliers: give exactly one of 'fraction' and 'count'"),
    ({"outliers": {"amplitude_factor": 20}}, "corruptions.outliers: give exactly one of 'fraction' and 'count'"),
    ({"outliers": {"fraction": 1.5}}, "corruptions.outliers.fraction: Input should be less than or equal to 1"),
    ({"outliers": {"count": 3, "amplitude_factor": 0}},
     "corruptions.outliers.amplitude_factor: Input should be greater than 0"),
    ({"outliers": {"count": 3, "fields": ["NOPE"]}}, "corruptions.outliers.fields[0]: no field 'NOPE' (fields are "),
    ({"outliers": {"count": 3, "colour": "red"}}, "corruptions.outliers.colour: unknown key"),
    ({"low_gain_antennas": [{"antenna": "DV07", "factor": -1}]},
     "corruptions.low_gain_antennas[0].factor: Input should be greater than 0"),
    ({"low_gain_antennas": [{"antenna": "DV07"}]}, "corruptions.low_gain_antennas[0].factor: required key missing"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_sections_give_one_line_errors_naming_the_field(change, message):
    data = _raw()
    data["corruptions"].update(change)
    with pytest.raises(SimConfigError) as info:
        parse_sim_config(data, "cfg.yaml")
    text = str(info.value)
    assert text.startswith("cfg.yaml: ") and message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("change,message", [
    ({"low_gain_antennas": [{"antenna": "XX99", "factor": 0.3}]},
     "corruptions.low_gain_antennas[0].antenna: no antenna or pad 'XX99' in the array (DA41, "),
    ({"low_gain_antennas": [{"antenna": "DV07", "factor": 0.3}, {"antenna": "A039", "factor": 0.5}]},
     "corruptions.low_gain_antennas[1].antenna: antenna DV07 is given twice"),
    ({"outliers": {"count": 10 ** 6}},
     "corruptions.outliers.count: execution block 1: 1000000 outliers asked for, but only 57000 candidates"),
])
def test_bad_antennas_and_counts_are_one_line_errors_before_any_output(tmp_path, change, message):
    data = _raw()
    data["corruptions"].update(change)
    with pytest.raises(SimConfigError) as info:
        simulate(parse_sim_config(data, "cfg"), tmp_path / "never.ms")
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- kernels
def test_choose_outliers_draws_distinct_candidates_uniformly():
    rng = np.random.default_rng(1)
    cand = rng.random((50, 40)) < 0.5
    n = int(cand.sum())
    idx = kcorrupt.choose_outliers(np.random.default_rng(2), cand, fraction=0.1)
    assert idx.size == math.floor(0.1 * n + 0.5) and np.all(np.diff(idx) > 0) and cand.reshape(-1)[idx].all()
    # rounding half up: 2500 candidates x 0.001 = 2.5 -> 3 (Python's round would give 2)
    assert kcorrupt.choose_outliers(rng, np.ones(2500, bool), fraction=0.001).size == 3
    assert kcorrupt.choose_outliers(rng, cand, count=0).size == 0
    with pytest.raises(ValueError, match="only"):
        kcorrupt.choose_outliers(rng, cand, count=n + 1)
    with pytest.raises(ValueError, match="exactly one"):
        kcorrupt.choose_outliers(rng, cand)
    # uniform: over 4000 draws of 10 of 100 candidates each index is hit ~400 times (binomial sd 19)
    hits = np.zeros(100)
    for _ in range(4000):
        hits[kcorrupt.choose_outliers(rng, np.ones(100, bool), count=10)] += 1
    assert np.all(np.abs(hits - 400) < 5 * math.sqrt(4000 * 0.1 * 0.9))


def test_apply_outliers_scales_whole_spectra_and_scale_gains_one_antenna():
    rng = np.random.default_rng(3)
    vis = (rng.normal(size=(6, 5, 2)) + 1j * rng.normal(size=(6, 5, 2))).astype(np.complex64)
    expect = vis.copy()
    for b, p in ((1, 0), (4, 1), (4, 0)):
        for c in range(5):
            expect[b, c, p] *= np.float32(2.5)
    kcorrupt.apply_outliers(vis, np.array([1, 4, 4]), np.array([0, 1, 0]), 2.5)
    assert np.array_equal(vis, expect)
    gains = rng.normal(size=(3, 4, 2)) + 1j * rng.normal(size=(3, 4, 2))
    before = gains.copy()
    out = kcorrupt.scale_antenna_gains(gains, [2, 0], [0.3, 2.0])
    assert np.array_equal(gains, before)  # the input is left alone
    np.testing.assert_array_equal(out[:, 2], 0.3 * before[:, 2])
    np.testing.assert_array_equal(out[:, 0], 2.0 * before[:, 0])
    np.testing.assert_array_equal(out[:, [1, 3]], before[:, [1, 3]])
    with pytest.raises(ValueError):
        kcorrupt.scale_antenna_gains(gains, [1, 2], [0.5])
