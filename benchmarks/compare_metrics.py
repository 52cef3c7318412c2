"""The numbers `compare_casa.py` computes from the two tools' images (numpy only).

Planes are float64 arrays (nchan, ny, nx) in almarules' FITS order (x = RA pixel, increasing
westwards like the FITS axis 1; y = Dec pixel), NaN where an image is masked. Each metric is a
`Metric`: the almarules value, the CASA value, the difference as the target measures it, the
target and whether it is met (None: no target, information only).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass
class Metric:
    """One row of a comparison table. `delta` is in the unit the target is given in."""

    name: str
    ours: Optional[float]
    casa: Optional[float]
    delta: Optional[float]
    target: Optional[float] = None
    unit: str = ""
    how: str = ""
    judged: Optional[str] = None  # a verdict decided elsewhere (e.g. "CASA": an exact sum shows CASA is off)

    @property
    def verdict(self) -> str:
        if self.judged is not None:
            return self.judged
        if self.target is None:
            return "info"
        if self.delta is None or not math.isfinite(self.delta):
            return "n/a"
        return "PASS" if abs(self.delta) <= self.target else "FAIL"

    def as_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "judged"}, "verdict": self.verdict}


@dataclass
class Worst:
    """The largest max |ours - casa| / peak of a plane, where it is, and the next plane's."""

    value: float
    plane: int = -1
    offset_px: tuple[int, int] = (0, 0)  # (x, y) of the worst pixel from the image centre
    runner_up: float = math.nan

    def describe(self, nplanes: int) -> str:
        where = f"at ({self.offset_px[0]:+d}, {self.offset_px[1]:+d}) px from the centre"
        if nplanes == 1:
            return where
        return f"worst plane {self.plane} {where}; next worst plane {self.runner_up:.3g}"


def max_rel_diff(ours: np.ndarray, casa: np.ndarray, region: Optional[np.ndarray] = None) -> Worst:
    """max |ours - casa| / max |casa|, the peak over all planes (a cube's peak; a PSF or PB plane
    peaks at 1 anyway), over the pixels finite in both (and in `region`); the worst plane (value
    NaN when no pixel qualifies)."""
    ok = np.isfinite(ours) & np.isfinite(casa)
    if region is not None:
        ok &= region
    if not ok.any():
        return Worst(math.nan)
    peak = float(np.max(np.abs(casa[ok])))
    if peak == 0:
        return Worst(math.nan)
    diff = np.where(ok, np.abs(ours - casa), -1.0)
    per = []
    for c in range(casa.shape[0]):
        iy, ix = np.unravel_index(int(np.argmax(diff[c])), diff[c].shape)
        ny, nx = diff[c].shape
        per.append((float(diff[c, iy, ix]) / peak, c, (int(ix - nx // 2), int(iy - ny // 2))))
    per.sort(key=lambda t: t[0], reverse=True)
    return Worst(per[0][0], per[0][1], per[0][2], per[1][0] if len(per) > 1 else math.nan)


def central(shape: tuple[int, ...], fraction: float) -> np.ndarray:
    """Boolean (nchan, ny, nx): the central `fraction` of each plane's width and height."""
    nchan, ny, nx = shape
    out = np.zeros(shape, dtype=bool)
    my, mx = int(round(ny * (1 - fraction) / 2)), int(round(nx * (1 - fraction) / 2))
    out[:, my:ny - my, mx:nx - mx] = True
    return out


def pb_region(pb: np.ndarray, pblimit: float) -> np.ndarray:
    """Pixels where the (CASA) primary beam is at least `pblimit`."""
    return np.isfinite(pb) & (pb >= pblimit)


def peak_in(image: np.ndarray, region: np.ndarray) -> float:
    ok = region & np.isfinite(image)
    return float(np.max(image[ok])) if ok.any() else math.nan


def rms_outside(image: np.ndarray, region: np.ndarray, mask: np.ndarray) -> float:
    """rms of `image` over `region` outside the clean mask (all planes together)."""
    ok = region & (mask < 0.5) & np.isfinite(image)
    return float(np.sqrt(np.mean(image[ok] ** 2))) if ok.any() else math.nan


def rel(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """(a - b) / |b|, None where either is missing or b is 0."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return None
    return (a - b) / abs(b)


def pa_diff(a: float, b: float) -> float:
    """a - b in degrees folded into [-90, 90): position angles are defined modulo 180."""
    return (a - b + 90.0) % 180.0 - 90.0


def beam_metrics(ours: Sequence[Sequence[float]], casa: Sequence[Sequence[float]],
                 rel_target: float, pa_target: float) -> list[Metric]:
    """bmaj, bmin (relative, worst plane) and bpa (degrees, worst plane) of two lists of
    [bmaj arcsec, bmin arcsec, bpa deg] per plane; a plane without a beam in either is skipped."""
    pairs = [(o, c) for o, c in zip(ours, casa, strict=True) if o is not None and c is not None and None not in o]
    if not pairs:
        return [Metric(n, None, None, None, t, u) for n, t, u in
                (("beam bmaj", rel_target, ""), ("beam bmin", rel_target, ""), ("beam bpa", pa_target, "deg"))]
    out = []
    for i, name in ((0, "beam bmaj"), (1, "beam bmin")):
        d = [rel(o[i], c[i]) for o, c in pairs]
        k = int(np.argmax([abs(x) for x in d]))
        out.append(Metric(name, pairs[k][0][i], pairs[k][1][i], d[k], rel_target, "arcsec",
                          "worst plane" if len(pairs) > 1 else ""))
    d = [pa_diff(o[2], c[2]) for o, c in pairs]
    k = int(np.argmax([abs(x) for x in d]))
    o, c = pairs[k]
    ellipticity = 1.0 - c[1] / c[0]
    how = "worst plane, modulo 180" if len(pairs) > 1 else "modulo 180"
    target: Optional[float] = pa_target
    if ellipticity < ROUND:
        # a nearly round beam's PA is ill-defined: judge the beam by its shape instead
        target = None
        how += (f"; beam nearly round (1 - bmin/bmax = {ellipticity:.3f} < {ROUND}), its PA undetermined: "
                f"see 'beam shape'")
    out.append(Metric("beam bpa", o[2], c[2], d[k], target, "deg", how))
    shapes = [gaussian_difference(o, c) for o, c in pairs]
    k = int(np.argmax(shapes))
    out.append(Metric("beam shape", None, None, shapes[k], rel_target, "of peak",
                      "max |G_ours - G_CASA| of the two unit-peak restoring beams"
                      + (", worst plane" if len(pairs) > 1 else "")))
    return out


#: beams rounder than this (1 - bmin / bmaj) have no meaningful position angle
ROUND = 0.05


def gaussian_difference(a: Sequence[float], b: Sequence[float], n: int = 129) -> float:
    """max |G_a - G_b| over the plane of two unit-peak elliptical Gaussians [bmaj, bmin (any
    angle unit), bpa deg east of north], sampled on a grid 4 bmaj wide."""
    half = 2.0 * max(a[0], b[0])
    x, y = np.meshgrid(np.linspace(-half, half, n), np.linspace(-half, half, n))

    def g(beam: Sequence[float]) -> np.ndarray:
        pa = math.radians(beam[2])
        u = x * math.sin(pa) + y * math.cos(pa)  # along the major axis
        v = x * math.cos(pa) - y * math.sin(pa)
        return np.exp(-4 * math.log(2) * ((u / beam[0]) ** 2 + (v / beam[1]) ** 2))

    return float(np.max(np.abs(g(a) - g(b))))


def sigma_metric(ours: Sequence[Optional[float]], casa: Sequence[float], target: float) -> Metric:
    """The theoretical sensitivity (Jy/beam) against apparentsens, worst plane of those given."""
    d = [rel(o, c) for o, c in zip(ours, casa, strict=True)]
    good = [(x, o, c) for x, o, c in zip(d, ours, casa, strict=True) if x is not None]
    if not good:
        return Metric("sigma vs apparentsens", None, None, None, target, "mJy/beam")
    x, o, c = max(good, key=lambda t: abs(t[0]))
    how = f"worst of {len(good)} planes" if len(good) > 1 else ""
    return Metric("sigma vs apparentsens", o * 1e3, c * 1e3, x, target, "mJy/beam", how)
