"""Synthesised (restoring) beam: Gaussian fit to the PSF, PSF sidelobe level, Gaussian beam image.

Units: cells and beam axes in arcsec, position angles in degrees.

Conventions (those of `kernels.gridding`)
----------------------------------------
Arrays are indexed ``image[ix, iy]``, shape ``(npix_x, npix_y)``; the phase centre is pixel
``(npix_x // 2, npix_y // 2)`` and pixel (ix, iy) sits at the offsets (arcsec)

    l = (npix_x // 2 - ix) * cell      (east)
    m = (iy - npix_y // 2) * cell      (north)

A beam is the elliptical Gaussian

    G(l, m) = exp(-4 ln 2 [(x_maj / bmaj)^2 + (x_min / bmin)^2]),
    x_maj = l sin(bpa) + m cos(bpa),    x_min = l cos(bpa) - m sin(bpa),

with bmaj >= bmin the full widths at half maximum (arcsec) and bpa the position angle of the
major axis measured from north through east (the astronomical / CASA convention), in degrees,
reduced to (-90, 90]: bpa = 0 is a north-south major axis, bpa = +90 east-west, bpa = +45
points the major axis north-east (to smaller ix and larger iy). For a circular beam (bmaj =
bmin) bpa is undetermined; `fit_beam` then returns whatever the rounding gives.

The offsets are the gridding's direction cosines in arcsec (SIN projection); for the fields of
interest (|l|, |m| << 1 rad) they are the angular offsets to a relative error below 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FOUR_LN2 = 4.0 * math.log(2.0)


@dataclass(frozen=True)
class Beam:
    """Elliptical Gaussian beam: FWHM axes in arcsec (bmaj >= bmin), bpa in degrees east of north."""

    bmaj_arcsec: float
    bmin_arcsec: float
    bpa_deg: float


def _offsets(npix_x: int, npix_y: int, cell_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """(l, m) offsets in arcsec of every pixel, each shape (npix_x, npix_y)."""
    ix = np.arange(npix_x, dtype=np.float64)
    iy = np.arange(npix_y, dtype=np.float64)
    l = (npix_x // 2 - ix)[:, None] * float(cell_arcsec)
    m = (iy - npix_y // 2)[None, :] * float(cell_arcsec)
    return np.broadcast_to(l, (npix_x, npix_y)), np.broadcast_to(m, (npix_x, npix_y))


def _quad_coefficients(beam: Beam) -> tuple[float, float, float]:
    """(a, b, c) with -ln G = a l^2 + 2 b l m + c m^2 (l, m in arcsec)."""
    if not (beam.bmaj_arcsec > 0 and beam.bmin_arcsec > 0):
        raise ValueError(f"beam axes must be positive, got {beam}")
    pa = math.radians(beam.bpa_deg)
    s, c = math.sin(pa), math.cos(pa)
    kmaj = FOUR_LN2 / beam.bmaj_arcsec ** 2
    kmin = FOUR_LN2 / beam.bmin_arcsec ** 2
    # x_maj^2 = (l s + m c)^2, x_min^2 = (l c - m s)^2
    a = kmaj * s * s + kmin * c * c
    b = (kmaj - kmin) * s * c
    cc = kmaj * c * c + kmin * s * s
    return a, b, cc


def _beam_from_quad(a: float, b: float, c: float) -> Beam:
    """The beam whose -ln G is a l^2 + 2 b l m + c m^2 (must be positive definite)."""
    mat = np.array([[a, b], [b, c]], dtype=np.float64)
    evals, evecs = np.linalg.eigh(mat)  # ascending: evals[0] belongs to the major axis
    if not evals[0] > 0:
        raise ValueError("the fitted quadratic form is not positive definite: no Gaussian main lobe")
    bmaj = math.sqrt(FOUR_LN2 / evals[0])
    bmin = math.sqrt(FOUR_LN2 / evals[1])
    el, em = evecs[:, 0]  # major-axis direction (l east, m north)
    pa = math.degrees(math.atan2(el, em))  # from north (m) towards east (l)
    while pa <= -90.0:
        pa += 180.0
    while pa > 90.0:
        pa -= 180.0
    return Beam(float(bmaj), float(bmin), float(pa))


def gaussian_image(beam: Beam, npix_x: int, npix_y: int, cell_arcsec: float) -> np.ndarray:
    """Unit-peak elliptical Gaussian `beam` on the grid, shape (npix_x, npix_y), peak 1 at the
    phase-centre pixel (npix_x // 2, npix_y // 2); G(l, m) as in the module docstring, sampled at
    pixel centres (not pixel-integrated). For restoring: convolve a clean-component image with it.
    """
    a, b, c = _quad_coefficients(beam)
    l, m = _offsets(int(npix_x), int(npix_y), cell_arcsec)
    return np.exp(-(a * l * l + 2.0 * b * l * m + c * m * m))


def _main_lobe_pixels(psf: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the pixels >= threshold * peak 4-connected to the phase-centre pixel."""
    nx, ny = psf.shape
    centre = (nx // 2, ny // 2)
    return connected_component(psf >= threshold * psf[centre], centre)


#: largest window side (pixels) `connected_component` floods before it labels the whole mask
_FLOOD_MAX_SIDE = 512


def connected_component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of the boolean 2-D `mask` that holds `seed` (all False when
    ``mask[seed]`` is False), as ``scipy.ndimage.label`` defines it.

    A PSF's main lobe spans a few pixels of a large image: it is flooded inside a window around
    the seed (side 64, doubled while the component reaches a window edge inside the image), which
    is exact once the component stays clear of those edges; a component reaching beyond a
    512-pixel window, or taking more than 4 x side flooding steps, is labelled by scipy.ndimage
    (imported only then: ~0.1 s of every image's start otherwise)."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    if not mask[seed]:
        return out
    side = 64
    while side <= _FLOOD_MAX_SIDE:
        lo = [max(c - side // 2, 0) for c in seed]
        hi = [min(c + side // 2, n) for c, n in zip(seed, mask.shape, strict=True)]
        win = mask[lo[0]:hi[0], lo[1]:hi[1]]
        region = _flood(win, (seed[0] - lo[0], seed[1] - lo[1]), max_steps=4 * side)
        if region is None:
            break
        inner_edges = [(lo[0] > 0, region[0].any()), (hi[0] < mask.shape[0], region[-1].any()),
                       (lo[1] > 0, region[:, 0].any()), (hi[1] < mask.shape[1], region[:, -1].any())]
        if not any(inside and touched for inside, touched in inner_edges):
            out[lo[0]:hi[0], lo[1]:hi[1]] = region
            return out
        side *= 2
    from scipy import ndimage

    labels, _ = ndimage.label(mask)
    return labels == labels[seed]


def _flood(mask: np.ndarray, seed: tuple[int, int], max_steps: int) -> np.ndarray | None:
    """4-connected flood fill of `mask` from `seed` by repeated one-pixel growth; None if it has
    not stopped growing after `max_steps` steps."""
    region = np.zeros_like(mask)
    region[seed] = True
    for _ in range(max_steps):
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if np.array_equal(grown, region):
            return region
        region = grown
    return None


def fit_beam(psf: np.ndarray, cell_arcsec: float, threshold: float = 0.35) -> Beam:
    """Gaussian fit to the main lobe of `psf` (shape (npix_x, npix_y), centred on the phase-centre
    pixel as `kernels.gridding.psf` makes it); returns the FWHM axes (arcsec) and position angle
    (degrees east of north, in (-90, 90]) of the module docstring.

    Method: the pixels whose value is at least `threshold` (default 0.35) times the value P0 at
    the phase-centre pixel and that are 4-connected to it form the main lobe. The model is
    P0 * exp(-(a l^2 + 2 b l m + c m^2)), centred on the phase centre (a PSF is centred by
    construction) with the peak fixed to P0; (a, b, c) start from a linearised fit (least
    squares on ln P weighted by P^2, which approximates least squares on P) and are refined by
    nonlinear least squares on P itself over the main-lobe pixels (Levenberg-Marquardt, below).
    The axes follow from the eigenvalues of [[a, b], [b, c]]: FWHM = sqrt(4 ln 2 / eigenvalue).

    Accuracy: for a PSF that is an elliptical Gaussian sampled at pixel centres the fit is exact
    to ~1e-8 relative (no pixel integration is modelled, and none is present in a gridded PSF),
    provided the main lobe spans a few pixels (>= 3 pixels per FWHM is ample). For a real PSF the
    result depends on `threshold` as its main lobe is not Gaussian: for the PSF of a uniformly
    filled uv disc (2 J1(x) / x) the fitted FWHM is 0.983, 1.003 and 1.026 times the true FWHM
    for thresholds 0.2, 0.35 and 0.5 (measured at 10 pixels per beam, tests/kernels/test_beam.py).
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2:
        raise ValueError(f"psf must have shape (npix_x, npix_y), got {psf.shape}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    nx, ny = psf.shape
    p0 = psf[nx // 2, ny // 2]
    if not p0 > 0:
        raise ValueError("the PSF is not positive at the phase-centre pixel")
    lobe = _main_lobe_pixels(psf, threshold)
    l_all, m_all = _offsets(nx, ny, cell_arcsec)
    sel = lobe & (psf > 0)
    l, m, p = l_all[sel], m_all[sel], psf[sel] / p0
    if p.size < 5:
        raise ValueError(f"the main lobe covers only {p.size} pixels: the cell is too large to fit a beam")
    design = np.stack([l * l, 2.0 * l * m, m * m], axis=1)
    y = -np.log(p)
    wts = p  # sqrt of the weight P^2
    dw = design * wts[:, None]
    coef = np.linalg.solve(_gram(dw, dw), _gram(dw, (y * wts)[:, None])[:, 0])  # 3x3 normal equations
    a, b, c = (float(v) for v in coef)
    if not (a > 0 and c > 0 and a * c - b * b > 0):
        # fall back to a circular guess from the lobe area: pi r^2 = area, exp(-k r^2) = threshold
        r2 = sel.sum() * cell_arcsec ** 2 / math.pi
        a = c = -math.log(threshold) / r2
        b = 0.0

    q = _levenberg_marquardt(design, p, np.array([a, b, c]))
    return _beam_from_quad(*(float(v) for v in q))


def _gram(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x.T @ y for thin (n, k) columns, summed by numpy's pairwise summation instead of BLAS: the
    same bits in every process (a BLAS kernel's result depends on its thread count and the arrays'
    alignment, so a beam fitted on a Dask worker could differ in its last bits from a serial run's)."""
    return np.array([[np.sum(x[:, i] * y[:, j]) for j in range(y.shape[1])] for i in range(x.shape[1])])


def _levenberg_marquardt(design: np.ndarray, p: np.ndarray, q: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Minimise sum (exp(-design @ q) - p)^2 over q from the start `q` (Levenberg-Marquardt with
    Marquardt's diagonal scaling); stops when a step changes q by < 1e-12 relative or the cost by
    < 1e-15 relative. Three parameters: the normal equations are 3x3 and solved directly."""
    def cost_of(q: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        model = np.exp(-(design[:, 0] * q[0] + design[:, 1] * q[1] + design[:, 2] * q[2]))
        return float(np.sum((model - p) ** 2)), model, model - p

    cost, model, r = cost_of(q)
    lam = 1e-3
    for _ in range(max_iter):
        jac = -model[:, None] * design
        jtj, jtr = _gram(jac, jac), _gram(jac, r[:, None])[:, 0]
        while True:
            step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj)), -jtr)
            new = q + step
            new_cost, new_model, new_r = cost_of(new)
            if new_cost <= cost:
                lam = max(lam / 10.0, 1e-12)
                break
            lam *= 10.0
            if lam > 1e12:
                return q
        done = (np.abs(step) <= 1e-12 * (np.abs(q) + 1e-300)).all() or cost - new_cost <= 1e-15 * cost
        q, cost, model, r = new, new_cost, new_model, new_r
        if done:
            break
    return q


def sidelobe_level(psf: np.ndarray, beam: Beam, cell_arcsec: float) -> float:
    """CASA's PSF sidelobe level (tclean's, SIImageStore's), relative to the PSF value P0 at the
    phase-centre pixel: max(|min PSF|, max(PSF - P0 G)) / P0 with G the unit-peak Gaussian of
    `beam` (the fit to the PSF) on the PSF's grid -- the deepest negative sidelobe or the largest
    excess over the fitted main lobe, wherever it lies. It drives the Cotton-Schwab cycle
    threshold (`kernels.deconvolve`) and auto-multithresh's sidelobe threshold (`kernels.masks`)."""
    p = np.asarray(psf, dtype=np.float64)
    p0 = float(p[p.shape[0] // 2, p.shape[1] // 2])
    if not p0 > 0:
        raise ValueError("the PSF is not positive at the phase-centre pixel")
    g = gaussian_image(beam, p.shape[0], p.shape[1], cell_arcsec)
    return max(abs(min(float(p.min()), 0.0)), max(float((p - p0 * g).max()), 0.0)) / p0
