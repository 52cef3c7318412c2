"""Imaging weights (natural, uniform, Briggs) and the point-source noise they give.

Units: (u, v, w) in metres (the MS UVW column), frequencies in Hz, cells in arcsec, weights in
Jy^-2 (w = 1 / sigma_vis^2, sigma_vis the noise per real and imaginary part of one visibility
sample, as `kernels.noise` and the MS WEIGHT column), noise in Jy/beam. Arrays of samples have
shape (nrow, nchan); `weight` may be anything that broadcasts to it (e.g. (nrow, 1)). `flags` is
(nrow, nchan) bool, True = flagged. Flagged samples and samples with w <= 0 get imaging weight 0
and count nowhere (not in the cell densities, not in the sums).

The uv grid (the FFT grid of the image)
---------------------------------------
An image of npix_x x npix_y cells of `cell` radians has uv cells of du = 1 / (npix_x cell) and
dv = 1 / (npix_y cell) wavelengths. A sample at (u, v) = uvw[:2] * nu / c falls in cell

    (iu, iv) = (floor(u / du + 1/2), floor(v / dv + 1/2)),

cells centred on multiples of (du, dv), cell (0, 0) on the origin. The grid is periodic (index
modulo npix, the FFT grid); a sample with |iu| > npix_x / 2 or |iv| > npix_y / 2 lies beyond
the uv extent the image can represent (u cell >= 1/2) and raises ValueError.

Conjugate symmetry (CASA's convention): each sample is gridded twice, at (iu, iv) and at its
mirror (-iu, -iv) (the mirror index is computed as the negated index, so the two cells are
exactly mirrored), each time with its weight. The density of a cell is

    D_cell = sum of w over the samples whose cell or mirrored cell it is,

so D is point-symmetric, a sample and its conjugate see the same density, and a sample in the
origin cell counts twice there. The total gridded weight is 2 sum w.

Weights
-------
natural:  W = w
uniform:  W = w / D_cell
briggs:   W = w / (1 + D_cell f^2),  f^2 = (5 * 10^-robust)^2 / (sum_cells D_cell^2 / sum_cells D_cell)

sum_cells D^2 / sum_cells D is the weight-averaged cell density (CASA's sumlocwt / sumwt with
both conjugates gridded, the same number as for a half-plane grid). robust = -2 is close to
uniform (D f^2 >> 1 almost everywhere), +2 close to natural.

per_channel=False (mfs) puts all channels on one grid; per_channel=True (cubes) builds one grid
per channel, with its own f^2 (as CASA's cube weighting). Either way the work loops over
channels, vectorised over rows (memory: a few arrays of nrow plus one npix_x x npix_y grid).

Noise
-----
With independent noise of variance 1/w_k per real and imaginary part of each sample, a dirty
image pixel D(l, m) = sum W_k Re[V_k e^{-i phi_k}] / sum W_k (`kernels.gridding.dirty_image`)
has variance sum W_k^2 / w_k / (sum W_k)^2 at every pixel (Re[(a + ib) e^{-i phi}] = a cos phi
+ b sin phi has variance 1/w_k whatever phi), hence

    sigma = sqrt(sum W^2 / w) / sum W      [Jy/beam, point-source noise]

and for natural weighting sigma = 1 / sqrt(sum w). With the two parallel hands (XX, YY) as
separate samples in the sums, this is the noise of Stokes I = their weighted mean.

Accuracy: the densities are float64 sums (np.bincount), so the weights and sigma are exact to
rounding (relative ~1e-15 x log of the number of samples); the cell of a sample lying exactly on
a cell boundary is decided by floating-point rounding of u / du.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

C = 299_792_458.0  # speed of light (m/s)
ARCSEC = math.pi / 180.0 / 3600.0  # radians per arcsecond


def _prepare(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray,
             flags: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(uvw, freq, weight broadcast to (nrow, nchan) float64, valid = unflagged and w > 0)."""
    uvw = np.asarray(uvw_m, dtype=np.float64)
    freq = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    if uvw.ndim != 2 or uvw.shape[1] != 3:
        raise ValueError(f"uvw_m must have shape (nrow, 3), got {uvw.shape}")
    if freq.ndim != 1:
        raise ValueError(f"freq_hz must have shape (nchan,), got {freq.shape}")
    w, valid = _weights_and_mask(weight, flags, (uvw.shape[0], freq.size))
    return uvw, freq, w, valid


def _weights_and_mask(weight: np.ndarray, flags: Optional[np.ndarray],
                      shape: Optional[tuple[int, int]] = None) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(weight, dtype=np.float64)
    if shape is None:
        shape = w.shape if flags is None else np.broadcast_shapes(w.shape, np.shape(flags))
    try:
        w = np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"weight of shape {w.shape} does not broadcast to (nrow, nchan) = {shape}") from None
    valid = w > 0.0
    if flags is not None:
        f = np.asarray(flags, dtype=bool)
        if f.shape != tuple(shape):
            raise ValueError(f"flags must have shape {tuple(shape)}, got {f.shape}")
        valid &= ~f
    return w, valid


def _check_grid(npix_x: int, npix_y: int, cell_arcsec: float) -> None:
    for name, n in (("npix_x", npix_x), ("npix_y", npix_y)):
        if int(n) != n or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n}")
    if not cell_arcsec > 0:
        raise ValueError(f"cell_arcsec must be positive, got {cell_arcsec}")


def _cells(uvw: np.ndarray, nu: float, valid: np.ndarray, npix_x: int, npix_y: int,
           cell_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat grid index of each row's cell and of its mirrored cell at frequency nu."""
    iu = np.floor(uvw[:, 0] * (nu / C * npix_x * cell_rad) + 0.5).astype(np.int64)
    iv = np.floor(uvw[:, 1] * (nu / C * npix_y * cell_rad) + 0.5).astype(np.int64)
    off = valid & ((np.abs(iu) > npix_x // 2) | (np.abs(iv) > npix_y // 2))
    if np.any(off):
        k = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{int(off.sum())} unflagged sample(s) lie beyond the uv grid of a {npix_x} x {npix_y} image of "
            f"{cell_rad / ARCSEC:g} arcsec cells (e.g. row {k} at {nu:g} Hz: cell ({iu[k]}, {iv[k]})); "
            f"use smaller cells or flag them")
    return (iu % npix_x) * npix_y + iv % npix_y, (-iu % npix_x) * npix_y + (-iv) % npix_y


def _cell_density(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
                  cell_arcsec: float, flags: Optional[np.ndarray], per_channel: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w, valid, D_cell of each sample (nrow, nchan), mean density sum D^2 / sum D per channel)."""
    _check_grid(npix_x, npix_y, cell_arcsec)
    uvw, freq, w, valid = _prepare(uvw_m, freq_hz, weight, flags)
    nx, ny, cell = int(npix_x), int(npix_y), float(cell_arcsec) * ARCSEC
    nchan = freq.size
    dens = np.zeros(w.shape)
    mean = np.zeros(nchan)

    def accumulate(grid: np.ndarray, c: int) -> None:
        idx, cidx = _cells(uvw, freq[c], valid[:, c], nx, ny, cell)
        keep = valid[:, c]
        wc = w[keep, c]
        grid += np.bincount(idx[keep], wc, minlength=nx * ny)
        grid += np.bincount(cidx[keep], wc, minlength=nx * ny)

    def lookup(grid: np.ndarray, c: int) -> None:
        idx, _ = _cells(uvw, freq[c], valid[:, c], nx, ny, cell)
        dens[:, c] = np.where(valid[:, c], grid[idx], 0.0)

    def mean_density(grid: np.ndarray) -> float:
        total = grid.sum()
        return float(np.dot(grid, grid) / total) if total > 0 else 0.0

    if per_channel:
        for c in range(nchan):
            grid = np.zeros(nx * ny)
            accumulate(grid, c)
            lookup(grid, c)
            mean[c] = mean_density(grid)
    else:
        grid = np.zeros(nx * ny)
        for c in range(nchan):
            accumulate(grid, c)
        for c in range(nchan):
            lookup(grid, c)
        mean[:] = mean_density(grid)
    return w, valid, dens, mean


def natural(weight: np.ndarray) -> np.ndarray:
    """Natural imaging weights W = w (a float64 copy); w = 1/sigma_vis^2 (Jy^-2)."""
    return np.array(weight, dtype=np.float64)


def uniform(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
            cell_arcsec: float, flags: Optional[np.ndarray] = None, per_channel: bool = False) -> np.ndarray:
    """Uniform imaging weights W = w / D_cell, shape (nrow, nchan), dimensionless.

    uvw_m: (nrow, 3) m; freq_hz: (nchan,) Hz; weight: w (Jy^-2), broadcastable to (nrow, nchan);
    npix_x, npix_y, cell_arcsec: the image, whose FFT grid (du = 1/(npix_x cell) wavelengths)
    defines the cells; D_cell: the sum of w in the sample's cell, each sample also counted in its
    mirrored cell (module docstring). Flagged samples and w <= 0 get 0. per_channel: one grid per
    channel (cubes) instead of one for all channels (mfs). Exact to rounding.
    """
    w, valid, dens, _ = _cell_density(uvw_m, freq_hz, weight, npix_x, npix_y, cell_arcsec, flags, per_channel)
    out = np.zeros(w.shape)
    np.divide(w, dens, out=out, where=valid)
    return out


def briggs(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
           cell_arcsec: float, robust: float, flags: Optional[np.ndarray] = None,
           per_channel: bool = False) -> np.ndarray:
    """Briggs (robust) imaging weights W = w / (1 + D_cell f^2), shape (nrow, nchan), in Jy^-2.

    f^2 = (5 * 10^-robust)^2 / (sum_cells D^2 / sum_cells D) (CASA's "norm" mode; the denominator
    is the weight-averaged cell density, per channel if per_channel). robust in [-2, 2] (else
    ValueError): -2 is close to uniform, +2 close to natural. Other arguments, cells and the
    conjugate convention as `uniform`. Exact to rounding.
    """
    robust = float(robust)
    if not -2.0 <= robust <= 2.0:
        raise ValueError(f"robust must be in [-2, 2], got {robust}")
    w, valid, dens, mean = _cell_density(uvw_m, freq_hz, weight, npix_x, npix_y, cell_arcsec, flags, per_channel)
    f2 = np.zeros_like(mean)
    np.divide((5.0 * 10.0 ** -robust) ** 2, mean, out=f2, where=mean > 0)
    return np.where(valid, w / (1.0 + dens * f2[np.newaxis, :]), 0.0)


def sensitivity(weight: np.ndarray, imaging_weight: np.ndarray, flags: Optional[np.ndarray] = None) -> float:
    """Point-source noise (Jy/beam) of the image made with `imaging_weight`: sqrt(sum W^2 / w) / sum W.

    weight: w = 1/sigma_vis^2 (Jy^-2), sigma_vis the noise per real and imaginary part of a sample;
    imaging_weight: W; both (nrow, nchan) or broadcastable to a common shape; flags True =
    flagged. Sums over unflagged samples with w > 0. Natural weighting (W = w) gives
    1 / sqrt(sum w); any other W gives more (Cauchy-Schwarz). It is the standard deviation of
    every pixel of `kernels.gridding.dirty_image` of noise-only data imaged with W (module
    docstring). Exact to rounding. ValueError if sum W <= 0.
    """
    W = np.asarray(imaging_weight, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    shape = np.broadcast_shapes(w.shape, W.shape)
    w, valid = _weights_and_mask(w, flags, shape)
    W = np.broadcast_to(W, shape)
    Wv, wv = W[valid], w[valid]
    total = float(np.sum(Wv))
    if not total > 0.0:
        raise ValueError("the sum of the imaging weights of the unflagged samples is not positive")
    return math.sqrt(float(np.sum(Wv * Wv / wv))) / total
