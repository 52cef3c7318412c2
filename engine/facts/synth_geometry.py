"""Geometry of the synthetic corpora: pad catalogues, antenna positions, projected baselines, sky positions, times."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from almarules.engine.facts.synth_catalogue import ALMA_ALT, ALMA_LAT, ALMA_LON, GRID_QUASARS
from almarules.engine.facts.synth_random import Draw

# ----------------------------------------------------------------------------- the array


def _hex_lattice(spacing: float, radius: float, g: np.random.Generator, jitter: float) -> np.ndarray:
    """(east, north) points (m) of a hexagonal lattice `spacing` apart within `radius`, jittered."""
    n = int(radius / spacing) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    x = (i + 0.5 * (j % 2)) * spacing
    y = j * spacing * math.sqrt(3) / 2
    pts = np.stack([x.ravel(), y.ravel()], axis=1)
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) <= radius]
    return pts + g.uniform(-jitter, jitter, pts.shape)


def _spiral_arms(g: np.random.Generator) -> tuple[list[np.ndarray], list[str]]:
    """The 12-m array's three logarithmic spiral arms: (east, north) points (m) per arm, pad names."""
    arms, names = [], []
    for a, prefix in enumerate(("W2", "S3", "P4")):
        radii = 280.0 * 1.055 ** np.arange(0, 200)
        radii = radii[radii <= 8600.0]
        theta = math.radians(100 + 120 * a) + 1.1 * np.log(radii / 280.0) + g.normal(0, 0.05, radii.size)
        arms.append(np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=1))
        names += [f"{prefix}{k + 1:02d}" for k in range(radii.size)]
    return arms, names


@lru_cache(maxsize=None)
def pads(array: str) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """A fixed pad catalogue: (east, north, up) positions (m), pad names, radii (m)."""
    g = np.random.default_rng(20161001)
    if array == "7m":
        core = _hex_lattice(9.2, 48.0, g, 0.4)
        r = np.hypot(core[:, 0], core[:, 1])
        order = np.argsort(r, kind="stable")
        en = core[order]
        names = [f"J5{k + 1:02d}" if k < 50 else f"N6{k - 49:02d}" for k in range(len(en))]
    else:
        core = _hex_lattice(15.3, 260.0, g, 0.7)
        core = core[np.argsort(np.hypot(core[:, 0], core[:, 1]), kind="stable")]
        names = [f"A{k + 1:03d}" for k in range(len(core))]
        arms, arm_names = _spiral_arms(g)
        names += arm_names
        en = np.concatenate([core] + arms)
    r = np.hypot(en[:, 0], en[:, 1])
    up = g.normal(0.0, 1.0 + r / 500.0)
    return np.column_stack([en, up]), tuple(names), r


def choose_pads(d: Draw, array: str, n: int, scale: float) -> np.ndarray:
    """Indices of `n` distinct pads spread over a radius ~`scale` (m)."""
    pos, _, radius = pads(array)
    u = d.g.random((n, 2))
    if array == "7m":
        r = scale * np.sqrt(u[:, 0])
    else:
        core = u[:, 0] < 0.2
        r = np.where(core, 0.08 * scale * np.sqrt(u[:, 1]), scale * u[:, 0] ** 0.8)
    az = d.g.random(n) * 2 * math.pi
    want = np.stack([r * np.cos(az), r * np.sin(az)], axis=1)
    cand = np.flatnonzero(radius <= scale + 40.0)
    if cand.size < 2 * n:
        cand = np.argsort(radius)[: 2 * n]
    dist = (want[:, None, 0] - pos[cand, 0]) ** 2 + (want[:, None, 1] - pos[cand, 1]) ** 2
    nearest = dist.argmin(axis=1)
    if np.unique(nearest).size == n:
        return cand[nearest]
    chosen = []
    for i in np.argsort(r).tolist():  # nearest free pad, innermost wish first
        k = int(dist[i].argmin())
        chosen.append(int(cand[k]))
        dist[:, k] = np.inf
    return np.array(chosen)


def itrf(enu: np.ndarray) -> np.ndarray:
    """Local tangent plane (east, north, up; m) about ALMA -> ITRF (m), CASA's simutil.locxyz2itrf."""
    a, b = 6378137.0, 6356752.3142
    sphi = math.sin(ALMA_LAT)
    n = a / math.sqrt(1.0 - (math.sin(math.acos(b / a)) * sphi) ** 2)
    x, y, z = enu[:, 0], enu[:, 1], enu[:, 2]
    t = (n + z + ALMA_ALT) * math.cos(ALMA_LAT) - y * sphi
    return np.stack([t * math.cos(ALMA_LON) - x * math.sin(ALMA_LON), t * math.sin(ALMA_LON) + x * math.cos(ALMA_LON),
                     (n * (b / a) ** 2 + z + ALMA_ALT) * sphi + y * math.cos(ALMA_LAT)], axis=1)


def _direction(dec_deg: float, ha_hours: np.ndarray) -> np.ndarray:
    """Unit vectors (east, north, up) towards a source at declination and hour angles."""
    dec, h, lat = math.radians(dec_deg), np.asarray(ha_hours) * (math.pi / 12), ALMA_LAT
    return np.stack([-math.cos(dec) * np.sin(h),
                     math.cos(lat) * math.sin(dec) - math.sin(lat) * math.cos(dec) * np.cos(h),
                     math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * np.cos(h)], axis=-1)


def baseline_stats(enu: np.ndarray, dec: float, ha: float) -> dict[str, float]:
    """Projected baseline min/max/L75/L80 (m) towards `dec` at hour angles ha-0.4 h, ha, ha+0.4 h."""
    i, j = np.triu_indices(len(enu), 1)
    b = enu[j] - enu[i]
    s = _direction(dec, np.array([ha - 0.4, ha, ha + 0.4]))
    along = b @ s.T
    proj = np.sort(np.sqrt(np.maximum((b * b).sum(1)[:, None] - along * along, 0.0)).ravel())

    def pct(q: float) -> float:  # linear interpolation, as numpy's default percentile
        x = q * (proj.size - 1)
        k = int(x)
        return float(proj[k] + (proj[min(k + 1, proj.size - 1)] - proj[k]) * (x - k))

    return {"min": round(float(proj[0]), 1), "max": round(float(proj[-1]), 1),
            "l75": round(pct(0.75), 1), "l80": round(pct(0.80), 1)}


# ----------------------------------------------------------------------------- time and sky


def lst_hours(mjd: float) -> float:
    """ALMA's local sidereal time (hours) at `mjd` (days, UTC)."""
    gmst = 18.697374558 + 24.06570982441908 * (mjd - 51544.5)
    return (gmst + math.degrees(ALMA_LON) / 15) % 24


def time_at(day: int, ra_deg: float, ha: float) -> float:
    """MJD (days) on `day` when the hour angle of `ra_deg` is `ha` (hours)."""
    want = (ra_deg / 15 + ha) % 24
    return day + ((want - lst_hours(day)) % 24) / 24.06570982441908


def sky_name(ra: float, dec: float) -> str:
    """``Jhhmm+ddmm`` for a position in degrees."""
    m = int(ra / 15 * 60) % 1440
    dm = int(abs(dec) * 60)
    return f"J{m // 60:02d}{m % 60:02d}{'-' if dec < 0 else '+'}{dm // 60:02d}{dm % 60:02d}"


def _grid_position(name: str) -> tuple[float, float]:
    """(ra, dec) in degrees from a ``Jhhmm+ddmm`` name."""
    ra = (int(name[1:3]) + int(name[3:5]) / 60) * 15
    dec = (int(name[6:8]) + int(name[8:10]) / 60) * (-1 if name[5] == "-" else 1)
    return ra, dec


GRID_POSITIONS: dict[str, tuple[float, float]] = {name: _grid_position(name) for name in GRID_QUASARS}


def offset(d: Draw, ra: float, dec: float, lo: float, hi: float) -> tuple[float, float]:
    """A position `lo`..`hi` degrees from (ra, dec), kept within the ALMA sky."""
    sep, pa = d.uniform(lo, hi), d.uniform(0, 2 * math.pi)
    dec2 = max(-88.0, min(45.0, dec + sep * math.cos(pa)))
    ra2 = (ra + sep * math.sin(pa) / max(0.05, math.cos(math.radians(dec2)))) % 360
    return ra2, dec2


def hex_pointings(n: int, spacing: float) -> list[dict[str, float]]:
    """`n` mosaic pointings on a hexagonal grid `spacing` arcsec apart, centred on 0."""
    rows = max(1, round(math.sqrt(n * 0.866)))
    cols = math.ceil(n / rows)
    pts = [((c + 0.5 * (r % 2)) * spacing, r * spacing * math.sqrt(3) / 2)
           for r in range(rows) for c in range(cols)][:n]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [{"ra_offset": round(x - cx, 2), "dec_offset": round(y - cy, 2)} for x, y in pts]
