"""Imaging weights (natural, uniform, Briggs) and the point-source noise they give.

Units: (u, v, w) in metres (the MS UVW column), frequencies in Hz, cells in arcsec, weights in
Jy^-2 (w = 1 / sigma_vis^2, sigma_vis the noise per real and imaginary part of one visibility
sample, as `kernels.noise` and the MS WEIGHT column), noise in Jy/beam. Arrays of samples have
shape (nrow, nchan); `weight` may be anything that broadcasts to it (e.g. (nrow, 1)). `flags` is
(nrow, nchan) bool, True = flagged. Flagged samples and samples with w <= 0 get imaging weight 0
and count nowhere (not in the cell densities, not in the sums).

The uv grid: cells and conjugates (CASA's conventions, per mode)
---------------------------------------------------------------
An image of npix_x x npix_y cells of `cell` radians has uv cells of du = 1 / (npix_x cell) and
dv = 1 / (npix_y cell) wavelengths; a sample at (u, v) = uvw[:2] * nu / c has x = u / du and
y = v / dv. The density grid has the image's size (CASA uses the image size, not the padded
gridding size). Each sample is gridded twice, at its own cell and at the cell of its conjugate
(-u, -v), each time with its weight; its imaging weight uses the density of its *own* cell.

mfs (per_channel=False; CASA's VisImagingWeight): cell *edges* on multiples of (du, dv),

    ucell = floor(x) + npix_x // 2,  vcell = floor(y) + npix_y // 2      (own cell)
    ucell' = floor(-x) + npix_x // 2, vcell' = floor(-y) + npix_y // 2  (conjugate's cell)

(CASA's int(u * uscale + nx/2) truncates towards zero, which is floor wherever the result counts:
a negative index is excluded anyway). A cell counts only if 1 <= ucell <= npix_x - 1 and
1 <= vcell <= npix_y - 1 (CASA's strict `ucell > 0`): a sample or conjugate outside adds nothing,
and a sample whose own cell is outside gets imaging weight 0 (e.g. x in [-npix_x/2, -npix_x/2+1)).
Cell k holds x in [k, k+1) and its conjugates land in cell -k-1, so D is point-symmetric about
the corner between cells -1 and 0, and no cell is its own mirror.

cube (per_channel=True; CASA's BriggsCubeWeightor, which rounds): cell *centres* on multiples
of (du, dv), (iu, iv) = (floor(x + 1/2), floor(y + 1/2)), periodic (index modulo npix), the
conjugate at the negated index (-iu, -iv); a sample in the origin cell counts twice there.

Either way a sample with ucell or vcell (mfs) beyond [0, npix - 1], or |iu| > npix_x / 2 or
|iv| > npix_y / 2 (cube), lies beyond the uv extent the image can represent and raises
ValueError (CASA would silently give it weight 0; flag it or use smaller cells). The density of
a cell is D_cell = sum of w over the samples whose own or conjugate cell it is.

Weights
-------
natural:  W = w
uniform:  W = w / D_cell
briggs:   W = w / (1 + D_cell f^2),  f^2 = (5 * 10^-robust)^2 / (sum_cells D_cell^2 / sum_cells D_cell)

sum_cells D^2 / sum_cells D is CASA's sumlocwt / sumwt, both conjugates gridded (sumwt counts
what was gridded: 2 sum w when every sample and conjugate lies inside). robust = -2 is close to
uniform (D f^2 >> 1 almost everywhere), +2 close to natural.

per_channel=False (mfs) puts all channels on one grid; per_channel=True (cubes) builds one grid
per channel, with its own f^2 (as CASA's cube weighting). Either way the work loops over
channels, vectorised over rows (memory: a few arrays of nrow plus one npix_x x npix_y grid).

Where CASA bins: CASA's FTMachine and weighting scale uvw by each channel's frequency in the
LSRK frame (also for a TOPO cube), so its density cells are those of uvw * nu_LSRK / c. On
alma_sim nu_LSRK / nu_TOPO - 1 = 6.6e-6: a sample within ~1e-3 cell of a cell edge changes cell,
which moves the Briggs weights of ~1 sample in 10^4 and tclean's per-channel sum of weights by
up to 4e-4. Callers pass uvw already scaled by nu_LSRK / nu for the weights
(`engine.ms.visset.VisSet.weighting_uvw`) and grid with the true uvw (CASA's gridder's scale error,
6.6e-6 of the distance from the phase centre, is not copied).

Differences from CASA left: CASA computes u = uvw * (nu / c) in single precision and converts
to LSRK once per buffer of rows, where `weighting_uvw` takes one factor per MS and spw (at
mid-observation; the factor drifts by ~1e-7 in an hour): a sample within ~1e-5 cell of a cell
edge may fall in the neighbouring cell. The Stokes I weight is CASA's, the sum of the parallel
hands' weights (`engine.ms.visibilities.stokes_i`). Measured on alma_sim
(tests/kernels/test_casa_alma_sim.py, benchmarks/compare_casa.py): tclean's per-channel sum of
imaging weights (.sumwt) to 1e-8 (mfs) and, on 93 of 120 cube channels, 1e-6 (the rest: such
edge samples, <= 1.7e-4); mfs PSF within 1.1e-4 of the peak of CASA 6.7 tclean's over the
central 3/4 of the image (at the edge CASA's gridder errs by 1.4e-3: a direct Fourier sum agrees
with ours) and dirty image within 2.6e-4; cube PSFs within 3.4e-4, dirty cube within 9.8e-4 of
its peak; apparentsens to 1e-5.

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

from almarules.kernels.constants import ARCSEC, C



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


def _off_grid_error(n: int, nu: float, cell_rad: float, nx: int, ny: int, k: int, where: str) -> ValueError:
    return ValueError(
        f"{n} unflagged sample(s) lie beyond the uv grid of a {nx} x {ny} image of "
        f"{cell_rad / ARCSEC:g} arcsec cells (e.g. row {k} at {nu:g} Hz: {where}); "
        f"use smaller cells or flag them")


def _cells(uvw: np.ndarray, nu: float, valid: np.ndarray, npix_x: int, npix_y: int,
           cell_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Cube convention (module docstring): flat index of each row's cell and of its mirrored
    cell at frequency nu, cells centred on multiples of (du, dv), periodic."""
    iu = np.floor(uvw[:, 0] * (nu / C * npix_x * cell_rad) + 0.5).astype(np.int64)
    iv = np.floor(uvw[:, 1] * (nu / C * npix_y * cell_rad) + 0.5).astype(np.int64)
    off = valid & ((np.abs(iu) > npix_x // 2) | (np.abs(iv) > npix_y // 2))
    if np.any(off):
        k = int(np.flatnonzero(off)[0])
        raise _off_grid_error(int(off.sum()), nu, cell_rad, npix_x, npix_y, k, f"cell ({iu[k]}, {iv[k]})")
    return (iu % npix_x) * npix_y + iv % npix_y, (-iu % npix_x) * npix_y + (-iv) % npix_y


def mfs_cells(uvw: np.ndarray, nu: float, npix_x: int, npix_y: int, cell_rad: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CASA's mfs cells (module docstring) at frequency nu (Hz) for uvw (nrow, 3) m, cell in
    radians: (ucell, vcell) of each row's own cell and (ucell', vcell') of its conjugate, int64,
    before the 1 <= cell <= npix - 1 test. Cell edges on multiples of (du, dv):
    ucell = floor(u / du) + npix_x // 2."""
    x = uvw[:, 0] * (nu / C * npix_x * cell_rad)
    y = uvw[:, 1] * (nu / C * npix_y * cell_rad)
    ox, oy = npix_x // 2, npix_y // 2
    return (np.floor(x).astype(np.int64) + ox, np.floor(y).astype(np.int64) + oy,
            np.floor(-x).astype(np.int64) + ox, np.floor(-y).astype(np.int64) + oy)


def _mfs_index(uvw: np.ndarray, nu: float, valid: np.ndarray, nx: int, ny: int,
               cell_rad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flat index of the own cell, it counts, flat index of the conjugate's cell, it counts);
    ValueError for a valid sample beyond the uv extent of the image (module docstring)."""
    iu, iv, ju, jv = mfs_cells(uvw, nu, nx, ny, cell_rad)
    off = valid & ((iu < 0) | (iu > nx - 1) | (iv < 0) | (iv > ny - 1))
    if np.any(off):
        k = int(np.flatnonzero(off)[0])
        raise _off_grid_error(int(off.sum()), nu, cell_rad, nx, ny, k,
                              f"cell ({iu[k] - nx // 2}, {iv[k] - ny // 2}) from the centre")
    inside = valid & (iu >= 1) & (iv >= 1)
    cinside = valid & (ju >= 1) & (ju <= nx - 1) & (jv >= 1) & (jv <= ny - 1)
    idx = np.where(inside, iu * ny + iv, 0)
    cidx = np.where(cinside, ju * ny + jv, 0)
    return idx, inside, cidx, cinside


def _cell_density(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
                  cell_arcsec: float, flags: Optional[np.ndarray], per_channel: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w, counted = valid and own cell on the grid, D_cell of each sample (nrow, nchan),
    mean density sum D^2 / sum D per channel)."""
    _check_grid(npix_x, npix_y, cell_arcsec)
    uvw, freq, w, valid = _prepare(uvw_m, freq_hz, weight, flags)
    nx, ny, cell = int(npix_x), int(npix_y), float(cell_arcsec) * ARCSEC
    nchan = freq.size
    dens = np.zeros(w.shape)
    counted = valid.copy()
    mean = np.zeros(nchan)

    def cells(c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if per_channel:
            idx, cidx = _cells(uvw, freq[c], valid[:, c], nx, ny, cell)
            return idx, valid[:, c], cidx, valid[:, c]
        return _mfs_index(uvw, freq[c], valid[:, c], nx, ny, cell)

    def accumulate(grid: np.ndarray, c: int) -> None:
        idx, keep, cidx, ckeep = cells(c)
        grid += np.bincount(idx[keep], w[keep, c], minlength=nx * ny)
        grid += np.bincount(cidx[ckeep], w[ckeep, c], minlength=nx * ny)

    def lookup(grid: np.ndarray, c: int) -> None:
        idx, keep, _, _ = cells(c)
        counted[:, c] = keep
        dens[:, c] = np.where(keep, grid[idx], 0.0)

    def mean_density(grid: np.ndarray) -> float:
        total = grid.sum()
        return float(np.sum(grid * grid) / total) if total > 0 else 0.0  # not BLAS: same bits on every worker

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
    return w, counted, dens, mean


def natural(weight: np.ndarray) -> np.ndarray:
    """Natural imaging weights W = w (a float64 copy); w = 1/sigma_vis^2 (Jy^-2)."""
    return np.array(weight, dtype=np.float64)


def uniform(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
            cell_arcsec: float, flags: Optional[np.ndarray] = None, per_channel: bool = False) -> np.ndarray:
    """Uniform imaging weights W = w / D_cell, shape (nrow, nchan), dimensionless.

    uvw_m: (nrow, 3) m; freq_hz: (nchan,) Hz; weight: w (Jy^-2), broadcastable to (nrow, nchan);
    npix_x, npix_y, cell_arcsec: the image, whose FFT grid (du = 1/(npix_x cell) wavelengths)
    defines the cells; D_cell: the sum of w in the sample's cell, each sample also counted in its
    conjugate's cell (module docstring: CASA's mfs cells with edges on multiples of du, or with
    per_channel CASA's cube cells centred on them). Flagged samples, w <= 0 and (mfs) samples
    whose own cell is CASA's excluded first row/column get 0. per_channel: one grid per channel
    (cubes) instead of one for all channels (mfs). Exact to rounding.
    """
    w, counted, dens, _ = _cell_density(uvw_m, freq_hz, weight, npix_x, npix_y, cell_arcsec, flags, per_channel)
    out = np.zeros(w.shape)
    np.divide(w, dens, out=out, where=counted & (dens > 0))
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
    w, counted, dens, mean = _cell_density(uvw_m, freq_hz, weight, npix_x, npix_y, cell_arcsec, flags, per_channel)
    f2 = np.zeros_like(mean)
    np.divide((5.0 * 10.0 ** -robust) ** 2, mean, out=f2, where=mean > 0)
    return np.where(counted & (dens > 0), w / (1.0 + dens * f2[np.newaxis, :]), 0.0)


def gaussian_taper(uvw_m: np.ndarray, freq_hz: np.ndarray, fwhm_arcsec: float) -> np.ndarray:
    """The factor (nrow, nchan) a Gaussian uv taper multiplies imaging weights by (CASA's uvtaper):
    exp(-pi^2 theta^2 q^2 / (4 ln 2)) with q = |(u, v)| in wavelengths and theta the taper's FWHM in
    the image plane (rad): the Fourier pair of an image-plane Gaussian of FWHM theta, so the dirty
    beam is convolved with it (beam^2 + theta^2 for a Gaussian beam). fwhm_arcsec <= 0: no taper."""
    uvw = np.asarray(uvw_m, dtype=np.float64)
    freq = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    if fwhm_arcsec <= 0:
        return np.ones((uvw.shape[0], freq.size))
    theta = float(fwhm_arcsec) * ARCSEC
    q2 = (uvw[:, 0] ** 2 + uvw[:, 1] ** 2)[:, None] * (freq[None, :] / C) ** 2
    return np.exp(-(np.pi * theta) ** 2 * q2 / (4.0 * np.log(2.0)))


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
