"""Measuring sources on the FITS products of the imaging stage (tests only).

`fit_peak` fits ln I = a + b x + c y + d x^2 + e y^2 + f x y to the 3 x 3 pixels around the
brightest pixel of a region: exact for an elliptical Gaussian (a restored point source), so the
fitted peak and position do not suffer from the source lying between pixel centres.
`integrated` sums a model (Jy/pixel) and the residual (Jy/beam over the beam area) in a disc.
Pixel coordinates follow `kernels.gridding`: image[ix, iy], l = (nx // 2 - ix) cell (east),
m = (iy - ny // 2) cell.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from almarules.engine.products.fits import read_image
from almarules.kernels.masks import beam_area_pixels


# alma_sim.ms: the line (LSRK 229.000016 GHz, FWHM 23 MHz) left out of spw 1, +-2.6 FWHM, as findcont would
ALMA_SIM_CONT_DAT = """Field: SIMGAL_1

SpectralWindow: 0
ALL

SpectralWindow: 1
228.88~228.94GHz LSRK
229.06~229.12GHz LSRK
"""


def plane(path: Path, channel: int = 0) -> np.ndarray:
    """A plane of a FITS product in the gridding convention image[ix, iy]."""
    data, _, _ = read_image(path)
    return np.asarray(data[channel], dtype=np.float64)


def fit_peak(img: np.ndarray, near: tuple[float, float], radius: float) -> tuple[float, float, float]:
    """(peak value, ix, iy) of the log-paraboloid through the 3 x 3 pixels around the brightest
    pixel within `radius` pixels of `near`."""
    ix, iy = np.indices(img.shape)
    region = (ix - near[0]) ** 2 + (iy - near[1]) ** 2 <= radius ** 2
    work = np.where(region & np.isfinite(img), img, -np.inf)
    px, py = np.unravel_index(np.argmax(work), img.shape)
    dx, dy = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
    vals = np.log(img[px - 1:px + 2, py - 1:py + 2])
    a = np.column_stack([np.ones(9), dx.ravel(), dy.ravel(), dx.ravel() ** 2, dy.ravel() ** 2,
                         (dx * dy).ravel()])
    c = np.linalg.lstsq(a, vals.ravel(), rcond=None)[0]
    hess = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    off = np.linalg.solve(hess, -c[1:3])
    peak = c[0] + c[1] * off[0] + c[2] * off[1] + c[3] * off[0] ** 2 + c[4] * off[1] ** 2 + c[5] * off[0] * off[1]
    return float(math.exp(peak)), float(px + off[0]), float(py + off[1])


def integrated(model: np.ndarray, residual: np.ndarray, centre: tuple[float, float], radius: float,
               beam, cell_arcsec: float) -> float:
    """Flux (Jy) in a disc: clean components plus residual / beam area (pixels)."""
    ix, iy = np.indices(model.shape)
    disc = (ix - centre[0]) ** 2 + (iy - centre[1]) ** 2 <= radius ** 2
    return float(model[disc].sum() + np.nansum(residual[disc]) / beam_area_pixels(beam, cell_arcsec))


def expected_pixel(l_arcsec: float, m_arcsec: float, n: int, cell_arcsec: float) -> tuple[float, float]:
    return n // 2 - l_arcsec / cell_arcsec, n // 2 + m_arcsec / cell_arcsec
