"""Continuum subtraction in the visibility domain: a weighted polynomial fit per row and
correlation over the line-free (cont.dat) channels of one spectral window, evaluated on every
channel and subtracted (the `uvcontsub` stage of issue 15; CASA's task of that name).

Arrays and units
----------------
vis       (nrow, nchan, ncorr) complex visibilities, Jy (the MS's DATA/CORRECTED_DATA cell
          transposed to row, channel, correlation, as python-casacore returns it).
weight    anything broadcasting to vis.shape, Jy^-2 (w = 1/sigma^2 per real and imaginary part):
          WEIGHT_SPECTRUM as (nrow, nchan, ncorr), or WEIGHT as (nrow, 1, ncorr).
flag      bool, vis.shape (or broadcasting to it), True = flagged.
freq_hz   (nchan,) channel centre frequencies, Hz, in any order (ascending or descending).
fit_channels (nchan,) bool: True = line-free, used in the fit (cont.dat's channels).

A sample enters the fit when it is a fit channel, unflagged, has w > 0 and finite data; other
samples (NaN data in flagged samples included) carry no weight and never reach the sums.

The fit
-------
For each row r and correlation p, the complex coefficients c_k minimise

    chi^2 = sum_c w_c |V_c - sum_k c_k x_c^k|^2         (k = 0 .. order, order <= MAX_ORDER)

which is the same as fitting the real and imaginary parts separately with the same weights
(CASA's way). Solved by the normal equations (P^T W P) c = P^T W V, built for all rows at once as
matrix products and solved in one batched `numpy.linalg.solve` (no loop over rows).

Abscissa (CASA's convention, so coefficients are comparable with CASA's): CASA 6.7's uvcontsub
(mstransform's UVContSubTVI with `denoising::GslPolynomialModel`, the default fitmethod 'gsl';
the 'casacore' method uses the same abscissa) fits against the channel frequencies of the spw,
mapped linearly by

    x = (nu - nu_mid) / (nu_min - nu_mid) = (nu_mid - nu) / half_width,
    nu_mid = (nu_min + nu_max) / 2,   half_width = (nu_max - nu_min) / 2,

with nu_min, nu_max over ALL channels of the spw (not only the fit channels): x = +1 at the lowest
frequency, -1 at the highest (note the sign). Frequency, not channel index: for a spw with
uniform channel widths the two differ by an affine map, which changes the coefficients but not
the fitted model (a polynomial of degree <= order in x is one in any affine function of x), so
the model and the subtracted data are the same either way.

Too few channels
----------------
`ok[r, p]` is True when the row/correlation has more than `order` usable fit channels (and the
system was solvable). Elsewhere the model is 0, the coefficients are 0, and the data are returned
unchanged by `subtract`; such data still hold their continuum, so `output_flags` flags every
channel of those rows/correlations — use it for the written FLAG column. This differs from CASA
on purpose: CASA lowers the order to (usable channels - 1) when 0 < usable <= order (a silently
different model), and with no usable channel passes the data through unsubtracted and unflagged,
so continuum leaks into line cubes.

Measured against CASA 6.7.0-31 uvcontsub (benchmarks/compare_uvcontsub.py, alma_sim spw 1,
datacolumn='corrected', orders 0..3): the subtracted data agree to <= 4.7e-7 of the data rms
(CASA writes single precision); CASA weights the fit by WEIGHT_SPECTRUM (WEIGHT in every channel
when the column is absent), as `weight` expects; flagged samples are excluded on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the highest polynomial order accepted (CASA warns against > 1; the pipeline uses 0 or 1)
MAX_ORDER = 3


@dataclass(frozen=True)
class ContinuumFit:
    """A fitted continuum. model: vis.shape (complex128, Jy), the polynomial on ALL channels, 0 where
    not ok; coefficients: (nrow, ncorr, order + 1) complex128 in ascending powers of `abscissa`
    (Jy), 0 where not ok; ok: (nrow, ncorr) bool, more than `order` usable fit channels;
    n_used: (nrow, ncorr) int, the usable fit channels; order: the polynomial order."""

    model: np.ndarray
    coefficients: np.ndarray
    ok: np.ndarray
    n_used: np.ndarray
    order: int

    @property
    def n_failed(self) -> int:
        """Number of (row, correlation) pairs without a fit."""
        return int(self.ok.size - np.count_nonzero(self.ok))


def abscissa(freq_hz: np.ndarray) -> np.ndarray:
    """CASA's fit abscissa x = (nu_mid - nu) / half_width over all channels (module doc); zeros
    for a single channel or a spw of one frequency."""
    nu = np.asarray(freq_hz, dtype=np.float64)
    if nu.ndim != 1 or nu.size == 0:
        raise ValueError(f"freq_hz must be a non-empty 1-D array, got shape {nu.shape}")
    lo, hi = float(nu.min()), float(nu.max())
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    if half <= 0.0:
        return np.zeros_like(nu)
    return (mid - nu) / half


def _check(vis: np.ndarray, freq_hz: np.ndarray, fit_channels: np.ndarray, order: int) -> None:
    if vis.ndim != 3:
        raise ValueError(f"vis must be (nrow, nchan, ncorr), got shape {vis.shape}")
    if not 0 <= int(order) <= MAX_ORDER:
        raise ValueError(f"order must be 0..{MAX_ORDER}, got {order}")
    nchan = vis.shape[1]
    if np.shape(freq_hz) != (nchan,) or np.shape(fit_channels) != (nchan,):
        raise ValueError(f"freq_hz and fit_channels must have shape ({nchan},), got "
                         f"{np.shape(freq_hz)} and {np.shape(fit_channels)}")
    if order > 0 and np.unique(np.asarray(freq_hz)).size < 2:
        raise ValueError("a polynomial of order > 0 needs at least two distinct channel frequencies")


def fit_continuum(vis: np.ndarray, weight: np.ndarray, flag: np.ndarray, freq_hz: np.ndarray,
                  fit_channels: np.ndarray, order: int) -> ContinuumFit:
    """Weighted least-squares polynomial of `order` (0..MAX_ORDER) per row and correlation over the
    usable fit channels, evaluated on all channels (module doc for shapes, units, abscissa and the
    rows without a fit).

    With per-row weights (shape (nrow, 1, ncorr) or broadcasting to it) the weights are constant
    along each spectrum and cancel: the rows whose fit channels are all usable take one shared
    projector, c = (P^T P)^-1 P^T V, a single matrix product; only the other rows build and solve
    their own weighted normal equations."""
    vis = np.asarray(vis)
    fit_channels = np.asarray(fit_channels, dtype=bool)
    _check(vis, freq_hz, fit_channels, order)
    nrow, nchan, ncorr = vis.shape
    ncoef = int(order) + 1
    p_all = abscissa(freq_hz)[:, None] ** np.arange(ncoef)[None, :]          # (nchan, ncoef)
    idx = np.flatnonzero(fit_channels)
    p_fit = p_all[idx]                                                      # (nfit, ncoef)
    weight = np.asarray(weight)
    if not np.issubdtype(weight.dtype, np.floating):
        weight = weight.astype(np.float64)
    flag = np.broadcast_to(np.asarray(flag, dtype=bool), vis.shape)
    coef = np.zeros((nrow, ncorr, ncoef), np.complex128)
    ok = np.zeros((nrow, ncorr), bool)
    n_used = np.zeros((nrow, ncorr), np.int64)
    rows = np.arange(nrow)
    per_row = weight.ndim == 3 and weight.shape[1] == 1 and idx.size > order
    if per_row:
        v = vis[:, idx, :]
        w_row = np.broadcast_to(weight, (nrow, 1, ncorr))
        good = ~flag[:, idx, :] & np.isfinite(v) & (w_row > 0)
        n_used = np.count_nonzero(good, axis=1)
        ok = n_used == idx.size
        projector = np.linalg.solve(p_fit.T @ p_fit, p_fit.T)               # (ncoef, nfit)
        fast = np.tensordot(v, projector, axes=([1], [1]))                  # (nrow, ncorr, ncoef)
        coef = np.where(ok[..., None], fast, 0)
        rows = np.flatnonzero(~ok.all(axis=1))
    if rows.size:
        # one gather per array (a slice when every row needs its own system)
        sel = (slice(None), idx) if rows.size == nrow else (rows[:, None], idx[None, :])
        c, k, n = _fit_weighted(vis[sel], np.broadcast_to(weight, vis.shape)[sel], flag[sel], p_fit)
        coef[rows], ok[rows], n_used[rows] = c, k, n
    model = p_all.astype(np.complex128) @ coef.transpose(0, 2, 1)           # (nrow, nchan, ncorr)
    return ContinuumFit(model=model, coefficients=coef, ok=ok, n_used=n_used, order=int(order))


def _fit_weighted(v: np.ndarray, w: np.ndarray, f: np.ndarray,
                  p_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The general fit over the fit channels only: v, w, f (nrow, nfit, ncorr), p_fit (nfit, ncoef).
    (coefficients (nrow, ncorr, ncoef), ok, n_used), both (nrow, ncorr)."""
    nrow, nfit, ncorr = v.shape
    ncoef = p_fit.shape[1]
    good = ~f & (w > 0) & np.isfinite(v)
    w_eff = np.where(good, w, 0.0).astype(np.float64, copy=False).transpose(0, 2, 1)  # (nrow, ncorr, nfit)
    wv = w_eff * np.where(good, v, 0).transpose(0, 2, 1)                    # complex128 (w is float64)
    n_used = np.count_nonzero(good, axis=1)                                 # (nrow, ncorr)
    pp = (p_fit[:, :, None] * p_fit[:, None, :]).reshape(nfit, ncoef * ncoef)
    normal = (w_eff @ pp).reshape(nrow, ncorr, ncoef, ncoef)                # sum_c w x^(a+b)
    rhs = wv @ p_fit.astype(np.complex128)                                  # sum_c w V x^a
    ok = n_used >= ncoef
    normal = np.where(ok[..., None, None], normal, np.eye(ncoef))
    rhs = np.where(ok[..., None], rhs, 0)
    coef = _solve(normal, rhs)
    ok &= np.isfinite(coef).all(axis=-1)
    return np.where(ok[..., None], coef, 0), ok, n_used


def _solve(normal: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched solve of normal (..., n, n) real, rhs (..., n) complex; a stack holding a singular
    system (e.g. equal abscissae carrying all the weight) falls back to the pseudo-inverse."""
    both = np.stack([rhs.real, rhs.imag], axis=-1)                          # (..., n, 2) real
    try:
        sol = np.linalg.solve(normal, both)
    except np.linalg.LinAlgError:
        sol = np.linalg.pinv(normal) @ both
    return sol[..., 0] + 1j * sol[..., 1]


def subtract(vis: np.ndarray, fit: ContinuumFit) -> np.ndarray:
    """vis - fit.model in vis's dtype (the line-only data, Jy); rows without a fit keep their data
    (flag them with `output_flags`)."""
    vis = np.asarray(vis)
    if vis.shape != fit.model.shape:
        raise ValueError(f"vis shape {vis.shape} does not match the fit's {fit.model.shape}")
    out = np.empty(vis.shape, vis.dtype if np.iscomplexobj(vis) else np.complex128)
    return np.subtract(vis, fit.model, out=out, casting="same_kind")


def output_flags(flag: np.ndarray, fit: ContinuumFit) -> np.ndarray:
    """The FLAG of the subtracted data: `flag` plus every channel of the rows/correlations without
    a fit (their continuum is still in the data)."""
    flag = np.broadcast_to(np.asarray(flag, dtype=bool), fit.model.shape)
    return flag | ~fit.ok[:, None, :]
