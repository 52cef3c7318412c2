"""Antenna-based calibration: complex gains and bandpasses by StEFCal, their interpolation in time,
the flux-scale bootstrap, and their application to visibilities. Pure numpy.

Model and conventions
---------------------
One parallel-hand correlation (XX, YY, RR or LL) of baseline (i, j) is modelled as

    V_ij(t, nu) = g_i(t) conj(g_j(t)) b_i(nu) conj(b_j(nu)) M_ij(t, nu) + noise,

M the model visibility (Jy), g the antenna gains and b the bandpasses (dimensionless; the raw
data's units per Jy). Calibrated data are ``V_ij / (g_i conj(g_j) b_i conj(b_j))`` (Jy). Each
polarisation is solved on its own (no cross-hand terms). Weights w = 1 / sigma^2 (sigma the
noise per real and imaginary part of one sample, Jy^-2 for absolute weights; only relative
weights matter to the solutions); a sample is excluded when flagged, when w <= 0 or when V, M
or w is not finite. Times are MS TIME values in seconds. Autocorrelations (i == j) are ignored.

Solver
------
The weighted least-squares problem  min sum w |V_ij - g_i conj(g_j) M_ij|^2  over all samples
of an interval (rows x channels) depends on the data only through the per-baseline sums

    A_ij = sum w conj(M_ij) V_ij,      B_ij = sum w |M_ij|^2,

(with A_ji = conj(A_ij), B_ji = B_ij), so the samples are summed once and the iteration runs on
nant x nant matrices. StEFCal (Salvini & Wijnholds 2014, A&A 571, A97) updates every antenna
with the others held fixed, which is that antenna's exact least-squares solution,

    g_i <- sum_j A_ij g_j / sum_j B_ij |g_j|^2,

and at every even step replaces the new iterate by the mean of it and the previous one (this
damps the oscillation of the plain alternating step); it stops at an even step when
||g_new - g_old|| / ||g_new|| <= tol. Many intervals (or channels, polarisations) are solved
as one vectorised batch. Phase-only solutions normalise |g| = 1 after every step (the exact
phase update for unit amplitudes).

The overall phase is free: solutions are referenced to a reference antenna, whose phase is
set to 0 (g <- g conj(g_ref) / |g_ref|); by default the antenna with the most unflagged
samples (the lowest index among equals). An antenna without unflagged samples gets gain NaN
(flagged); `n_used` counts each antenna's unflagged samples. A set of antennas not connected
to the rest by any baseline keeps an arbitrary relative phase (not detected).

Accuracy
--------
The iteration converges to the least-squares optimum to about `tol` (relative); on noiseless
data the gains are exact to ~1e-10 within ~15-30 iterations for 10-60 antennas. With noise,
the error of g_i per real/imaginary part is, for many antennas (Cramer-Rao bound, N >> 1),

    sigma_g_i ~= 1 / sqrt(sum_j sum_samples w |g_j M_ij|^2),

e.g. sigma / (S sqrt(n (N - 1))) for a point source of S Jy, unit gains, N antennas and n
samples of noise sigma per baseline; the phase error is sigma_g / |g_i| radians. At low
signal-to-noise per baseline (|M| sqrt(w) < ~1) the amplitudes are biased like any
least-squares amplitude.

Memory: a few arrays of the size of `vis` (the per-sample terms), and nant^2 normal-equation
elements per interval and polarisation (per channel for the bandpass); `solve_interval_gains`
solves at most `BATCH_ELEMENTS` of them at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

__all__ = ["GainTable", "FluxScale", "solve_gains", "solve_interval_gains", "solve_interval_rows", "row_terms",
           "solution_intervals", "baseline_products", "channel_sum", "solve_bandpass", "normalise_bandpass", "interpolate_gains", "gains_for_rows", "apply",
           "fluxscale", "rescale"]

RowGains = Union[np.ndarray, tuple[np.ndarray, np.ndarray]]

# nant x nant normal-equation elements held at once by solve_interval_gains (~ 40 B each)
BATCH_ELEMENTS = 4_000_000


@dataclass
class GainTable:
    """Gain solutions per solution interval.

    Attributes:
        times: (nt,) s, mean of the distinct timestamps of each interval (sorted).
        gains: (nt, nant, npol) complex, referenced to `refant`; NaN where flagged.
        flags: (nt, nant, npol) bool, True = no solution.
        converged: (nt, npol) bool, the iteration met `tol`.
        n_used: (nt, nant, npol) int, unflagged samples (rows x channels) of each antenna.
        refant: (nt, npol) int, the reference antenna (-1 where nothing was solved).
    """

    times: np.ndarray
    gains: np.ndarray
    flags: np.ndarray
    converged: np.ndarray
    n_used: np.ndarray
    refant: np.ndarray


@dataclass(frozen=True)
class FluxScale:
    """Result of `fluxscale`: the transfer calibrator's flux density in units of its solving
    model (e.g. Jy for a 1 Jy model), its standard error, and the per-antenna/pol values of
    (mean |g_transfer| / mean |g_reference|)^2 (nant, npol; NaN where unavailable or clipped)."""

    flux: float
    error: float
    ratios: np.ndarray
    n: int


# ---------------------------------------------------------------- normal equations
def _sample_terms(vis, model, weight, flag, corr=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: a = w conj(M) V, b = w |M|^2 and the usable-sample indicator (0 or 1), with
    a = b = 0 where the sample is flagged, w <= 0 or anything is not finite; shape of `vis`.
    With a known correction C (`corr`, broadcastable to `vis`; e.g. b_i conj(b_j)): the terms of
    the corrected data V / C with weights w |C|^2, a = w conj(M) V conj(C), b = w |M|^2 |C|^2,
    and samples where C is 0 or not finite unusable (as `apply` flags them)."""
    vis = np.asarray(vis)
    shape = vis.shape
    m = np.asarray(model)
    m_ok = np.isfinite(m)  # on the model's own (often per-channel) shape, broadcast only when used
    m = np.where(m_ok, m, 0.0)
    w = np.asarray(weight, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        use = ~np.asarray(flag, dtype=bool) & (w > 0) & (w < np.inf)
        v_ok = np.isfinite(vis)
        use = use & v_ok if m_ok.all() else use & v_ok & m_ok
        if corr is not None:
            c = np.asarray(corr)
            use &= np.isfinite(c) & (c != 0)
    use = np.broadcast_to(use, shape)
    ws = np.where(use, w, 0.0)
    a = ws * np.conj(m) * (vis if v_ok.all() else np.where(use, vis, 0.0))
    b = ws * (m.real ** 2 + m.imag ** 2)
    if corr is not None:
        cs = np.where(use, c, 0.0)
        a *= np.conj(cs)
        b *= cs.real ** 2 + cs.imag ** 2
    return a, np.broadcast_to(b, shape), use.astype(np.float64)


def channel_sum(x: np.ndarray) -> np.ndarray:
    """The sum over axis 1 (channels) of an (nrow, nchan, npol) array: (nrow, npol); booleans are
    counted. einsum: several times faster than ndarray.sum(axis=1) with few polarisations (no
    inner loop of length npol), in a fixed order (no BLAS: the same result on every run)."""
    x = np.asarray(x)
    if x.dtype == bool:
        return np.count_nonzero(x, axis=1)
    return np.einsum("rcp->rp", x)


def row_terms(vis, model, weight, flag, corr=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The channel sums, per row and polarisation ((nrow, npol) each), of `_sample_terms`: A =
    sum w conj(M) V conj(C), B = sum w |M|^2 |C|^2 and the usable samples. A gain g constant over
    a row's channels then enters as A conj(g), B |g|^2; A / (B g) is the row's data over its
    prediction g C M, averaged with weights; `solve_interval_rows` solves from them."""
    return tuple(channel_sum(x) for x in _sample_terms(vis, model, weight, flag, corr))  # type: ignore[return-value]


def _normal_sums(a: np.ndarray, b: np.ndarray, cnt: np.ndarray, group: np.ndarray, ant1: np.ndarray,
                 ant2: np.ndarray, nant: int, ngroup: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum per-row terms a, b, cnt of shape (nrow, K) into A (ngroup, K, nant, nant) complex
    Hermitian, B (ngroup, K, nant, nant) real symmetric and counts (ngroup, K, nant) of samples
    per antenna; rows with ant1 == ant2 are skipped."""
    a1, a2 = np.asarray(ant1, dtype=np.int64), np.asarray(ant2, dtype=np.int64)
    if a1.size and (min(a1.min(), a2.min()) < 0 or max(a1.max(), a2.max()) >= nant):
        raise ValueError(f"antenna indices must lie in 0..{nant - 1}")
    cross = a1 != a2
    a, b, cnt = a[cross], b[cross], cnt[cross]
    g, a1, a2 = np.asarray(group, dtype=np.int64)[cross], a1[cross], a2[cross]
    k = a.shape[1]
    size = ngroup * k * nant * nant
    idx = (((g[:, None] * k + np.arange(k)) * nant + a1[:, None]) * nant + a2[:, None]).ravel()
    shape = (ngroup, k, nant, nant)
    A = (np.bincount(idx, a.real.ravel(), size) + 1j * np.bincount(idx, a.imag.ravel(), size)).reshape(shape)
    B = np.bincount(idx, b.ravel(), size).reshape(shape)
    C = np.bincount(idx, cnt.ravel(), size).reshape(shape)
    A = A + np.conj(np.swapaxes(A, -1, -2))
    B = B + np.swapaxes(B, -1, -2)
    counts = (C.sum(axis=-1) + C.sum(axis=-2)).round().astype(np.int64)
    return A, B, counts


def _unit(g: np.ndarray) -> np.ndarray:
    """g / |g| (0 stays 0)."""
    amp = np.abs(g)
    return np.where(amp > 0, g / np.where(amp > 0, amp, 1.0), 0.0)


def _stefcal(A: np.ndarray, B: np.ndarray, iterations: int, tol: float,
             phase_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Batched StEFCal: A (K, N, N) Hermitian, B (K, N, N) >= 0 -> (g (K, N) with NaN for antennas
    without data, converged (K,))."""
    K, N = A.shape[:2]
    active = B.sum(axis=-1) > 0
    if phase_only:
        g = active.astype(np.complex128)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.sqrt(np.abs(A).sum(axis=(1, 2)) / B.sum(axis=(1, 2)))
        g = np.where(active, np.nan_to_num(scale, nan=1.0)[:, None], 0.0).astype(np.complex128)
    done = ~active.any(axis=1)
    converged = np.zeros(K, bool)
    for it in range(1, int(iterations) + 1):
        todo = np.flatnonzero(~done)
        if todo.size == 0:
            break
        every = todo.size == K
        gk = g if every else g[todo]
        Ak, Bk = (A, B) if every else (A[todo], B[todo])
        # plain sums, not BLAS: a BLAS product's last bits depend on its threads, and a re-run must
        # give bit-identical solutions (the run keeps images whose calibration did not change)
        num = (Ak * gk[:, None, :]).sum(axis=2)
        den = (Bk * (np.abs(gk) ** 2)[:, None, :]).sum(axis=2)
        gn = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        if phase_only:
            gn = _unit(gn)
        if it % 2 == 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                step = np.linalg.norm(gn - gk, axis=1) / np.linalg.norm(gn, axis=1)
            ok = step <= tol
            new = np.where(ok[:, None], gn, 0.5 * (gn + gk))
            g[todo] = _unit(new) if phase_only else new
            converged[todo[ok]] = True
            done[todo[ok]] = True
        else:
            g[todo] = gn
    return np.where(active, g, np.nan), converged


def _reference(g: np.ndarray, counts: np.ndarray, refant: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rotate each row of g (K, N) so that its reference antenna has phase 0: `refant` where it has
    a solution, else the antenna with the most samples (`counts` (K, N)). Returns (g, refant (K,),
    -1 where no antenna has a solution)."""
    ok = np.isfinite(g)
    best = np.argmax(np.where(ok, counts, -1), axis=1)
    ref = best if refant is None else np.where(ok[:, int(refant)], int(refant), best)
    ref = np.where(ok.any(axis=1), ref, -1)
    gr = g[np.arange(g.shape[0]), np.maximum(ref, 0)]
    rot = np.where(ref >= 0, np.conj(_unit(gr)), 1.0)
    out = g * rot[:, None]
    k = np.flatnonzero(ref >= 0)
    out[k, ref[k]] = np.abs(gr[k])  # exactly real, not just to rounding
    return out, ref


def _solve_batch(A, B, counts, refant, iterations, tol, phase_only):
    """Solve flattened batches: A, B (K, N, N), counts (K, N) -> (g (K, N), converged, refant)."""
    g, conv = _stefcal(A, B, iterations, tol, phase_only)
    g, ref = _reference(g, counts, refant)
    return g, conv, ref


# ---------------------------------------------------------------- gains
def solve_gains(vis, model, weight, flag, ant1, ant2, nant: int, *, iterations: int = 100, tol: float = 1e-10,
                refant: Optional[int] = None, phase_only: bool = False) -> tuple[np.ndarray, bool, np.ndarray]:
    """Antenna gains of one solution interval and one polarisation: V_ij ~= g_i conj(g_j) M_ij.

    Args:
        vis: (nrow,) or (nrow, ...) complex data, one polarisation; all samples of a row belong to
            baseline (ant1[row], ant2[row]).
        model: model visibilities (Jy), broadcastable to `vis`.
        weight: 1/sigma^2, broadcastable to `vis`; flag: bool, broadcastable (True = excluded).
        ant1, ant2: (nrow,) antenna indices in 0..nant-1.
        iterations, tol: StEFCal limits (see the module doc); refant: reference antenna (phase 0;
            default, or where it has no data: the antenna with the most samples);
        phase_only: solve for phases with |g| = 1.

    Returns:
        (gains (nant,) complex, NaN for antennas without data; converged; n_used (nant,) int).
    """
    vis = np.asarray(vis)
    a, b, c = _sample_terms(vis, model, weight, flag)
    nrow = vis.shape[0]
    a, b, c = (x.reshape(nrow, -1).sum(axis=1)[:, None] for x in (a, b, c))
    A, B, counts = _normal_sums(a, b, c, np.zeros(nrow, np.int64), ant1, ant2, nant, 1)
    g, conv, _ = _solve_batch(A[:, 0], B[:, 0], counts[:, 0], refant, iterations, tol, phase_only)
    return g[0], bool(conv[0]), counts[0, 0]


def solution_intervals(time, solint: Union[str, float] = "int",
                       scan: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Group rows into solution intervals.

    solint: "int" = every distinct TIME its own interval; a number of seconds = consecutive
    timestamps from the first of an interval up to (not including) first + solint; "inf" = one
    interval (per scan). With `scan` (per-row scan numbers) no interval spans two scans.

    Returns (interval index per row (nrow,), interval times (nt,) s = mean of the interval's
    distinct timestamps).
    """
    time = np.asarray(time, dtype=np.float64)
    ut, inv = np.unique(time, return_inverse=True)
    if scan is None:
        uscan = np.zeros(ut.size, np.int64)
    else:
        scan = np.asarray(scan)
        uscan = np.zeros(ut.size, scan.dtype)
        uscan[inv] = scan
        per_t = np.zeros(ut.size, bool)
        np.logical_or.at(per_t, inv, scan != uscan[inv])
        if per_t.any():
            raise ValueError("rows of one timestamp carry different scan numbers")
    if isinstance(solint, str) and solint == "int":
        first = np.ones(ut.size, bool)
    else:
        span = np.inf if isinstance(solint, str) and solint == "inf" else float(solint)
        if not span > 0:
            raise ValueError(f"solint must be 'int', 'inf' or a positive number of seconds, got {solint!r}")
        first = np.zeros(ut.size, bool)
        start = -np.inf
        for k in range(ut.size):
            if k == 0 or uscan[k] != uscan[k - 1] or ut[k] - start >= span:
                first[k], start = True, ut[k]
    if scan is not None:
        first[1:] |= uscan[1:] != uscan[:-1]
    tgroup = np.cumsum(first) - 1
    nt = int(tgroup[-1]) + 1 if ut.size else 0
    times = np.bincount(tgroup, ut, nt) / np.bincount(tgroup, minlength=nt)
    return tgroup[inv], times


def solve_interval_gains(vis, model, weight, flag, time, ant1, ant2, nant: int,
                         solint: Union[str, float] = "int", *, scan: Optional[np.ndarray] = None,
                         refant: Optional[int] = None, phase_only: bool = False, iterations: int = 100,
                         tol: float = 1e-10) -> GainTable:
    """Gains per solution interval and polarisation (`solve_gains` on each, solved as one batch).

    Args:
        vis: (nrow, nchan, npol) complex data; model, weight, flag broadcastable to it (e.g. the
            MS WEIGHT as weight[:, None, :], a per-channel point-source spectrum as (nchan, 1)).
        time: (nrow,) s; ant1, ant2: (nrow,); solint, scan: see `solution_intervals`.
        refant, phase_only, iterations, tol: as `solve_gains`.

    Returns:
        `GainTable` (all channels of an interval enter one solution).
    """
    vis = np.asarray(vis)
    if vis.ndim != 3:
        raise ValueError(f"vis must be (nrow, nchan, npol), got shape {vis.shape}")
    return solve_interval_rows(*row_terms(vis, model, weight, flag), time, ant1, ant2, nant, solint, scan=scan,
                               refant=refant, phase_only=phase_only, iterations=iterations, tol=tol)


def solve_interval_rows(a, b, c, time, ant1, ant2, nant: int, solint: Union[str, float] = "int", *,
                        scan: Optional[np.ndarray] = None, refant: Optional[int] = None, phase_only: bool = False,
                        iterations: int = 100, tol: float = 1e-10) -> GainTable:
    """`solve_interval_gains` from the rows' channel sums (`row_terms`: a, b, usable samples, each
    (nrow, npol)); a row whose sums are 0 takes no part. Solving again with rows left out costs
    only the normal equations."""
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    npol = a.shape[1]
    group, times = solution_intervals(time, solint, scan)
    nt = times.size
    ant1, ant2 = np.asarray(ant1), np.asarray(ant2)
    gains = np.full((nt, nant, npol), np.nan, complex)
    conv = np.zeros((nt, npol), bool)
    n_used = np.zeros((nt, nant, npol), np.int64)
    ref = np.full((nt, npol), -1)
    per_batch = max(1, BATCH_ELEMENTS // (npol * nant * nant))  # bounds the nant x nant matrices in memory
    for t0 in range(0, nt, per_batch):
        t1 = min(nt, t0 + per_batch)
        rows = slice(None) if (t0, t1) == (0, nt) else (group >= t0) & (group < t1)
        A, B, counts = _normal_sums(a[rows], b[rows], c[rows], group[rows] - t0, ant1[rows], ant2[rows], nant, t1 - t0)
        n = (t1 - t0) * npol
        g, cv, rf = _solve_batch(A.reshape(n, nant, nant), B.reshape(n, nant, nant), counts.reshape(n, nant),
                                 refant, iterations, tol, phase_only)
        gains[t0:t1] = g.reshape(t1 - t0, npol, nant).transpose(0, 2, 1)
        conv[t0:t1], ref[t0:t1] = cv.reshape(t1 - t0, npol), rf.reshape(t1 - t0, npol)
        n_used[t0:t1] = counts.transpose(0, 2, 1)
    return GainTable(times=times, gains=gains, flags=~np.isfinite(gains), converged=conv, n_used=n_used, refant=ref)


# ---------------------------------------------------------------- bandpass
def normalise_bandpass(bandpass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split b (nant, nchan, npol) into b_norm * factor, factor (nant, npol) complex, such that per
    antenna and polarisation the mean of |b_norm| over the finite (unflagged) channels is 1 and
    the vector mean of b_norm / |b_norm| has phase 0. Returns (b_norm, factor); NaN factor where
    no channel is finite."""
    b = np.asarray(bandpass)
    ok = np.isfinite(b)
    amp = np.where(ok, np.abs(b), 0.0)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_amp = amp.sum(axis=1) / n
        phasor = _unit(np.where(ok, _unit(np.where(ok, b, 0.0)), 0.0).sum(axis=1))
    factor = np.where(n > 0, mean_amp * phasor, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return b / factor[:, None, :], factor


def solve_bandpass(vis, model, weight, flag, ant1, ant2, nant: int, *, gains: Optional[RowGains] = None,
                   refant: Optional[int] = None, iterations: int = 100, tol: float = 1e-10,
                   normalise: bool = True) -> np.ndarray:
    """Bandpass: one gain solution per channel and polarisation over all given rows (times),
    V_ij(nu) ~= b_i(nu) conj(b_j(nu)) [g_i conj(g_j)] M_ij(nu).

    Args:
        vis: (nrow, nchan, npol); model, weight, flag broadcastable to it; ant1, ant2: (nrow,).
        gains: optional time-dependent gains to take out first, as for `apply` ((nrow, nant, npol)
            or a pair (g_i, g_j) of (nrow, npol)); they multiply the model (so the weights stay
            those of the data); rows whose gain is NaN are excluded.
        refant: the reference antenna of every channel (default: the one with the most samples
            over all channels; in a channel where it has no data, that channel's best).
        normalise: apply `normalise_bandpass` (mean amplitude 1, mean phase 0 per antenna/pol).

    Returns:
        (nant, nchan, npol) complex, NaN where an antenna has no data in a channel.

    The per-channel solutions carry the reference antenna's bandpass phase in every antenna (the
    products b_i conj(b_j) do not); the normalisation moves a constant per antenna and pol into
    the gains, which a later gain solution absorbs.
    """
    vis = np.asarray(vis)
    if vis.ndim != 3:
        raise ValueError(f"vis must be (nrow, nchan, npol), got shape {vis.shape}")
    nrow, nchan, npol = vis.shape
    model = np.broadcast_to(np.asarray(model), vis.shape)
    if gains is not None:
        gi, gj = _pair(gains, ant1, ant2)
        model = model * (gi * np.conj(gj))[:, None, :]
    a, b, c = (x.reshape(nrow, nchan * npol) for x in _sample_terms(vis, model, weight, flag))
    A, B, counts = _normal_sums(a, b, c, np.zeros(nrow, np.int64), ant1, ant2, nant, 1)
    A, B, counts = A[0], B[0], counts[0]  # (nchan * npol, ...)
    g, _ = _stefcal(A, B, iterations, tol, phase_only=False)
    if refant is None:
        tot = counts.reshape(nchan, npol, nant).sum(axis=0)  # (npol, nant)
        refs = np.argmax(tot, axis=1)
    else:
        refs = np.full(npol, int(refant))
    g = g.reshape(nchan, npol, nant)
    out = np.empty_like(g)
    for p in range(npol):
        out[:, p], _ = _reference(g[:, p], counts.reshape(nchan, npol, nant)[:, p], int(refs[p]))
    bp = out.transpose(2, 0, 1)
    return normalise_bandpass(bp)[0] if normalise else bp


# ---------------------------------------------------------------- interpolation and application
def interpolate_gains(table: GainTable, times) -> np.ndarray:
    """Gains at `times` (s): (ntimes, nant, npol) complex.

    Per antenna and polarisation, linear interpolation in amplitude and in phase between the
    unflagged solutions on either side (the phase step between them taken in (-pi, pi], as
    unwrapping along the unflagged solutions in time order gives it); the nearest unflagged
    solution before the first and after the last; NaN where the antenna has no unflagged
    solution. Vectorised over antennas and polarisations.
    """
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    order = np.argsort(table.times, kind="stable")
    tt, gg = table.times[order], table.gains[order]
    nsol, nant, npol = gg.shape
    ok = ~(table.flags[order] | ~np.isfinite(gg))  # (nsol, nant, npol)
    out = np.full((times.size, nant, npol), np.nan, complex)
    if nsol == 0 or times.size == 0:
        return out
    idx = np.arange(nsol)[:, None, None]
    before = np.maximum.accumulate(np.where(ok, idx, -1), axis=0)  # last unflagged solution <= i
    after = np.minimum.accumulate(np.where(ok, idx, nsol)[::-1], axis=0)[::-1]  # first unflagged >= i
    pos = np.searchsorted(tt, times, side="right") - 1  # last solution time <= t (-1: before all)
    lo = np.where(pos[:, None, None] >= 0, before[np.maximum(pos, 0)], -1)
    hi = np.where(pos[:, None, None] + 1 < nsol, after[np.minimum(pos + 1, nsol - 1)], nsol)
    lo, hi = np.where(lo < 0, hi, lo), np.where(hi >= nsol, lo, hi)  # beyond the ends: the nearest
    have = (lo >= 0) & (lo < nsol)
    lo, hi = np.where(have, lo, 0), np.where(have, hi, 0)
    a_ant, a_pol = np.arange(nant)[None, :, None], np.arange(npol)[None, None, :]
    g_lo, g_hi = gg[lo, a_ant, a_pol], gg[hi, a_ant, a_pol]
    span = tt[hi] - tt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(span > 0, np.clip((times[:, None, None] - tt[lo]) / np.where(span > 0, span, 1.0), 0, 1), 0.0)
    step = np.angle(g_hi * np.conj(g_lo))  # the phase step, in (-pi, pi]
    amp = np.abs(g_lo) + frac * (np.abs(g_hi) - np.abs(g_lo))
    out[have] = (amp * np.exp(1j * (np.angle(g_lo) + frac * step)))[have]
    return out


def baseline_products(bandpass: np.ndarray, ant1, ant2) -> np.ndarray:
    """b_i(nu) conj(b_j(nu)) of each row ((nrow, nchan, npol)) from a bandpass (nant, nchan, npol),
    formed once per baseline and gathered."""
    b = np.asarray(bandpass)
    nant = b.shape[0]
    baseline, inverse = np.unique(np.asarray(ant1) * nant + np.asarray(ant2), return_inverse=True)
    return (b[baseline // nant] * np.conj(b[baseline % nant]))[inverse.ravel()]


def gains_for_rows(table: GainTable, time, ant1, ant2) -> tuple[np.ndarray, np.ndarray]:
    """(g_i, g_j), each (nrow, npol): the gains of each row's two antennas interpolated to the row's
    TIME by `interpolate_gains` (computed once per distinct time)."""
    ut, inv = np.unique(np.asarray(time, dtype=np.float64), return_inverse=True)
    g = interpolate_gains(table, ut)
    return g[inv, np.asarray(ant1)], g[inv, np.asarray(ant2)]


def _pair(gains: RowGains, ant1, ant2) -> tuple[np.ndarray, np.ndarray]:
    """(g_i, g_j) (nrow, npol) from a pair or from a per-row table (nrow, nant, npol)."""
    if isinstance(gains, tuple):
        return np.asarray(gains[0]), np.asarray(gains[1])
    g = np.asarray(gains)
    rows = np.arange(g.shape[0])
    return g[rows, np.asarray(ant1)], g[rows, np.asarray(ant2)]


def apply(vis, weight, flag, ant1, ant2, gains: Optional[RowGains],
          bandpass: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correct visibilities: V / c with c = g_i conj(g_j) [b_i(nu) conj(b_j(nu))].

    Args:
        vis: (nrow, nchan, npol) complex; flag broadcastable to it.
        weight: (nrow, nchan, npol) per-channel weights (e.g. WEIGHT_SPECTRUM), scaled by |c|^2
            exactly; or (nrow, npol) row weights (MS WEIGHT), scaled by the mean of |c|^2 over the
            channels where c is usable (exact when |b_i b_j| is flat; preserves the row's summed
            weight otherwise).
        ant1, ant2: (nrow,); gains: (nrow, nant, npol) gains of every antenna at each row's time, or
            a pair (g_i, g_j) of (nrow, npol) (`gains_for_rows`), or None (bandpass only).
        bandpass: optional (nant, nchan, npol).

    Returns:
        (corrected vis complex128, weight float64, flag): where c is NaN, 0 or not finite (a flagged
        gain or bandpass) the sample is flagged, its vis set to 0 and its per-channel weight to 0
        (a row weight to 0 where no channel is usable).
    """
    vis = np.asarray(vis)
    nrow, nchan, npol = vis.shape
    c = np.ones((nrow, 1, npol), complex)
    if gains is not None:
        gi, gj = _pair(gains, ant1, ant2)
        c = c * (gi * np.conj(gj))[:, None, :]
    if bandpass is not None:
        bp = np.asarray(bandpass)
        c = c * bp[np.asarray(ant1)] * np.conj(bp[np.asarray(ant2)])
    c = np.broadcast_to(c, vis.shape)
    good = np.isfinite(c) & (c != 0)
    cs = np.where(good, c, 1.0)
    out = np.where(good, vis / cs, 0.0).astype(np.complex128)
    new_flag = np.broadcast_to(np.asarray(flag, bool), vis.shape) | ~good
    c2 = np.where(good, np.abs(cs) ** 2, 0.0)
    w = np.asarray(weight, dtype=np.float64)
    if w.shape == vis.shape:
        new_w = w * c2
    elif w.shape == (nrow, npol):
        n = channel_sum(good)
        with np.errstate(invalid="ignore", divide="ignore"):
            new_w = np.where(n > 0, w * channel_sum(c2) / np.maximum(n, 1), 0.0)
    else:
        raise ValueError(f"weight must be {vis.shape} or {(nrow, npol)}, got {w.shape}")
    return out, new_w, new_flag


# ---------------------------------------------------------------- flux scale
def fluxscale(reference: GainTable, transfer: GainTable, clip: float = 5.0) -> FluxScale:
    """Bootstrap a transfer calibrator's flux density from gain amplitudes (like CASA fluxscale).

    `reference`: gains solved with the reference calibrator's true model; `transfer`: gains solved
    with a model of 1 unit (e.g. 1 Jy) for the transfer calibrator. Since |g_t|^2 = S_t |g|^2 for
    the true gain g, S_t = (mean_t |g_t| / mean_t |g_ref|)^2 per antenna and polarisation (means
    over the unflagged solutions in time); the result is the mean over antennas and pols of
    these ratios after discarding those more than `clip` x 1.4826 MAD from their median, with
    the standard error of that mean. The antennas' amplitudes are assumed constant in time.
    """
    def mean_amp(t: GainTable) -> np.ndarray:
        ok = ~t.flags & np.isfinite(t.gains)
        n = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.where(ok, np.abs(t.gains), 0.0).sum(axis=0) / n, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        r = (mean_amp(transfer) / mean_amp(reference)) ** 2
    vals = r[np.isfinite(r)]
    if vals.size == 0:
        raise ValueError("fluxscale: no antenna and polarisation with solutions in both tables")
    med = np.median(vals)
    mad = 1.4826 * np.median(np.abs(vals - med))
    keep = np.isfinite(r) & (np.abs(r - med) <= clip * mad if mad > 0 else np.isfinite(r))
    vals = r[keep]
    err = float(vals.std(ddof=1) / np.sqrt(vals.size)) if vals.size > 1 else float("nan")
    return FluxScale(flux=float(vals.mean()), error=err, ratios=np.where(keep, r, np.nan), n=int(vals.size))


def rescale(table: GainTable, flux: float) -> GainTable:
    """The gains of a transfer calibrator solved with a unit model, corrected to its flux density
    `flux` (same unit): g / sqrt(flux)."""
    return replace(table, gains=table.gains / np.sqrt(float(flux)))
