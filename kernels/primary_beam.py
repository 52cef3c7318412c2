"""Primary beam (antenna power pattern) models, primary-beam images, correction and masks.

Units: radii and cells in arcsec, frequencies in Hz, dish and blockage diameters in m.
lambda = c / nu.

Models (both circularly symmetric, normalised to 1 on axis, paraxial: the angle theta in
radians is used for sin(theta), a relative error below 1e-6 for theta < 0.1 deg):

* ``airy``: the far-field power pattern of a uniformly illuminated circular aperture of
  diameter D with a centred circular blockage of diameter d (eps = d / D):

      E(x) = [2 J1(x) / x - eps^2 * 2 J1(eps x) / (eps x)] / (1 - eps^2),   x = pi D theta / lambda
      P(theta) = E(x)^2

  Unblocked (eps = 0): first null at x = 3.8317 (theta = 1.2197 lambda / D), half power at
  x = 1.6163 (FWHP = 1.0290 lambda / D), first sidelobe 1.75 % (-17.6 dB). A blockage moves
  power from the main lobe into the sidelobes: the first null moves in and the first sidelobe
  rises (ALMA 12 m, eps = 0.75 / 12: null at 1.2138 lambda / D, FWHP 1.0267 lambda / D, first
  sidelobe 1.87 %; eps = 0.2: null 1.1665 lambda / D, sidelobe 3.04 %).
  ALMA's real illumination is tapered towards the dish edge, so its beam is broader than this
  uniformly illuminated pattern (heuristics.md sizes images with FWHP = 1.12 lambda / D): as a
  model of ALMA's beam it is an idealisation whose main lobe is about 9 % too narrow.
* ``gaussian``: exp(-4 ln 2 theta^2 / FWHP^2) with FWHP = 1.12 lambda / D -- the approximation
  heuristics.md section 3 uses for image sizing (exactly 0.5 at theta = FWHP / 2).

Image pixels follow `kernels.gridding`: pixel (ix, iy) of an (npix_x, npix_y) image sits at
l = (npix_x // 2 - ix) cell, m = (iy - npix_y // 2) cell, and the primary beam is centred on
the phase-centre pixel (npix_x // 2, npix_y // 2), at angular distance theta = asin(sqrt(l^2 + m^2)).
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
from scipy import special

C = 299_792_458.0  # m/s
ARCSEC = math.pi / 180.0 / 3600.0  # radians per arcsecond
FWHP_GAUSSIAN = 1.12  # FWHP in units of lambda / D (heuristics.md section 3)

# subreflector (blockage) diameters of the ALMA antennas, by dish diameter (m)
ALMA_BLOCKAGE_M = {12.0: 0.75, 7.0: 0.375}


def _wavelength(freq_hz: float) -> float:
    freq = float(freq_hz)
    if not freq > 0:
        raise ValueError(f"freq_hz must be positive, got {freq_hz}")
    return C / freq


def _jinc(x: np.ndarray) -> np.ndarray:
    """2 J1(x) / x, with its limit 1 at x = 0."""
    x = np.asarray(x, dtype=np.float64)
    out = np.ones_like(x)
    nz = np.abs(x) > 1e-8
    out[nz] = 2.0 * special.j1(x[nz]) / x[nz]
    small = ~nz
    out[small] = 1.0 - x[small] ** 2 / 8.0
    return out


def default_blockage(dish_m: float) -> float:
    """The ALMA subreflector diameter (m) of a dish: 0.75 m for 12 m, 0.375 m for 7 m; for other
    diameters the 12-m ratio 0.0625 D."""
    for d, block in ALMA_BLOCKAGE_M.items():
        if abs(float(dish_m) - d) < 1e-6:
            return block
    return 0.0625 * float(dish_m)


def airy(r_arcsec, freq_hz: float, dish_m: float, blockage_m: float = 0.75) -> np.ndarray:
    """Power pattern (1 on axis) of a uniformly illuminated aperture of diameter `dish_m` with a
    central blockage of diameter `blockage_m` (0 for none), at radii `r_arcsec` (array-like,
    arcsec) and frequency `freq_hz`. Formula: module docstring. Evaluated with scipy's J1 to
    ~1e-15 relative; as a model of ALMA's beam see the module docstring.
    """
    lam = _wavelength(freq_hz)
    dish = float(dish_m)
    block = float(blockage_m)
    if not dish > 0:
        raise ValueError(f"dish_m must be positive, got {dish_m}")
    if not 0.0 <= block < dish:
        raise ValueError(f"blockage_m must be in [0, dish_m), got {blockage_m}")
    eps = block / dish
    x = math.pi * dish * np.asarray(r_arcsec, dtype=np.float64) * ARCSEC / lam
    field = (_jinc(x) - eps * eps * _jinc(eps * x)) / (1.0 - eps * eps)
    return field * field


def gaussian(r_arcsec, freq_hz: float, dish_m: float) -> np.ndarray:
    """Gaussian power pattern exp(-4 ln 2 (r / FWHP)^2), FWHP = 1.12 lambda / D (radian), at radii
    `r_arcsec` (array-like, arcsec); exactly 0.5 at r = FWHP / 2."""
    lam = _wavelength(freq_hz)
    if not float(dish_m) > 0:
        raise ValueError(f"dish_m must be positive, got {dish_m}")
    fwhp_arcsec = FWHP_GAUSSIAN * lam / float(dish_m) / ARCSEC
    r = np.asarray(r_arcsec, dtype=np.float64)
    return np.exp(-4.0 * math.log(2.0) * (r / fwhp_arcsec) ** 2)


def fwhp_arcsec(freq_hz: float, dish_m: float) -> float:
    """Half-power width (arcsec) of the Gaussian model: 1.12 lambda / D."""
    return FWHP_GAUSSIAN * _wavelength(freq_hz) / float(dish_m) / ARCSEC


def pb_image(npix_x: int, npix_y: int, cell_arcsec: float, freq_hz: float, dish_m: float,
             model: Literal["airy", "gaussian"] = "airy", blockage_m: Optional[float] = None) -> np.ndarray:
    """Primary-beam image, shape (npix_x, npix_y), 1 at the phase-centre pixel (npix_x // 2,
    npix_y // 2) and symmetric about it (pixel conventions of `kernels.gridding`). model "airy"
    (blockage_m None: `default_blockage(dish_m)`, the ALMA subreflector) or "gaussian".
    """
    nx, ny = int(npix_x), int(npix_y)
    if nx < 1 or ny < 1:
        raise ValueError(f"image shape must be positive, got ({npix_x}, {npix_y})")
    cell = float(cell_arcsec)
    l = (nx // 2 - np.arange(nx, dtype=np.float64))[:, None] * cell * ARCSEC
    m = (np.arange(ny, dtype=np.float64) - ny // 2)[None, :] * cell * ARCSEC
    rho = np.sqrt(l * l + m * m)
    if np.any(rho >= 1.0):
        raise ValueError("the image extends beyond the horizon (l^2 + m^2 >= 1)")
    r_arcsec = np.arcsin(rho) / ARCSEC
    if model == "airy":
        block = default_blockage(dish_m) if blockage_m is None else float(blockage_m)
        return airy(r_arcsec, freq_hz, dish_m, block)
    if model == "gaussian":
        if blockage_m is not None:
            raise ValueError("blockage_m applies to the airy model only")
        return gaussian(r_arcsec, freq_hz, dish_m)
    raise ValueError(f"model must be 'airy' or 'gaussian', got {model!r}")


def pbcor(image: np.ndarray, pb: np.ndarray, pblimit: float) -> np.ndarray:
    """Primary-beam corrected image: image / pb where pb >= pblimit, NaN elsewhere (float64,
    broadcast shape of image and pb)."""
    img = np.asarray(image, dtype=np.float64)
    beam = np.asarray(pb, dtype=np.float64)
    if not float(pblimit) > 0:
        raise ValueError(f"pblimit must be positive, got {pblimit}")
    keep = beam >= float(pblimit)
    out = np.full(np.broadcast_shapes(img.shape, beam.shape), np.nan)
    np.divide(img, beam, out=out, where=keep)
    return out


def pb_mask(pb: np.ndarray, level: float) -> np.ndarray:
    """Boolean mask, True where pb >= level (e.g. the clean-mask limit 0.3, heuristics.md section 3)."""
    return np.asarray(pb, dtype=np.float64) >= float(level)
