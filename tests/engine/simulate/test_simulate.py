"""`almarules simulate`: the MS layout, the visibilities against an independent analytic
model, UVW against an independent ERFA computation, noise statistics, corruptions against
the truth file, determinism, several EBs and mosaics, the facts round trip, config errors."""

from __future__ import annotations

import argparse
import copy
import json
import math
import warnings
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import yaml
from casacore.tables import table

from almarules.engine.simulate import (SimConfigError, SimError, load_sim_config, output_paths, parse_sim_config,
                                       simulate)

from conftest import REPO

SMALL = REPO / "examples" / "sim" / "alma_12m_band6_small.yaml"
ACA = REPO / "examples" / "sim" / "aca_7m_band7_mosaic_2eb.yaml"
C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
from conftest import SHARED_DATA  # noqa: E402  (the one place that knows where shared data is)
from truthcal import truth_bandpass, truth_gains  # noqa: E402


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _cfg(base: Path = SMALL, **changes) -> object:
    data = copy.deepcopy(_raw(base))
    for key, value in changes.items():
        node = data
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return parse_sim_config(data, "test")


def _col(ms: Path, name: str, sub: str = ""):
    with table(str(ms / sub) if sub else str(ms), ack=False) as t:
        return t.getcol(name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The small example simulated four ways (each ~0.3 s)."""
    root = tmp_path_factory.mktemp("sim")
    out = {}
    out["full"] = simulate(_cfg(), root / "full.ms")
    out["clean"] = simulate(_cfg(noise__enabled=False, corruptions__enabled=False), root / "clean.ms")
    out["corrupt"] = simulate(_cfg(noise__enabled=False), root / "corrupt.ms")
    data = _raw(SMALL)
    for f in data["fields"]:
        f["components"] = []
    data["corruptions"] = {"enabled": False}
    out["noise"] = simulate(parse_sim_config(data, "test"), root / "noise.ms")
    for k, v in out.items():
        v["path"] = Path(v["ms"][0])
        v["truth"] = v["execution_blocks"][0]
    return out


# ---------------------------------------------------------------- layout
def test_ms_layout_subtables_rows_and_intents(runs):
    ms = runs["full"]["path"]
    truth = runs["full"]["truth"]
    assert ms.name == "full.ms" and (ms.parent / "full.truth.json").is_file()
    assert json.loads((ms.parent / "full.truth.json").read_text())["seed"] == 20240615
    with table(str(ms), ack=False) as t:
        keys = t.getkeywords()
        nrows = t.nrows()
        assert {"DATA", "FLAG", "WEIGHT", "SIGMA", "UVW", "STATE_ID", "SCAN_NUMBER"} <= set(t.colnames())
    for sub in ("ANTENNA", "SPECTRAL_WINDOW", "POLARIZATION", "DATA_DESCRIPTION", "FIELD", "SOURCE", "STATE",
                "OBSERVATION", "HISTORY", "FEED", "PROCESSOR", "POINTING", "FLAG_CMD"):
        assert sub in keys, sub
    nant, nbl = 12, 66
    nint = sum(s["n_integrations"] for s in truth["observation"]["scans"])
    assert nrows == nint * 2 * nbl == truth["observation"]["rows"]
    a1, a2 = _col(ms, "ANTENNA1"), _col(ms, "ANTENNA2")
    assert np.all(a1 < a2)  # cross-correlations only
    assert len(_col(ms, "NAME", "ANTENNA")) == nant
    # 12 pads spread over the C-1 file; names follow the file order (DA41... for its first pad)
    assert list(_col(ms, "STATION", "ANTENNA"))[:4] == ["A001", "A005", "A009", "A013"]
    assert list(_col(ms, "NAME", "ANTENNA"))[:4] == ["DA41", "DA45", "DA49", "DA52"]
    assert set(_col(ms, "DISH_DIAMETER", "ANTENNA")) == {12.0}
    # spectral windows, polarisation
    assert list(_col(ms, "NUM_CHAN", "SPECTRAL_WINDOW")) == [32, 64]
    assert list(_col(ms, "MEAS_FREQ_REF", "SPECTRAL_WINDOW")) == [5, 5]
    assert list(_col(ms, "NAME", "SPECTRAL_WINDOW")) == ["ALMA_RB_06#BB_1#SW-01#FULL_RES", "ALMA_RB_06#BB_2#SW-01#FULL_RES"]
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        f0 = t.getcell("CHAN_FREQ", 0)
        assert f0[0] == 230.03125e9 and np.allclose(np.diff(f0), 62.5e6)
        assert np.all(t.getcell("EFFECTIVE_BW", 1) == 3.90625e6)
        assert t.getcell("TOTAL_BANDWIDTH", 0) == 2e9
    assert list(_col(ms, "CORR_TYPE", "POLARIZATION")[0]) == [9, 12]
    assert list(_col(ms, "SPECTRAL_WINDOW_ID", "DATA_DESCRIPTION")) == [0, 1]
    # intents and the scan sequence
    modes = list(_col(ms, "OBS_MODE", "STATE"))
    assert set(modes) == {"CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE", "CALIBRATE_PHASE#ON_SOURCE",
                          "OBSERVE_TARGET#ON_SOURCE", "OBSERVE_CHECK_SOURCE#ON_SOURCE"}
    assert all(_col(ms, "SIG", "STATE")) and not any(_col(ms, "REF", "STATE"))
    scan, state, fld = _col(ms, "SCAN_NUMBER"), _col(ms, "STATE_ID"), _col(ms, "FIELD_ID")
    names = list(_col(ms, "NAME", "FIELD"))
    seq = []
    for s in np.unique(scan):
        rows = scan == s
        assert len(np.unique(state[rows])) == 1 and len(np.unique(fld[rows])) == 1
        seq.append((names[fld[rows][0]], modes[state[rows][0]].split("#")[0]))
    assert seq == [("J1520-2500", "CALIBRATE_BANDPASS"), ("J1607-2730", "CALIBRATE_PHASE"),
                   ("SIMGAL_1", "OBSERVE_TARGET"), ("J1607-2730", "CALIBRATE_PHASE"),
                   ("SIMGAL_1", "OBSERVE_TARGET"), ("J1607-2730", "CALIBRATE_PHASE"),
                   ("J1554-3140", "OBSERVE_CHECK_SOURCE"), ("J1607-2730", "CALIBRATE_PHASE")]
    # times: integration centres, rows sorted by TIME, DATA_DESC_ID, ANTENNA1, ANTENNA2
    time, ddid = _col(ms, "TIME"), _col(ms, "DATA_DESC_ID")
    assert np.all(np.diff(time) >= 0)
    order = np.lexsort((a2, a1, ddid, time))
    assert np.array_equal(order, np.arange(nrows))
    assert np.all(_col(ms, "INTERVAL") == 6.048) and np.all(_col(ms, "EXPOSURE") == 6.048)
    assert time[0] == pytest.approx(truth["observation"]["start_mjd_s"] + 3.024, abs=1e-5)
    # the other subtables
    assert list(_col(ms, "TELESCOPE_NAME", "OBSERVATION")) == ["ALMA"]
    assert list(_col(ms, "PROJECT", "OBSERVATION")) == ["2099.1.00001.S"]
    assert list(_col(ms, "ORIGIN", "HISTORY")) == ["almarules simulate"]
    with table(str(ms / "FIELD"), ack=False) as t:
        d = t.getcell("PHASE_DIR", 3)
        assert d.shape == (1, 2) and np.degrees(d[0, 0]) == pytest.approx(240.0) and np.degrees(d[0, 1]) == pytest.approx(-30.0)
    with table(str(ms / "SOURCE"), ack=False) as t:
        assert t.nrows() == 4 * 2
        rows = [r for r in range(t.nrows()) if t.getcell("NAME", r) == "SIMGAL_1" and t.getcell("SPECTRAL_WINDOW_ID", r) == 1]
        assert list(t.getcell("REST_FREQUENCY", rows[0])) == [230.538e9]
        assert list(t.getcell("TRANSITION", rows[0])) == ["CO(2-1)"]


# ---------------------------------------------------------------- visibilities
def _pb(model: str, rho: float, nu: np.ndarray, diam: float) -> np.ndarray:
    """The primary beam a pointing sees a component through: a Gaussian written out here, or the
    imager's model (kernels.primary_beam, itself tested against CASA's tables in test_primary_beam)."""
    if model == "gaussian":
        return np.exp(-4 * math.log(2) * rho ** 2 / (1.12 * C / (nu * diam)) ** 2)
    if model == "none":
        return np.ones(nu.size)
    from almarules.kernels.primary_beam import beam_profile

    return np.array([float(beam_profile(model, math.degrees(rho) * 3600, float(f), diam)) for f in nu])


def _analytic(ms: Path, truth: dict) -> np.ndarray:
    """The model re-evaluated from the truth file, row by row (no almarules kernels)."""
    time, fld, ddid, uvw = _col(ms, "TIME"), _col(ms, "FIELD_ID"), _col(ms, "DATA_DESC_ID"), _col(ms, "UVW")
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = [t.getcell("CHAN_FREQ", r) for r in range(t.nrows())]
    diam = float(_col(ms, "DISH_DIAMETER", "ANTENNA")[0])
    out = np.zeros((time.size, max(f.size for f in freqs), 2), np.complex128)
    by_field = {}
    for f in truth["fields"]:
        for k, fid in enumerate(f["field_ids"]):
            by_field[fid] = (f, k)
    for r in range(time.size):
        f, k = by_field[int(fld[r])]
        nu = freqs[int(ddid[r])]
        pra, pdec = np.radians(f["pointing_directions_deg"][k])
        v = np.zeros(nu.size, np.complex128)
        for c in f["components"]:
            ra, dec = math.radians(c["ra_deg"]), math.radians(c["dec_deg"])
            l = math.cos(dec) * math.sin(ra - pra)
            m = math.sin(dec) * math.cos(pdec) - math.cos(dec) * math.sin(pdec) * math.cos(ra - pra)
            n = math.sqrt(1 - l * l - m * m)
            rho = math.asin(math.sqrt(l * l + m * m))
            pb = _pb(truth["conventions"]["primary_beam_model"], rho, nu, diam)
            s = c["flux_jy_at_ref"] * (nu / c["reference_frequency_hz"]) ** c["spectral_index"]
            for ln in c.get("lines", []):
                fac = 1.0
                if ln["frame"] == "LSRK":
                    dop = f["doppler"]
                    fac = dop["topo_over_lsrk"][int(np.argmin(np.abs(np.array(dop["times_mjd_s"]) - time[r])))]
                sig = ln["fwhm_hz"] * fac / (2 * math.sqrt(2 * math.log(2)))
                s = s + ln["peak_jy"] * np.exp(-0.5 * ((nu - ln["centre_hz"] * fac) / sig) ** 2)
            u, vv, w = uvw[r, 0] * nu / C, uvw[r, 1] * nu / C, uvw[r, 2] * nu / C
            term = s * pb * np.exp(2j * math.pi * (u * l + vv * m + w * (n - 1)))
            if c["shape"] == "gaussian":
                pa = math.radians(c["pa_deg"])
                ua = u * math.sin(pa) + vv * math.cos(pa)
                ub = u * math.cos(pa) - vv * math.sin(pa)
                term = term * np.exp(-math.pi ** 2 / (4 * math.log(2)) * (
                    (c["major_fwhm_arcsec"] * ARCSEC * ua) ** 2 + (c["minor_fwhm_arcsec"] * ARCSEC * ub) ** 2))
            v += term
        out[r, :nu.size, 0] = v
        out[r, :nu.size, 1] = v
    return out


def _data(ms: Path, spw: int):
    with table(str(ms), ack=False) as t:
        sel = t.query(f"DATA_DESC_ID=={spw}")
        return sel.getcol("DATA"), sel.getcol("FLAG")


def test_noiseless_uncorrupted_data_equal_the_analytic_model(runs):
    ms, truth = runs["clean"]["path"], runs["clean"]["truth"]
    model = _analytic(ms, truth)
    ddid = _col(ms, "DATA_DESC_ID")
    for spw, nchan in ((0, 32), (1, 64)):
        data, _ = _data(ms, spw)
        expect = model[ddid == spw, :nchan]
        assert data.dtype == np.complex64
        # float32 precision of the largest visibility (2.5 Jy): ~1.5e-7 Jy
        np.testing.assert_allclose(data, expect, rtol=0, atol=4e-7)
    # the line is there: the target's FDM spectrum peaks near 229.0 GHz at ~80 mJy + 20 mJy continuum
    data, _ = _data(ms, 1)
    tgt = _col(ms, "FIELD_ID")[ddid == 1] == 3
    spec = np.abs(data[tgt, :, 0].mean(axis=0))
    assert 0.09 < spec.max() < 0.11 and 25 < int(np.argmax(spec)) < 40
    # calibrators at their phase centres: real, the flux with its spectral index
    cal = _col(ms, "FIELD_ID")[ddid == 0] == 0
    d0, _ = _data(ms, 0)
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    np.testing.assert_allclose(d0[cal, :, 0], np.broadcast_to(2.5 * (freq / 230e9) ** -0.3, d0[cal, :, 0].shape),
                               rtol=1e-6)


def test_uvw_against_an_independent_erfa_computation(runs):
    import erfa
    from astropy.coordinates import GCRS, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    import astropy.units as u

    ms = runs["clean"]["path"]
    pos = _col(ms, "POSITION", "ANTENNA")
    phase_dir = _col(ms, "PHASE_DIR", "FIELD")[:, 0, :]
    time, a1, a2, uvw, fld = (_col(ms, c) for c in ("TIME", "ANTENNA1", "ANTENNA2", "UVW", "FIELD_ID"))
    baseline = pos[a1] - pos[a2]
    # a rotation of the baseline: |uvw| = |B| on every row
    np.testing.assert_allclose(np.linalg.norm(uvw, axis=1), np.linalg.norm(baseline, axis=1), rtol=1e-12)
    iers.conf.auto_download = False
    expect = np.empty_like(uvw)
    for t in np.unique(time):
        rows = time == t
        ra, dec = phase_dir[fld[rows][0]]
        tt = Time(t / 86400.0, format="mjd", scale="utc")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xp, yp = iers.earth_orientation_table.get().pm_xy(tt)
            c2t = erfa.c2t06a(tt.tt.jd1, tt.tt.jd2, tt.ut1.jd1, tt.ut1.jd2, xp.to_value("rad"), yp.to_value("rad"))
            app = SkyCoord(ra * u.rad, dec * u.rad, frame="icrs").transform_to(GCRS(obstime=tt))
        s = np.array([math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])
        east = np.array([-math.sin(ra), math.cos(ra), 0.0])
        north = np.cross(s, east)
        sa = np.array([math.cos(app.dec.rad) * math.cos(app.ra.rad), math.cos(app.dec.rad) * math.sin(app.ra.rad),
                       math.sin(app.dec.rad)])
        # the aberration rotation apparent -> catalogue direction (casacore and CASA apply it)
        v, cosang = np.cross(sa, s), float(sa @ s)
        vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        rot = np.eye(3) + vx + vx @ vx / (1 + cosang)
        expect[rows] = baseline[rows] @ (np.stack([east, north, s]) @ rot @ c2t.T).T
    err = np.linalg.norm(uvw - expect, axis=1) / np.linalg.norm(baseline, axis=1)
    assert err.max() < 1e-5
    # u, v rotate with time (earth rotation) within a scan of the target
    tgt = (fld == 3) & (a1 == 0) & (a2 == 5)
    ang = np.unwrap(np.arctan2(uvw[tgt, 1], uvw[tgt, 0]))
    assert abs(ang[-1] - ang[0]) > 1e-3


def test_reproduces_the_casa_simulation(tmp_path, shared_ms):
    """The CASA-made alma_sim.ms: same rows, UVW to 1e-5, and its DATA = truth gains x our model + noise."""
    casa = shared_ms("alma_sim.ms")
    truth = json.loads((SHARED_DATA / "alma_sim.truth.json").read_text())
    data = _raw(SMALL)
    data.update({"array": "C40-3", "antennas": None, "flags": {}, "noise": {"enabled": False},
                 "corruptions": {"enabled": False}})
    data["schedule"] = {"start": "2024-06-15T02:40:37", "duration": "1180 s", "integration": "36.288 s",
                        "bandpass_scan": "108.864 s", "phase_scan": "36.288 s", "target_scan": "181.44 s",
                        "check_scan": "36.288 s", "scan_gap": "30 s"}
    data["spws"] = [{"mode": "TDM", "nchan": 64, "start_frequency": "230.015625 GHz", "channel_width": "31.25 MHz"},
                    {"mode": "FDM", "nchan": 120, "centre_frequency": "229 GHz", "channel_width": "1.953125 MHz"}]
    ours = Path(simulate(parse_sim_config(data, "casa"), tmp_path / "ours.ms")["ms"][0])
    for c in ("ANTENNA1", "ANTENNA2", "FIELD_ID", "DATA_DESC_ID", "SCAN_NUMBER", "STATE_ID"):
        assert np.array_equal(_col(casa, c), _col(ours, c)), c
    np.testing.assert_allclose(_col(casa, "TIME"), _col(ours, "TIME"), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(_col(casa, "POSITION", "ANTENNA"), _col(ours, "POSITION", "ANTENNA"))
    ua, ub = _col(casa, "UVW"), _col(ours, "UVW")
    assert (np.linalg.norm(ua - ub, axis=1) / np.linalg.norm(ua, axis=1)).max() < 1e-5
    # CASA's DATA = g_i g_j* b_i b_j* model + noise: undo with the CASA truth, compare with our model
    gt, _, gain = truth_gains(truth)
    for spw in (0, 1):
        with table(str(casa / "SPECTRAL_WINDOW"), ack=False) as t:
            freq = t.getcell("CHAN_FREQ", spw)
        bp = truth_bandpass(truth, spw, freq)
        sigma = truth["corruptions"]["thermal_noise"]["per_spw"][str(spw)]["sigma_jy_per_visibility_component"]
        with table(str(casa), ack=False) as t, table(str(ours), ack=False) as o:
            sa, so = t.query(f"DATA_DESC_ID=={spw}"), o.query(f"DATA_DESC_ID=={spw}")
            d, m = sa.getcol("DATA"), so.getcol("DATA")
            ti = np.searchsorted(gt, sa.getcol("TIME") - 0.01)
            b1, b2 = sa.getcol("ANTENNA1"), sa.getcol("ANTENNA2")
        for p in range(2):
            corr = gain[ti, b1, p][:, None] * np.conj(gain[ti, b2, p])[:, None] * bp[b1, p] * np.conj(bp[b2, p])
            resid = d[:, :, p] - corr * m[:, :, p]
            assert resid.real.std() == pytest.approx(sigma, rel=0.01)
            assert resid.imag.std() == pytest.approx(sigma, rel=0.01)
            # and the model explains the data: regression coefficient 1 within the noise
            x_ = corr * m[:, :, p]
            coef = np.vdot(x_, d[:, :, p]) / np.vdot(x_, x_)
            assert abs(coef - 1) < 5 * sigma / math.sqrt(np.vdot(x_, x_).real) + 1e-3


# ---------------------------------------------------------------- noise, weights, corruptions
def test_noise_matches_the_radiometer_equation_and_weights(runs):
    ms = runs["noise"]["path"]
    # sigma from the radiometer equation, computed here from the MS metadata and the config
    diam = _col(ms, "DISH_DIAMETER", "ANTENNA")[0]
    sefd = 2 * 1.380649e-23 * 100.0 / (0.7 * math.pi * diam ** 2 / 4) / 1e-26
    t_int = _col(ms, "INTERVAL")[0]
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        ebw = [t.getcell("EFFECTIVE_BW", r)[0] for r in range(2)]
    for spw in (0, 1):
        sigma = sefd / math.sqrt(2 * ebw[spw] * t_int)
        data, _ = _data(ms, spw)
        # ~170k/340k samples per part: the standard error of a sample std is < 0.2%; allow 1%
        assert data.real.std() == pytest.approx(sigma, rel=0.01)
        assert data.imag.std() == pytest.approx(sigma, rel=0.01)
        assert abs(data.mean()) < 6 * sigma / math.sqrt(data.size)
        with table(str(ms), ack=False) as t:
            sel = t.query(f"DATA_DESC_ID=={spw}")
            s, w = sel.getcol("SIGMA"), sel.getcol("WEIGHT")
        assert s.shape[1] == 2 and np.all(s == np.float32(sigma))
        np.testing.assert_allclose(w, 1 / s.astype(np.float64) ** 2, rtol=1e-6)
        assert runs["noise"]["truth"]["thermal_noise"]["per_spw"][str(spw)]["sigma_jy"] == pytest.approx(sigma, rel=1e-12)


def test_corruptions_equal_gains_and_bandpasses_of_the_truth(runs):
    clean, corrupt = runs["clean"]["path"], runs["corrupt"]["path"]
    truth = runs["corrupt"]["truth"]
    g = truth["corruptions"]["gains"]
    gains = np.array(g["amplitude"]) * np.exp(1j * np.radians(np.array(g["phase_deg"])))  # (ant, pol, time)
    times = np.array(g["times_mjd_s"])
    amp = np.abs(gains)
    assert 0.85 < amp.mean() < 1.15 and 0.02 < amp.std() < 0.2
    assert 5 < np.degrees(np.angle(gains)).std() < 60
    ddid, time = _col(corrupt, "DATA_DESC_ID"), _col(corrupt, "TIME")
    a1, a2 = _col(corrupt, "ANTENNA1"), _col(corrupt, "ANTENNA2")
    for spw in (0, 1):
        bpj = truth["corruptions"]["bandpass"]["per_spw"][str(spw)]
        with table(str(corrupt / "SPECTRAL_WINDOW"), ack=False) as t:
            freq = t.getcell("CHAN_FREQ", spw)
        n = freq.size
        x = (np.arange(n) - (n - 1) / 2) / (n - 1)
        co = {k: np.array(v) for k, v in bpj.items() if k != "nu_centre"}
        bp = (1 + co["slope"][..., None] * x + co["ripple"][..., None] * np.cos(
            2 * np.pi * co["cycles"][..., None] * x + co["ripple_phase"][..., None])) * np.exp(
            1j * (co["phase0"][..., None] + 2 * np.pi * co["delay"][..., None] * (freq - bpj["nu_centre"])))
        d_clean, _ = _data(clean, spw)
        d_corr, _ = _data(corrupt, spw)
        rows = ddid == spw
        ti = np.searchsorted(times, time[rows] - 1e-3)
        for p in range(2):
            fac = (gains[a1[rows], p, ti] * np.conj(gains[a2[rows], p, ti]))[:, None] * bp[a1[rows], p] * np.conj(
                bp[a2[rows], p])
            np.testing.assert_allclose(d_corr[:, :, p], fac * d_clean[:, :, p], rtol=0,
                                       atol=2e-6 * np.abs(d_clean).max())


def test_flags(runs):
    ms, truth = runs["full"]["path"], runs["full"]["truth"]
    names = list(_col(ms, "NAME", "ANTENNA"))
    bad = names.index("DV03")
    a1, a2, ddid = _col(ms, "ANTENNA1"), _col(ms, "ANTENNA2"), _col(ms, "DATA_DESC_ID")
    flag_row = _col(ms, "FLAG_ROW")
    with_bad = (a1 == bad) | (a2 == bad)
    assert np.array_equal(flag_row, with_bad)
    d0, f0 = _data(ms, 0)
    d1, f1 = _data(ms, 1)
    assert f0[with_bad[ddid == 0]].all() and f1[with_bad[ddid == 1]].all()
    good0 = f0[~with_bad[ddid == 0]]
    assert good0[:, [0, 1, 30, 31]].all() and not good0[:, 2:30].any()
    assert not f1[~with_bad[ddid == 1]].any()
    assert truth["flags"]["antennas"] == ["DV03"]


def test_same_seed_same_data_other_seed_other_data(runs, tmp_path):
    again = Path(simulate(_cfg(), tmp_path / "again.ms")["ms"][0])
    d1, _ = _data(runs["full"]["path"], 1)
    d2, _ = _data(again, 1)
    assert d1.tobytes() == d2.tobytes()
    other = Path(simulate(_cfg(), tmp_path / "other.ms", seed=5)["ms"][0])
    d3, _ = _data(other, 1)
    assert not np.array_equal(d1, d3)
    t1 = json.loads((tmp_path / "again.truth.json").read_text())
    t2 = runs["full"]["truth"]
    assert t1["corruptions"]["gains"] == t2["corruptions"]["gains"]


# ---------------------------------------------------------------- schedule, EBs, mosaics
def test_two_execution_blocks_mosaic_atmosphere_and_primary_beam(tmp_path):
    data = _raw(ACA)
    data["schedule"].update({"duration": "8 min", "bandpass_scan": "40 s", "target_scan": "2 min",
                             "atmosphere_scans": True, "execution_blocks": 2, "eb_gap": "5 min"})
    data["spws"] = [{"mode": "TDM", "nchan": 16, "start_frequency": "333 GHz", "channel_width": "125 MHz"},
                    {"mode": "FDM", "nchan": 48, "centre_frequency": "345.78 GHz", "channel_width": "0.48828125 MHz",
                     "online_hanning": True}]
    data["noise"] = {"enabled": False, "tsys": "150 K"}
    data["corruptions"] = {"enabled": False}
    seen = []
    res = simulate(parse_sim_config(data, "aca"), tmp_path / "aca.ms", progress=lambda d, t: seen.append((d, t)))
    assert [Path(p).name for p in res["ms"]] == ["aca_eb1.ms", "aca_eb2.ms"]
    assert [Path(p).name for p in res["truth_files"]] == ["aca_eb1.truth.json", "aca_eb2.truth.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aca_eb1.ms", "aca_eb1.truth.json", "aca_eb2.ms",
                                                          "aca_eb2.truth.json"]
    assert seen[-1][0] == seen[-1][1] and all(a[0] < b[0] for a, b in pairwise(seen))
    eb1, eb2 = res["execution_blocks"]
    assert eb2["observation"]["start_mjd_s"] == pytest.approx(eb1["observation"]["end_mjd_s"] + 300.0)
    assert eb1["execution_block"]["uid"] != eb2["execution_block"]["uid"]
    ms = Path(res["ms"][0])
    names = list(_col(ms, "NAME", "FIELD"))
    assert names.count("M_SIM_MOSAIC") == 7
    assert len(set(_col(ms, "SOURCE_ID", "FIELD")[[i for i, n in enumerate(names) if n == "M_SIM_MOSAIC"]])) == 1
    assert set(_col(ms, "NAME", "ANTENNA")) == {f"CM{i:02d}" for i in range(1, 11)}
    modes = list(_col(ms, "OBS_MODE", "STATE"))
    subs = _col(ms, "SUB_SCAN", "STATE")
    assert "CALIBRATE_ATMOSPHERE#ON_SOURCE" in modes
    assert sorted(subs[[i for i, m in enumerate(modes) if m == "OBSERVE_TARGET#ON_SOURCE"]]) == list(range(1, 8))
    n_atm = sum(1 for s in eb1["observation"]["scans"] if s["role"] == "atmosphere")
    with table(str(ms / "SYSCAL"), ack=False) as t:
        assert t.nrows() == n_atm * 10 * 2 == eb1["observation"]["syscal_rows"]
        assert np.all(t.getcol("TSYS") == 150.0)
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        assert t.getcell("EFFECTIVE_BW", 1)[0] == pytest.approx(2.667 * 0.48828125e6)
        assert t.getcell("RESOLUTION", 1)[0] == pytest.approx(2 * 0.48828125e6)
    # every pointing sees the sky through its own primary beam
    model = _analytic(ms, eb1)
    ddid = _col(ms, "DATA_DESC_ID")
    for spw, nchan in ((0, 16), (1, 48)):
        d, _ = _data(ms, spw)
        np.testing.assert_allclose(d, model[ddid == spw, :nchan], rtol=0, atol=2e-6)


def test_start_from_hour_angle_and_elevations(tmp_path):
    from astropy.coordinates import AltAz, EarthLocation, HADec, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    import astropy.units as u

    iers.conf.auto_download = False
    data = _raw(SMALL)
    data["schedule"].pop("start")
    data["schedule"].update({"date": "2024-03-01", "start_hour_angle": "1.5 h", "duration": "3 min"})
    data["noise"] = {"enabled": False}
    truth = simulate(parse_sim_config(data, "ha"), tmp_path / "ha.ms")["execution_blocks"][0]
    start = truth["observation"]["start_mjd_s"]
    assert truth["observation"]["start_utc"].startswith("2024-03-01")
    loc = EarthLocation.from_geodetic(-67.7549 * u.deg, -23.0229 * u.deg, 5056.8 * u.m)
    tgt = SkyCoord(240 * u.deg, -30 * u.deg)
    t = Time(start / 86400.0, format="mjd", scale="utc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ha = tgt.transform_to(HADec(obstime=t, location=loc)).ha.hour
    assert ha == pytest.approx(1.5, abs=0.002)
    f = next(f for f in truth["fields"] if f["name"] == "SIMGAL_1")
    scans = [s for s in truth["observation"]["scans"] if s["field"] == "SIMGAL_1"]
    first = Time((scans[0]["start_mjd_s"] + 3.024) / 86400.0, format="mjd", scale="utc")
    last = Time((scans[-1]["end_mjd_s"] - 3.024) / 86400.0, format="mjd", scale="utc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        el = [tgt.transform_to(AltAz(obstime=t_, location=loc)).alt.deg for t_ in (first, last)]
    # setting after transit: the range runs from the last integration to the first
    assert f["elevation_deg_range"] == pytest.approx([el[1], el[0]], abs=0.02)


def test_source_below_the_horizon_is_a_one_line_error(tmp_path):
    data = _raw(SMALL)
    data["schedule"]["start"] = "2024-06-15T14:40:00"  # the targets are below the horizon
    with pytest.raises(SimError) as info:
        simulate(parse_sim_config(data, "low"), tmp_path / "low.ms")
    assert "below min_elevation" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_outputs_exist_and_overwrite(tmp_path):
    cfg = _cfg(noise__enabled=False)
    simulate(cfg, tmp_path / "x.ms")
    with pytest.raises(SimError, match="exists"):
        simulate(cfg, tmp_path / "x.ms")
    simulate(cfg, tmp_path / "x.ms", seed=3, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ms", "x.truth.json"]
    assert json.loads((tmp_path / "x.truth.json").read_text())["seed"] == 3
    assert output_paths("dir/run.ms", 2)[1] == (Path("dir/run_eb2.ms"), Path("dir/run_eb2.truth.json"))


# ---------------------------------------------------------------- read back as facts
def test_reads_back_through_almarules_facts(runs):
    ms_mod = pytest.importorskip("almarules.engine.ms.facts")
    if not hasattr(ms_mod, "read_ms"):
        pytest.skip("the MS reader has no read_ms yet")
    ms, truth = runs["full"]["path"], runs["full"]["truth"]
    facts = ms_mod.read_ms([ms]).model_dump(mode="json")
    exp = truth["expected_facts"]
    assert facts["project"] == exp["project"] and facts["telescope"] == "ALMA" and facts["array"] == "12m"
    eb, eeb = facts["ebs"][0], exp["ebs"][0]
    for k in ("id", "ms_name", "n_antennas", "history_origins", "processing_history", "has_model_data"):
        assert eb[k] == eeb[k], k
    for k in ("start", "end", "integration_time"):
        assert eb[k] == pytest.approx(eeb[k], abs=1e-4), k
    assert [a["name"] for a in facts["antennas"]] == [a["name"] for a in exp["antennas"]]
    assert [a["station"] for a in facts["antennas"]] == [a["station"] for a in exp["antennas"]]
    np.testing.assert_allclose([a["position"] for a in facts["antennas"]], [a["position"] for a in exp["antennas"]])
    for s, e in zip(facts["spws"], exp["spws"], strict=True):
        for k in ("id", "name", "nchan", "frame", "correlator_mode", "online_hanning", "intents"):
            assert s[k] == e[k], k
        for k in ("start_frequency", "channel_width", "effective_bw"):
            assert s[k] == pytest.approx(e[k]), k
    for f, e in zip(facts["fields"], exp["fields"], strict=True):
        assert (f["id"], f["name"], f["intents"]) == (e["id"], e["name"], e["intents"])
        assert (f["ra"], f["dec"]) == pytest.approx((e["ra"], e["dec"]), abs=1e-9)
    assert [(s["number"], s["intents"], s["field_ids"]) for s in facts["scans"]] == \
        [(s["number"], s["intents"], s["field_ids"]) for s in exp["scans"]]
    for w, e in zip(sorted(facts["weights"], key=lambda w: (w["field"], w["spw"])),
                    sorted(exp["weights"], key=lambda w: (w["field"], w["spw"])), strict=True):
        assert (w["field"], w["spw"], w["rows"]) == (e["field"], e["spw"], e["rows"])
        assert w["sum_weight"] == pytest.approx(e["sum_weight"], rel=1e-5)
        assert w["flagged_fraction"] == pytest.approx(e["flagged_fraction"], abs=1e-9)


# ---------------------------------------------------------------- the command
def _cli(argv):
    from almarules.engine.cli.simulate import add_arguments, cmd_simulate

    p = argparse.ArgumentParser()
    add_arguments(p)
    return cmd_simulate(p.parse_args(argv))


def test_command(tmp_path, capsys):
    from almarules.engine.cli.app import UserError

    out = tmp_path / "c.ms"
    assert _cli([str(SMALL), "-o", str(out), "--no-noise", "--no-corruptions", "--seed", "4"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "5280 rows" in text
    truth = json.loads((tmp_path / "c.truth.json").read_text())
    assert truth["seed"] == 4 and not truth["thermal_noise"]["enabled"] and not truth["corruptions"]["enabled"]
    with pytest.raises(UserError, match="exists"):
        _cli([str(SMALL), "-o", str(out)])
    assert _cli([str(SMALL), "-o", str(out), "--force", "--quiet"]) == 0
    with pytest.raises(UserError, match="no such config"):
        _cli([str(tmp_path / "nope.yaml"), "-o", str(out)])
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.read_text().replace("nchan: 64", "nchan: many"))
    with pytest.raises(UserError) as info:
        _cli([str(bad), "-o", str(tmp_path / "d.ms")])
    assert "spws[1].nchan" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- bad configs
BAD = [
    ({"spws": [{"mode": "TDM", "nchan": 32, "start_frequency": "230 GHz", "channel_width": "10 Jy"}]},
     "spws[0].channel_width: '10 Jy' is not compatible with Hz"),
    ({"spws": [{"mode": "TDM", "nchan": 32, "channel_width": "10 MHz"}]},
     "spws[0]: give exactly one of 'start_frequency' and 'centre_frequency'"),
    ({"nosie": {}}, "nosie: unknown key"),
    ({"fields": [{"name": "X", "ra": "abc", "dec": 0, "intents": ["TARGET"]}]}, "fields[0].ra: cannot read 'abc'"),
    ({"fields": [{"name": "X", "ra": 10, "dec": 95, "intents": ["TARGET"]}]}, "fields[0].dec: declination 95"),
    ({"fields": [{"name": "X", "ra": 10, "dec": 5, "intents": ["TRAGET"]}]}, "fields[0].intents[0]"),
    ({"fields": [{"name": "X", "ra": 10, "dec": 5, "intents": ["PHASE"]}]}, "fields: no field has the TARGET intent"),
    ({"flags": {"channels": {0: [[0, 99]]}}}, "flags.channels[0]: range [0, 99] is outside channels 0..31"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"noise": {"tsys": True}}, "noise.tsys: expected a quantity in K, got a boolean"),
    ({"schedule": {"start": "yesterday"}}, "schedule: start: cannot read 'yesterday'"),
    ({"schedule": {"start": "2024-06-15T02:40:00", "date": "2024-06-15"}}, "schedule: give either 'start'"),
    ({"fields": [{"name": "X", "ra": 10, "dec": 5, "intents": ["TARGET"],
                  "components": [{"shape": "gaussian", "flux": 1}]}]}, "fields[0].components[0]: a gaussian needs"),
    ({"fields": [{"name": "X", "ra": 10, "dec": 5, "intents": ["TARGET"],
                  "components": [{"lines": [{"peak": "1 Jy", "frequency": "230 GHz"}]}]}]},
     "fields[0].components[0].lines[0]: give the line width 'fwhm'"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_configs_give_one_line_errors_naming_the_field(change, message):
    data = _raw(SMALL)
    for k, v in change.items():
        if k == "schedule":
            data["schedule"] = v
        else:
            data[k] = v
    with pytest.raises(SimConfigError) as info:
        parse_sim_config(data, "cfg.yaml")
    text = str(info.value)
    assert text.startswith("cfg.yaml: ") and message in text, text
    assert "\n" not in text


def test_bad_arrays_and_antennas_and_yaml(tmp_path):
    for change, message in (({"array": "C-99"}, "array: no configuration 'C-99'"),
                            ({"flags": {"antennas": ["XX01"]}}, "flags.antennas: no antenna or pad 'XX01'"),
                            ({"antennas": 99}, "antennas: 99 asked, the configuration has 43 pads"),
                            ({"antennas": ["DA41", "ZZ"]}, "antennas: no antenna or pad 'ZZ'")):
        data = _raw(SMALL)
        data.update(change)
        with pytest.raises(SimConfigError) as info:
            simulate(parse_sim_config(data, "cfg"), tmp_path / "never.ms")
        assert message in str(info.value) and "\n" not in str(info.value)
    f = tmp_path / "broken.yaml"
    f.write_text("array: C-1\nfields: [\n")
    with pytest.raises(SimConfigError, match=r"broken.yaml: not valid YAML \(line \d+\)"):
        load_sim_config(f)
    with pytest.raises(SimConfigError, match="cannot read"):
        load_sim_config(tmp_path / "missing.yaml")
    assert list(p.name for p in tmp_path.iterdir()) == ["broken.yaml"]


def test_examples_load():
    for f in sorted((REPO / "examples" / "sim").glob("*.yaml")):
        cfg = load_sim_config(f)
        assert cfg.fields and cfg.spws
