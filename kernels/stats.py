"""Image statistics for QA: peak, minimum, rms outside the clean mask and in a PB annulus, the
dirty dynamic range (heuristics.md sections 5 and 6), and per-channel statistics of cubes.

Units: images in Jy/beam (non-pbcor), primary beam dimensionless (1 on axis), sensitivity in
Jy/beam. Arrays follow `kernels.gridding` (``image[ix, iy]``, shape (npix_x, npix_y)); cubes have
the channel on the axis `chan_axis` (default last: (npix_x, npix_y, nchan)).

rms here is the root mean square sqrt(mean(x^2)) (CASA imstat's "rms"), not the standard
deviation; for noise of zero mean they agree. NaN pixels are ignored everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class ImageStats:
    """Statistics of one plane (Jy/beam). peak/min and their pixels over the valid region (finite,
    pb >= pblimit when a pb is given); rms_outside_mask over the valid region outside the mask;
    rms_annulus over annulus[0] <= pb < annulus[1] outside the mask (NaN without a pb);
    n_outside / n_annulus: pixel counts behind the two rms values."""

    peak: float
    peak_pixel: tuple[int, int]
    min: float
    min_pixel: tuple[int, int]
    rms_outside_mask: float
    rms_annulus: float
    n_outside: int
    n_annulus: int
    mean_outside_mask: float


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel statistics of a cube, arrays of shape (nchan,) in Jy/beam."""

    peak: np.ndarray
    min: np.ndarray
    rms_outside_mask: np.ndarray
    rms_annulus: np.ndarray

    @property
    def nchan(self) -> int:
        return int(self.peak.size)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")


def image_stats(image: np.ndarray, mask: Optional[np.ndarray] = None, pb: Optional[np.ndarray] = None,
                annulus: tuple[float, float] = (0.2, 0.3), pblimit: float = 0.2) -> ImageStats:
    """Statistics of a 2-D non-pbcor image (Jy/beam): see `ImageStats`. mask: the clean mask
    (bool, True = masked, excluded from the rms); pb: primary beam, restricting everything to
    pb >= pblimit (the image's PB limit, default 0.2) and defining the annulus."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (npix_x, npix_y), got shape {img.shape}")
    valid = np.isfinite(img)
    pbv = None
    if pb is not None:
        pbv = np.asarray(pb, dtype=np.float64)
        if pbv.shape != img.shape:
            raise ValueError(f"pb shape {pbv.shape} differs from image shape {img.shape}")
        valid &= pbv >= float(pblimit)
    if not valid.any():
        raise ValueError("no valid pixel (finite, pb >= pblimit)")
    outside = valid.copy()
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != img.shape:
            raise ValueError(f"mask shape {m.shape} differs from image shape {img.shape}")
        outside &= ~m
    work = np.where(valid, img, -np.inf)
    ipk = np.unravel_index(int(np.argmax(work)), img.shape)
    work = np.where(valid, img, np.inf)
    imn = np.unravel_index(int(np.argmin(work)), img.shape)
    vals = img[outside]
    if pbv is not None:
        lo, hi = float(annulus[0]), float(annulus[1])
        if not lo < hi:
            raise ValueError(f"annulus must be (low, high) with low < high, got {annulus}")
        ann = np.isfinite(img) & (pbv >= lo) & (pbv < hi)
        if mask is not None:
            ann &= ~m
        avals = img[ann]
        rms_ann, n_ann = _rms(avals), int(avals.size)
    else:
        rms_ann, n_ann = float("nan"), 0
    return ImageStats(peak=float(img[ipk]), peak_pixel=(int(ipk[0]), int(ipk[1])),
                      min=float(img[imn]), min_pixel=(int(imn[0]), int(imn[1])),
                      rms_outside_mask=_rms(vals), rms_annulus=rms_ann,
                      n_outside=int(vals.size), n_annulus=n_ann,
                      mean_outside_mask=float(vals.mean()) if vals.size else float("nan"))


def dirty_dynamic_range(dirty: np.ndarray, pb: np.ndarray, sensitivity: float, pb_level: float = 0.2) -> float:
    """Dirty dynamic range (heuristics.md section 5): the peak (largest value, not |value|) of the
    dirty/residual image (Jy/beam) over the pixels with pb > pb_level, divided by the theoretical
    sensitivity (Jy/beam). Dimensionless; may be negative if the region's peak is negative."""
    img = np.asarray(dirty, dtype=np.float64)
    pbv = np.asarray(pb, dtype=np.float64)
    if not float(sensitivity) > 0:
        raise ValueError(f"sensitivity must be positive, got {sensitivity}")
    sel = np.broadcast_to(pbv > float(pb_level), img.shape) & np.isfinite(img)
    if not sel.any():
        raise ValueError(f"no finite pixel with pb > {pb_level}")
    return float(img[sel].max() / float(sensitivity))


def channel_stats(cube: np.ndarray, mask: Optional[np.ndarray] = None, pb: Optional[np.ndarray] = None,
                  annulus: tuple[float, float] = (0.2, 0.3), pblimit: float = 0.2,
                  chan_axis: int = -1) -> ChannelStats:
    """`image_stats` of every channel of a 3-D cube (channel on `chan_axis`), one channel at a time
    (memory: one plane plus its temporaries; `cube` may be a memmap). mask / pb: 2-D (shared by all
    channels) or cubes of the same shape (per channel). Channels without valid pixels give NaN."""
    mask = None if mask is None else np.asarray(mask, dtype=bool)
    pb = None if pb is None else np.asarray(pb, dtype=np.float64)
    if cube.ndim != 3:
        raise ValueError(f"cube must be 3-D, got shape {cube.shape}")
    ax = chan_axis % 3
    nchan = cube.shape[ax]

    def plane(a: Optional[np.ndarray], k: int) -> Optional[np.ndarray]:
        if a is None or a.ndim == 2:
            return a
        return np.take(a, k, axis=ax)

    out = {n: np.full(nchan, np.nan) for n in ("peak", "min", "rms_outside_mask", "rms_annulus")}
    for k in range(nchan):
        try:
            s = image_stats(np.take(cube, k, axis=ax), plane(mask, k), plane(pb, k), annulus, pblimit)
        except ValueError as exc:
            if "no valid pixel" in str(exc):
                continue
            raise
        for n in out:
            out[n][k] = getattr(s, n)
    return ChannelStats(**out)
