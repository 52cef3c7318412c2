"""Calibration by the truth: the antenna gains and bandpasses of the CASA-made alma_sim.ms, rebuilt
from its truth file (``alma_sim.truth.json``, ``corruptions``), and a copy of the MS with them
divided out into CORRECTED_DATA. A stand-in for calibration solving, for tests of the imaging stage
that compare the recovered sky with the truth.

The corruption of a visibility of baseline (i, j), correlation (p, q), channel nu at time t is
``c = g_ip(t) conj(g_jq(t)) b_ip(nu) conj(b_jq(nu))`` and ``DATA = c * model + noise``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

#: MS CORR_TYPE (Stokes enum) of the linear-feed correlations -> the two feed indices (0 = X, 1 = Y)
LINEAR_CORR = {9: (0, 0), 10: (0, 1), 11: (1, 0), 12: (1, 1)}
TIME_TOL_S = 0.01


def truth_gains(truth: dict) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The true antenna gains: (times in MJD seconds (nt,), antenna names (nant), complex gains
    (nt, nant, 2) with the last axis X, Y). Antenna k is ``corruptions.gains.antennas[k]``."""
    g = truth["corruptions"]["gains"]
    times = np.asarray(g["times_mjd_s"], dtype=float)
    antennas = list(g["antennas"])
    gains = np.zeros((times.size, len(antennas), 2), complex)
    seen = set()
    for pa in g["per_antenna"]:
        k = antennas.index(pa["antenna"])
        seen.add(k)
        for p, pol in enumerate("XY"):
            gains[:, k, p] = np.asarray(pa["pol"][pol]["amp"]) * np.exp(1j * np.radians(pa["pol"][pol]["phase_deg"]))
    if len(seen) != len(antennas):
        missing = [a for k, a in enumerate(antennas) if k not in seen]
        raise ValueError(f"truth gains: no per_antenna entry for {missing}")
    return times, antennas, gains


def truth_bandpass(truth: dict, spw: int, freq_hz: np.ndarray) -> np.ndarray:
    """The true bandpass of spectral window `spw` at its channel frequencies `freq_hz` (Hz, in channel
    order): complex (nant, 2, nchan), antennas in the order of `truth_gains`, pols X, Y; 1 where the
    truth lists no coefficients. Formula: ``corruptions.bandpass.formula``."""
    antennas = list(truth["corruptions"]["gains"]["antennas"])
    freq = np.asarray(freq_hz, dtype=float)
    bp = np.ones((len(antennas), 2, freq.size), complex)
    x = (np.arange(freq.size) - (freq.size - 1) / 2) / max(freq.size - 1, 1)
    for r in truth["corruptions"]["bandpass"]["per_row"]:
        if r["spw"] == spw:
            k, p = antennas.index(r["antenna"]), "XY".index(r["pol"])
            amp = 1 + r["slope"] * x + r["ripple"] * np.cos(2 * np.pi * r["cycles"] * x + r["ripple_phase"])
            ph = r["phase_offset_deg"] + 360 * r["delay_ps"] * 1e-12 * (freq - r["nu_centre_hz"])
            bp[k, p] = amp * np.exp(1j * np.radians(ph))
    return bp


def match_times(gain_times: np.ndarray, times: np.ndarray, tol_s: float = TIME_TOL_S) -> np.ndarray:
    """Index into `gain_times` (s, sorted) of the gain time nearest each of `times` (s); ValueError
    if any time has no gain time within `tol_s`."""
    gt = np.asarray(gain_times, dtype=float)
    t = np.asarray(times, dtype=float)
    hi = np.clip(np.searchsorted(gt, t), 1, gt.size - 1) if gt.size > 1 else np.zeros(t.shape, int)
    lo = np.maximum(hi - 1, 0)
    idx = np.where(np.abs(gt[lo] - t) <= np.abs(gt[hi] - t), lo, hi)
    off = np.abs(gt[idx] - t)
    bad = off > tol_s
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of {t.size} times have no gain time within {tol_s} s, "
                         f"e.g. MJD {t[bad][0]:.3f} s (nearest off by {off[bad][0]:.3f} s)")
    return idx


def corruption(gains: np.ndarray, bandpass: np.ndarray, ti: np.ndarray, a1: np.ndarray, a2: np.ndarray,
               corr_feeds: list[tuple[int, int]]) -> np.ndarray:
    """c = g_ip conj(g_jq) b_ip conj(b_jq), complex (nrow, nchan, ncorr), for rows with gain-time index
    `ti`, truth antenna indices `a1`, `a2`, and the (p, q) feed pair of each correlation."""
    out = np.empty((ti.size, bandpass.shape[2], len(corr_feeds)), complex)
    for c, (p, q) in enumerate(corr_feeds):
        gg = gains[ti, a1, p] * np.conj(gains[ti, a2, q])
        out[:, :, c] = gg[:, None] * bandpass[a1, p] * np.conj(bandpass[a2, q])
    return out


def bandpass_weight_error(bandpass: np.ndarray) -> tuple[float, float]:
    """(rms, max) over baselines i < j, parallel hands and channels of |r - 1|, r = |b_i b_j|^2 divided
    by its mean over channels: the relative error of the per-channel weight that `calibrated_copy`
    gives by scaling the row WEIGHT by the channel mean of |c|^2. The gains do not enter (flat in
    frequency). `bandpass`: (nant, 2, nchan) as from `truth_bandpass`."""
    p2 = np.abs(bandpass) ** 2
    i, j = np.triu_indices(bandpass.shape[0], 1)
    prod = p2[i] * p2[j]  # (nbl, 2, nchan)
    r = prod / prod.mean(axis=-1, keepdims=True) - 1
    return float(np.sqrt(np.mean(r ** 2))), float(np.abs(r).max())


def calibrated_copy(ms: Path, truth: dict, dest: Path, chunk_rows: int = 8192) -> Path:
    """Copy MS `ms` to `dest` (which must not exist) and add CORRECTED_DATA = DATA / c, with c the
    true corruption g_ip conj(g_jq) b_ip conj(b_jq) of each row, channel and correlation; returns `dest`.

    Gains are matched to rows by TIME (within 0.01 s, else ValueError) and antennas by NAME (ANTENNA
    table) to ``corruptions.gains.antennas``; correlations must be linear (XX, XY, YX, YY); on any
    error the copy is removed. The source is only copied, never opened: casacore writes table.lock
    files into a table directory even on a read-only open. The main table is processed per
    DATA_DESC_ID in chunks of `chunk_rows` rows.

    WEIGHT is multiplied, and SIGMA divided by the square root of, the channel mean of |c|^2 per row
    and correlation (so SIGMA = 1/sqrt(WEIGHT) still holds where it held): dividing by c scales the
    noise by 1/|c|, so the exact weight of a channel is WEIGHT |c(nu)|^2. This is exact per channel
    only when |b_i b_j| is flat across the spw; it preserves the summed weight of the row. With the
    alma_sim bandpasses (amplitude slopes ~4 % rms, ripples 1-3 %) the per-channel weight is off by
    4.9 % (spw 0) / 5.4 % (spw 1) rms over baselines and channels, and by at most 26.2 % / 26.5 % at
    the band edge of the worst baseline (`bandpass_weight_error`; |b_i b_j|^2 has slope 2 (s_i + s_j)
    plus ripples). Weighted means stay unbiased; only their optimality suffers. WEIGHT_SPECTRUM and
    SIGMA_SPECTRUM are not handled (ValueError if filled).
    """
    ms, dest = Path(ms), Path(dest)
    shutil.copytree(ms, dest)
    try:
        _calibrate_in_place(dest, truth, chunk_rows)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _calibrate_in_place(ms: Path, truth: dict, chunk_rows: int) -> None:
    """Check MS `ms` against the truth, add CORRECTED_DATA and rescale WEIGHT and SIGMA (see
    `calibrated_copy`); all checks come before the first change."""
    from casacore.tables import makecoldesc, maketabdesc, table

    gt, antennas, gains = truth_gains(truth)
    with table(str(ms / "ANTENNA"), ack=False, readonly=True) as t:
        names = list(t.getcol("NAME"))
    missing = [n for n in names if n not in antennas]
    if missing:
        raise ValueError(f"{ms}/ANTENNA: antennas {missing} are not in the truth gains")
    ant_map = np.array([antennas.index(n) for n in names], dtype=int)
    with table(str(ms / "DATA_DESCRIPTION"), ack=False, readonly=True) as t:
        dd_spw, dd_pol = t.getcol("SPECTRAL_WINDOW_ID"), t.getcol("POLARIZATION_ID")
    with table(str(ms), ack=False, readonly=False) as t:
        cols = set(t.colnames())
        for c in ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM"):
            if c in cols and t.nrows() and t.iscelldefined(c, 0):
                raise ValueError(f"{ms}: {c} present; calibrated_copy does not scale it")
        if "CORRECTED_DATA" in cols:
            raise ValueError(f"{ms}: already has CORRECTED_DATA")
        match_times(gt, np.unique(t.getcol("TIME")))
        ddids = np.unique(t.getcol("DATA_DESC_ID"))
        with table(str(ms / "SPECTRAL_WINDOW"), ack=False, readonly=True) as st:
            bandpasses = {int(s): truth_bandpass(truth, int(s), st.getcell("CHAN_FREQ", int(s)))
                          for s in set(dd_spw[ddids])}
        feeds = {}
        with table(str(ms / "POLARIZATION"), ack=False, readonly=True) as pt:
            for pid in set(dd_pol[ddids]):
                types = [int(c) for c in pt.getcell("CORR_TYPE", int(pid))]
                if not set(types) <= LINEAR_CORR.keys():
                    raise ValueError(f"{ms}/POLARIZATION row {pid}: CORR_TYPE {types} are not linear (XX..YY)")
                feeds[int(pid)] = [LINEAR_CORR[c] for c in types]

        dm = t.getdminfo("DATA")
        spec = {"DEFAULTTILESHAPE": dm["SPEC"]["DEFAULTTILESHAPE"]} if "DEFAULTTILESHAPE" in dm.get("SPEC", {}) else {}
        t.addcols(maketabdesc(makecoldesc("CORRECTED_DATA", t.getcoldesc("DATA"))),
                  {"TYPE": dm["TYPE"], "NAME": "CorrectedDataTiled", "SPEC": spec})
        for dd in ddids:
            bp, fd = bandpasses[int(dd_spw[dd])], feeds[int(dd_pol[dd])]
            with t.query(f"DATA_DESC_ID=={int(dd)}") as sel:
                for start in range(0, sel.nrows(), chunk_rows):
                    n = min(chunk_rows, sel.nrows() - start)
                    ti = match_times(gt, sel.getcol("TIME", start, n))
                    a1 = ant_map[sel.getcol("ANTENNA1", start, n)]
                    a2 = ant_map[sel.getcol("ANTENNA2", start, n)]
                    c = corruption(gains, bp, ti, a1, a2, fd)
                    data = sel.getcol("DATA", start, n)
                    sel.putcol("CORRECTED_DATA", (data / c).astype(data.dtype), start, n)
                    scale = np.mean(np.abs(c) ** 2, axis=1)  # (nrow, ncorr)
                    w, s = sel.getcol("WEIGHT", start, n), sel.getcol("SIGMA", start, n)
                    sel.putcol("WEIGHT", (w * scale).astype(w.dtype), start, n)
                    sel.putcol("SIGMA", (s / np.sqrt(scale)).astype(s.dtype), start, n)
        t.flush()
