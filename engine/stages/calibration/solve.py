"""The calibration solves of one spectral window, as the stages use them: pure functions of the
visibilities (`visdata.CalData`) and the parameters the rules give, calling `kernels.gaincal`.

Conventions (see `kernels.gaincal`): V_ij = g_i conj(g_j) b_i conj(b_j) M_ij; gains and
bandpasses are per antenna and *receptor* (the parallel hands: XX, YY or RR, LL, in receptor
order); the model of a calibrator is a point source at its phase centre with flux density S(nu)
(Jy, Stokes I, unpolarised: each parallel hand sees S). Weights are the MS weights. A sample is
excluded where flagged. Solutions are referenced to `refant` (its phase 0) where it has data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from almarules.engine.stages.calibration.visdata import CalData
from almarules.kernels import gaincal


@dataclass
class Bandpass:
    """A bandpass solution: (nant, nchan, npol) complex, NaN where flagged; the phase-up gains that
    were taken out first; the channels averaged per solution."""

    solution: np.ndarray
    phaseup: gaincal.GainTable
    chanavg: int
    time: float

    @property
    def flags(self) -> np.ndarray:
        return ~np.isfinite(self.solution)


def channel_window(nchan: int, keep: int) -> slice:
    """The `keep` central channels of `nchan` (as many left out at each edge; the rules say how
    many to keep: ``spw.solve_channels``)."""
    keep = max(1, min(int(keep), nchan))
    start = (nchan - keep) // 2
    return slice(start, start + keep)


def visibility_snr(cd: CalData) -> float:
    """Signal-to-noise ratio of one visibility sample (one row, channel and parallel hand) of a
    point-source calibrator, measured on the data: per row and hand, |weighted channel mean of V|
    over the scatter of V about it (rms / sqrt(2) per real/imaginary part, bandpass ripple
    included), median over rows and hands. NaN without usable rows."""
    vis, w, flag = cd.parallel_hands()
    ok = ~flag & (w > 0) & np.isfinite(vis)
    n = gaincal.channel_sum(ok)
    good = n >= 3
    if not good.any():
        return float("nan")
    v = np.where(ok, vis, 0)
    mean = gaincal.channel_sum(v) / np.maximum(n, 1)
    resid = np.where(ok, vis - mean[:, None, :], 0)
    sigma = np.sqrt(gaincal.channel_sum(resid.real ** 2 + resid.imag ** 2) / np.maximum(n - 1, 1) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(mean) / sigma
    r = r[good & np.isfinite(r)]
    return float(np.median(r)) if r.size else float("nan")


def baselines_per_antenna(cd: CalData) -> float:
    """Median number of distinct baselines an antenna has in the data."""
    pairs = np.unique(np.stack([cd.ant1, cd.ant2]), axis=1)
    counts = np.bincount(pairs.ravel())
    return float(np.median(counts[counts > 0])) if counts.size else 0.0


def solution_snr(per_sample: float, baselines: float, samples: float) -> float:
    """SNR of one antenna's solution from `samples` samples on each of `baselines` baselines of
    per-sample SNR `per_sample`: per_sample * sqrt(baselines * samples)."""
    return float(per_sample * np.sqrt(max(baselines, 0.0) * max(samples, 0.0)))


def _model(flux: np.ndarray) -> np.ndarray:
    """A point-source model (nchan, 1) broadcastable to (nrow, nchan, npol) from S(nu) (nchan,)."""
    return np.asarray(flux, dtype=np.float64)[:, None]


def _antenna_log_amplitudes(lr: np.ndarray, ant1: np.ndarray, ant2: np.ndarray) -> np.ndarray:
    """Per-row log amplitude explained by antenna factors, lr_ij ~ l_i + l_j (each pol), by
    medians (robust to a few bad baselines): three sweeps of l_a = median over a's rows of
    (lr - l_other), vectorised over antennas on a padded (antenna, its rows) table."""
    nant = int(max(ant1.max(initial=-1), ant2.max(initial=-1))) + 1
    ants = np.concatenate([ant1, ant2])
    other = np.concatenate([ant2, ant1])
    rows = np.concatenate([np.arange(ant1.size)] * 2)
    order = np.argsort(ants, kind="stable")
    ants, other, rows = ants[order], other[order], rows[order]
    count = np.bincount(ants, minlength=nant)
    slot = np.arange(ants.size) - np.repeat(np.cumsum(count) - count, count)
    width = int(count.max(initial=0))
    table_rows = np.zeros((nant, max(width, 1)), np.int64)
    table_other = np.zeros((nant, max(width, 1)), np.int64)
    used = np.zeros((nant, max(width, 1)), bool)
    table_rows[ants, slot], table_other[ants, slot], used[ants, slot] = rows, other, True
    values = np.where(used[:, :, None], lr[table_rows], np.nan)  # (nant, width, npol)
    l = np.zeros((nant, lr.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(3):
            l = np.nan_to_num(np.nanmedian(values - l[table_other], axis=1))
    return l[ant1] + l[ant2]


def row_outliers(a: np.ndarray, b: np.ndarray, g: Optional[np.ndarray], k: float,
                 ant1: Optional[np.ndarray] = None, ant2: Optional[np.ndarray] = None) -> np.ndarray:
    """(nrow, npol) True where a row is an outlier, kept out of the next solution, from the rows'
    channel sums a, b (`gaincal.row_terms`, with the model and any known correction): its data over
    its prediction, a / (b g) with `g` = g_i conj(g_j) the solved gains at the row, deviates from
    1 by more than the median deviation plus `k` x 1.4826 MAD. Without gains (None) the screening
    uses amplitudes only: log |a / b| less the antenna factors that medians over each antenna's
    baselines explain (`ant1`, `ant2`), so that an antenna of low gain stays in (lowgainflag
    judges it) while one bad baseline, which could pull a least-squares solution towards itself,
    is left out."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = a / b
        if g is not None:
            dev = np.abs(ratio / g - 1)
        else:
            lr = np.log(np.abs(ratio))
            dev = np.abs(lr - _antenna_log_amplitudes(np.where(np.isfinite(lr), lr, np.nan), ant1, ant2))
    good = np.isfinite(dev)
    if good.sum() < 10 or not k or not np.isfinite(k):
        return np.zeros(dev.shape, bool)
    med = np.median(dev[good])
    mad = 1.4826 * np.median(np.abs(dev[good] - med))
    return good & (dev > med + k * max(mad, 1e-12))


def screen(cd: CalData, channels: slice, k: float) -> np.ndarray:
    """(nrow, npol) the rows of `cd` that the gain-free screening of `row_outliers` leaves out
    (channels `channels`, threshold `k`), computed once per data and kept on them. The screening
    compares amplitudes after per-antenna factors, which absorb the gains and bandpasses of any
    later step, so the same screen serves every solve of these data."""
    key = (channels.start, channels.stop, k)
    if key not in cd.screens:
        vis, w, flag = cd.parallel_hands()
        a, b, _ = gaincal.row_terms(vis[:, channels], np.ones((1, 1)), w[:, channels], flag[:, channels])
        cd.screens[key] = row_outliers(a, b, None, k, cd.ant1, cd.ant2)
    return cd.screens[key]


def _without(rows: np.ndarray, terms: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The row sums `terms` with the rows x polarisations `rows` (nrow, npol) left out."""
    return tuple(np.where(rows, 0, x) for x in terms)


def solve_bandpass(cd: CalData, flux: np.ndarray, nant: int, refant: Optional[int], *, phaseup_solint: object,
                   channels: slice, chanavg: int = 1, reject: float = 0.0) -> Bandpass:
    """Phase-up (phase-only gains per `phaseup_solint` on `channels`), then one bandpass solution
    per block of `chanavg` channels over all the rows (every scan combined), normalised to mean
    amplitude 1 and mean phase 0 per antenna and receptor; each channel takes its block's value.
    With `reject` > 0, rows the first solution cannot explain (`outlying_rows`) are left out and
    everything is solved again."""
    if reject <= 0:
        return _solve_bandpass(cd, flux, nant, refant, phaseup_solint, channels, chanavg, None)
    vis, w, flag = cd.parallel_hands()
    screened = screen(cd, slice(None), reject)
    bp = _solve_bandpass(cd, flux, nant, refant, phaseup_solint, channels, chanavg, screened)
    gi, gj = gaincal.gains_for_rows(bp.phaseup, cd.time, cd.ant1, cd.ant2)
    a, b, _ = _without(screened, gaincal.row_terms(vis, _model(flux), w, flag,
                                                   gaincal.baseline_products(bp.solution, cd.ant1, cd.ant2)))
    bad = row_outliers(a, b, gi * np.conj(gj), reject)
    return _solve_bandpass(cd, flux, nant, refant, phaseup_solint, channels, chanavg, screened | bad) if bad.any() else bp


def _solve_bandpass(cd: CalData, flux: np.ndarray, nant: int, refant: Optional[int], phaseup_solint: object,
                    channels: slice, chanavg: int, bad: Optional[np.ndarray]) -> Bandpass:
    vis, w, flag = cd.parallel_hands()
    if bad is not None:
        flag = flag | bad[:, None, :]
    model = _model(flux)
    up = gaincal.solve_interval_gains(vis[:, channels], model[channels], w[:, channels], flag[:, channels], cd.time,
                                      cd.ant1, cd.ant2, nant, phaseup_solint, scan=cd.scan, refant=refant,
                                      phase_only=True)
    rows_g = gaincal.gains_for_rows(up, cd.time, cd.ant1, cd.ant2)
    nchan = vis.shape[1]
    k = max(1, int(chanavg))
    if k > 1:
        vis, w, flag, model = _average_channels(vis, w, flag, np.broadcast_to(model, vis.shape), k)
    bp = gaincal.solve_bandpass(vis, model, w, flag, cd.ant1, cd.ant2, nant, gains=rows_g, refant=refant)
    if k > 1:
        bp = np.repeat(bp, k, axis=1)[:, :nchan]
    return Bandpass(bp, up, k, float(np.mean(cd.time)) if cd.time.size else 0.0)


def _average_channels(vis, w, flag, model, k: int):
    """Weighted means over blocks of k channels (the last block may be shorter)."""
    nrow, nchan, npol = vis.shape
    nb = -(-nchan // k)
    pad = nb * k - nchan

    def blocks(x, fill):
        if pad:
            x = np.concatenate([x, np.full((nrow, pad, npol), fill, dtype=x.dtype)], axis=1)
        return x.reshape(nrow, nb, k, npol)

    ok = ~flag & (w > 0)
    ww = blocks(np.where(ok, w, 0.0), 0.0)
    sw = ww.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(sw > 0, (ww * blocks(np.where(ok, vis, 0), 0)).sum(axis=2) / sw, 0)
        m = np.where(sw > 0, (ww * blocks(np.where(ok, model, 0), 0)).sum(axis=2) / sw, 0)
    return v, sw, sw <= 0, m


def solve_gains(cd: CalData, flux: np.ndarray, nant: int, refant: Optional[int], *, solint: object,
                channels: slice, bandpass: Optional[np.ndarray], phase_only: bool,
                pre: Optional[gaincal.GainTable] = None, per_scan: bool = True,
                reject: float = 0.0) -> gaincal.GainTable:
    """Gains per solution interval (`solint`: "int", "inf" = per scan, or seconds) on `channels`,
    with the bandpass and the gains `pre` (e.g. per-integration phases) taken out first;
    ``per_scan=False`` lets an interval span scans ("inf": one solution for all the rows); with
    `reject` > 0 the rows the first solution cannot explain are left out of a second one."""
    vis, w, flag = cd.parallel_hands()
    vis, w, flag = vis[:, channels], w[:, channels], flag[:, channels]
    corr = None if bandpass is None else gaincal.baseline_products(bandpass[:, channels], cd.ant1, cd.ant2)
    terms = gaincal.row_terms(vis, _model(flux)[channels], w, flag, corr)
    if pre is not None:  # gains constant over a row's channels: a conj(g), b |g|^2; a row without one is out
        gi, gj = gaincal.gains_for_rows(pre, cd.time, cd.ant1, cd.ant2)
        g = gi * np.conj(gj)
        usable = np.isfinite(g) & (g != 0)
        g = np.where(usable, g, 0)
        terms = _without(~usable, (terms[0] * np.conj(g), terms[1] * (g.real ** 2 + g.imag ** 2), terms[2]))

    def solve(t: tuple[np.ndarray, ...]) -> gaincal.GainTable:
        return gaincal.solve_interval_rows(*t, cd.time, cd.ant1, cd.ant2, nant, solint,
                                           scan=cd.scan if per_scan else None, refant=refant, phase_only=phase_only)

    if reject <= 0:
        return solve(terms)
    terms = _without(screen(cd, channels, reject), terms)
    table = solve(terms)
    gi, gj = gaincal.gains_for_rows(table, cd.time, cd.ant1, cd.ant2)
    bad = row_outliers(terms[0], terms[1], gi * np.conj(gj), reject)
    return solve(_without(bad, terms)) if bad.any() else table


def multiply(a: gaincal.GainTable, b: gaincal.GainTable) -> gaincal.GainTable:
    """The product of two gain tables at a's solution times (b interpolated to them)."""
    gb = gaincal.interpolate_gains(b, a.times)
    g = a.gains * gb
    return gaincal.GainTable(times=a.times, gains=g, flags=a.flags | ~np.isfinite(g), converged=a.converged,
                             n_used=a.n_used, refant=a.refant)


def spectral_index(freqs: np.ndarray, fluxes: np.ndarray, errors: np.ndarray) -> tuple[float, float, float]:
    """Weighted least-squares fit of log10 S = log10 S0 + alpha log10(nu / nu0), nu0 the weighted
    mean frequency: (alpha, its error, nu0 in Hz). NaN alpha with fewer than two frequencies."""
    f, s, e = (np.asarray(x, dtype=np.float64) for x in (freqs, fluxes, errors))
    ok = np.isfinite(f) & np.isfinite(s) & (s > 0) & np.isfinite(e) & (e > 0)
    if ok.sum() < 2 or np.unique(f[ok]).size < 2:
        return float("nan"), float("nan"), float(np.mean(f)) if f.size else float("nan")
    x, y = np.log10(f[ok]), np.log10(s[ok])
    w = (s[ok] * np.log(10) / e[ok]) ** 2
    x0 = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - x0) ** 2)
    alpha = float(np.sum(w * (x - x0) * y) / sxx)
    return alpha, float(1 / np.sqrt(sxx)), float(10 ** x0)


def flux_snr(flux: float, error: float) -> float:
    """The derived flux density's signal-to-noise ratio (NaN when the error is unknown)."""
    return float(flux / error) if error and np.isfinite(error) and error > 0 else float("nan")
