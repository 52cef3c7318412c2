"""CLEAN deconvolution: Hogbom and Clark minor cycles, Cotton-Schwab major cycles.

Units: residual / dirty images in Jy/beam, models (clean components) in Jy/pixel, thresholds in
Jy/beam, cells in arcsec, (u, v, w) in metres, frequencies in Hz. Arrays follow
`kernels.gridding`: ``image[ix, iy]``, phase centre at pixel ``(npix_x // 2, npix_y // 2)``.

PSF. ``psf`` is any 2-D array whose peak sits at its pixel ``(shape[0] // 2, shape[1] // 2)``
(what `kernels.gridding.psf` makes, of any size); its value P0 there normalises the
components: a residual peak r gives the component gain * r / P0 (Jy/pixel) and subtracts
gain * r / P0 * psf shifted to the peak.

Hogbom (CASA's hclean): each component subtracts gain * r / P0 times the PSF centred on it
wherever the shifted PSF array overlaps the image -- with a PSF of the image's size (what CASA
makes and `kernels.gridding.psf` makes here) that is the whole image, far sidelobes included.
Only the residual inside the clean mask decides the picks, so the loop works on the active set
of masked pixels: one iteration = argmax of |residual| over the set, a gather of the PSF at the
set's offsets from the peak (a PSF window of twice the mask's bounding box, zero beyond the PSF
array) and an update of the set: O(mask pixels) per iteration, independent of the image size
(without a mask the set is the whole image, as in CASA). The residual outside the mask is
brought up to date once at the end by an FFT convolution of the components with the PSF, which
is what pixel-by-pixel subtraction gives (or skipped inside Cotton-Schwab, whose major cycle
recomputes it). Ties go to the first pixel in CASA's scan order (iy, then ix); CASA stops on
|peak| < cycle threshold where we stop on <=, and CASA's inclusive loop may take cycle_niter + 1
components where we take at most niter.

Cycle threshold (CASA's tclean): max(threshold, peak x min(max(cyclefactor x sidelobe, 0.05),
0.8)), peak = the masked residual peak after the major cycle, sidelobe = `kernels.beam.sidelobe_level`
(max of the deepest negative PSF value and of the PSF's excess over its fitted Gaussian).

PSF patch (Clark only). Clark's inner loop subtracts only a (2 h + 1)^2 patch of the PSF around
its peak, ``patch_halfwidth`` = h pixels; the default is h = ceil(3 x FWHM_major) of the Gaussian
fitted to the PSF (`kernels.beam.fit_beam`, in pixels), at least 8 and at most what the PSF array
holds.

Clark (simplified from CASA's): each round finds the masked peak on the full image, takes the
active set = masked pixels with |residual| > max(stop, active_fraction x peak) (active_fraction
defaults to the largest |PSF| / P0 outside the patch, floored at 0.05), runs Hogbom on the
active pixels only with the PSF patch (O(active pixels) per iteration), then subtracts that
round's components from the whole residual with the *full* PSF (FFT convolution; exact only
within the extent of the PSF array, i.e. for offsets < half its size). No limit on the size of
the active set and no beam-patch size search (CASA's psfpatchsize) are applied.
"""

from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np

from . import beam as _beam
from . import gridding
from .convolve import convolve_full

#: mask_update(residual, previous mask or None, major cycle) -> mask, for automatic masking.
MaskUpdate = Callable[[np.ndarray, Optional[np.ndarray], int], np.ndarray]

@dataclass
class MinorResult:
    """Result of a minor cycle.

    model: components found (Jy/pixel), residual shape; residual: the updated residual
    (Jy/beam; module docstring for what each minor cycle updates); iterations: components
    subtracted; peak: max |residual| inside the mask at exit (Jy/beam); stopped_by: "niter",
    "threshold", "cycle_threshold", "empty" (nothing inside the mask) or "diverging" (the peak
    rose above twice its starting value, e.g. gain > 1); work_pixels: pixels updated by the
    iteration loop (Hogbom: iterations x active-set size), a measure of its cost.
    """

    model: np.ndarray
    residual: np.ndarray
    iterations: int
    peak: float
    stopped_by: str
    work_pixels: int = 0


@dataclass
class MajorCycle:
    """One Cotton-Schwab major cycle: minor-cycle iterations, the cycle threshold used (Jy/beam),
    how the minor cycle stopped, and after re-imaging the masked residual peak (Jy/beam) and the
    total model flux (Jy)."""

    iterations: int
    cycle_threshold: float
    minor_stopped_by: str
    residual_peak: float
    model_flux: float


@dataclass
class CleanResult:
    """Cotton-Schwab result: model (Jy/pixel), residual (Jy/beam, from the visibilities),
    history (one MajorCycle per major cycle), warnings, stopped_by ("threshold", "niter",
    "max_major", "divergence", "stalled"), initial_peak (masked dirty-image peak, Jy/beam),
    beam (Gaussian fitted to the PSF), sidelobe (the PSF sidelobe level used), iterations
    (components taken in all) and mask (the clean mask at the end: bool, image shape)."""

    model: np.ndarray
    residual: np.ndarray
    history: list[MajorCycle]
    warnings: list[str]
    stopped_by: str
    initial_peak: float
    beam: _beam.Beam
    sidelobe: float
    iterations: int = 0
    mask: Optional[np.ndarray] = None


# ---------------------------------------------------------------- helpers

def _check(residual: np.ndarray, psf: np.ndarray, mask: Optional[np.ndarray], gain: float,
           niter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    res = np.array(residual, dtype=np.float64)  # a copy: inputs are never modified
    if res.ndim != 2:
        raise ValueError(f"residual must be 2-D, got shape {res.shape}")
    p = np.asarray(psf, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"psf must be 2-D, got shape {p.shape}")
    p0 = float(p[p.shape[0] // 2, p.shape[1] // 2])
    if not p0 > 0:
        raise ValueError("the PSF is not positive at its centre pixel (shape // 2)")
    return res, p, clean_mask(mask, res.shape, gain, niter), p0


def clean_mask(mask: Optional[np.ndarray], shape: tuple[int, ...], gain: float, niter: int) -> np.ndarray:
    """The minor cycle's mask as bool of the image `shape` (None: everywhere), with the checks of a
    clean's gain (> 0) and niter (>= 0); ValueError otherwise."""
    if mask is None:
        m = np.ones(shape, dtype=bool)
    else:
        m = np.asarray(mask)
        if m.shape != tuple(shape):
            raise ValueError(f"mask must have the residual's shape {tuple(shape)}, got {m.shape}")
        m = m.astype(bool)
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    if niter < 0:
        raise ValueError(f"niter must be >= 0, got {niter}")
    return m


def default_patch_halfwidth(psf: np.ndarray) -> int:
    """ceil(3 x major-axis FWHM in pixels) of the PSF's fitted Gaussian, >= 8, clipped to the
    largest half-width the PSF array holds."""
    p = np.asarray(psf, dtype=np.float64)
    fwhm_pix = _beam.fit_beam(p, 1.0).bmaj_arcsec  # cell = 1 "arcsec" -> pixels
    h = max(8, int(math.ceil(3.0 * fwhm_pix)))
    return _max_halfwidth(p, h)


def _max_halfwidth(p: np.ndarray, h: int) -> int:
    cx, cy = p.shape[0] // 2, p.shape[1] // 2
    return int(min(h, cx, cy, p.shape[0] - 1 - cx, p.shape[1] - 1 - cy))


def _patch(p: np.ndarray, h: Optional[int]) -> tuple[np.ndarray, int]:
    h = default_patch_halfwidth(p) if h is None else _max_halfwidth(p, int(h))
    if h < 1:
        raise ValueError("the PSF patch must have a half-width >= 1 pixel")
    cx, cy = p.shape[0] // 2, p.shape[1] // 2
    return np.ascontiguousarray(p[cx - h:cx + h + 1, cy - h:cy + h + 1]), h


def _outside_patch_level(p: np.ndarray, h: int, p0: float) -> float:
    cx, cy = p.shape[0] // 2, p.shape[1] // 2
    a = np.abs(p).copy()
    a[cx - h:cx + h + 1, cy - h:cy + h + 1] = 0.0
    return float(a.max() / p0)


def _stop_reason(peak: float, threshold: float, cycle_threshold: float) -> str:
    return "threshold" if peak <= threshold else "cycle_threshold"


# ---------------------------------------------------------------- Hogbom

def _psf_window(p: np.ndarray, bx: int, by: int) -> np.ndarray:
    """W[dx + bx, dy + by] = psf[cx + dx, cy + dy] for |dx| <= bx, |dy| <= by, 0 where that lies
    outside the PSF array (CASA's hclean subtracts only where the shifted PSF overlaps)."""
    cx, cy = p.shape[0] // 2, p.shape[1] // 2
    win = np.zeros((2 * bx + 1, 2 * by + 1))
    x0, x1 = max(cx - bx, 0), min(cx + bx + 1, p.shape[0])
    y0, y1 = max(cy - by, 0), min(cy + by + 1, p.shape[1])
    win[x0 - cx + bx:x1 - cx + bx, y0 - cy + by:y1 - cy + by] = p[x0:x1, y0:y1]
    return win


def subtract_components(residual: np.ndarray, model: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """residual - model (*) psf, the PSF centred on each component (Jy/pixel) and cut to its array
    (CASA's hclean subtraction, whole image), by one FFT convolution; Jy/beam. A component
    gain * r / P0 subtracts gain * r * psf / P0, as the minor cycles do pixel by pixel."""
    p = np.asarray(psf, dtype=np.float64)
    cx, cy = p.shape[0] // 2, p.shape[1] // 2
    nx, ny = residual.shape
    full = convolve_full(model, p)  # full[k] = sum_j model[j] psf[k - j]
    return residual - full[cx:cx + nx, cy:cy + ny]


def hogbom(residual: np.ndarray, psf: np.ndarray, mask: Optional[np.ndarray] = None, gain: float = 0.1,
           threshold: float = 0.0, niter: int = 1000, cycle_threshold: float = 0.0,
           full_residual: bool = True) -> MinorResult:
    """Hogbom CLEAN of `residual` (Jy/beam) with the full PSF, as CASA's hclean (module docstring).

    Each iteration takes the pixel of largest |residual| inside `mask` (bool, True = may hold
    components; None = everywhere; ties go to the first in CASA's scan order, iy then ix), adds
    gain * r / P0 to the model there and subtracts gain * r / P0 times the PSF centred on it
    wherever that overlaps. Stops when the masked peak is <= max(threshold, cycle_threshold)
    (absolute, Jy/beam), after `niter` iterations, or if the peak exceeds twice its initial value.

    Cost: the masked pixels are the active set; an iteration gathers the PSF at their offsets
    from the peak, O(mask pixels) (the whole image without a mask). The residual outside the mask
    never decides a pick; with `full_residual` (default) it is brought up to date at the end by
    one FFT convolution of the components with the PSF (exactly what iteration-by-iteration
    subtraction gives), else it is left as it was there (a Cotton-Schwab major cycle recomputes it).
    """
    res, p, m, p0 = _check(residual, psf, mask, gain, niter)
    model = np.zeros_like(res)
    if not m.any():
        return MinorResult(model, res, 0, 0.0, "empty", 0)
    ys, xs = np.nonzero(m.T)  # CASA's scan order: iy outer, ix inner
    bx, by = int(xs.max() - xs.min()), int(ys.max() - ys.min())
    win = (_psf_window(p, bx, by) / p0).ravel()
    wy = 2 * by + 1
    lin = xs * wy + ys  # window index of an active pixel = lin + (bx - px) * wy + (by - py)
    vals = res[xs, ys].copy()
    comps = np.zeros(vals.size)
    absb, buf = np.empty(vals.size), np.empty(vals.size)
    idx = np.empty(vals.size, dtype=np.int64)
    stop = max(float(threshold), float(cycle_threshold))
    np.abs(vals, out=absb)
    limit = 2.0 * float(absb.max())
    it, stopped, peak = 0, "niter", 0.0
    while True:
        np.abs(vals, out=absb)
        j = int(np.argmax(absb))
        peak = float(absb[j])
        if peak <= stop:
            stopped = _stop_reason(peak, float(threshold), float(cycle_threshold))
            break
        if peak > limit:
            stopped = "diverging"
            break
        if it >= niter:
            stopped = "niter"
            break
        c = gain * vals[j]
        comps[j] += c / p0
        np.add(lin, (bx - int(xs[j])) * wy + (by - int(ys[j])), out=idx)
        np.take(win, idx, out=buf)
        buf *= c
        vals -= buf
        it += 1
    model[xs, ys] = comps
    if full_residual and it:
        res = subtract_components(res, model, p)
    res[xs, ys] = vals
    return MinorResult(model, res, it, peak, stopped, it * vals.size)


# ---------------------------------------------------------------- Clark

def clark(residual: np.ndarray, psf: np.ndarray, mask: Optional[np.ndarray] = None, gain: float = 0.1,
          threshold: float = 0.0, niter: int = 1000, cycle_threshold: float = 0.0,
          patch_halfwidth: Optional[int] = None, active_fraction: Optional[float] = None) -> MinorResult:
    """Clark CLEAN (simplified, module docstring): Hogbom on the active pixels with the PSF patch,
    then an FFT subtraction of the round's components with the full PSF; repeated until the
    masked peak is <= max(threshold, cycle_threshold), `niter`, or divergence (peak > 2 x start).
    The returned residual is exact within the PSF array's extent of each component."""
    res, p, m, p0 = _check(residual, psf, mask, gain, niter)
    pat, h = _patch(p, patch_halfwidth)
    pat = pat / p0
    if active_fraction is None:
        active_fraction = max(0.05, _outside_patch_level(p, h, p0))
    nx, ny = res.shape
    model = np.zeros_like(res)
    stop = max(float(threshold), float(cycle_threshold))
    it, work = 0, 0
    peak0 = float(np.max(np.abs(res) * m)) if m.any() else 0.0
    stopped = "niter"
    while True:
        score = np.abs(res) * m
        k = int(np.argmax(score))
        peak = float(score.flat[k])
        if not m.any():
            stopped = "empty"
            break
        if peak <= stop:
            stopped = _stop_reason(peak, float(threshold), float(cycle_threshold))
            break
        if peak > 2.0 * peak0:
            stopped = "diverging"
            break
        if it >= niter:
            stopped = "niter"
            break
        lim = max(stop, active_fraction * peak)
        xs, ys = np.nonzero(score > lim)
        vals = res[xs, ys].copy()
        delta = np.zeros_like(res)
        while it < niter:
            j = int(np.argmax(np.abs(vals)))
            if abs(vals[j]) <= lim:
                break
            c = gain * vals[j]
            delta[xs[j], ys[j]] += c / p0
            dx, dy = xs - xs[j], ys - ys[j]
            near = (np.abs(dx) <= h) & (np.abs(dy) <= h)
            vals[near] -= c * pat[dx[near] + h, dy[near] + h]
            work += xs.size
            it += 1
        model += delta
        res = subtract_components(res, delta, p)
        work += nx * ny
    return MinorResult(model, res, it, peak, stopped, work)


# ---------------------------------------------------------------- Cotton-Schwab

def _masked_peak(img: np.ndarray, mask: np.ndarray) -> float:
    return float(np.max(np.abs(img[mask]))) if mask.any() else 0.0


def cotton_schwab(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray,
                  imaging_weight: np.ndarray, npix_x: int, npix_y: int, cell: float,
                  psf: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None, gain: float = 0.1,
                  threshold: float = 0.0, niter: int = 1000, cycle_factor: float = 1.0,
                  epsilon: float = 1e-6, max_major: int = 20, minor: Literal["hogbom", "clark"] = "hogbom",
                  flags: Optional[np.ndarray] = None, wgridding: bool = True, nthreads: int = 0,
                  patch_halfwidth: Optional[int] = None, divergence_factor: float = 1.05,
                  mask_update: Optional[MaskUpdate] = None, dirty: Optional[np.ndarray] = None,
                  beam: Optional[_beam.Beam] = None, min_psf_fraction: float = 0.05,
                  max_psf_fraction: float = 0.8) -> CleanResult:
    """Cotton-Schwab CLEAN of visibilities `vis` (Jy, (nrow, nchan)) on an npix_x x npix_y image of
    `cell` arcsec.

    weight: data weights (1/sigma^2, broadcastable to vis); samples with weight <= 0 are treated
    as flagged (as well as `flags`, True = flagged). imaging_weight: the gridding weights
    (`kernels.weighting`). psf: (npix_x, npix_y) PSF made with the same imaging weights (None:
    computed with `kernels.gridding.psf`). mask: bool (npix_x, npix_y), where components may go.

    Each major cycle: residual = dirty_image(vis - predict(model)) (for the first, the dirty
    image); stop if its masked peak is <= threshold (Jy/beam), if `niter` components have been
    taken, or if the peak grew by more than `divergence_factor` (5 %) since the previous cycle
    (stopped_by "divergence", with a warning; model and residual are those of the divergent
    cycle); else run the minor cycle (`hogbom` or `clark`) down to CASA's cycle threshold =
    max(threshold, peak x min(max(cycle_factor x sidelobe, min_psf_fraction), max_psf_fraction)),
    sidelobe = `kernels.beam.sidelobe_level` (CASA's measure). Also stops after `max_major` cycles
    ("max_major", warning) or when a minor cycle takes no component ("stalled", warning).
    Gridding accuracy: `epsilon` (ducc0's relative L2).

    mask_update: for automatic masks (auto-multithresh): called as
    ``mask_update(residual, previous_mask_or_None, cycle)`` before each major cycle's stopping
    test; its mask replaces `mask` (an empty mask stops the clean, stopped_by "empty mask").
    dirty: the dirty image made with the same weights (skips recomputing it); beam: the Gaussian
    fitted to `psf` (skips refitting). min_psf_fraction, max_psf_fraction: CASA's
    minpsffraction, maxpsffraction. patch_halfwidth: Clark's PSF patch (Hogbom uses the whole
    PSF).
    """
    if minor not in ("hogbom", "clark"):
        raise ValueError(f"minor must be 'hogbom' or 'clark', got {minor!r}")
    vis = np.asarray(vis)
    wt = np.broadcast_to(np.asarray(weight, dtype=np.float64), vis.shape)
    fl = ~(wt > 0)
    if flags is not None:
        fl = fl | np.asarray(flags, dtype=bool)
    fl = fl if fl.any() else None
    grid_kw = dict(epsilon=epsilon, wgridding=wgridding, nthreads=nthreads, flags=fl)
    if psf is None:
        psf = gridding.psf(uvw, freq, imaging_weight, npix_x, npix_y, cell, **grid_kw)
    psf = np.asarray(psf, dtype=np.float64)
    m = np.ones((npix_x, npix_y), bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != (npix_x, npix_y):
        raise ValueError(f"mask must have shape {(npix_x, npix_y)}, got {m.shape}")
    bm = beam if beam is not None else _beam.fit_beam(psf, cell)
    sidelobe = _beam.sidelobe_level(psf, bm, cell)
    fraction = min(max(cycle_factor * sidelobe, min_psf_fraction), max_psf_fraction)
    if minor == "hogbom":
        def minor_fn(res: np.ndarray, mask_: np.ndarray, n: int, cyc: float) -> MinorResult:
            return hogbom(res, psf, mask_, gain, threshold, n, cyc, full_residual=False)
    else:
        h = default_patch_halfwidth(psf) if patch_halfwidth is None else patch_halfwidth

        def minor_fn(res: np.ndarray, mask_: np.ndarray, n: int, cyc: float) -> MinorResult:
            return clark(res, psf, mask_, gain, threshold, n, cyc, patch_halfwidth=h)

    if dirty is not None:
        residual = np.array(dirty, dtype=np.float64)
        if residual.shape != (npix_x, npix_y):
            raise ValueError(f"dirty must have shape {(npix_x, npix_y)}, got {residual.shape}")
    else:
        residual = gridding.dirty_image(uvw, freq, vis, imaging_weight, npix_x, npix_y, cell, **grid_kw)

    def residual_of(model: np.ndarray) -> np.ndarray:
        resid_vis = vis - gridding.predict(uvw, freq, model, cell, **grid_kw)
        return gridding.dirty_image(uvw, freq, resid_vis, imaging_weight, npix_x, npix_y, cell, **grid_kw)

    return clean_cycles(residual, residual_of, minor_fn, m, threshold=threshold, niter=niter, fraction=fraction,
                        beam=bm, sidelobe=sidelobe, max_major=max_major, divergence_factor=divergence_factor,
                        mask_update=mask_update)


# ---------------------------------------------------------------- the major-cycle loop

#: residual_of(model) -> the residual image of the visibilities minus the model's prediction
ResidualOf = Callable[[np.ndarray], np.ndarray]
#: minor(residual, mask, components left, cycle threshold) -> MinorResult (model: residual's shape)
Minor = Callable[[np.ndarray, np.ndarray, int, float], MinorResult]


def clean_cycles(residual: np.ndarray, residual_of: ResidualOf, minor: Minor, mask: np.ndarray, *,
                 threshold: float, niter: int, fraction: float, beam: _beam.Beam, sidelobe: float,
                 max_major: int = 20, divergence_factor: float = 1.05, mask_update: Optional[MaskUpdate] = None,
                 flux_of: Optional[Callable[[np.ndarray], float]] = None) -> CleanResult:
    """Cotton-Schwab's major cycles (see `cotton_schwab`) for any way of making residuals:
    `residual` is the first residual (the dirty image), (nx, ny) or a stack (nterms, nx, ny)
    whose plane 0 decides peaks, stops and masks (multi-term clean: the tt0 residual); the
    model accumulates the minor cycles' models in the residual's shape. fraction: the cycle
    threshold's fraction of the peak (min(max(cyclefactor x sidelobe, minpsffraction),
    maxpsffraction)); flux_of(model): the model flux (Jy) each cycle's record gives (default: the
    sum of plane 0); beam, sidelobe: the fitted beam and the sidelobe level the fraction came from
    (returned in the result); the rest as `cotton_schwab`."""
    residual = np.asarray(residual, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)

    def plane0(img: np.ndarray) -> np.ndarray:
        return img if img.ndim == 2 else img[0]

    model = np.zeros_like(residual)
    auto_mask: Optional[np.ndarray] = None
    if mask_update is not None:
        m = auto_mask = np.asarray(mask_update(plane0(residual), None, 0), dtype=bool)
    peak = _masked_peak(plane0(residual), m)
    initial = peak
    history: list[MajorCycle] = []
    warns: list[str] = []
    total = 0
    stopped = "max_major"
    for _ in range(max_major + 1):
        if auto_mask is not None and not auto_mask.any():
            stopped = "empty mask"
            break
        if peak <= threshold:
            stopped = "threshold"
            break
        if total >= niter:
            stopped = "niter"
            break
        if len(history) == max_major:
            stopped = "max_major"
            warns.append(f"stopped after max_major = {max_major} major cycles with residual peak "
                         f"{peak:.4g} Jy/beam > threshold {threshold:.4g} Jy/beam")
            break
        cyc = max(float(threshold), fraction * peak)
        mr = minor(residual, m, niter - total, cyc)
        total += mr.iterations
        model = model + mr.model
        residual = np.asarray(residual_of(model), dtype=np.float64)
        same_mask_peak = _masked_peak(plane0(residual), m)  # divergence is judged in the mask just cleaned
        if mask_update is not None:
            m = auto_mask = np.asarray(mask_update(plane0(residual), m, len(history) + 1), dtype=bool)
        new_peak = _masked_peak(plane0(residual), m)
        flux = float(flux_of(model)) if flux_of is not None else float(plane0(model).sum())
        history.append(MajorCycle(mr.iterations, cyc, mr.stopped_by, new_peak, flux))
        if same_mask_peak > divergence_factor * peak:
            stopped = "divergence"
            msg = (f"divergence: masked residual peak grew from {peak:.4g} to {same_mask_peak:.4g} Jy/beam "
                   f"in major cycle {len(history)} (> {100 * (divergence_factor - 1):.0f} %); stopped")
            warns.append(msg)
            _warnings.warn(msg, RuntimeWarning, stacklevel=3)
            peak = new_peak
            break
        peak = new_peak
        if mr.iterations == 0:
            stopped = "stalled"
            warns.append("the minor cycle took no component; stopped")
            break
    return CleanResult(model, residual, history, warns, stopped, initial, beam, sidelobe, total, m)
