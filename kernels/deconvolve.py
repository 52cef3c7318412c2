"""CLEAN deconvolution: Hogbom and Clark minor cycles, Cotton-Schwab major cycles.

Units: residual / dirty images in Jy/beam, models (clean components) in Jy/pixel, thresholds in
Jy/beam, cells in arcsec, (u, v, w) in metres, frequencies in Hz. Arrays follow
`kernels.gridding`: ``image[ix, iy]``, phase centre at pixel ``(npix_x // 2, npix_y // 2)``.

PSF. ``psf`` is any 2-D array whose peak sits at its pixel ``(shape[0] // 2, shape[1] // 2)``
(what `kernels.gridding.psf` makes, of any size); its value P0 there normalises the
components: a residual peak r gives the component gain * r / P0 (Jy/pixel) and subtracts
gain * r / P0 * psf shifted to the peak.

PSF patch. The minor cycles subtract only a (2 h + 1)^2 patch of the PSF around its peak,
``patch_halfwidth`` = h pixels; the default is h = ceil(3 x FWHM_major) of the Gaussian fitted to
the PSF (`kernels.beam.fit_beam`, in pixels), at least 8 and at most what the PSF array holds:
three beams either side, beyond the first sidelobes. Outside the patch the minor-cycle residual
is therefore wrong by at most (largest |PSF| / P0 outside the patch) x (flux subtracted); the
Cotton-Schwab major cycle recomputes the residual exactly from the visibilities, and the cycle
threshold (cycle_factor x sidelobe level x peak) keeps each minor cycle from going deeper than
that error matters.

Hogbom cost per iteration (no full-image work): the image is tiled into B x B blocks (B = 16);
each block's max of |residual| x mask and its position are kept, and a heap (lazy deletion,
rebuilt when it holds more than 4 x nblocks + 64 entries) gives the largest block max. One
iteration = pop stale heap entries, read the peak, subtract the patch ((2h+1)^2 pixels), recompute
the maxima of the K <= (ceil((2h+1)/B) + 1)^2 blocks the patch overlaps (K B^2 pixels) and push
K entries: O((2h+1)^2 + K B^2 + K log nblocks) -- independent of the image size but for the log
(and the amortised O(1) heap rebuild), plus a fixed Python overhead (~tens of microseconds),
which dominates for ALMA-sized patches.

Clark (simplified from CASA's): each round finds the masked peak on the full image, takes the
active set = masked pixels with |residual| > max(stop, active_fraction x peak) (active_fraction
defaults to the largest |PSF| / P0 outside the patch, floored at 0.05), runs Hogbom on the
active pixels only with the PSF patch (O(active pixels) per iteration), then subtracts that
round's components from the whole residual with the *full* PSF (FFT convolution; exact only
within the extent of the PSF array, i.e. for offsets < half its size). No limit on the size of
the active set and no beam-patch size search (CASA's psfpatchsize) are applied.
"""

from __future__ import annotations

import heapq
import math
import warnings as _warnings
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np
from scipy import signal

from . import beam as _beam
from . import gridding

#: mask_update(residual, previous mask or None, major cycle) -> mask, for automatic masking.
MaskUpdate = Callable[[np.ndarray, Optional[np.ndarray], int], np.ndarray]

BLOCK = 16  # block side (pixels) of the Hogbom running-max structure


@dataclass
class MinorResult:
    """Result of a minor cycle.

    model: components found (Jy/pixel), residual shape; residual: the updated residual
    (Jy/beam; for Hogbom exact inside PSF-patch reach of the components, see module docstring);
    iterations: components subtracted; peak: max |residual| inside the mask at exit (Jy/beam);
    stopped_by: "niter", "threshold", "cycle_threshold", "empty" (nothing inside the mask) or
    "diverging" (the peak rose above twice its starting value, e.g. gain > 1); work_pixels: total
    pixels read or written by the iteration loop (patch updates and block refreshes), a
    size-independent measure of the per-iteration cost.
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
    if mask is None:
        m = np.ones(res.shape, dtype=bool)
    else:
        m = np.asarray(mask)
        if m.shape != res.shape:
            raise ValueError(f"mask must have the residual's shape {res.shape}, got {m.shape}")
        m = m.astype(bool)
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    if niter < 0:
        raise ValueError(f"niter must be >= 0, got {niter}")
    return res, p, m, p0


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

def hogbom(residual: np.ndarray, psf: np.ndarray, mask: Optional[np.ndarray] = None, gain: float = 0.1,
           threshold: float = 0.0, niter: int = 1000, cycle_threshold: float = 0.0,
           patch_halfwidth: Optional[int] = None) -> MinorResult:
    """Hogbom CLEAN of `residual` (Jy/beam) with a PSF patch (module docstring).

    Each iteration takes the pixel of largest |residual| inside `mask` (bool, True = may hold
    components; None = everywhere), adds gain * r / P0 to the model there and subtracts that
    times the PSF patch. Stops when the masked peak is <= max(threshold, cycle_threshold)
    (absolute, Jy/beam), after `niter` iterations, or if the peak exceeds twice its initial value.
    Per-iteration cost independent of the image size: see the module docstring.
    """
    res, p, m, p0 = _check(residual, psf, mask, gain, niter)
    pat, h = _patch(p, patch_halfwidth)
    pat = pat / p0  # unit peak: subtract (gain * r) * pat, model gets gain * r / P0
    nx, ny = res.shape
    nbx, nby = -(-nx // BLOCK), -(-ny // BLOCK)
    # padded working arrays (padding has mask 0, so it never wins)
    rp = np.zeros((nbx * BLOCK, nby * BLOCK))
    rp[:nx, :ny] = res
    mf = np.zeros_like(rp)
    mf[:nx, :ny] = m
    model = np.zeros_like(rp)
    bmax = np.empty((nbx, nby))
    barg = np.empty((nbx, nby), dtype=np.int64)
    version = np.zeros((nbx, nby), dtype=np.int64)
    heap: list[tuple[float, int, int, int]] = []

    def refresh(bx0: int, bx1: int, by0: int, by1: int) -> int:
        """Recompute the maxima of blocks [bx0, bx1) x [by0, by1); returns pixels read."""
        kx, ky = bx1 - bx0, by1 - by0
        sl = (slice(bx0 * BLOCK, bx1 * BLOCK), slice(by0 * BLOCK, by1 * BLOCK))
        score = np.abs(rp[sl]) * mf[sl]
        blk = score.reshape(kx, BLOCK, ky, BLOCK).transpose(0, 2, 1, 3).reshape(kx, ky, BLOCK * BLOCK)
        am = blk.argmax(axis=-1)
        mx = np.take_along_axis(blk, am[..., None], axis=-1)[..., 0]
        bmax[bx0:bx1, by0:by1] = mx
        barg[bx0:bx1, by0:by1] = am
        version[bx0:bx1, by0:by1] += 1
        for i in range(kx):
            for j in range(ky):
                bx, by = bx0 + i, by0 + j
                heapq.heappush(heap, (-float(mx[i, j]), int(version[bx, by]), bx, by))
        return kx * ky * BLOCK * BLOCK

    def rebuild() -> None:
        heap[:] = [(-float(bmax[i, j]), int(version[i, j]), i, j) for i in range(nbx) for j in range(nby)]
        heapq.heapify(heap)

    # initial maxima: one vectorised pass (setup, O(image))
    score = (np.abs(rp) * mf).reshape(nbx, BLOCK, nby, BLOCK).transpose(0, 2, 1, 3).reshape(nbx, nby, -1)
    barg[:] = score.argmax(axis=-1)
    bmax[:] = np.take_along_axis(score, barg[..., None], axis=-1)[..., 0]
    rebuild()

    def top() -> tuple[float, int, int]:
        while True:
            negv, ver, bx, by = heap[0]
            if ver == version[bx, by]:
                a = int(barg[bx, by])
                return -negv, bx * BLOCK + a // BLOCK, by * BLOCK + a % BLOCK
            heapq.heappop(heap)

    stop = max(float(threshold), float(cycle_threshold))
    peak0, _, _ = top()
    limit = 2.0 * peak0
    it, work = 0, 0
    stopped = "niter"
    max_heap = 4 * nbx * nby + 64
    empty = not m.any()
    while True:
        peak, ix, iy = top()
        if empty:
            stopped = "empty"
            break
        if peak <= stop:
            stopped = _stop_reason(peak, float(threshold), float(cycle_threshold))
            break
        if peak > limit:
            stopped = "diverging"
            break
        if it >= niter:
            stopped = "niter"
            break
        r = rp[ix, iy]
        c = gain * r
        model[ix, iy] += c / p0
        x0, x1 = max(ix - h, 0), min(ix + h + 1, nx)
        y0, y1 = max(iy - h, 0), min(iy + h + 1, ny)
        rp[x0:x1, y0:y1] -= c * pat[x0 - ix + h:x1 - ix + h, y0 - iy + h:y1 - iy + h]
        work += (x1 - x0) * (y1 - y0)
        work += refresh(x0 // BLOCK, (x1 - 1) // BLOCK + 1, y0 // BLOCK, (y1 - 1) // BLOCK + 1)
        if len(heap) > max_heap:
            rebuild()
        it += 1
    return MinorResult(model[:nx, :ny].copy(), rp[:nx, :ny].copy(), it, float(peak), stopped, work)


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
    cx, cy = p.shape[0] // 2, p.shape[1] // 2
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
        full = signal.fftconvolve(delta, p, mode="full")  # full[k] = sum_j delta[j] psf[k - j]
        res -= full[cx:cx + nx, cy:cy + ny]
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
                  beam: Optional[_beam.Beam] = None) -> CleanResult:
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
    cycle); else run the minor cycle (`hogbom` or `clark`) down to cycle threshold =
    max(threshold, cycle_factor x sidelobe x peak), sidelobe = `kernels.beam.sidelobe_level` of
    the PSF. Also stops after `max_major` cycles ("max_major", warning) or when a minor cycle
    takes no component ("stalled", warning). Gridding accuracy: `epsilon` (ducc0's relative L2).

    mask_update: for automatic masks (auto-multithresh): called as
    ``mask_update(residual, previous_mask_or_None, cycle)`` before each major cycle's stopping
    test; its mask replaces `mask` (an empty mask stops the clean, stopped_by "empty mask").
    dirty: the dirty image made with the same weights (skips recomputing it); beam: the Gaussian
    fitted to `psf` (skips refitting).
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
    if patch_halfwidth is None:
        patch_halfwidth = default_patch_halfwidth(psf)
    minor_fn = hogbom if minor == "hogbom" else clark

    model = np.zeros((npix_x, npix_y))
    if dirty is not None:
        residual = np.array(dirty, dtype=np.float64)
        if residual.shape != (npix_x, npix_y):
            raise ValueError(f"dirty must have shape {(npix_x, npix_y)}, got {residual.shape}")
    else:
        residual = gridding.dirty_image(uvw, freq, vis, imaging_weight, npix_x, npix_y, cell, **grid_kw)
    auto_mask: Optional[np.ndarray] = None
    if mask_update is not None:
        m = auto_mask = np.asarray(mask_update(residual, None, 0), dtype=bool)
    peak = _masked_peak(residual, m)
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
        cyc = max(float(threshold), cycle_factor * sidelobe * peak)
        mr = minor_fn(residual, psf, m, gain, threshold, niter - total, cyc, patch_halfwidth=patch_halfwidth)
        total += mr.iterations
        model = model + mr.model
        resid_vis = vis - gridding.predict(uvw, freq, model, cell, **grid_kw)
        residual = gridding.dirty_image(uvw, freq, resid_vis, imaging_weight, npix_x, npix_y, cell, **grid_kw)
        same_mask_peak = _masked_peak(residual, m)  # divergence is judged in the mask just cleaned
        if mask_update is not None:
            m = auto_mask = np.asarray(mask_update(residual, m, len(history) + 1), dtype=bool)
        new_peak = _masked_peak(residual, m)
        history.append(MajorCycle(mr.iterations, cyc, mr.stopped_by, new_peak, float(model.sum())))
        if same_mask_peak > divergence_factor * peak:
            stopped = "divergence"
            msg = (f"divergence: masked residual peak grew from {peak:.4g} to {same_mask_peak:.4g} Jy/beam "
                   f"in major cycle {len(history)} (> {100 * (divergence_factor - 1):.0f} %); stopped")
            warns.append(msg)
            _warnings.warn(msg, RuntimeWarning, stacklevel=2)
            peak = new_peak
            break
        peak = new_peak
        if mr.iterations == 0:
            stopped = "stalled"
            warns.append("the minor cycle took no component; stopped")
            break
    return CleanResult(model, residual, history, warns, stopped, initial, bm, sidelobe, total, m)
