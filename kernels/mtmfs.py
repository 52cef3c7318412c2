"""Multi-term multi-frequency synthesis (MT-MFS, Rau & Cornwell 2011, A&A 532, A71): the image-domain
minor cycle of CASA's tclean(deconvolver='mtmfs', scales=[0]), restoration and spectral index.

Units: residual, PSF and restored images in Jy/beam, Taylor model images in Jy/pixel, frequencies
in Hz, cells in arcsec. Arrays follow `kernels.gridding`: a plane is ``image[ix, iy]``, a stack of
Taylor terms is ``(nterms, npix_x, npix_y)``, the phase centre (and every PSF's peak) is pixel
``(shape[0] // 2, shape[1] // 2)``.

Sky model
---------
Each pixel's spectrum is a polynomial in x = (nu - nu0) / nu0 (nu0 = the reference frequency;
CASA's default reffreq is the middle of the selected frequency range):

    I(nu) = sum_{t < nterms} I_t x^t,        I_0 = I(nu0),  I_1 / I_0 = alpha,
    I_2 / I_0 = beta + alpha (alpha - 1) / 2 (for I0 (nu/nu0)^(alpha + beta ln(nu/nu0))).

Taylor-weighted images (the caller's major cycle makes them; `taylor_images` does it with
`kernels.gridding`): for t = 0 .. nterms - 1 the residual R_t is the dirty image of the residual
visibilities with the weights w_k x_k^t, and for t = 0 .. 2 nterms - 2 the PSF P_t is the dirty
image of V = 1 with those weights. Then R_i = sum_j P_{i+j} (*) I_j for the true I_j.

Normalisation (CASA's, required here): every R_t and P_t is divided by the same number, the sum of
the t = 0 imaging weights (CASA's sumwt.tt0: SIImageStore::divideImageByWeightVal divides every
residual.ttN by sumwt.tt0, and SIImageStore::normPSF divides every psf.ttN by max(psf.tt0), which
is the same number for the same weights). So P_0 peaks at 1, R_0 is the ordinary MFS dirty image in
Jy/beam, and the P_t (t > 0) peak at sum(w x^t) / sum(w) -- not at 1. Images each normalised by
their own sum of weights (``gridding.dirty_image`` called with weights w x^t) are brought to this
convention by `normalise`; note that sum(w x) is ~0 for a reference frequency mid-band, so the
t = 1 image cannot be made that way -- grid V x^t with the weights w instead (`taylor_images`).

Minor cycle (`multiterm_clean`; CASA's MultiTermMatrixCleaner with the single scale 0)
-------------------------------------------------------------------------------------
The Hessian H_ij = P_{i+j}(centre) (nterms x nterms) is formed and inverted once. Each iteration:

* at every pixel, the coefficients a = H^-1 r of the residual Taylor values r = (R_0 .. R_{n-1})
  there (the "principal solution");
* the pixel inside the mask with the largest a . r = r^T H^-1 r is chosen -- CASA's criterion
  2 a . r - a^T H a (the chi^2 reduction of MultiTermMatrixCleaner::chooseComponent), equal to
  a . r since H a = r; ties go to the first pixel in CASA's scan order (iy, then ix);
* gain * a_j is added to model I_j at that pixel, and gain * sum_j a_j P_{i+j} (centred on the
  pixel) is subtracted from every R_i, wherever the shifted PSF array overlaps the image.

It stops when the peak |R_0| inside the mask is <= max(threshold, cycle_threshold) (Jy/beam),
after `niter` components, or when that peak exceeds twice its starting value ("diverging"). For
nterms = 1 this is `kernels.deconvolve.hogbom` (same picks, components and stopping rules).

Differences from CASA's MultiTermMatrixCleaner: CASA stops on |peak R_0| / H_00 < threshold (we
use the peak in Jy/beam and <=, as `kernels.deconvolve.hogbom`; identical when P_0 peaks at 1);
CASA subtracts only a PSF patch (findBeamPatch: 80 pixels a side for scale 0) in the minor cycle,
we subtract the whole PSF array as `hogbom` does; CASA never picks the image's outermost row/column of pixels (its
scale-0 mask border), we may; CASA rejects a Hessian with a zero element or with rows whose
element ratios agree to 1e-4 before its Cholesky inversion, we reject one that is not positive
definite or whose condition number exceeds 1e12.

Restoration and spectral index (CASA's SDAlgorithmMSMFS::restore, SIImageStoreMultiTerm)
---------------------------------------------------------------------------------------
CASA restores with the principal solution of the residuals, H^-1 R (computeprincipalsolution),
not with R itself: image.ttN = model.ttN (*) beam + (H^-1 R)_N, the beam being the Gaussian fitted
to psf.tt0 (`restore_taylor` with ``psfs``). The alpha images use those same principal-solution
residuals (the residual.ttN images on disk keep the original R): with I_t the restored images,

    cutoff      = max(residual tt0) / 10                          (maximum, not |max|, whole image)
    alpha       = I_1 / I_0                         where I_0 > cutoff (masked elsewhere)
    alpha.error = |alpha| sqrt((R_0 / I_0)^2 + (R_1 / I_1)^2)     (R_t: principal-solution residuals)
    beta        = I_2 / I_0 - alpha (alpha - 1) / 2               (nterms >= 3)

(SIImageStoreMultiTerm::calculateAlphaBeta). `spectral_index` evaluates alpha.error in the equal
form sqrt((alpha R_0 / I_0)^2 + (R_1 / I_0)^2), which stays finite where I_1 = 0, and returns NaN
outside the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import gridding
from .beam import Beam
from .deconvolve import clean_mask, subtract_components
from .restore import restore

__all__ = ["taylor_weights", "normalise", "taylor_images", "hessian", "principal_solution",
           "MultiTermResult", "multiterm_clean", "restore_taylor", "SpectralIndex", "spectral_index"]

#: largest accepted condition number of the Hessian (nearly linearly dependent Taylor terms)
MAX_CONDITION = 1e12


# ---------------------------------------------------------------- Taylor-weighted images

def taylor_weights(freq_hz: np.ndarray, ref_freq_hz: float, nterms: int) -> np.ndarray:
    """w_t(nu) = ((nu - nu0) / nu0)^t for t = 0 .. nterms - 1, shape (nterms, nchan); w_0 = 1.
    (For the PSFs ask for 2 nterms - 1 terms.)"""
    freq = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    if freq.ndim != 1:
        raise ValueError(f"freq_hz must have shape (nchan,), got {freq.shape}")
    if not ref_freq_hz > 0:
        raise ValueError(f"ref_freq_hz must be positive, got {ref_freq_hz}")
    if int(nterms) != nterms or nterms < 1:
        raise ValueError(f"nterms must be an integer >= 1, got {nterms}")
    x = (freq - float(ref_freq_hz)) / float(ref_freq_hz)
    return x[None, :] ** np.arange(int(nterms))[:, None]


def normalise(images: np.ndarray, sumwt: np.ndarray) -> np.ndarray:
    """Bring Taylor images each divided by its own sum of weights to CASA's convention.

    images: (nterms, nx, ny), image t = (sum_k w_k x_k^t ...) / sumwt[t] (e.g. `gridding.dirty_image`
    or `gridding.psf` called with the weights w x^t); sumwt: (nterms,) the sums sum_k w_k x_k^t
    (CASA's sumwt.ttN). Returns image_t * sumwt[t] / sumwt[0], i.e. everything divided by the sum
    of the t = 0 weights (module docstring)."""
    img = np.asarray(images, dtype=np.float64)
    sw = np.asarray(sumwt, dtype=np.float64)
    if sw.ndim != 1 or img.shape[:1] != sw.shape:
        raise ValueError(f"sumwt must have shape ({img.shape[0]},), got {sw.shape}")
    if not sw[0] > 0:
        raise ValueError("the sum of the t = 0 weights must be positive")
    return img * (sw / sw[0]).reshape((-1,) + (1,) * (img.ndim - 1))


def taylor_images(uvw_m: np.ndarray, freq_hz: np.ndarray, vis: np.ndarray, weight: np.ndarray,
                  npix_x: int, npix_y: int, cell_arcsec: float, ref_freq_hz: float, nterms: int,
                  psf_npix: Optional[tuple[int, int]] = None, epsilon: float = 1e-6,
                  wgridding: bool = True, nthreads: int = 0,
                  flags: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Taylor-weighted residuals (nterms, npix_x, npix_y) and PSFs (2 nterms - 1, psf shape) of
    `vis` (Jy, (nrow, nchan)) with the imaging weights `weight`, in CASA's normalisation.

    R_t = gridding.dirty_image(vis * x^t, weight) and P_t = gridding.dirty_image(x^t, weight): the
    gridder divides each by the sum of the unflagged `weight` (the t = 0 sum), as CASA does.
    psf_npix: the PSFs' (npix_x, npix_y) (default the image's; twice the image's makes the minor
    cycle's subtraction exact over the whole image). Other arguments: `gridding.dirty_image`.
    """
    freq = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    vis = np.asarray(vis)
    wt = taylor_weights(freq, ref_freq_hz, 2 * int(nterms) - 1)
    kw = dict(epsilon=epsilon, wgridding=wgridding, nthreads=nthreads, flags=flags)
    px, py = (npix_x, npix_y) if psf_npix is None else psf_npix
    res = np.stack([gridding.dirty_image(uvw_m, freq, vis * wt[t][None, :], weight, npix_x, npix_y,
                                         cell_arcsec, **kw) for t in range(int(nterms))])
    ones = np.ones(vis.shape, dtype=np.complex128)
    psfs = np.stack([gridding.dirty_image(uvw_m, freq, ones * wt[t][None, :], weight, px, py,
                                          cell_arcsec, **kw) for t in range(2 * int(nterms) - 1)])
    return res, psfs


# ---------------------------------------------------------------- Hessian

def _check_psfs(psfs: np.ndarray, nterms: Optional[int] = None) -> tuple[np.ndarray, int]:
    p = np.asarray(psfs, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] % 2 == 0:
        raise ValueError(f"psfs must have shape (2 nterms - 1, nx, ny), got {p.shape}")
    n = (p.shape[0] + 1) // 2
    if nterms is not None and n != nterms:
        raise ValueError(f"{nterms} Taylor terms need {2 * nterms - 1} PSFs, got {p.shape[0]}")
    return p, n


def hessian(psfs: np.ndarray) -> np.ndarray:
    """H_ij = P_{i+j} at the PSF centre (shape // 2), (nterms, nterms), from the 2 nterms - 1 PSFs
    (any size, shape (2 nterms - 1, nx, ny))."""
    p, n = _check_psfs(psfs)
    c = p[:, p.shape[1] // 2, p.shape[2] // 2]
    i = np.arange(n)
    return c[i[:, None] + i[None, :]]


def _inverse_hessian(h: np.ndarray) -> np.ndarray:
    try:
        np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        raise ValueError(f"the multi-term Hessian is not positive definite: {h.tolist()}; are "
                         "the PSFs Taylor-weighted and is the band wide enough for nterms?") from None
    cond = float(np.linalg.cond(h))
    if not cond <= MAX_CONDITION:
        raise ValueError(f"the multi-term Hessian is nearly singular (condition number {cond:.3g}): "
                         "the band is too narrow for this many Taylor terms")
    hinv = np.linalg.inv(h)
    return 0.5 * (hinv + hinv.T)


def principal_solution(residuals: np.ndarray, psfs: np.ndarray) -> np.ndarray:
    """H^-1 r at every pixel: (nterms, nx, ny) from residuals (nterms, nx, ny) and the PSFs (CASA's
    MultiTermMatrixCleaner::computeprincipalsolution; Jy/beam)."""
    r = np.asarray(residuals, dtype=np.float64)
    if r.ndim != 3:
        raise ValueError(f"residuals must have shape (nterms, nx, ny), got {r.shape}")
    _check_psfs(psfs, r.shape[0])
    hinv = _inverse_hessian(hessian(psfs))
    return np.tensordot(hinv, r, axes=(1, 0))


# ---------------------------------------------------------------- minor cycle

@dataclass
class MultiTermResult:
    """Result of `multiterm_clean`.

    models: Taylor model images (nterms, nx, ny), Jy/pixel; residuals: the updated Taylor
    residuals (nterms, nx, ny), Jy/beam; iterations: components taken; peak: masked max |R_0| at
    exit (Jy/beam); stopped_by: "threshold", "cycle_threshold", "niter", "empty" (nothing in the
    mask) or "diverging"; peak_history: masked max |R_0| before each iteration and at exit
    (iterations + 1 values, Jy/beam); hessian, inverse_hessian: (nterms, nterms); work_pixels:
    pixels visited by the loop (iterations x the mask's bounding box)."""

    models: np.ndarray
    residuals: np.ndarray
    iterations: int
    peak: float
    stopped_by: str
    peak_history: np.ndarray
    hessian: np.ndarray
    inverse_hessian: np.ndarray
    work_pixels: int = 0


def _windows(p: np.ndarray, wx: int, wy: int) -> np.ndarray:
    """Transposed PSF windows: W[t, dy + wy - 1, dx + wx - 1] = p[t, cx + dx, cy + dy] for
    |dx| < wx, |dy| < wy, zero where that falls outside the PSF array."""
    nt, px, py = p.shape
    cx, cy = px // 2, py // 2
    win = np.zeros((nt, 2 * wy - 1, 2 * wx - 1))
    x0, x1 = max(cx - (wx - 1), 0), min(cx + wx, px)
    y0, y1 = max(cy - (wy - 1), 0), min(cy + wy, py)
    win[:, y0 - cy + wy - 1:y1 - cy + wy - 1, x0 - cx + wx - 1:x1 - cx + wx - 1] = \
        p[:, x0:x1, y0:y1].transpose(0, 2, 1)
    return win


def _check_inputs(residuals: np.ndarray, psfs: np.ndarray, mask: Optional[np.ndarray], gain: float,
                  niter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residuals copy, PSFs, bool mask) after checking shapes and parameters."""
    res = np.array(residuals, dtype=np.float64)  # a copy: inputs are never modified
    if res.ndim != 3 or res.shape[0] < 1:
        raise ValueError(f"residuals must have shape (nterms, nx, ny), got {res.shape}")
    nt, nx, ny = res.shape
    p, _ = _check_psfs(psfs, nt)
    if not p[0, p.shape[1] // 2, p.shape[2] // 2] > 0:
        raise ValueError("PSF_0 is not positive at its centre pixel (shape // 2)")
    return res, p, clean_mask(mask, (nx, ny), gain, niter)


def _clean_box(r: np.ndarray, mb: np.ndarray, win: np.ndarray, hinv: np.ndarray, gain: float,
               niter: int, threshold: float, cycle_threshold: float
               ) -> tuple[np.ndarray, int, float, str, list[float]]:
    """The iteration loop on the box: r (nterms, wy, wx) transposed residuals, updated in place;
    mb (wy, wx) the mask; win the transposed PSF windows (`_windows`). Returns (components
    (nterms, wy, wx), iterations, final peak, stop reason, peak history)."""
    nt, wy, wx = r.shape
    full_box = bool(mb.all())
    outside = ~mb
    comps = np.zeros_like(r)
    crit = np.empty((wy, wx))
    tmp = np.empty((wy, wx))
    stop = max(float(threshold), float(cycle_threshold))
    pairs = [(i, j) for i in range(nt) for j in range(i, nt)]

    def masked_peak() -> float:
        np.abs(r[0], out=tmp)
        if not full_box:
            np.copyto(tmp, 0.0, where=outside)
        return float(tmp.max())

    peak = masked_peak()
    limit = 2.0 * peak
    history = [peak]
    it = 0
    while True:
        if peak <= stop:
            return comps, it, peak, "threshold" if peak <= float(threshold) else "cycle_threshold", history
        if peak > limit:
            return comps, it, peak, "diverging", history
        if it >= niter:
            return comps, it, peak, "niter", history
        crit.fill(0.0)  # r^T H^-1 r = a . r (>= 0: H is positive definite)
        for i, j in pairs:
            np.multiply(r[i], r[j], out=tmp)
            tmp *= hinv[i, j] if i == j else 2.0 * hinv[i, j]
            crit += tmp
        if not full_box:
            np.copyto(crit, -1.0, where=outside)
        ky, kx = divmod(int(np.argmax(crit)), wx)  # first in CASA's scan order (iy, then ix)
        a = hinv @ r[:, ky, kx]
        comps[:, ky, kx] += gain * a
        sy, sx = wy - 1 - ky, wx - 1 - kx
        for i in range(nt):
            for j in range(nt):
                np.multiply(win[i + j, sy:sy + wy, sx:sx + wx], gain * a[j], out=tmp)
                r[i] -= tmp
        it += 1
        peak = masked_peak()
        history.append(peak)


def multiterm_clean(residuals: np.ndarray, psfs: np.ndarray, mask: Optional[np.ndarray] = None,
                    gain: float = 0.1, niter: int = 1000, threshold: float = 0.0,
                    cycle_threshold: float = 0.0, full_residual: bool = True) -> MultiTermResult:
    """MT-MFS minor cycle (module docstring) on Taylor residuals (nterms, nx, ny), Jy/beam.

    psfs: (2 nterms - 1, px, py) Taylor PSFs of any size, peaks at (px // 2, py // 2), normalised as
    the residuals (module docstring: P_0 peaks at 1). mask: bool (nx, ny), True where components
    may go (None: everywhere). gain: loop gain; threshold, cycle_threshold: stop when the masked
    peak |R_0| is <= the larger (Jy/beam); niter: most components. The inputs are not modified.

    Cost: the loop works on the mask's bounding box (the whole image without a mask): per
    iteration O(nterms^2 x box pixels). With `full_residual` (default) the residuals outside the
    box are brought up to date at the end by FFT convolution of the models with the PSFs (what
    pixel-by-pixel subtraction gives); else they are left as they were there.
    """
    res, p, m = _check_inputs(residuals, psfs, mask, gain, niter)
    nt, nx, ny = res.shape
    h = hessian(p)
    hinv = _inverse_hessian(h)
    models = np.zeros_like(res)
    if not m.any():
        return MultiTermResult(models, res, 0, 0.0, "empty", np.zeros(1), h, hinv, 0)
    xs, ys = np.nonzero(m)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    wx, wy = x1 - x0, y1 - y0
    # work arrays transposed, (term, iy, ix): a flat argmax follows CASA's scan order (iy, then ix)
    r = np.ascontiguousarray(res[:, x0:x1, y0:y1].transpose(0, 2, 1))
    mb = np.ascontiguousarray(m[x0:x1, y0:y1].T)
    comps, it, peak, stopped, history = _clean_box(r, mb, _windows(p, wx, wy), hinv, float(gain), int(niter),
                                                   threshold, cycle_threshold)
    models[:, x0:x1, y0:y1] = comps.transpose(0, 2, 1)
    if full_residual and it and not (wx == nx and wy == ny):
        for i in range(nt):
            for j in range(nt):
                if np.any(models[j]):
                    res[i] = subtract_components(res[i], models[j], p[i + j])
    res[:, x0:x1, y0:y1] = r.transpose(0, 2, 1)
    return MultiTermResult(models, res, it, peak, stopped, np.array(history), h, hinv, it * wx * wy)


# ---------------------------------------------------------------- restoration, spectral index

def restore_taylor(models: np.ndarray, residuals: np.ndarray, beam: Beam, cell_arcsec: float,
                   psfs: Optional[np.ndarray] = None) -> np.ndarray:
    """Restored Taylor images (nterms, nx, ny), Jy/beam: model_t (Jy/pixel) convolved with the
    unit-peak Gaussian `beam` (`kernels.restore.restore`; CASA fits it to PSF_0) plus a residual.

    With `psfs` (CASA's behaviour) the residual added is the principal solution H^-1 R
    (`principal_solution`), else R itself. Pass the same residuals to `spectral_index` (CASA's
    alpha and alpha.error use H^-1 R)."""
    mod = np.asarray(models, dtype=np.float64)
    res = np.asarray(residuals, dtype=np.float64)
    if mod.shape != res.shape or mod.ndim != 3:
        raise ValueError(f"models and residuals must have one shape (nterms, nx, ny), got "
                         f"{mod.shape} and {res.shape}")
    if psfs is not None:
        res = principal_solution(res, psfs)
    return np.stack([restore(mt, rt, beam, cell_arcsec) for mt, rt in zip(mod, res, strict=True)])


@dataclass
class SpectralIndex:
    """alpha, alpha_error and (nterms >= 3) beta images (NaN outside `mask`), `mask` = restored
    I_0 > cutoff, and the `cutoff` used (Jy/beam)."""

    alpha: np.ndarray
    alpha_error: np.ndarray
    beta: Optional[np.ndarray]
    mask: np.ndarray
    cutoff: float


def spectral_index(restored: np.ndarray, residuals: np.ndarray, cutoff: Optional[float] = None,
                   threshold_fraction: float = 0.1) -> SpectralIndex:
    """Spectral index alpha = I_1 / I_0 (and curvature beta = I_2 / I_0 - alpha (alpha - 1) / 2 for
    nterms >= 3) of restored Taylor images (nterms >= 2, nx, ny), where I_0 > cutoff; NaN elsewhere.

    cutoff: Jy/beam; None = CASA's threshold_fraction x max(residuals[0]) (the maximum, not of
    |R_0|, over the whole image; CASA's fraction is 1/10). residuals: (>= 2, nx, ny), the residuals
    restored with -- CASA's are the principal solution H^-1 R (`restore_taylor` with psfs).
    alpha_error = |alpha| sqrt((R_0 / I_0)^2 + (R_1 / I_1)^2), CASA's alpha.error, computed as
    sqrt((alpha R_0 / I_0)^2 + (R_1 / I_0)^2) (equal, finite where I_1 = 0)."""
    img = np.asarray(restored, dtype=np.float64)
    res = np.asarray(residuals, dtype=np.float64)
    if img.ndim != 3 or img.shape[0] < 2:
        raise ValueError(f"restored must have shape (nterms >= 2, nx, ny), got {img.shape}")
    if res.ndim != 3 or res.shape[0] < 2 or res.shape[1:] != img.shape[1:]:
        raise ValueError(f"residuals must have shape (>= 2, {img.shape[1]}, {img.shape[2]}), got {res.shape}")
    cut = float(threshold_fraction) * float(res[0].max()) if cutoff is None else float(cutoff)
    mask = img[0] > cut
    i0 = np.where(mask, img[0], 1.0)
    alpha = np.where(mask, img[1] / i0, np.nan)
    err = np.where(mask, np.hypot(alpha * res[0] / i0, res[1] / i0), np.nan)
    beta = None
    if img.shape[0] >= 3:
        beta = np.where(mask, img[2] / i0 - 0.5 * alpha * (alpha - 1.0), np.nan)
    return SpectralIndex(alpha, err, beta, mask, cut)
