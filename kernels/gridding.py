"""Gridding and degridding with ducc0's w-gridder: dirty image, PSF, model visibilities.

Units: (u, v, w) in metres, frequencies in Hz, cells in arcsec, visibilities in Jy, images
in Jy/beam (dirty, PSF) or Jy/pixel (model).

Conventions (the same as `kernels.sky`)
---------------------------------------
Image arrays are indexed ``image[ix, iy]``, shape ``(npix_x, npix_y)`` (ducc0's layout and
CASA's axis order: x = RA, y = Dec). The phase centre is pixel ``(npix_x // 2, npix_y // 2)``
and pixel (ix, iy) is the direction with direction cosines (SIN projection, radians)

    l = (npix_x // 2 - ix) * cell        (east; RA increases towards ix = 0)
    m = (iy - npix_y // 2) * cell        (north)

so an image shown with x to the right and y up (``imshow(image.T, origin="lower")``) has east
(increasing RA) to the left and north up, as the sky looks. In FITS terms: CRPIX1 =
npix_x // 2 + 1, CDELT1 = -cell, CRPIX2 = npix_y // 2 + 1, CDELT2 = +cell; a FITS data array
(astropy order ``data[y, x]``) is ``image.T``.

The measurement equation is `kernels.sky`'s, with the Measurement Set's UVW as CASA writes it:

    V(u, v, w; nu) = sum_pixels M(l, m) exp(+2 pi i (u l + v m + w (n - 1)) nu / c),

n = sqrt(1 - l^2 - m^2), M in Jy/pixel (no 1/n factor: a point source of S Jy at a pixel
centre is the pixel value S, and `predict` of it equals `sky.predict` of that component).
`dirty_image` is the weighted adjoint, normalised by the sum of weights:

    D(l, m) = sum_k w_k Re[V_k exp(-2 pi i (u_k l + v_k m + w_k (n - 1)) nu_k / c)] / sum_k w_k

over unflagged (row, channel) samples k, so a 1 Jy point source at (l, m) reads 1.0 Jy/beam at
its pixel and the PSF (V = 1) peaks at 1.0 at the phase centre. ``wgridding=False`` drops the
w (n - 1) term (exact only when it is negligible: w (1 - n) nu / c << 1 over the field).

ducc0's own convention is ``exp(-2 pi i (x u + y v - w (n - 1)) nu / c)`` in `dirty2vis`, with
x = (ix - npix_x / 2) * pixsize and y likewise; we call it with ``flip_v=True`` so that x = -l and
y = m give the formula above, and with ``divide_by_n=False``.

Accuracy
--------
``epsilon`` is ducc0's requested accuracy: the relative L2 error of the result (image or
visibilities) against the exact direct Fourier sum, sqrt(sum |a - a_exact|^2 / sum |a_exact|^2).
The gridding kernel, oversampling and w-planes are chosen to meet it; it is an estimate, not
a bound (the tests allow 10 x epsilon). Gridding and degridding are exact adjoints of one
another to rounding, whatever epsilon. complex64 visibilities (float32 model images) are
processed in single precision and need epsilon > 1e-5; everything else in double precision.

Cost: ducc0 picks its oversampling (padded grid sigma x npix, sigma 1.3-2.3) and kernel support
to minimise run time. With ``wgridding=True`` it grids onto at least `support` w-planes (5-11
for epsilon 1e-4-1e-6) even when, as for ALMA fields, the w range is below one w-step, and
FFTs each: several times the cost of 2-D gridding (benchmarks/bench_cost_model.py measures it).
"""

from __future__ import annotations

import math
from typing import Optional

import ducc0
import numpy as np

from almarules.kernels.constants import ARCSEC, C



def _check_npix(npix_x: int, npix_y: int) -> None:
    for name, n in (("npix_x", npix_x), ("npix_y", npix_y)):
        if int(n) != n or n < 32 or n % 2:
            raise ValueError(f"{name} must be an even integer >= 32 (ducc0's w-gridder), got {n}")


def _geometry(uvw_m: np.ndarray, freq_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uvw = np.ascontiguousarray(uvw_m, dtype=np.float64)
    freq = np.ascontiguousarray(np.atleast_1d(freq_hz), dtype=np.float64)
    if uvw.ndim != 2 or uvw.shape[1] != 3:
        raise ValueError(f"uvw_m must have shape (nrow, 3), got {uvw.shape}")
    if freq.ndim != 1:
        raise ValueError(f"freq_hz must have shape (nchan,), got {freq.shape}")
    return uvw, freq


def _mask(flags: Optional[np.ndarray], shape: tuple[int, int]) -> Optional[np.ndarray]:
    """ducc0's mask (uint8, 1 = use) from flags (True = flagged), or None."""
    if flags is None:
        return None
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != shape:
        raise ValueError(f"flags must have shape {shape}, got {flags.shape}")
    return np.ascontiguousarray(~flags, dtype=np.uint8)


def _grid(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
          cell_arcsec: float, epsilon: float, wgridding: bool, nthreads: int,
          flags: Optional[np.ndarray]) -> np.ndarray:
    """The weighted dirty image divided by the sum of unflagged weights (see module docstring)."""
    _check_npix(npix_x, npix_y)
    shape = (uvw.shape[0], freq.size)
    if vis.shape != shape:
        raise ValueError(f"vis must have shape (nrow, nchan) = {shape}, got {vis.shape}")
    real = np.float32 if vis.dtype == np.complex64 else np.float64
    vis = np.ascontiguousarray(vis, dtype=np.complex64 if real is np.float32 else np.complex128)
    weight = np.ascontiguousarray(np.broadcast_to(np.asarray(weight, dtype=real), shape))
    mask = _mask(flags, shape)
    if mask is None:
        wsum = float(np.sum(weight, dtype=np.float64))
    else:
        wsum = float(np.sum(weight, dtype=np.float64, where=mask.astype(bool)))
    if not wsum > 0.0:
        raise ValueError("the sum of the weights of the unflagged visibilities is not positive")
    cell = float(cell_arcsec) * ARCSEC
    dirty = ducc0.wgridder.experimental.vis2dirty(
        uvw=uvw, freq=freq, vis=vis, wgt=weight, mask=mask, npix_x=int(npix_x), npix_y=int(npix_y),
        pixsize_x=cell, pixsize_y=cell, epsilon=float(epsilon), do_wgridding=bool(wgridding),
        nthreads=int(nthreads), flip_v=True, divide_by_n=False)
    dirty *= 1.0 / wsum
    return dirty


def max_w_phase(uvw_m: np.ndarray, freq_hz: np.ndarray, npix_x: int, npix_y: int, cell_arcsec: float) -> float:
    """The largest phase (rad) the w-term takes over the image: 2 pi max|w| max(nu) / c (1 - n)
    at the image corner, n = sqrt(1 - l^2 - m^2) (module docstring), l, m the corner's offsets.
    Gridding without the w-term (``wgridding=False``) errs by at most this phase per sample."""
    uvw, freq = _geometry(uvw_m, freq_hz)
    if uvw.shape[0] == 0:
        return 0.0
    l = npix_x / 2 * float(cell_arcsec) * ARCSEC
    m = npix_y / 2 * float(cell_arcsec) * ARCSEC
    one_minus_n = (l * l + m * m) / (1.0 + math.sqrt(max(1.0 - l * l - m * m, 0.0)))  # 1 - n, no cancellation
    return 2.0 * math.pi * float(np.abs(uvw[:, 2]).max()) * float(freq.max()) / C * one_minus_n


def dirty_image(uvw_m: np.ndarray, freq_hz: np.ndarray, vis: np.ndarray, weight: np.ndarray,
                npix_x: int, npix_y: int, cell_arcsec: float, epsilon: float = 1e-6,
                wgridding: bool = True, nthreads: int = 0,
                flags: Optional[np.ndarray] = None) -> np.ndarray:
    """Dirty image (Jy/beam), shape (npix_x, npix_y), of visibilities `vis` (Jy).

    uvw_m: (nrow, 3) metres, the MS UVW column; freq_hz: (nchan,) Hz; vis: (nrow, nchan)
    complex; weight: (nrow, nchan) (or broadcastable) imaging weights; flags: (nrow, nchan)
    bool, True = flagged (excluded from the image and from the sum of weights). cell_arcsec:
    pixel size (arcsec, square cells); npix_x, npix_y even, >= 32. Normalised by the sum of
    unflagged weights, so a 1 Jy point source reads 1.0 at its pixel. epsilon: requested
    relative L2 accuracy; wgridding: correct the w-term; nthreads: 0 = all cores (ducc0's
    default). Pixel <-> (l, m) and sign conventions: module docstring.
    """
    uvw, freq = _geometry(uvw_m, freq_hz)
    return _grid(uvw, freq, np.asarray(vis), weight, npix_x, npix_y, cell_arcsec, epsilon, wgridding,
                 nthreads, flags)


def psf(uvw_m: np.ndarray, freq_hz: np.ndarray, weight: np.ndarray, npix_x: int, npix_y: int,
        cell_arcsec: float, epsilon: float = 1e-6, wgridding: bool = True, nthreads: int = 0,
        flags: Optional[np.ndarray] = None) -> np.ndarray:
    """Point-spread function (dirty beam), shape (npix_x, npix_y): `dirty_image` of V = 1.

    Same arguments and normalisation as `dirty_image` (divided by the sum of unflagged weights),
    so it peaks at 1.0 (to epsilon) at the phase-centre pixel (npix_x // 2, npix_y // 2).
    """
    uvw, freq = _geometry(uvw_m, freq_hz)
    ones = np.ones((uvw.shape[0], freq.size), dtype=np.complex128)
    return _grid(uvw, freq, ones, weight, npix_x, npix_y, cell_arcsec, epsilon, wgridding, nthreads, flags)


def predict(uvw_m: np.ndarray, freq_hz: np.ndarray, model_image: np.ndarray, cell_arcsec: float,
            epsilon: float = 1e-6, wgridding: bool = True, nthreads: int = 0,
            flags: Optional[np.ndarray] = None) -> np.ndarray:
    """Model visibilities (Jy), complex (nrow, nchan), of `model_image` (Jy/pixel): degridding.

    model_image: (npix_x, npix_y), float64 (float32 runs in single precision); pixel (ix, iy)
    at (l, m) as in the module docstring. V = sum M exp(+2 pi i (u l + v m + w (n - 1)) nu / c)
    (without the w-term if wgridding is False). Flagged samples (flags True) are returned as 0.
    The adjoint of `dirty_image` before its normalisation: for any V and weights w,
    Re sum_k w_k V_k conj(predict(M)_k) = (sum_k w_k) * sum_pixels M * dirty_image(V, w).
    """
    uvw, freq = _geometry(uvw_m, freq_hz)
    model = np.asarray(model_image)
    if model.ndim != 2:
        raise ValueError(f"model_image must have shape (npix_x, npix_y), got {model.shape}")
    _check_npix(*model.shape)
    model = np.ascontiguousarray(model, dtype=np.float32 if model.dtype == np.float32 else np.float64)
    cell = float(cell_arcsec) * ARCSEC
    return ducc0.wgridder.experimental.dirty2vis(
        uvw=uvw, freq=freq, dirty=model, mask=_mask(flags, (uvw.shape[0], freq.size)),
        pixsize_x=cell, pixsize_y=cell, epsilon=float(epsilon), do_wgridding=bool(wgridding),
        nthreads=int(nthreads), flip_v=True, divide_by_n=False)


def pixel_lm(ix: float, iy: float, npix_x: int, npix_y: int, cell_arcsec: float) -> tuple[float, float]:
    """Direction cosines (l, m) (radians) of pixel (ix, iy)."""
    cell = float(cell_arcsec) * ARCSEC
    return (npix_x // 2 - ix) * cell, (iy - npix_y // 2) * cell


def lm_pixel(l: float, m: float, npix_x: int, npix_y: int, cell_arcsec: float) -> tuple[float, float]:
    """Fractional pixel (ix, iy) of direction cosines (l, m) (radians); inverse of `pixel_lm`."""
    cell = float(cell_arcsec) * ARCSEC
    return npix_x // 2 - l / cell, npix_y // 2 + m / cell
