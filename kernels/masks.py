"""Clean masks: the Cycle 4 primary-beam-level mask and CASA's auto-multithresh.

Units: cells and beam axes in arcsec; residual, noise and thresholds in the image's unit
(Jy/beam); primary beam dimensionless (1 on axis). Image arrays follow `kernels.gridding`:
``image[ix, iy]``, shape (npix_x, npix_y), 2-D (one plane; for cubes call per channel).

auto-multithresh (Kepley et al. 2020, PASP 132:024505, section 3; CASA tclean
``usemask='auto-multithresh'``), one major cycle, as implemented here:

1. noise: robust rms 1.4826 x MAD (median absolute deviation from the median) of the residual over
   the pixels with pb >= pblimit, outside `prev_mask` when one is given (CASA's fastnoise=False);
   or the `noise` argument.
2. thresholds: sidelobe = sidelobethreshold x psf_sidelobe x peak residual (positive peak inside
   the PB region); noise = noisethreshold x noise; low-noise = lownoisethreshold x noise;
   negative = negativethreshold x noise.
   mask threshold = max(sidelobe, noise); low-mask threshold = max(sidelobe, low-noise);
   negative-mask threshold = max(sidelobe, negative).
3. threshold mask: residual > mask threshold; prune connected regions (8-connectivity) with fewer
   than minbeamfrac x beam-area pixels; smooth (convolve the 0/1 mask with the unit-peak Gaussian
   of smoothfactor x the beam's axes) and keep smoothed > cutthreshold x smoothed peak.
4. growth (prev_mask given, growiterations > 0): the low-noise mask residual > low-mask threshold;
   binary dilation (8-connected structure) of prev_mask into it, at most growiterations steps
   (stops early when nothing changes); with dogrowprune the grown mask is pruned, smoothed and cut
   as in 3 (prev_mask pixels are never removed).
5. negative mask (negativethreshold > 0): residual < -negative-mask threshold, pruned, smoothed,
   cut as in 3.
6. result: prev_mask | grown | threshold mask | negative mask, restricted to pb >= pblimit.

Simplifications against CASA: a single 2-D plane (cubes: per channel, no per-channel bookkeeping
of which channels already converged); no minpercentchange / "stop masking" logic, no
verbose/fastnoise switch (the noise always excludes prev_mask); the sidelobe level is an input
(`kernels.beam.sidelobe_level`, CASA's measure); the peak for the sidelobe threshold is the positive peak;
smoothing is an FFT convolution with a sampled (not pixel-integrated) Gaussian, zero-padded at
the image edge; labelling and dilation use 8-connectivity (the 3x3 square), which may differ
from CASA's choice by single pixels at region corners.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from almarules.kernels.convolve import convolve_same

from .beam import Beam, gaussian_image

MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a Gaussian -> sigma
_STRUCT8 = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class MaskResult:
    """Output of `auto_multithresh`.

    mask: bool (npix_x, npix_y); threshold_used: mask threshold (image unit, Jy/beam);
    noise: robust rms used (Jy/beam); regions_pruned: regions removed by all pruning steps;
    notes: what happened, in words. The other thresholds are given for reporting.
    """

    mask: np.ndarray
    threshold_used: float
    noise: float
    regions_pruned: int
    notes: tuple[str, ...] = ()
    sidelobe_threshold: float = float("nan")
    low_threshold: float = float("nan")
    negative_threshold: float = float("nan")
    grown_pixels: int = 0


def pb_level_mask(pb: np.ndarray, level: float) -> np.ndarray:
    """The Cycle 4 clean mask: True where pb >= level (e.g. 0.3; heuristics.md section 3).
    `pb` dimensionless, any shape; `level` in (0, 1]."""
    lev = float(level)
    if not 0.0 < lev <= 1.0:
        raise ValueError(f"level must be in (0, 1], got {level}")
    return np.asarray(pb, dtype=np.float64) >= lev


def robust_rms(values: np.ndarray) -> float:
    """1.4826 x median |x - median(x)| of the finite `values` (NaN if none)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(MAD_TO_SIGMA * np.median(np.abs(v - np.median(v))))


def beam_area_pixels(beam: Beam, cell_arcsec: float) -> float:
    """Area of the Gaussian beam in pixels: pi bmaj bmin / (4 ln 2) / cell^2."""
    return math.pi * beam.bmaj_arcsec * beam.bmin_arcsec / (4.0 * math.log(2.0)) / float(cell_arcsec) ** 2


def gaussian_kernel(beam: Beam, cell_arcsec: float, shape: tuple[int, int], extent: float = 3.0) -> np.ndarray:
    """Unit-peak Gaussian `beam` on an odd-sized grid centred on its middle pixel, half size
    ceil(extent x bmaj / cell) + 1 pixels (extent 3: the tail there is < 1e-10), at most the image
    `shape` (beyond that no pixel pair of the image is reached)."""
    h = int(math.ceil(extent * beam.bmaj_arcsec / float(cell_arcsec))) + 1
    hx, hy = min(h, shape[0]), min(h, shape[1])
    ker = gaussian_image(beam, 2 * hx + 1, 2 * hy + 1, cell_arcsec)
    return np.ascontiguousarray(ker)


def convolve_beam(image: np.ndarray, beam: Beam, cell_arcsec: float) -> np.ndarray:
    """Linear (zero-padded) convolution of a 2-D image with the unit-peak Gaussian `beam`; output
    aligned with the input (a delta at pixel p becomes the Gaussian centred at p)."""
    img = np.asarray(image, dtype=np.float64)
    ker = gaussian_kernel(beam, cell_arcsec, img.shape)
    return convolve_same(img, ker)


def _prune(mask: np.ndarray, min_pixels: float) -> tuple[np.ndarray, int]:
    """Remove 8-connected regions of fewer than `min_pixels` pixels; (mask, number removed)."""
    if min_pixels <= 0 or not mask.any():
        return mask, 0
    from scipy import ndimage  # here, not at import: 0.1 s of the start of every image without automask

    labels, n = ndimage.label(mask, structure=_STRUCT8)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels], int(n - np.count_nonzero(keep[1:]))


def _smooth_cut(mask: np.ndarray, beam: Beam, cell_arcsec: float, smoothfactor: float,
                cutthreshold: float) -> np.ndarray:
    """Convolve the 0/1 mask with smoothfactor x beam, keep > cutthreshold x smoothed peak."""
    if not mask.any():
        return mask
    if smoothfactor <= 0:
        return mask
    sbeam = Beam(beam.bmaj_arcsec * smoothfactor, beam.bmin_arcsec * smoothfactor, beam.bpa_deg)
    sm = convolve_beam(mask.astype(np.float64), sbeam, cell_arcsec)
    peak = float(sm.max())
    if not peak > 0:
        return np.zeros_like(mask)
    return sm > cutthreshold * peak


def auto_multithresh(residual: np.ndarray, pb: np.ndarray, beam: Beam, cell_arcsec: float,
                     psf_sidelobe: float, noise: Optional[float] = None,
                     sidelobethreshold: float = 3.0, noisethreshold: float = 5.0,
                     lownoisethreshold: float = 1.5, negativethreshold: float = 0.0,
                     minbeamfrac: float = 0.3, growiterations: int = 75, dogrowprune: bool = True,
                     smoothfactor: float = 1.0, cutthreshold: float = 0.01,
                     prev_mask: Optional[np.ndarray] = None, pblimit: float = 0.2) -> MaskResult:
    """One major cycle of auto-multithresh (module docstring) on a 2-D residual (Jy/beam).

    pb: primary beam (same shape); beam: restoring beam (arcsec, deg); cell_arcsec: arcsec;
    psf_sidelobe: largest PSF sidelobe relative to its peak; noise: Jy/beam (None: measured);
    prev_mask: the mask of the previous cycle (None: first cycle, no growth); pblimit: the mask is
    confined to pb >= pblimit (CASA's pblimit; 0.2 is the pipeline's). Other parameters: tclean's.
    """
    res = np.asarray(residual, dtype=np.float64)
    pbv = np.asarray(pb, dtype=np.float64)
    if res.ndim != 2:
        raise ValueError(f"residual must be 2-D (npix_x, npix_y), got shape {res.shape}")
    if pbv.shape != res.shape:
        raise ValueError(f"pb shape {pbv.shape} differs from residual shape {res.shape}")
    if not cell_arcsec > 0:
        raise ValueError(f"cell_arcsec must be positive, got {cell_arcsec}")
    if not 0.0 <= psf_sidelobe < 1.0:
        raise ValueError(f"psf_sidelobe must be in [0, 1), got {psf_sidelobe}")
    prev = None
    if prev_mask is not None:
        prev = np.asarray(prev_mask, dtype=bool)
        if prev.shape != res.shape:
            raise ValueError(f"prev_mask shape {prev.shape} differs from residual shape {res.shape}")

    inpb = (pbv >= float(pblimit)) & np.isfinite(res)
    notes: list[str] = []
    if not inpb.any():
        raise ValueError(f"no pixel has pb >= pblimit = {pblimit}")

    if noise is None:
        region = inpb & ~prev if prev is not None else inpb
        if region.sum() < 100:
            region = inpb
            notes.append("too few pixels outside prev_mask: noise over the whole PB region")
        noise_v = robust_rms(res[region])
        notes.append(f"noise {noise_v:.4g} = 1.4826 MAD of {int(region.sum())} pixels")
    else:
        noise_v = float(noise)
        notes.append(f"noise {noise_v:.4g} given")
    if not noise_v > 0:
        raise ValueError(f"noise must be positive, got {noise_v}")

    peak = float(res[inpb].max())
    sidelobe_thr = sidelobethreshold * psf_sidelobe * max(peak, 0.0)
    noise_thr = noisethreshold * noise_v
    mask_thr = max(sidelobe_thr, noise_thr)
    low_thr = max(sidelobe_thr, lownoisethreshold * noise_v)
    neg_thr = max(sidelobe_thr, negativethreshold * noise_v)
    notes.append(f"threshold {mask_thr:.4g} from the {'sidelobe' if sidelobe_thr > noise_thr else 'noise'} "
                 f"level (sidelobe {sidelobe_thr:.4g}, noise {noise_thr:.4g})")

    min_pix = minbeamfrac * beam_area_pixels(beam, cell_arcsec)
    pruned = 0

    # 3. threshold mask
    thr_mask = (res > mask_thr) & inpb
    thr_mask, n = _prune(thr_mask, min_pix)
    pruned += n
    if n:
        notes.append(f"pruned {n} threshold region(s) smaller than {min_pix:.3g} pixels")
    thr_mask = _smooth_cut(thr_mask, beam, cell_arcsec, smoothfactor, cutthreshold)

    # 4. growth of the previous mask into the low-noise mask
    grown = np.zeros_like(inpb)
    grown_pixels = 0
    if prev is not None and prev.any() and growiterations > 0:
        low = (res > low_thr) & inpb
        from scipy import ndimage

        dil = ndimage.binary_dilation(prev, structure=_STRUCT8, iterations=int(growiterations), mask=low)
        new = dil & ~prev
        grown_pixels = int(new.sum())
        if dogrowprune and new.any():
            dil, n = _prune(dil, min_pix)
            pruned += n
            dil = _smooth_cut(dil, beam, cell_arcsec, smoothfactor, cutthreshold)
        grown = dil & ~prev
        notes.append(f"grew prev_mask by {int(grown.sum())} pixel(s) into the low-noise mask (> {low_thr:.4g})")

    # 5. negative mask
    neg = np.zeros_like(inpb)
    if negativethreshold > 0:
        neg = (res < -neg_thr) & inpb
        neg, n = _prune(neg, min_pix)
        pruned += n
        neg = _smooth_cut(neg, beam, cell_arcsec, smoothfactor, cutthreshold)
        notes.append(f"negative mask: {int(neg.sum())} pixel(s) below -{neg_thr:.4g}")

    out = thr_mask | grown | neg
    if prev is not None:
        out |= prev
    out &= inpb
    return MaskResult(mask=out, threshold_used=float(mask_thr), noise=float(noise_v),
                      regions_pruned=int(pruned), notes=tuple(notes),
                      sidelobe_threshold=float(sidelobe_thr), low_threshold=float(low_thr),
                      negative_threshold=float(neg_thr), grown_pixels=grown_pixels)
