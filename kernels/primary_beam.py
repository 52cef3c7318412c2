"""Primary beam (antenna power pattern) models as CASA's tclean evaluates them, primary-beam
images, correction and masks.

Units: radii and cells in arcsec, frequencies in Hz, dish and blockage diameters in m.
lambda = c / nu. Every model is circularly symmetric and 1 on axis.

Named models (`MODEL_NAMES`), each the one CASA 6.7's tclean (gridder standard, default vptable)
puts in its ``.pb`` for that telescope (PBMath's common beams; squint is not applied, as tclean's
``.pb`` does not). Radii scale as 1 / nu: CASA states each model at 1 GHz in arcmin, so the
natural variable is u = r[arcmin] x nu[GHz]; "max radius" is where CASA cuts the beam to 0.

* ``ALMA`` (12-m antennas): Airy pattern of a 10.7 m aperture with a 0.75 m central blockage,
  cut at u = 107.04 (1.784 deg at 1 GHz). The effective 10.7 m (not the physical 12 m) stands
  for ALMA's tapered illumination: its FWHP is 1.162 lambda / (12 m).
* ``ACA`` (7-m antennas): Airy, 6.25 m aperture, 0.75 m blockage, cut at u = 214.08 (3.568 deg).
* ``VLA`` (telescope name "VLA", the old VLA): in the VLA bands (GHz, open intervals: 4 < 0.1,
  P 0.2-0.4, L 1-2, C 4-7, X 7-11, U 11-19, K 19-35, Q 35-55) an Airy pattern of a 25 m aperture
  with a 2.36 m blockage; between them (and above 55 GHz) CASA's "VLA_NVSS" beam, Airy of an
  unblocked 24.5 m aperture; both cut at u = 51.384 (0.8564 deg).
* ``EVLA`` (telescope name "EVLA"): polynomial power patterns P(u) = sum_i a_i u^(2i) fitted per
  frequency (Perley 2016, EVLA Memo 195; CASA's PBMath1DEVLA table, `_EVLA_TABLE`), cut at u = 58
  (58 arcmin at 1 GHz). The band is found from the frequency (P 224-480 MHz, L 900-2003, S
  1990-4001, C 3990-8001, X 7990-12001, U 12000-18000, K 19000-26000, A 28000-38000, Q 41000-50000,
  first match), the frequency is clamped to the band's tabulated span, and the coefficients of
  the nearest tabulated frequency (the higher one on a tie) are used at the true frequency.
* ``airy``: generic, for telescopes without a CASA model. CASA's own fallback (PBMath
  initByDiameter) is its VLA beam scaled to the dish: an Airy pattern of the physical dish D with a
  0.0944 D (= 2.36 / 25) blockage, cut at u = 1289.86 / D (1.1998662 arcmin x 25 m / D at 43
  GHz). A `blockage_m` given explicitly replaces the 0.0944 D.
* ``gaussian``: exp(-4 ln 2 theta^2 / FWHP^2), FWHP = 1.12 lambda / D of the physical dish (the
  approximation heuristics.md section 3 uses for image sizing), no cut.

Airy patterns. The physical pattern of a uniformly illuminated aperture D with a centred
blockage d (eps = d / D), x = pi D theta / lambda (`airy`):

    E(x) = [jinc(x) - eps^2 jinc(eps x)] / (1 - eps^2),   jinc(x) = 2 J1(x) / x,   P = E^2.

Unblocked: first null at x = 3.8317 (1.2197 lambda / D), half power at x = 1.6163 (FWHP 1.0290
lambda / D), first sidelobe 1.75 % (-17.6 dB); a blockage pulls the null in and raises the
sidelobes (eps = 0.75 / 12: null 1.2138 lambda / D, sidelobe 1.87 %).
CASA (PBMath1DAiry) evaluates instead, with rho = D / d (`casa_airy_power`):

    E(x) = [rho^2 jinc(x) - jinc(rho x)] / (rho^2 - 1)   (jinc(x) when d = 0),

i.e. the blockage term at rho x rather than x / rho: away from the axis (x >> 1 / rho) this is the
unblocked pattern scaled by rho^2 / (rho^2 - 1) (1.0049 for ALMA 12 m), not the physical blocked
one (which differs from it by up to 1 % of the peak for ALMA 12 m and 3 % for 7 m where PB >= 0.2). The named and generic "airy" models follow CASA,
since tclean's .pb is what the images must match. CASA also maps the radius to x with the scale of
an unblocked 24.5 m aperture whose second null (x = 7.016) lies at 1.566 deg at 1 GHz:
x = u 7.016 / (1.566 x 60) D / 24.5 (`K_CASA`), 0.0172 % below pi D theta / lambda.

tclean looks the 1-D beam up in a table of 10000 samples from 0 to the max radius, without
interpolation, at the radius held in single precision (`casa_u`); the models do the same.
Agreement with CASA 6.7 tclean ``.pb`` images (niter 0, gridder standard, exported with
exportfits; see tests/kernels/test_primary_beam.py): max |difference| where CASA's PB >= 0.2 is
8.5e-8 (float32) for ALMA 12 m (Bands 3, 6), 7 m, VLA L band and EVLA Ka band, and below 9e-8 in
347 images of the EVLA and VLA models from 74 MHz to 60 GHz; 1.6e-4 for a telescope CASA does not
know (CASA interpolates a 19-point table of its fallback beam). Without the table lookup the
difference would be up to 2e-4.

Image pixels follow `kernels.gridding`: pixel (ix, iy) of an (npix_x, npix_y) image sits at
l = (npix_x // 2 - ix) cell, m = (iy - npix_y // 2) cell, and the primary beam is centred on
the phase-centre pixel (npix_x // 2, npix_y // 2). As tclean does, the beam is evaluated at the
pixel's distance in the image plane, sqrt(l^2 + m^2), not at its angle on the sky asin(sqrt(l^2 +
m^2)): the two differ by a fraction theta^2 / 6 (5e-5 at 1 deg), which at 9 deg changes the PB by
1e-3; with the plane distance the images agree with CASA's to 1e-7 at any field size.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from almarules.kernels.constants import ARCSEC, C, GAUSSIAN_PB_FWHP

FWHP_GAUSSIAN = GAUSSIAN_PB_FWHP  # FWHP in units of lambda / D (heuristics.md section 3)
K_CASA = 7.016 / (1.566 * 60.0) / 24.5  # CASA's Airy argument per (arcmin GHz m)
FALLBACK_BLOCKAGE_RATIO = 2.36 / 25.0  # blockage / dish of CASA's fallback (scaled VLA) beam
FALLBACK_MAX_U = 1.1998662 * 25.0 * 43.0  # arcmin GHz m: divided by D, the fallback's max radius
CASA_SAMPLES = 10000  # CASA tabulates a 1-D beam at this many radii from 0 to the max radius


ModelName = Literal["ALMA", "ACA", "VLA", "EVLA", "airy", "gaussian"]
MODEL_NAMES: tuple[str, ...] = ("ALMA", "ACA", "VLA", "EVLA", "airy", "gaussian")
GENERIC_MODELS: tuple[str, ...] = ("airy", "gaussian")


def radius2_deg2(r_arcsec) -> np.ndarray:
    """Squared radii in deg^2, single precision as tclean holds them, from radii in arcsec."""
    r_deg = np.asarray(r_arcsec, dtype=np.float64) / 3600.0
    return (r_deg * r_deg).astype(np.float32)


def casa_u(r2_deg2: np.ndarray, freq_hz: float, max_u: float) -> np.ndarray:
    """u = r[arcmin] nu[GHz] at which tclean looks its tabulated beam up (PBMath1D), NaN beyond
    max_u. From the squared radius r2 (deg^2, float32): r = float32(sqrt(r2) 60 nu[GHz]), then u
    rounded down to the sample grid of CASA_SAMPLES points from 0 to max_u (no interpolation).
    The grid costs up to max_u / 9999 in u, a PB change up to 2e-4; reproducing it and the single
    precision makes the images agree with tclean's to 1e-7."""
    r2 = np.asarray(r2_deg2, dtype=np.float32)
    factor = 60.0 * freq_hz / 1e9
    r = (np.sqrt(r2).astype(np.float64) * factor).astype(np.float32).astype(np.float64)
    per_u = (CASA_SAMPLES - 1) / max_u  # CASA's inverse increment
    u = np.floor(r * per_u) / per_u
    return np.where(r2.astype(np.float64) > (max_u / factor) ** 2, np.nan, u)


_AIRY_TABLES: dict["AiryModel", np.ndarray] = {}  # the pattern at CASA's u samples, per model


class _LookedUp:
    """A model tclean looks up at single-precision squared radii (`power_r2`)."""

    def power_r2(self, r2_deg2: np.ndarray, freq_hz: float) -> np.ndarray:
        raise NotImplementedError

    def power(self, r_arcsec, freq_hz: float) -> np.ndarray:
        """Power at radii `r_arcsec` (arcsec)."""
        return self.power_r2(radius2_deg2(r_arcsec), freq_hz)


@dataclass(frozen=True)
class AiryModel(_LookedUp):
    """Airy pattern of a `dish_m` aperture with a `blockage_m` central blockage, 0 beyond
    u = r[arcmin] nu[GHz] > `max_u`; CASA's form and scale (module docstring)."""

    dish_m: float
    blockage_m: float
    max_u: float

    def power_r2(self, r2_deg2: np.ndarray, freq_hz: float) -> np.ndarray:
        """Power at squared radii `r2_deg2` (deg^2), looked up as tclean does (`casa_u`): in a
        table of the pattern at CASA's CASA_SAMPLES values of u, computed once per model."""
        u = casa_u(r2_deg2, freq_hz, self.max_u)
        inside = ~np.isnan(u)
        k = np.zeros(u.shape, dtype=np.intp)
        k[inside] = np.rint(u[inside] * ((CASA_SAMPLES - 1) / self.max_u))  # u is on the sample grid
        return np.where(inside, self._table()[np.minimum(k, CASA_SAMPLES - 1)], 0.0)

    def _table(self) -> np.ndarray:
        table = _AIRY_TABLES.get(self)
        if table is None:
            grid = np.arange(CASA_SAMPLES) / ((CASA_SAMPLES - 1) / self.max_u)  # CASA's u samples
            table = casa_airy_power(grid * K_CASA * self.dish_m, self.blockage_m / self.dish_m)
            _AIRY_TABLES[self] = table
        return table

    def describe(self) -> str:
        return (f"Airy pattern of a {self.dish_m:g} m aperture with a {self.blockage_m:.4g} m blockage, "
                f"cut at {self.max_u:.6g} arcmin at 1 GHz")


@dataclass(frozen=True)
class PolyModel(_LookedUp):
    """Power pattern sum_i a_i u^(2i), u = r[arcmin] nu[GHz], clipped at 0, 0 beyond `max_u`."""

    coefficients: tuple[float, ...]
    max_u: float
    fitted_at_mhz: float

    def power_r2(self, r2_deg2: np.ndarray, freq_hz: float) -> np.ndarray:
        """Power at squared radii `r2_deg2` (deg^2), looked up as tclean does (`casa_u`)."""
        u = casa_u(r2_deg2, freq_hz, self.max_u)
        p = np.polynomial.polynomial.polyval(np.nan_to_num(u) ** 2, self.coefficients)
        return np.where(np.isnan(u), 0.0, np.clip(p, 0.0, None))

    def describe(self) -> str:
        return (f"EVLA polynomial fitted at {self.fitted_at_mhz:g} MHz "
                f"({', '.join(f'{a:.4g}' for a in self.coefficients)}), cut at {self.max_u:g} arcmin at 1 GHz")


@dataclass(frozen=True)
class GaussianModel:
    """exp(-4 ln 2 (r / FWHP)^2) with FWHP = 1.12 lambda / `dish_m`, evaluated exactly."""

    dish_m: float

    def power_r2(self, r2_deg2: np.ndarray, freq_hz: float) -> np.ndarray:
        """Power at squared radii `r2_deg2` (deg^2)."""
        return self.power(np.sqrt(np.asarray(r2_deg2, dtype=np.float64)) * 3600.0, freq_hz)

    def power(self, r_arcsec, freq_hz: float) -> np.ndarray:
        """Power at radii `r_arcsec` (arcsec)."""
        return gaussian(r_arcsec, freq_hz, self.dish_m)

    def describe(self) -> str:
        return f"Gaussian of FWHP {FWHP_GAUSSIAN} lambda / D, D = {self.dish_m:g} m"


BeamModel = AiryModel | PolyModel | GaussianModel

ALMA_12M = AiryModel(10.7, 0.75, 1.784 * 60.0)
ACA_7M = AiryModel(6.25, 0.75, 3.568 * 60.0)
VLA_BAND = AiryModel(25.0, 2.36, 0.8564 * 60.0)
VLA_NVSS = AiryModel(24.5, 0.0, 0.8564 * 60.0)
EVLA_MAX_U = 58.0
#: open frequency intervals (GHz) of the VLA bands, in which the "VLA" model is VLA_BAND
VLA_BANDS_GHZ = ((35.0, 55.0), (19.0, 35.0), (11.0, 19.0), (7.0, 11.0), (4.0, 7.0), (1.0, 2.0), (0.2, 0.4),
                 (0.0, 0.1))


def _wavelength(freq_hz: float) -> float:
    freq = float(freq_hz)
    if not freq > 0:
        raise ValueError(f"freq_hz must be positive, got {freq_hz}")
    return C / freq


def _jinc(x: np.ndarray) -> np.ndarray:
    """2 J1(x) / x, with its limit 1 at x = 0."""
    from scipy import special  # here, not at import: 0.1 s of every command's start

    x = np.asarray(x, dtype=np.float64)
    out = np.ones_like(x)
    nz = np.abs(x) > 1e-8
    out[nz] = 2.0 * special.j1(x[nz]) / x[nz]
    small = ~nz
    out[small] = 1.0 - x[small] ** 2 / 8.0
    return out


def airy_power(x: np.ndarray, eps: float) -> np.ndarray:
    """Power of an aperture with a central blockage of diameter ratio `eps` in [0, 1), at the
    dimensionless argument x = pi D theta / lambda: ([jinc(x) - eps^2 jinc(eps x)] / (1 - eps^2))^2."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"the blockage must be smaller than the dish, got a ratio {eps}")
    field = (_jinc(x) - eps * eps * _jinc(eps * np.asarray(x, dtype=np.float64))) / (1.0 - eps * eps)
    return field * field


def casa_airy_power(x: np.ndarray, eps: float) -> np.ndarray:
    """CASA's blocked-Airy power at x (module docstring): ([rho^2 jinc(x) - jinc(rho x)] /
    (rho^2 - 1))^2 with rho = 1 / `eps`; jinc(x)^2 for eps = 0."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"the blockage must be smaller than the dish, got a ratio {eps}")
    x = np.asarray(x, dtype=np.float64)
    if eps == 0.0:
        field = _jinc(x)
    else:
        rho2 = 1.0 / (eps * eps)
        field = (rho2 * _jinc(x) - _jinc(x / eps)) / (rho2 - 1.0)
    return field * field


def airy(r_arcsec, freq_hz: float, dish_m: float, blockage_m: float = 0.75) -> np.ndarray:
    """Physical power pattern (1 on axis) of a uniformly illuminated aperture of diameter `dish_m`
    with a central blockage `blockage_m` (0 for none), x = pi D theta / lambda exactly, no cut; at
    radii `r_arcsec` (array-like, arcsec) and `freq_hz`. scipy's J1, ~1e-15 relative."""
    lam = _wavelength(freq_hz)
    dish = float(dish_m)
    block = float(blockage_m)
    if not dish > 0:
        raise ValueError(f"dish_m must be positive, got {dish_m}")
    if not 0.0 <= block < dish:
        raise ValueError(f"blockage_m must be in [0, dish_m), got {blockage_m}")
    x = math.pi * dish * np.asarray(r_arcsec, dtype=np.float64) * ARCSEC / lam
    return airy_power(x, block / dish)


def gaussian(r_arcsec, freq_hz: float, dish_m: float) -> np.ndarray:
    """Gaussian power pattern exp(-4 ln 2 (r / FWHP)^2), FWHP = 1.12 lambda / D (radian), at radii
    `r_arcsec` (array-like, arcsec); exactly 0.5 at r = FWHP / 2."""
    if not float(dish_m) > 0:
        raise ValueError(f"dish_m must be positive, got {dish_m}")
    r = np.asarray(r_arcsec, dtype=np.float64)
    return np.exp(-4.0 * math.log(2.0) * (r / fwhp_arcsec(freq_hz, dish_m)) ** 2)


def fwhp_arcsec(freq_hz: float, dish_m: float) -> float:
    """Half-power width (arcsec) of the Gaussian model: 1.12 lambda / D."""
    return FWHP_GAUSSIAN * _wavelength(freq_hz) / float(dish_m) / ARCSEC


# --------------------------------------------------------------------- EVLA
# EVLA Memo 195 (Perley 2016) as CASA's PBMath1DEVLA tabulates it: "MHz a1 a2 a3 [a4]" with
# a1 in -1e-3, a2 in +1e-7, a3 in -1e-10, a4 in +1e-14 (a0 = 1). CASA's table sets 10052 MHz twice;
# the second assignment (kept here) wins. No 11052 MHz entry; 37820 MHz is as CASA has it.
_EVLA_TABLE = """
232 1.137 5.19 1.04 .71|246 1.130 5.04 1.02 .77|281 1.106 5.11 1.10 .91|296 1.125 5.27 1.14 .96
312 1.030 4.44 .89 .68|328 .980 4.25 .87 .69|344 .974 4.09 .76 .53|357 .996 4.23 .79 .51
382 1.002 4.39 .88 .64|392 1.067 5.13 1.12 .90|403 1.057 4.90 1.06 .87|421 1.154 5.85 1.33 1.08
458 .993 4.67 1.04 .88|470 1.010 4.85 1.07 .86
1040 1.529 8.69 1.88|1104 1.486 8.15 1.68|1168 1.439 7.53 1.45|1232 1.450 7.87 1.63|1296 1.428 7.62 1.54
1360 1.449 8.02 1.74|1424 1.462 8.23 1.83|1488 1.455 7.92 1.63|1552 1.435 7.54 1.49|1680 1.443 7.74 1.57
1744 1.462 8.02 1.69|1808 1.488 8.38 1.83|1872 1.486 8.26 1.75|1936 1.459 7.93 1.62|2000 1.508 8.31 1.68
2052 1.429 7.52 1.47|2180 1.389 7.06 1.33|2436 1.377 6.90 1.27|2564 1.381 6.92 1.26|2692 1.402 7.23 1.40
2820 1.433 7.62 1.54|2948 1.433 7.46 1.42|3052 1.467 8.05 1.70|3180 1.497 8.38 1.80|3308 1.504 8.37 1.77
3436 1.521 8.63 1.88|3564 1.505 8.37 1.75|3692 1.521 8.51 1.79|3820 1.534 8.57 1.77|3948 1.516 8.30 1.66
4052 1.406 7.41 1.48|4180 1.385 7.09 1.36|4308 1.380 7.08 1.37|4436 1.362 6.95 1.35|4564 1.365 6.92 1.31
4692 1.339 6.56 1.17|4820 1.371 7.06 1.40|4948 1.358 6.91 1.34|5052 1.360 6.91 1.33|5180 1.353 6.74 1.25
5308 1.359 6.82 1.27|5436 1.380 7.05 1.37|5564 1.376 6.99 1.31|5692 1.405 7.39 1.47|5820 1.394 7.29 1.45
5948 1.428 7.57 1.57|6052 1.445 7.68 1.50|6148 1.422 7.38 1.38|6308 1.463 7.94 1.62|6436 1.478 8.22 1.74
6564 1.473 8.00 1.62|6692 1.455 7.76 1.53|6820 1.487 8.22 1.72|6948 1.472 8.05 1.67|7052 1.470 8.01 1.64
7180 1.503 8.50 1.84|7308 1.482 8.19 1.72|7436 1.498 8.22 1.66|7564 1.490 8.18 1.66|7692 1.481 7.98 1.56
7820 1.474 7.94 1.57|7948 1.448 7.69 1.51
8052 1.403 7.21 1.37|8180 1.398 7.10 1.32|8308 1.402 7.16 1.35|8436 1.400 7.12 1.32|8564 1.391 6.95 1.25
8692 1.409 7.34 1.49|8820 1.410 7.36 1.45|8948 1.410 7.34 1.43|9052 1.403 7.20 1.36|9180 1.396 7.09 1.31
9308 1.432 7.68 1.55|9436 1.414 7.43 1.47|9564 1.416 7.45 1.47|9692 1.406 7.26 1.39|9820 1.412 7.36 1.43
9948 1.409 7.29 1.39|10052 1.401 7.12 1.31|10180 1.409 7.25 1.36|10308 1.402 7.13 1.31|10436 1.399 7.09 1.29
10564 1.413 7.37 1.43|10692 1.412 7.34 1.41|10820 1.401 7.12 1.31|10948 1.401 7.12 1.31|11180 1.394 6.99 1.24
11308 1.394 7.01 1.26|11436 1.391 6.94 1.22|11564 1.389 6.92 1.22|11692 1.386 6.80 1.15|11820 1.391 6.88 1.19
11948 1.399 6.97 1.22
12052 1.399 7.17 1.34|12180 1.392 7.07 1.31|12308 1.393 7.19 1.38|12436 1.393 7.20 1.40|12564 1.395 7.19 1.38
12692 1.397 7.20 1.37|12820 1.388 7.06 1.32|12948 1.397 7.18 1.36|13052 1.400 7.27 1.40|13180 1.406 7.44 1.50
13308 1.403 7.37 1.47|13436 1.392 7.08 1.31|13564 1.384 6.94 1.24|13692 1.382 6.95 1.25|13820 1.376 6.88 1.24
13948 1.384 6.98 1.28|14052 1.400 7.36 1.48|14180 1.397 7.29 1.45|14308 1.399 7.32 1.45|14436 1.396 7.25 1.42
14564 1.393 7.20 1.39|14692 1.384 7.03 1.31|14820 1.388 7.06 1.32|14948 1.393 7.16 1.37|15052 1.402 7.38 1.48
15180 1.407 7.47 1.53|15308 1.406 7.41 1.48|15436 1.399 7.31 1.44|15564 1.397 7.28 1.43|15692 1.401 7.35 1.46
15820 1.402 7.34 1.45|15948 1.399 7.30 1.44|16052 1.419 7.59 1.54|16180 1.419 7.59 1.52|16308 1.412 7.40 1.44
16436 1.407 7.32 1.40|16564 1.408 7.32 1.41|16692 1.410 7.34 1.40|16820 1.407 7.27 1.38|16948 1.423 7.63 1.55
17052 1.437 7.87 1.66|17180 1.438 7.84 1.64|17308 1.445 7.98 1.71|17436 1.452 8.10 1.77|17564 1.458 8.13 1.70
17692 1.456 8.06 1.72|17820 1.453 8.00 1.68|17948 1.452 7.99 1.69
19052 1.419 7.56 1.53|19180 1.426 7.70 1.59|19308 1.433 7.82 1.64|19436 1.429 7.73 1.60|19564 1.427 7.70 1.59
19692 1.425 7.65 1.56|19820 1.430 7.76 1.62|19948 1.434 7.81 1.63|21052 1.448 8.05 1.73|21180 1.436 7.84 1.63
21308 1.441 7.94 1.68|21436 1.439 7.89 1.66|21564 1.442 7.96 1.69|21692 1.435 7.81 1.61|21820 1.442 7.92 1.66
21948 1.439 7.82 1.61|23052 1.401 7.21 1.37|23180 1.408 7.31 1.41|23308 1.407 7.28 1.39|23436 1.407 7.31 1.41
23564 1.419 7.47 1.47|23692 1.395 7.10 1.33|23820 1.413 7.36 1.42|23948 1.402 7.21 1.36|25052 1.402 7.17 1.31
25180 1.432 7.73 1.58|25308 1.407 7.22 1.33|25436 1.417 7.43 1.45|25564 1.422 7.52 1.48|25692 1.427 7.59 1.52
25820 1.416 7.42 1.44|25948 1.422 7.46 1.45
28052 1.444 7.61 1.44|28180 1.439 7.54 1.42|28308 1.457 7.87 1.58|28436 1.457 7.90 1.60|28564 1.455 7.87 1.59
28692 1.458 7.88 1.58|28820 1.453 7.81 1.56|28948 1.460 7.98 1.64|31052 1.415 7.44 1.44|31180 1.408 7.26 1.37
31308 1.413 7.28 1.36|31436 1.394 7.07 1.30|31564 1.404 7.23 1.37|31692 1.427 7.48 1.44|31820 1.418 7.48 1.48
31948 1.413 7.37 1.42|34052 1.42 7.28 1.34|34180 1.46 7.77 1.53|34308 1.42 7.41 1.42|34436 1.42 7.36 1.39
34564 1.46 7.76 1.52|34692 1.42 7.34 1.38|34820 1.42 7.34 1.39|34948 1.45 7.68 1.49|37152 1.42 7.47 1.44
37280 1.41 7.35 1.40|37408 1.45 7.65 1.46|37536 1.41 7.13 1.29|37664 1.41 7.30 1.38|37792 1.45 7.75 1.50
37820 1.45 7.68 1.49|38048 1.41 7.38 1.43
41052 1.453 7.69 1.47|41180 1.479 8.03 1.61|41308 1.475 7.97 1.58|41436 1.451 7.73 1.51|41564 1.450 7.71 1.51
41692 1.465 7.79 1.49|41820 1.460 7.73 1.47|41948 1.434 7.47 1.40|43052 1.428 7.40 1.38|43180 1.418 7.29 1.34
43308 1.433 7.49 1.43|43436 1.438 7.55 1.45|43564 1.419 7.36 1.40|43692 1.397 7.13 1.33|43820 1.423 7.39 1.40
43948 1.452 7.68 1.47
"""
_EVLA_EXPONENTS = ("-{}e-3", "{}e-7", "-{}e-10", "{}e-14")


def _parse_evla(text: str) -> dict[float, tuple[float, ...]]:
    """MHz -> (1, a1, a2, a3[, a4]), each coefficient the decimal literal CASA has."""
    table: dict[float, tuple[float, ...]] = {}
    for entry in text.replace("\n", "|").split("|"):
        if entry.strip():
            mhz, *mags = entry.split()
            table[float(mhz)] = (1.0,) + tuple(float(form.format(m)) for m, form in
                                               zip(mags, _EVLA_EXPONENTS[:len(mags)], strict=True))
    return table


EVLA_COEFFICIENTS: dict[float, tuple[float, ...]] = _parse_evla(_EVLA_TABLE)
_EVLA_FREQS = sorted(EVLA_COEFFICIENTS)
#: band -> (lower, upper) open detection interval (MHz), in CASA's order of checking
EVLA_BAND_DETECT = {"P": (224, 480), "L": (900, 2003), "S": (1990, 4001), "C": (3990, 8001),
                    "X": (7990, 12001), "U": (12000, 18000), "K": (19000, 26000), "A": (28000, 38000),
                    "Q": (41000, 50000)}
#: band -> (low edge, value below it, high edge, value at or above it), MHz
EVLA_BAND_CLAMP = {"P": (224, 232, 480, 470), "L": (900, 1040, 2000, 2000), "S": (2052, 2052, 3948, 3948),
                   "C": (4052, 4052, 7948, 7948), "X": (8052, 8052, 11948, 11948),
                   "U": (12052, 12052, 17948, 17948), "K": (19052, 19052, 25948, 25948),
                   "A": (28052, 28052, 38048, 38048), "Q": (41052, 41052, 43948, 43948)}


def evla_band(freq_hz: float) -> Optional[str]:
    """The EVLA band CASA assigns to a frequency (None between the bands)."""
    mhz = freq_hz / 1e6
    return next((b for b, (lo, hi) in EVLA_BAND_DETECT.items() if lo < mhz < hi), None)


def evla_fit_frequency(freq_hz: float) -> float:
    """The tabulated frequency (MHz) whose coefficients CASA uses at `freq_hz`."""
    mhz = freq_hz / 1e6
    band = evla_band(freq_hz)
    if band is not None:
        lo, below, hi, above = EVLA_BAND_CLAMP[band]
        if mhz < lo:
            mhz = below
        elif mhz >= hi:
            mhz = above
    i = bisect.bisect_left(_EVLA_FREQS, mhz)
    if i == len(_EVLA_FREQS):
        return _EVLA_FREQS[-1]
    if i == 0:
        return _EVLA_FREQS[0]
    prev, nxt = _EVLA_FREQS[i - 1], _EVLA_FREQS[i]
    return prev if abs(mhz - prev) < abs(nxt - mhz) else nxt


# --------------------------------------------------------------------- models by name
def beam_model(model: str, freq_hz: float, dish_m: Optional[float] = None,
               blockage_m: Optional[float] = None) -> BeamModel:
    """The model `model` (one of `MODEL_NAMES`) at `freq_hz`; `dish_m` (physical dish) is needed by
    the generic models "airy" and "gaussian" only, `blockage_m` applies to "airy" only."""
    _wavelength(freq_hz)
    if blockage_m is not None and model != "airy":
        raise ValueError("blockage_m applies to the generic 'airy' model only")
    if model == "ALMA":
        return ALMA_12M
    if model == "ACA":
        return ACA_7M
    if model == "VLA":
        ghz = freq_hz / 1e9
        return VLA_BAND if any(lo < ghz < hi for lo, hi in VLA_BANDS_GHZ) else VLA_NVSS
    if model == "EVLA":
        fit = evla_fit_frequency(freq_hz)
        return PolyModel(EVLA_COEFFICIENTS[fit], EVLA_MAX_U, fit)
    if model in GENERIC_MODELS:
        if dish_m is None or not float(dish_m) > 0:
            raise ValueError(f"the generic {model!r} model needs a positive dish_m, got {dish_m}")
        dish = float(dish_m)
        if model == "gaussian":
            return GaussianModel(dish)
        block = FALLBACK_BLOCKAGE_RATIO * dish if blockage_m is None else float(blockage_m)
        if not 0.0 <= block < dish:
            raise ValueError(f"blockage_m must be in [0, dish_m), got {blockage_m}")
        return AiryModel(dish, block, FALLBACK_MAX_U / dish)
    raise ValueError(f"model must be one of {', '.join(MODEL_NAMES)}; got {model!r}")


def beam_profile(model: str, r_arcsec, freq_hz: float, dish_m: Optional[float] = None,
                 blockage_m: Optional[float] = None) -> np.ndarray:
    """Power pattern of `model` at radii `r_arcsec` (array-like, arcsec) and `freq_hz`."""
    return beam_model(model, freq_hz, dish_m, blockage_m).power(np.asarray(r_arcsec, dtype=np.float64), freq_hz)


def describe(model: str, freq_hz: float, dish_m: Optional[float] = None) -> str:
    """One line naming the model and its parameters at `freq_hz` (for records and logs)."""
    return f"{model}: {beam_model(model, freq_hz, dish_m).describe()}"


def pb_image(npix_x: int, npix_y: int, cell_arcsec: float, freq_hz: float, dish_m: Optional[float],
             model: str = "ALMA", blockage_m: Optional[float] = None) -> np.ndarray:
    """Primary-beam image, shape (npix_x, npix_y), 1 at the phase-centre pixel (npix_x // 2,
    npix_y // 2) and symmetric about it (pixel conventions of `kernels.gridding`), of `model`
    (`beam_model`; `dish_m` is the physical dish, used by the generic models)."""
    nx, ny = int(npix_x), int(npix_y)
    if nx < 1 or ny < 1:
        raise ValueError(f"image shape must be positive, got ({npix_x}, {npix_y})")
    beam = beam_model(model, freq_hz, dish_m, blockage_m)
    cell_deg = float(cell_arcsec) / 3600.0
    dx = (nx // 2 - np.arange(nx, dtype=np.float64)) * cell_deg
    dy = (np.arange(ny, dtype=np.float64) - ny // 2) * cell_deg
    if (np.abs(dx).max() ** 2 + np.abs(dy).max() ** 2) * (math.pi / 180.0) ** 2 >= 1.0:
        raise ValueError("the image extends beyond the horizon (l^2 + m^2 >= 1)")
    # tclean: squared offsets per axis, then their sum, each in single precision
    r2 = (dx * dx).astype(np.float32)[:, None] + (dy * dy).astype(np.float32)[None, :]
    return beam.power_r2(r2.astype(np.float32), float(freq_hz))


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
