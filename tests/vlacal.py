"""The CASA NGC 5921 tutorial calibration in miniature, with `kernels.gaincal`: a copy of the real,
uncalibrated VLA ngc5921.ms with CORRECTED_DATA, for tests that image real data.

Steps (cross-correlations only; RR and LL solved separately; reference antenna `15` = VLA:N2,
the tutorial's):

1. 3C286 (field 0, ``1331+30500002_0``) is a point source at the phase centre of flux density
   S(nu) from Perley & Butler (2017, ApJS 230, 7, table 6):
   log10 S = 1.2481 - 0.4507 x - 0.1798 x^2 + 0.0357 x^3, x = log10(nu / GHz)
   (15.02 Jy at 1.4134 GHz; the tutorial's setjy used 14.76 Jy, Perley-Taylor 1999).
2. Bandpass from 3C286: per-integration gains on channels 6-56 (the tutorial's ``0:6~56``), then
   one solution per channel over the whole scan with those gains taken out, normalised to mean
   amplitude 1 and mean phase 0 (`gaincal.solve_bandpass`).
3. Gains per integration (30 s), bandpass divided out, channels 6-56: on 3C286 with S(nu), on
   1445+099 (field 1, ``1445+09900002_0``) with a 1 Jy point model.
4. Flux scale: S(1445+099) = mean over antennas and pols of (mean |g_1445| / mean |g_3C286|)^2
   (`gaincal.fluxscale`); the 1445+099 gains are divided by sqrt(S).
5. Applied: 3C286 and 1445+099 with their own per-integration solutions; N5921_2 (field 2) with
   the rescaled 1445+099 gains interpolated linearly in time (amplitude and phase); the bandpass
   on every field. CORRECTED_DATA = DATA / (g_i g_j^* b_i b_j^*); WEIGHT_SPECTRUM (filled in
   this MS) times |c|^2 per channel, WEIGHT times the channel mean of |c|^2 and SIGMA divided by
   its square root; FLAG set where a gain or bandpass is missing. Autocorrelation rows keep
   CORRECTED_DATA = DATA and their weights and flags.

The weights stay relative (the 1995 UVFITS values scaled), not absolute Jy^-2. A summary of the
solutions (3C286 flux, bootstrapped flux, reference antenna, ...) is written to
``<dest>.calibration.json`` beside the copy, and the solutions themselves (bandpass, both gain
tables, the 1445+099 one before rescaling) to ``<dest>.calibration.npz`` (`load_solutions`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from almarules.kernels import gaincal

PB2017_3C286 = (1.2481, -0.4507, -0.1798, 0.0357)  # Perley & Butler 2017, table 6
FIELDS = {"flux": (0, "1331+30500002_0"), "phase": (1, "1445+09900002_0"), "target": (2, "N5921_2")}
GAIN_CHANNELS = slice(6, 57)  # CASA tutorial: spw '0:6~56'
REFANT_NAME = "15"  # VLA:N2, the tutorial's reference antenna
RR_LL = [5, 8]  # casacore Stokes codes


def flux_3c286(freq_hz) -> np.ndarray:
    """3C286 flux density (Jy) at `freq_hz` (Hz): the Perley & Butler (2017) polynomial."""
    x = np.log10(np.asarray(freq_hz, dtype=np.float64) / 1e9)
    return 10.0 ** sum(a * x ** k for k, a in enumerate(PB2017_3C286))


def summary_path(dest: Path, suffix: str = ".calibration.json") -> Path:
    """Where `calibrated_ngc5921` writes its JSON summary (or, with suffix ".calibration.npz", the
    solutions) for the copy `dest`."""
    return Path(dest).with_name(Path(dest).name + suffix)


def load_solutions(dest: Path) -> dict:
    """The solutions saved beside the copy `dest`: {"bandpass": (nant, nchan, 2), "flux": GainTable
    of 3C286, "phase": GainTable of 1445+099 (rescaled to its bootstrapped flux)}."""
    with np.load(summary_path(dest, ".calibration.npz")) as z:
        out = {"bandpass": z["bandpass"]}
        for name in ("flux", "phase"):
            out[name] = gaincal.GainTable(**{f: z[f"{name}_{f}"] for f in _TABLE_FIELDS})
    return out


_TABLE_FIELDS = ("times", "gains", "flags", "converged", "n_used", "refant")


def calibrated_ngc5921(ms: Path, dest: Path) -> Path:
    """Copy ngc5921.ms `ms` to `dest` (must not exist; the source is only copied, never opened) and
    calibrate the copy as described in the module doc; returns `dest`. On any error the copy is
    removed."""
    ms, dest = Path(ms), Path(dest)
    shutil.copytree(ms, dest)
    try:
        summary, sol = _calibrate_in_place(dest)
        summary_path(dest).write_text(json.dumps(summary, indent=1))
        arrays = {"bandpass": sol["bandpass"]}
        for name, key in (("flux", "g_flux"), ("phase", "g_phase")):
            arrays.update({f"{name}_{f}": getattr(sol[key], f) for f in _TABLE_FIELDS})
        np.savez(summary_path(dest, ".calibration.npz"), **arrays)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        for suffix in (".calibration.json", ".calibration.npz"):
            summary_path(dest, suffix).unlink(missing_ok=True)
        raise
    return dest


def _read_setup(ms: Path) -> tuple[np.ndarray, int, int]:
    """(channel frequencies (Hz), number of antennas, reference antenna id); checks the fields, the
    correlations and the single data description."""
    from casacore.tables import table

    with table(str(ms / "FIELD"), ack=False) as t:
        names = list(t.getcol("NAME"))
    for fid, name in FIELDS.values():
        if fid >= len(names) or names[fid] != name:
            raise ValueError(f"{ms}/FIELD: row {fid} column NAME is not {name!r} ({names})")
    with table(str(ms / "DATA_DESCRIPTION"), ack=False) as t:
        if t.nrows() != 1:
            raise ValueError(f"{ms}/DATA_DESCRIPTION: expected 1 row, found {t.nrows()}")
        spw, pol = int(t.getcell("SPECTRAL_WINDOW_ID", 0)), int(t.getcell("POLARIZATION_ID", 0))
    with table(str(ms / "POLARIZATION"), ack=False) as t:
        corr = [int(c) for c in t.getcell("CORR_TYPE", pol)]
    if corr != RR_LL:
        raise ValueError(f"{ms}/POLARIZATION: row {pol} column CORR_TYPE is {corr}, expected RR, LL {RR_LL}")
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq = np.asarray(t.getcell("CHAN_FREQ", spw), dtype=np.float64)
    with table(str(ms / "ANTENNA"), ack=False) as t:
        ant_names = list(t.getcol("NAME"))
    return freq, len(ant_names), ant_names.index(REFANT_NAME)


def _calibrate_in_place(ms: Path) -> tuple[dict, dict]:
    """Solve and apply (module doc) on the MS `ms`, which is modified; returns (summary, solutions)."""
    from casacore.tables import makecoldesc, maketabdesc, table

    freq, nant, refant = _read_setup(ms)
    s_flux = flux_3c286(freq)
    with table(str(ms), ack=False, readonly=False) as t:
        if "CORRECTED_DATA" in t.colnames():
            raise ValueError(f"{ms}: already has CORRECTED_DATA")
        has_ws = "WEIGHT_SPECTRUM" in t.colnames() and t.iscelldefined("WEIGHT_SPECTRUM", 0)
        cols = ["DATA", "FLAG", "WEIGHT", "SIGMA", "TIME", "ANTENNA1", "ANTENNA2", "FIELD_ID", "FLAG_ROW"]
        d = {c: t.getcol(c) for c in cols + (["WEIGHT_SPECTRUM"] if has_ws else [])}
        rows = np.flatnonzero(d["ANTENNA1"] != d["ANTENNA2"])
        x = {c: v[rows] for c, v in d.items()}
        x["FLAG"] = x["FLAG"] | x["FLAG_ROW"][:, None, None]
        wchan = x["WEIGHT_SPECTRUM"] if has_ws else np.broadcast_to(x["WEIGHT"][:, None, :], x["DATA"].shape)
        sol = _solve(x, wchan, s_flux, nant, refant)
        corrected, flag, wrow, wspec = _apply(x, wchan, has_ws, sol)

        dm = t.getdminfo("DATA")
        spec = {"DEFAULTTILESHAPE": dm["SPEC"]["DEFAULTTILESHAPE"]} if "DEFAULTTILESHAPE" in dm.get("SPEC", {}) else {}
        t.addcols(maketabdesc(makecoldesc("CORRECTED_DATA", t.getcoldesc("DATA"))),
                  {"TYPE": dm["TYPE"], "NAME": "CorrectedDataTiled", "SPEC": spec})
        out = d["DATA"].copy()
        out[rows] = corrected.astype(out.dtype)
        t.putcol("CORRECTED_DATA", out)
        for col, new in (("FLAG", flag), ("WEIGHT", wrow)):
            full = d[col].copy()
            full[rows] = new.astype(full.dtype)
            t.putcol(col, full)
        sigma = d["SIGMA"].copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(x["WEIGHT"] > 0, wrow / x["WEIGHT"], 0.0)
            sigma[rows] = np.where(scale > 0, x["SIGMA"] / np.sqrt(scale), x["SIGMA"]).astype(sigma.dtype)
        t.putcol("SIGMA", sigma)
        if has_ws:
            full = d["WEIGHT_SPECTRUM"].copy()
            full[rows] = wspec.astype(full.dtype)
            t.putcol("WEIGHT_SPECTRUM", full)
        t.flush()
    fs = sol["fluxscale"]
    return ({"flux_3c286_jy": {"freq_hz": float(freq.mean()), "value": float(flux_3c286(freq.mean()))},
            "flux_1445_jy": fs.flux, "flux_1445_err_jy": fs.error, "flux_1445_nratios": fs.n,
            "refant": refant, "gain_channels": [GAIN_CHANNELS.start, GAIN_CHANNELS.stop - 1],
            "converged": bool(sol["g_flux"].converged.all() and sol["g_phase"].converged.all())}, sol)


def _solve(x: dict, wchan: np.ndarray, s_flux: np.ndarray, nant: int, refant: int) -> dict:
    """Bandpass, per-integration gains of both calibrators, and the flux scale (module doc)."""
    fid = x["FIELD_ID"]
    ch = GAIN_CHANNELS

    def sel(field: int):
        m = fid == field
        return m, x["DATA"][m], wchan[m], x["FLAG"][m], x["TIME"][m], x["ANTENNA1"][m], x["ANTENNA2"][m]

    m0, v0, w0, f0, t0, a10, a20 = sel(FIELDS["flux"][0])
    model0 = s_flux[:, None]  # (nchan, 1)
    g_init = gaincal.solve_interval_gains(v0[:, ch], model0[ch], w0[:, ch], f0[:, ch], t0, a10, a20, nant,
                                          refant=refant)
    bandpass = gaincal.solve_bandpass(v0, model0, w0, f0, a10, a20, nant,
                                      gains=gaincal.gains_for_rows(g_init, t0, a10, a20), refant=refant)

    def gains(v, w, f, t, a1, a2, model):
        vc, wc, fc = gaincal.apply(v, w, f, a1, a2, None, bandpass)
        return gaincal.solve_interval_gains(vc[:, ch], model, wc[:, ch], fc[:, ch], t, a1, a2, nant, refant=refant)

    g_flux = gains(v0, w0, f0, t0, a10, a20, model0[ch])
    _, v1, w1, f1, t1, a11, a21 = sel(FIELDS["phase"][0])
    g_phase_unit = gains(v1, w1, f1, t1, a11, a21, 1.0)
    fs = gaincal.fluxscale(g_flux, g_phase_unit)
    return {"bandpass": bandpass, "g_flux": g_flux, "g_phase": gaincal.rescale(g_phase_unit, fs.flux),
            "fluxscale": fs}


def _apply(x: dict, wchan: np.ndarray, has_ws: bool, sol: dict):
    """(corrected vis, flag, row weight, per-channel weight) of all cross-correlation rows."""
    fid, t, a1, a2 = x["FIELD_ID"], x["TIME"], x["ANTENNA1"], x["ANTENNA2"]
    table_of = {FIELDS["flux"][0]: sol["g_flux"], FIELDS["phase"][0]: sol["g_phase"],
                FIELDS["target"][0]: sol["g_phase"]}
    vis = np.zeros(x["DATA"].shape, np.complex128)
    flag = np.ones(x["DATA"].shape, bool)
    wrow = np.zeros(x["WEIGHT"].shape)
    wspec = np.zeros(x["DATA"].shape)
    for field in np.unique(fid):
        if int(field) not in table_of:
            raise ValueError(f"field {field}: no calibration defined")
        m = fid == field
        g = gaincal.gains_for_rows(table_of[int(field)], t[m], a1[m], a2[m])
        vis[m], wrow[m], flag[m] = gaincal.apply(x["DATA"][m], x["WEIGHT"][m], x["FLAG"][m], a1[m], a2[m], g,
                                                 sol["bandpass"])
        if has_ws:
            _, wspec[m], _ = gaincal.apply(x["DATA"][m], wchan[m], x["FLAG"][m], a1[m], a2[m], g, sol["bandpass"])
    return vis, flag, wrow, wspec
