"""Synthetic ALMA dataset summaries: many plausible, varied datasets for benchmarks and tests.

    for summary in synthesize(1000, seed=0): ...       # dicts that validate as `Dataset`
    summary = synth_dataset(np.random.default_rng(7))  # one dataset from any generator
    write_corpus(10_000, "corpus/", fmt="json")         # synth_000000.json, ...

Dataset ``i`` of a corpus depends only on ``(seed, i)`` (its generator is
``dataset_rng(seed, i)``), so a corpus of 100 is a prefix of a corpus of 1000. Quantities
are plain numbers in the schema's canonical units (Hz, m, s, deg, arcsec, Jy/beam, Jy^-2);
times are MJD seconds (UTC). The data are invented: no summary describes a real observation.

Distributions (independent per dataset unless stated):

- **array**: 12m 75 %, 7m 25 %. 12m: 40-50 antennas (DA/DV/PM names, 12 m dishes);
  7m: 10-12 (CM01-CM12, 7 m). Each EB lacks each antenna with probability 2 %.
- **band** (12m / 7m): B3 20/12 %, B4 8/8 %, B5 3/2 %, B6 30/33 %, B7 27/32 %, B8 5/8 %,
  B9 5/4 %, B10 2/1 %. LO1 uniform such that all four 2-GHz basebands (IF 6 and 8 GHz,
  lower sideband BB1-2 with negative channel widths, upper BB3-4) lie inside the band.
- **set-up**: TDM continuum (12m 40 %, 7m 25 %): 4 spws x 128 x 15.625 MHz (2 GHz).
  Otherwise FDM, one spw per baseband (a second, narrower one in 20 % of basebands); an FDM
  spw is 1920 x 976.5625 kHz (30 %), 3840 x 488.28125 / 244.140625 / 122.0703125 /
  61.03515625 kHz (12/14/10/6 %), 960 x 1953.125 / 488.28125 kHz (10/5 %), 480 x 3906.25 /
  976.5625 kHz (7/4 %) or 7680 x 244.140625 kHz (2 %). Online Hanning on in 85 % of FDM
  set-ups (each spw flips with 5 %): effective_bw = 2.667 x width when on, = width when off.
  7m FDM set-ups keep two TDM basebands in 25 %; 50 % of FDM set-ups with Tsys carry four
  separate TDM Tsys spws (ATMOSPHERE only). The representative spw is a random science spw;
  representative_frequency is uniform in its inner 80 % (rounded to 1 MHz).
- **configuration** (12m): C43-1 ... C43-10 with weights 12, 13, 15, 16, 14, 10, 8, 6, 4, 2 %
  and nominal projected L80 90, 170, 270, 420, 750, 1300, 1900, 3900, 6300, 8000 m
  (x lognormal 10 %). 7m: L80 ~ 30 m. Antennas sit on a fixed catalogue of pads (a jittered
  15.3-m hexagonal core, 9.2 m for the 7m array, and three logarithmic spiral arms out to
  8.6 km); projected baseline min/max/L75/L80 per EB are computed from the chosen pads,
  projected towards the target at three hour angles of the EB: always consistent.
  ITRF positions: the local tangent plane about ALMA's position, as CASA's simutil.
- **EBs**: 1 (55 %), 2 (22 %), 3 (13 %), 4 (10 %); 12m EBs last 35-80 min, 7m 40-60 min;
  several EBs are back to back (gaps 2-20 min, 50 %) or days apart (1-30 days: more than an
  hour apart). Integration 6.048 s (12m; 2.016 s in 20 %, 50 % for L80 > 2 km), 10.08 s (7m).
- **targets**: 1 field (72 %), 2-5 (18 %), 6-15 (8 %), 16-40 (2 %; such surveys have 1-2 EBs
  and no mosaics); above 5 targets one spw a baseband and no separate Tsys spws (files stay
  small). Several targets lie within 1.5 deg (80 %) or 5-40 deg of each other. Mosaics: 7m
  60 % (3-60 pointings, log-uniform), 12m 18 % (L80 < 500 m), 8 % (< 1 km), 3 % (longer) with
  7-150 pointings; halved above 5 targets, at most max(3, min(19, 60 / targets)) pointings a
  field; hexagonal, lambda/(sqrt(3) D) apart at the representative frequency.
- **calibrators**: bandpass (a grid quasar), flux (the bandpass field 45 %, another quasar
  30 %, a solar-system body 25 %), phase (a quasar 2-10 deg from the target, 0.5-3 deg for
  L80 > 2 km), check (12m 70 %, 7m 20 %); ATMOSPHERE on the bandpass and target fields (and
  on the phase field in half of the datasets with 1-2 EBs). Missing on purpose: no phase 3 %,
  no flux 5 %, no bandpass 2 %, no Tsys (no ATMOSPHERE, no SYSCAL rows) 2 %; processing
  history 5 %, MODEL_DATA 3 %.
- **scans** (kept few): per EB one ATMOSPHERE scan per field with that intent (the targets
  share one), one scan per calibrator intent (bandpass, flux, phase, check) and 1-3 target
  scans (one with 3-4 EBs; each covers all target fields); the gaps between target scans
  stand for unlisted phase-calibrator visits. SYSCAL rows = antennas x Tsys spws x ATMOSPHERE scans.
- **weights** per field with a science intent (targets and calibrators, as the Measurement
  Set reader gives them), science spw and EB (summed over EBs, without ``eb``, when that would
  exceed 32 entries): time_on_source = the EB's target time / number of targets (calibrators:
  their scans, with the unlisted phase visits); rows = integrations x (baselines + antennas),
  autocorrelations included; flagged_fraction 1-13 %. sum_weight follows the radiometer
  equation in the WEIGHT convention of the simulator and the reader (per channel
  w = 2 effective_bw t_int eta_c^2 / SEFD^2, summed over channels, both parallel hands, all
  cross baselines and integrations, x (1 - flagged_fraction)), so that
  sqrt(effective_bw / width) / sqrt(sum_weight) is the natural-weighting mfs noise.
  SEFD = 2 k Tsys / (eta_a pi D^2 / 4), Tsys (K) / aperture efficiency eta_a per band:
  B3 75/0.71, B4 85/0.70, B5 120/0.69, B6 100/0.68, B7 150/0.63, B8 400/0.60, B9 900/0.50,
  B10 1200/0.45; Tsys x lognormal(20 %) per EB and x lognormal(5 %) per field and spw;
  correlator efficiency eta_c = 0.88. (12m, Band 6, 43 antennas, 2 GHz, 25 min: ~40 uJy.)
- **measurements** in 20 % of datasets, for some images (``FIELD.INTENT.SPWS.SPECMODE``): the
  first one or two targets (mfs and, 80 %, cube for 1-3 spws; cont 80 %), phase, bandpass and
  check mfs (70 % each); sensitivity from the weight sums as above x a robust factor 1.1-1.25
  (cubes x sqrt(nchan), mosaics x sqrt(pointings / 2)); dirty DR log-uniform (targets 3-2000,
  phase 100-5000, bandpass 500-20000, check 10-500); rms around the DR-corrected noise so that
  QA scores vary; beams 0.574 lambda / L80 x 1-1.3.
- **missing facts** in 2 %: one of L80, the baselines, representative_spw,
  representative_frequency, dish diameters, integration times, one spw's intents or nchan,
  the target's pointings (the rules see them as unknown).

Sizes: a YAML summary is ~14 KB on average and under 20 KB for 95 % of datasets; the
16-40-field tail reaches ~40 KB (its weights: one entry per field and spw). Speed: ~1 ms a
dataset; `write_corpus` of 10 000 JSON files ~20 s on two cores (the fsyncs overlap).
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional, Sequence, Union

import numpy as np

from almarules.engine.io import write_atomic

__all__ = ["synthesize", "synth_dataset", "write_corpus", "dataset_rng", "corpus_name", "to_yaml"]

# ----------------------------------------------------------------------------- constants

C = 299_792_458.0  # m/s
K_B = 1.380649e-23  # J/K
JY = 1e-26  # W m^-2 Hz^-1
ARCSEC = math.pi / 180 / 3600  # rad
ETA_C = 0.88  # correlator (quantisation) efficiency
# ALMA's position (WGS84 lon, lat [rad], height [m]) as in CASA's Observatories table, and the
# array centre in its tangent plane (east, north, up; m): ITRF (2225061.164, -5440057.370, -2481681.150)
_LON, _LAT, _ALT = -1.1825465955049892, -0.4018251640113072, 5056.8
_CENTRE_ENU = np.array([19.656, -701.914, 13.532])

# band: (low GHz, high GHz, Tsys K, aperture efficiency, weight 12m, weight 7m)
BANDS: dict[int, tuple[float, float, float, float, float, float]] = {
    3: (84.0, 116.0, 75.0, 0.71, 0.20, 0.12),
    4: (125.0, 163.0, 85.0, 0.70, 0.08, 0.08),
    5: (163.0, 211.0, 120.0, 0.69, 0.03, 0.02),
    6: (211.0, 275.0, 100.0, 0.68, 0.30, 0.33),
    7: (275.0, 373.0, 150.0, 0.63, 0.27, 0.32),
    8: (385.0, 500.0, 400.0, 0.60, 0.05, 0.08),
    9: (602.0, 720.0, 900.0, 0.50, 0.05, 0.04),
    10: (787.0, 950.0, 1200.0, 0.45, 0.02, 0.01),
}
# 12-m configurations: (name, nominal projected L80 in m, weight)
CONFIGS_12M: tuple[tuple[str, float, float], ...] = (
    ("C43-1", 90.0, 0.12), ("C43-2", 170.0, 0.13), ("C43-3", 270.0, 0.15), ("C43-4", 420.0, 0.16),
    ("C43-5", 750.0, 0.14), ("C43-6", 1300.0, 0.10), ("C43-7", 1900.0, 0.08), ("C43-8", 3900.0, 0.06),
    ("C43-9", 6300.0, 0.04), ("C43-10", 8000.0, 0.02),
)
TDM = (128, 15.625e6)
# FDM spw modes: (nchan, channel width Hz, weight)
FDM_MODES: tuple[tuple[int, float, float], ...] = (
    (1920, 976562.5, 0.30), (3840, 488281.25, 0.12), (3840, 244140.625, 0.14),
    (3840, 122070.3125, 0.10), (3840, 61035.15625, 0.06), (960, 1953125.0, 0.10),
    (960, 488281.25, 0.05), (480, 3906250.0, 0.07), (480, 976562.5, 0.04), (7680, 244140.625, 0.02),
)
# narrow spws that share a baseband with a first one
_NARROW = ((3840, 122070.3125), (3840, 61035.15625), (960, 488281.25), (480, 976562.5))
HANNING = 2.667  # effective bandwidth / channel width with online Hanning smoothing

_NAMES_12M = ([f"DA{i}" for i in range(41, 66)] + [f"DV{i:02d}" for i in range(1, 26)]
              + [f"PM{i:02d}" for i in range(1, 5)])
_NAMES_7M = [f"CM{i:02d}" for i in range(1, 13)]
# bandpass / flux grid quasars (the name gives the position)
_GRID = ("J0006-0623", "J0237+2848", "J0238+1636", "J0423-0120", "J0510+1800", "J0522-3627",
         "J0538-4405", "J0750+1231", "J0854+2006", "J1037-2934", "J1058+0133", "J1229+0203",
         "J1256-0547", "J1337-1257", "J1427-4206", "J1517-2422", "J1550+0527", "J1617-5848",
         "J1733-1304", "J1751+0939", "J1924-2914", "J2000-1748", "J2056-4714", "J2148+0657",
         "J2232+1143", "J2253+1608", "J2258-2758", "J2357-5311")
_PLANETS = ("Titan", "Ganymede", "Callisto", "Uranus", "Neptune", "Ceres", "Pallas", "Mars")
_TARGET_STYLES = ("NGC_{n}", "IRAS_{j}", "HD_{n6}", "Elias_{n2}", "HOPS-{n3}", "SPT{j}", "AzTEC{n2}",
                  "COSMOS_{n5}", "Lupus_{n2}", "Oph-MMS{n2}", "G{l}", "IRDC_{n3}", "BHR_{n3}", "HH_{n3}")
_SURVEYS = ("HOPS-{k}", "COSMOS_{k}", "Lupus_disk_{k}", "Oph_{k}", "SPT_field_{k}", "Serpens_{k}",
            "Orion_{k}", "Cha_I_{k}", "W43_{k}", "N159_{k}")
_LATER_TASKS = (["flagdata"], ["flagdata", "applycal"], ["split"], ["mstransform", "flagdata"])
_MISSING = ("ebs.baselines.l80", "ebs.baselines", "representative_spw", "representative_frequency",
            "antennas.dish_diameter", "ebs.integration_time", "spws.intents", "spws.nchan",
            "fields.pointings")


# ----------------------------------------------------------------------------- random draws


def dataset_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of dataset `index` of the corpus `seed` (both >= 0)."""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    return np.random.default_rng([seed, index])


class _Draw:
    """Fast scalar draws from a numpy Generator (buffered uniforms and normals)."""

    __slots__ = ("g", "_u", "_n")

    def __init__(self, g: np.random.Generator):
        self.g = g
        self._u: list[float] = []
        self._n: list[float] = []

    def u(self) -> float:
        if not self._u:
            self._u = self.g.random(256).tolist()
        return self._u.pop()

    def normal(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        if not self._n:
            self._n = self.g.standard_normal(64).tolist()
        return mu + sigma * self._n.pop()

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.u()

    def logu(self, a: float, b: float) -> float:
        return math.exp(self.uniform(math.log(a), math.log(b)))

    def chance(self, p: float) -> bool:
        return self.u() < p

    def int(self, a: int, b: int) -> int:
        """Uniform integer in [a, b]."""
        return min(b, a + int(self.u() * (b - a + 1)))

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[min(len(seq) - 1, int(self.u() * len(seq)))]

    def weighted(self, items: Sequence[Any], weights: Sequence[float]) -> Any:
        x = self.u() * sum(weights)
        for item, w in zip(items, weights):
            x -= w
            if x < 0:
                return item
        return items[-1]

    def sample(self, seq: Sequence[Any], k: int) -> list[Any]:
        """k distinct items, in their original order."""
        idx = sorted(self.g.permutation(len(seq))[:k].tolist())
        return [seq[i] for i in idx]


def _sig(x: float, digits: int = 4) -> float:
    """`x` rounded to `digits` significant digits (a short, exact-looking number)."""
    return float(f"{x:.{digits}g}")


# ----------------------------------------------------------------------------- geometry


def _hex_lattice(spacing: float, radius: float, g: np.random.Generator, jitter: float) -> np.ndarray:
    n = int(radius / spacing) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    x = (i + 0.5 * (j % 2)) * spacing
    y = j * spacing * math.sqrt(3) / 2
    pts = np.stack([x.ravel(), y.ravel()], axis=1)
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) <= radius]
    return pts + g.uniform(-jitter, jitter, pts.shape)


@lru_cache(maxsize=None)
def _pads(array: str) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
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
        arms = []
        for a, prefix in enumerate(("W2", "S3", "P4")):
            radii = 280.0 * 1.055 ** np.arange(0, 200)
            radii = radii[radii <= 8600.0]
            theta = math.radians(100 + 120 * a) + 1.1 * np.log(radii / 280.0) + g.normal(0, 0.05, radii.size)
            arms.append(np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=1))
            names += [f"{prefix}{k + 1:02d}" for k in range(radii.size)]
        en = np.concatenate([core] + arms)
    r = np.hypot(en[:, 0], en[:, 1])
    up = g.normal(0.0, 1.0 + r / 500.0)
    return np.column_stack([en, up]), tuple(names), r


def _choose_pads(d: _Draw, array: str, n: int, scale: float) -> np.ndarray:
    """Indices of `n` distinct pads spread over a radius ~`scale` (m)."""
    pos, _, radius = _pads(array)
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
    for i in np.argsort(r).tolist():
        k = int(dist[i].argmin())
        chosen.append(int(cand[k]))
        dist[:, k] = np.inf
    return np.array(chosen)


def _itrf(enu: np.ndarray) -> np.ndarray:
    """Local tangent plane (east, north, up; m) about ALMA -> ITRF (m), CASA's simutil.locxyz2itrf."""
    a, b = 6378137.0, 6356752.3142
    sphi = math.sin(_LAT)
    n = a / math.sqrt(1.0 - (math.sin(math.acos(b / a)) * sphi) ** 2)
    x, y, z = enu[:, 0], enu[:, 1], enu[:, 2]
    t = (n + z + _ALT) * math.cos(_LAT) - y * sphi
    return np.stack([t * math.cos(_LON) - x * math.sin(_LON), t * math.sin(_LON) + x * math.cos(_LON),
                     (n * (b / a) ** 2 + z + _ALT) * sphi + y * math.cos(_LAT)], axis=1)


def _direction(dec_deg: float, ha_hours: np.ndarray) -> np.ndarray:
    """Unit vectors (east, north, up) towards a source at declination and hour angles."""
    dec, h, lat = math.radians(dec_deg), np.asarray(ha_hours) * (math.pi / 12), _LAT
    return np.stack([-math.cos(dec) * np.sin(h),
                     math.cos(lat) * math.sin(dec) - math.sin(lat) * math.cos(dec) * np.cos(h),
                     math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * np.cos(h)], axis=-1)


def _baseline_stats(enu: np.ndarray, dec: float, ha: float) -> dict[str, float]:
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


def _lst_hours(mjd: float) -> float:
    gmst = 18.697374558 + 24.06570982441908 * (mjd - 51544.5)
    return (gmst + math.degrees(_LON) / 15) % 24


def _time_at(day: int, ra_deg: float, ha: float) -> float:
    """MJD (days) on `day` when the hour angle of `ra_deg` is `ha` (hours)."""
    want = (ra_deg / 15 + ha) % 24
    return day + ((want - _lst_hours(day)) % 24) / 24.06570982441908


def _sky_name(ra: float, dec: float) -> str:
    """``Jhhmm+ddmm`` for a position in degrees."""
    m = int(ra / 15 * 60) % 1440
    dm = int(abs(dec) * 60)
    return f"J{m // 60:02d}{m % 60:02d}{'-' if dec < 0 else '+'}{dm // 60:02d}{dm % 60:02d}"


def _grid_position(name: str) -> tuple[float, float]:
    """(ra, dec) in degrees from a ``Jhhmm+ddmm`` name."""
    ra = (int(name[1:3]) + int(name[3:5]) / 60) * 15
    dec = (int(name[6:8]) + int(name[8:10]) / 60) * (-1 if name[5] == "-" else 1)
    return ra, dec


_GRID_POS = {name: _grid_position(name) for name in _GRID}


def _offset(d: _Draw, ra: float, dec: float, lo: float, hi: float) -> tuple[float, float]:
    """A position `lo`..`hi` degrees from (ra, dec), kept within the ALMA sky."""
    sep, pa = d.uniform(lo, hi), d.uniform(0, 2 * math.pi)
    dec2 = max(-88.0, min(45.0, dec + sep * math.cos(pa)))
    ra2 = (ra + sep * math.sin(pa) / max(0.05, math.cos(math.radians(dec2)))) % 360
    return ra2, dec2


def _hex_pointings(n: int, spacing: float) -> list[dict[str, float]]:
    """`n` mosaic pointings on a hexagonal grid `spacing` arcsec apart, centred on 0."""
    rows = max(1, round(math.sqrt(n * 0.866)))
    cols = math.ceil(n / rows)
    pts = [((c + 0.5 * (r % 2)) * spacing, r * spacing * math.sqrt(3) / 2)
           for r in range(rows) for c in range(cols)][:n]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [{"ra_offset": round(x - cx, 2), "dec_offset": round(y - cy, 2)} for x, y in pts]


# ----------------------------------------------------------------------------- the dataset


def _sefd(tsys: float, eta_a: float, diameter: float) -> float:
    """System equivalent flux density (Jy): 2 k Tsys / (eta_a pi D^2 / 4)."""
    return 2 * K_B * tsys / (eta_a * math.pi * diameter ** 2 / 4) / JY


def _sum_weight(sefd: float, bandwidth: float, t_int: float, n_int: int, n_bl: int, flagged: float) -> float:
    """Natural-weighting sum of weights (Jy^-2): both hands, all baselines and integrations."""
    w = 2 * bandwidth * t_int * ETA_C ** 2 / sefd ** 2
    return 2 * n_bl * n_int * (1 - flagged) * w


def _target_names(d: _Draw, n: int, ra: float, dec: float) -> list[str]:
    if n == 1:
        style = d.pick(_TARGET_STYLES)
        j = _sky_name(ra, dec)[1:]
        return [style.format(n=d.int(1, 7840), n2=d.int(1, 40), n3=d.int(1, 400), n5=d.int(1, 99999),
                             n6=d.int(100000, 240000), j=j, l=f"{d.int(0, 359):03d}_{d.int(0, 99):02d}")]
    style = d.pick(_SURVEYS)
    start = d.int(1, 300)
    return [style.format(k=start + k) for k in range(n)]


def _draw(rng: Union[np.random.Generator, int]) -> tuple[dict, list[str]]:
    """One summary and the lines of its header comment."""
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    d = _Draw(g)
    notes: list[str] = []

    # ---------------------------------------------------------------- array, band, configuration
    array = "12m" if d.chance(0.75) else "7m"
    bands = list(BANDS)
    band = d.weighted(bands, [BANDS[b][4 if array == "12m" else 5] for b in bands])
    tsys_band, eta_a = BANDS[band][2:4]
    dish = 12.0 if array == "12m" else 7.0
    if array == "12m":
        config, l80_nominal, _ = d.weighted(CONFIGS_12M, [c[2] for c in CONFIGS_12M])
        l80_target = l80_nominal * math.exp(d.normal(0, 0.1))
    else:
        config, l80_target = "ACA", d.normal(30.0, 2.5)

    # ---------------------------------------------------------------- sky: targets and calibrators
    n_targets = d.weighted((1, 2, 6, 16), (0.72, 0.18, 0.08, 0.02))
    n_targets = {1: 1, 2: d.int(2, 5), 6: d.int(6, 15), 16: d.int(16, 40)}[n_targets]
    survey = n_targets > 15  # keeps the file small: 1-2 EBs, no mosaics
    n_ebs = d.weighted((1, 2, 3, 4), (0.55, 0.22, 0.13, 0.10))
    if survey:
        n_ebs = min(n_ebs, 2)
    ra0 = d.uniform(0, 360)
    dec0 = math.degrees(math.asin(d.uniform(math.sin(math.radians(-80)), math.sin(math.radians(40)))))
    spread_sample = n_targets > 1 and d.chance(0.2)
    positions = [(ra0, dec0)]
    for _ in range(n_targets - 1):
        positions.append(_offset(d, ra0, dec0, 5, 40) if spread_sample else _offset(d, ra0, dec0, 0.02, 1.5))
    target_names = _target_names(d, n_targets, ra0, dec0)

    has_phase = not d.chance(0.03)
    has_flux = not d.chance(0.05)
    has_bandpass = not d.chance(0.02)
    has_tsys = not d.chance(0.02)
    has_check = has_phase and d.chance(0.70 if array == "12m" else 0.20)
    if not has_phase:
        notes.append("no phase calibrator")
    if not has_flux:
        notes.append("no flux calibrator")
    if not has_bandpass:
        notes.append("no bandpass calibrator")
    if not has_tsys:
        notes.append("no Tsys (no ATMOSPHERE, no SYSCAL)")

    # fields, as summary dicts; calibrators first (ALMA observes them first), then the targets
    fields: list[dict] = []
    used: set[str] = set(target_names)

    def add_field(name: str, ra: float, dec: float, intents: list[str], target: bool = False) -> int:
        while name in used and not target:  # two invented names at the same position
            name += "b"
        used.add(name)
        fields.append({"id": len(fields), "name": name, "ra": round(ra, 7), "dec": round(dec, 7),
                       "intents": intents, "pointings": [{"ra_offset": 0.0, "dec_offset": 0.0}]})
        return len(fields) - 1

    atm = ["ATMOSPHERE"] if has_tsys else []
    grid = sorted(_GRID, key=lambda n: abs(_GRID_POS[n][1] - dec0) + 0.2 * abs(_GRID_POS[n][0] - ra0))
    bp_name = d.pick(grid[:4])
    flux_kind = d.weighted(("same", "quasar", "planet"), (0.45, 0.30, 0.25)) if has_flux else None
    if flux_kind == "same" and not has_bandpass:
        flux_kind = "quasar"
    bp_id = flux_id = phase_id = check_id = None
    if has_bandpass:
        bp_intents = atm + ["BANDPASS"] + (["AMPLITUDE"] if flux_kind == "same" else [])
        bp_id = add_field(bp_name, *_GRID_POS[bp_name], bp_intents)
        flux_id = bp_id if flux_kind == "same" else None
    if flux_kind == "quasar":
        name = d.pick([n for n in grid[:8] if n != bp_name])
        flux_id = add_field(name, *_GRID_POS[name], ["AMPLITUDE"])
    elif flux_kind == "planet":
        lam = d.uniform(0, 2 * math.pi)
        flux_id = add_field(d.pick(_PLANETS), math.degrees(lam) % 360, 23.44 * math.sin(lam), ["AMPLITUDE"])
    long_baseline = l80_target > 2000
    if has_phase:
        ra, dec = _offset(d, ra0, dec0, *((0.5, 3.0) if long_baseline else (2.0, 10.0)))
        phase_atm = atm[:1] if n_ebs <= 2 and d.chance(0.5) else []
        phase_id = add_field(_sky_name(ra, dec), ra, dec, phase_atm + ["PHASE"])
    if has_check:
        ra, dec = _offset(d, ra0, dec0, 0.5, 5.0)
        check_id = add_field(_sky_name(ra, dec), ra, dec, ["CHECK"])

    # mosaics
    p_mosaic = 0.6 if array == "7m" else (0.18 if l80_target < 500 else 0.08 if l80_target < 1000 else 0.03)
    if n_targets > 5:
        p_mosaic = 0.0 if survey else p_mosaic / 2
    mosaic = d.chance(p_mosaic)
    first_target = len(fields)
    for (ra, dec), name in zip(positions, target_names):
        add_field(name, ra, dec, atm + ["TARGET"], target=True)
    target_ids = list(range(first_target, len(fields)))

    # ---------------------------------------------------------------- spectral set-up
    spws, tdm, tsys_spws, setup_notes = _setup(d, array, band, n_targets > 5, has_tsys)
    sci = [sp for sp in spws if not sp["intents"]]  # science spws: intents filled in from the scans
    sci_ids = [sp["id"] for sp in sci]
    rep = d.pick(sci)
    lo_edge, hi_edge = _edges(rep)
    rep_freq = round(lo_edge + (hi_edge - lo_edge) * d.uniform(0.1, 0.9), -6)
    for s in sci:  # lines in FDM spws
        if s["correlator_mode"] == "FDM" and (s is rep or d.chance(0.5)):
            lo, hi = _edges(s)
            s["rest_frequencies"] = [rep_freq if s is rep else round(lo + (hi - lo) * d.uniform(0.1, 0.9), -3)]

    # ---------------------------------------------------------------- antennas and EBs
    n_ant = d.int(40, 50) if array == "12m" else d.int(10, 12)
    names = d.sample(_NAMES_12M if array == "12m" else _NAMES_7M, n_ant)
    scale = l80_target / (1.02 if array == "12m" else 1.32)  # pad-selection radius giving ~ that L80
    pad_idx = _choose_pads(d, array, n_ant, scale)
    pad_pos, pad_names, _ = _pads(array)
    enu = pad_pos[pad_idx]
    itrf = _itrf(enu + _CENTRE_ENU).round(3).tolist()
    present = g.random((n_ebs, n_ant)) >= 0.02
    present[0] |= ~present.any(axis=0)  # every listed antenna has data in some EB
    if array == "12m":
        t_int = 2.016 if d.chance(0.5 if long_baseline else 0.2) else 6.048
    else:
        t_int = 10.08
    back_to_back = n_ebs > 1 and d.chance(0.5)
    day = d.int(57300, 59000)
    mjd_day = day
    eb_len = [d.uniform(35, 80) * 60 if array == "12m" else d.uniform(40, 60) * 60 for _ in range(n_ebs)]
    gaps = [d.uniform(2, 20) * 60 if back_to_back else 0.0 for _ in range(n_ebs)]
    total = sum(eb_len) + sum(gaps[1:])
    ha_mid = d.uniform(-1.0, 1.0) if back_to_back else d.uniform(-1.5, 1.5)
    t = _time_at(day, ra0, ha_mid) * 86400 - total / 2
    history = d.chance(0.05)
    model_data = d.chance(0.03)
    if history:
        notes.append("processing history")
    if model_data:
        notes.append("MODEL_DATA column")
    ebs, scans = [], []
    on_source: dict[tuple[int, int], float] = {}  # (calibrator field, EB) -> seconds (not ATMOSPHERE)
    sefd_eb, n_bl_eb, t_target_eb = [], [], []
    year = None
    n_tsys = 0 if not has_tsys else 4 if tsys_spws else len(sci_ids)
    target_scans = d.int(1, 3) if n_ebs <= 2 else 1
    cal_time = {"BANDPASS": d.uniform(300, 600) * (1.5 if band >= 8 else 1.0),
                "AMPLITUDE": d.uniform(120, 300), "PHASE": d.uniform(30, 60), "CHECK": d.uniform(60, 120)}
    for e in range(n_ebs):
        if e > 0:
            if back_to_back:
                t = ebs[-1]["end"] + gaps[e]
            else:
                mjd_day += d.int(1, 30)
                t = _time_at(mjd_day, ra0, d.uniform(-1.5, 1.5)) * 86400 - eb_len[e] / 2
        mid_ha = ((_lst_hours((t + eb_len[e] / 2) / 86400) - ra0 / 15 + 12) % 24) - 12
        if year is None:
            year = 1858.877 + t / 86400 / 365.2425  # MJD -> calendar year, approximately
        eb_id = _uid("A002", t, d)
        ant_idx = np.flatnonzero(present[e])
        n_e = int(ant_idx.size)
        n_bl = n_e * (n_e - 1) // 2
        stats = _baseline_stats(enu[ant_idx], dec0, mid_ha)
        tsys = tsys_band * math.exp(d.normal(0, 0.2))
        sefd_eb.append(_sefd(tsys, eta_a, dish))
        n_bl_eb.append(n_bl)
        # scans
        number = 0
        start = t

        def scan(intents: list[str], field_ids: list[int], spw_ids: list[int], length: float) -> None:
            nonlocal number, start
            number += 1
            scans.append({"eb": eb_id, "number": number, "intents": intents, "field_ids": field_ids,
                          "spw_ids": spw_ids, "start": round(start, 3), "end": round(start + length, 3)})
            if intents != ["ATMOSPHERE"] and "TARGET" not in intents:
                on_source[(field_ids[0], e)] = on_source.get((field_ids[0], e), 0.0) + length
            start += length + 12.0

        all_ids = [s["id"] for s in spws]
        n_atm = 0
        if has_tsys and bp_id is not None:
            scan(["ATMOSPHERE"], [bp_id], all_ids, 20.16 if array == "7m" else 18.144)
            n_atm += 1
        if bp_id is not None:
            scan(["BANDPASS", "AMPLITUDE"] if flux_id == bp_id else ["BANDPASS"], [bp_id], sci_ids,
                 cal_time["BANDPASS"])
        if flux_id is not None and flux_id != bp_id:
            scan(["AMPLITUDE"], [flux_id], sci_ids, cal_time["AMPLITUDE"])
        if phase_id is not None:
            if "ATMOSPHERE" in fields[phase_id]["intents"]:
                scan(["ATMOSPHERE"], [phase_id], all_ids, 20.16 if array == "7m" else 18.144)
                n_atm += 1
            scan(["PHASE"], [phase_id], sci_ids, cal_time["PHASE"])
        if has_tsys:
            scan(["ATMOSPHERE"], target_ids, all_ids, 20.16 if array == "7m" else 18.144)
            n_atm += 1
        used_time = start - t
        remaining = max(600.0, eb_len[e] - used_time - (cal_time["CHECK"] if has_check else 0))
        n_visits = target_scans
        visit_gap = (cal_time["PHASE"] + 24.0) if phase_id is not None else 12.0
        t_scan = (remaining - (n_visits - 1) * visit_gap) / n_visits
        t_scan = round(t_scan / t_int) * t_int
        for k in range(n_visits):
            scan(["TARGET"], target_ids, sci_ids, t_scan)
            if k < n_visits - 1:
                start += visit_gap - 12.0
                if phase_id is not None:  # an unlisted phase-calibrator visit
                    on_source[(phase_id, e)] += cal_time["PHASE"]
        if check_id is not None:
            scan(["CHECK"], [check_id], sci_ids, cal_time["CHECK"])
        t_target_eb.append(n_visits * t_scan)
        end = scans[-1]["end"]
        eb = {"id": eb_id, "ms_name": eb_id.replace("uid://", "uid___").replace("/", "_") + ".ms",
              "start": round(t, 3), "end": end, "integration_time": t_int, "n_antennas": n_e,
              "syscal_rows": n_e * n_tsys * n_atm,
              "processing_history": False, "history_origins": ["importasdm"],
              "has_model_data": False, "baselines": stats}
        ebs.append(eb)
    if history:
        for eb in d.sample(ebs, d.int(1, n_ebs)):
            eb["processing_history"] = True
            eb["history_origins"] = ["importasdm"] + d.pick(_LATER_TASKS)
    if model_data:
        d.pick(ebs)["has_model_data"] = True
    if n_ebs > 1:
        gap_h = (ebs[1]["start"] - ebs[0]["end"]) / 3600
        notes.insert(0, f"EBs {'back to back' if back_to_back else f'{gap_h:.0f} h apart'}")

    # intents seen by the spws; rows and baselines per spw
    seen = {i for s in scans for i in s["intents"]}
    order = ("TARGET", "PHASE", "BANDPASS", "AMPLITUDE", "CHECK", "ATMOSPHERE")
    for s in spws:
        if not s["intents"]:
            s["intents"] = [i for i in order if i in seen]
    n_auto = present.sum(axis=1).tolist()
    rows = {s["id"]: 0 for s in spws}
    eb_index = {eb["id"]: k for k, eb in enumerate(ebs)}
    for sc in scans:
        k = eb_index[sc["eb"]]
        n_int = round((sc["end"] - sc["start"]) / t_int)
        for sid in sc["spw_ids"]:
            rows[sid] += n_int * (n_bl_eb[k] + n_auto[k])
    pair = (present.T.astype(np.int32) @ present.astype(np.int32)) > 0
    n_pairs = int((pair.sum() - np.trace(pair)) // 2)
    for s in spws:
        s["rows"] = rows[s["id"]]
        s["baselines"] = n_pairs

    # ---------------------------------------------------------------- mosaic pointings
    rep_lambda = C / rep_freq
    spacing = rep_lambda / (math.sqrt(3) * dish) / ARCSEC
    if mosaic:
        hi = 60 if array == "7m" else 150
        hi = hi if n_targets == 1 else max(3, min(19, 60 // n_targets))
        lo = min(hi, 3 if array == "7m" else 7)
        for fid in target_ids:
            npt = min(hi, int(d.logu(lo, hi + 1)))
            fields[fid]["pointings"] = _hex_pointings(npt, round(spacing, 2))

    # ---------------------------------------------------------------- weights
    weights, sum_w = _weights(d, fields, target_ids, on_source, t_target_eb, sci, ebs, sefd_eb, n_bl_eb,
                              n_auto, t_int)

    # ---------------------------------------------------------------- measurements
    l80 = sum(eb["baselines"]["l80"] for eb in ebs) / n_ebs
    measurements: list[dict] = []
    if d.chance(0.20):
        measurements = _measurements(d, fields, target_ids, sci, sum_w, l80, bp_id, phase_id, check_id)
        notes.append(f"{len(measurements)} image measurements")

    # ---------------------------------------------------------------- assemble
    cycle_year = max(2013, min(2019, int(year - 0.75)))  # a cycle starts in October
    kind = "2" if array == "7m" and d.chance(0.3) else "1"
    project = f"{cycle_year}.{kind}.{d.int(1, 1600):05d}.{d.weighted('SLT', (0.95, 0.04, 0.01))}"
    summary: dict[str, Any] = {
        "project": project,
        "mous_id": f"uid://A001/X{d.int(0x2f0, 0x1500):x}/X{d.int(0x10, 0x3fff):x}",
        "telescope": "ALMA",
        "array": array,
        "representative_spw": rep["id"],
        "representative_frequency": rep_freq,
        "ebs": ebs,
        "antennas": [{"name": nm, "station": pad_names[p], "position": pos, "dish_diameter": dish}
                     for nm, p, pos in zip(names, pad_idx.tolist(), itrf)],
        "spws": spws,
        "fields": fields,
        "scans": scans,
        "weights": weights,
    }
    if measurements:
        summary["measurements"] = measurements

    # ---------------------------------------------------------------- header
    def metres(x: float) -> str:
        return f"{x / 1000:.2f} km" if x >= 1000 else f"{x:.0f} m"

    max_bl = max(eb["baselines"]["max"] for eb in ebs)
    mosaic_txt = ""
    if mosaic:
        npts = [len(fields[f]["pointings"]) for f in target_ids]
        mosaic_txt = f", mosaic{'s' if n_targets > 1 else ''} of {min(npts)}-{max(npts)} pointings" if n_targets > 1 \
            else f", mosaic of {npts[0]} pointings"
    cals = [f"{role} {fields[i]['name']}" for role, i in
            (("bandpass", bp_id), ("flux", flux_id), ("phase", phase_id), ("check", check_id)) if i is not None]
    header = [
        f"{array} array, Band {band} (representative {rep_freq / 1e9:.3f} GHz in spw {rep['id']}), "
        f"{config}: L80 {metres(l80)}, max baseline {metres(max_bl)}; {n_ant} antennas; "
        f"{n_ebs} EB{'s' if n_ebs > 1 else ''}, {t_int} s integrations",
        f"{'TDM' if tdm else 'FDM'} set-up, science spws {'; '.join(setup_notes)}"
        + ("; Tsys in TDM spws 9-15" if tsys_spws else "") + ("" if tdm else " (H = online Hanning)"),
        f"{n_targets} target field{'s' if n_targets > 1 else ''} ({', '.join(target_names[:3])}"
        f"{', ...' if n_targets > 3 else ''}){mosaic_txt}; {', '.join(cals) or 'no calibrators'}",
    ]
    if d.chance(0.02):
        what = d.pick(_MISSING)
        _remove(d, summary, what, sci_ids, target_ids)
        notes.append(f"missing on purpose: {what}")
    if notes:
        header.append("; ".join(notes))
    return summary, header


def _hz(width: float) -> str:
    return f"{width / 1e6:.10g} MHz" if width >= 1e6 else f"{width / 1e3:.10g} kHz"


def _edges(spw: dict) -> tuple[float, float]:
    """Lower and upper band edges (Hz) of a spw dict."""
    first, w, n = spw["start_frequency"], spw["channel_width"], spw["nchan"]
    last = first + (n - 1) * w
    return min(first, last) - abs(w) / 2, max(first, last) + abs(w) / 2


def _spw(sid: int, band: int, bb: int, sw: int, centre: float, nchan: int, width: float, hanning: bool,
         intents: list[str]) -> dict:
    """One spw dict: LSB basebands (1, 2) have negative channel widths; sw 0 is a Tsys spw."""
    sign = -1.0 if bb <= 2 else 1.0
    centre = round(centre / (width / 2)) * (width / 2)  # on the channel grid
    tdm = nchan == TDM[0] and width == TDM[1]
    name = f"ALMA_RB_{band:02d}#BB_{bb}#SW-{max(sw, 1):02d}" + ("" if sw == 0 else "#FULL_RES")
    return {"id": sid, "name": name, "nchan": nchan,
            "start_frequency": centre - sign * (nchan - 1) / 2 * width,
            "channel_width": sign * width,
            "effective_bw": HANNING * width if hanning else width,
            "frame": "TOPO", "correlator_mode": "TDM" if tdm else "FDM", "online_hanning": hanning,
            "intents": intents}


def _setup(d: _Draw, array: str, band: int, compact: bool, has_tsys: bool
           ) -> tuple[list[dict], bool, bool, list[str]]:
    """Spectral windows: (spws, TDM set-up?, separate Tsys spws?, one note per science spw).

    Science spws get empty intents (filled in from the scans); Tsys spws have ATMOSPHERE.
    `compact`: one spw a baseband and no separate Tsys spws (many targets: small files).
    """
    f_lo, f_hi = BANDS[band][:2]
    lo1 = d.uniform(f_lo + 9.1, f_hi - 9.1) * 1e9
    tdm = d.chance(0.40 if array == "12m" else 0.25)
    hanning = d.chance(0.85)
    bb_centre = {1: lo1 - 8e9, 2: lo1 - 6e9, 3: lo1 + 6e9, 4: lo1 + 8e9}
    science: list[tuple[int, int, int, float, bool]] = []  # (baseband, sw, nchan, width, hanning)
    tdm_bbs = {1, 2, 3, 4} if tdm else ({1, 2} if array == "7m" and d.chance(0.25) else set())
    for bb in (1, 2, 3, 4):
        if bb in tdm_bbs:
            science.append((bb, 1, TDM[0], TDM[1], False))
            continue
        nchan, width, _ = d.weighted(FDM_MODES, [m[2] for m in FDM_MODES])
        h = hanning != d.chance(0.05)
        science.append((bb, 1, nchan, width, h))
        if not compact and d.chance(0.2):
            nchan2, width2 = d.pick(_NARROW)
            science.append((bb, 2, nchan2, width2, h))
    tsys_spws = has_tsys and not tdm and not compact and d.chance(0.5)
    spws: list[dict] = []
    first_id = (25 if tsys_spws else d.pick((17, 25))) if array == "12m" else (25 if tsys_spws else d.pick((16, 17)))
    notes = []
    if tsys_spws:
        for k, bb in enumerate((1, 2, 3, 4)):
            spws.append(_spw(9 + 2 * k, band, bb, 0, bb_centre[bb], TDM[0], TDM[1], False, ["ATMOSPHERE"]))
    for k, (bb, sw, nchan, width, h) in enumerate(science):
        half_room = (2e9 - nchan * width) / 2
        centre = bb_centre[bb] + (d.uniform(-half_room, half_room) * 0.9 if half_room > 0 else 0.0)
        spws.append(_spw(first_id + 2 * k, band, bb, sw, centre, nchan, width, h, []))
        notes.append(f"{first_id + 2 * k}: {nchan} x {_hz(width)}{' H' if h else ''}")
    return spws, tdm, tsys_spws, notes


def _weights(d: _Draw, fields: list[dict], target_ids: list[int], on_source: dict[tuple[int, int], float],
             t_target_eb: list[float], sci: list[dict], ebs: list[dict], sefd_eb: list[float],
             n_bl_eb: list[int], n_auto: list[int], t_int: float
             ) -> tuple[list[dict], dict[tuple[int, int], float]]:
    """Weight entries of every field with a science intent (calibrators and targets) in every
    science spw, as the Measurement Set reader gives them: per EB unless that makes more than
    32 entries, else summed over EBs. Also returns sum of weights per (field id, spw id), Jy^-2.

    `on_source`: calibrator seconds per (field id, EB index); `t_target_eb`: target seconds per
    EB (shared by the targets); `sefd_eb` in Jy; `n_auto`: antennas per EB.
    """
    n_ebs, n_targets = len(ebs), len(target_ids)
    weights = []
    cal_ids = sorted({f for f, _ in on_source})
    per_eb = (len(cal_ids) + n_targets) * len(sci) * n_ebs <= 32
    sum_w: dict[tuple[int, int], float] = {}
    for fid in cal_ids + target_ids:
        # integrations on source and flagged fraction, per EB
        if fid in target_ids:
            n_ints = [max(1, round(t_target_eb[k] / n_targets * d.uniform(0.97, 1.0) / t_int)) for k in range(n_ebs)]
        else:
            n_ints = [round(on_source.get((fid, k), 0.0) / t_int) for k in range(n_ebs)]
        flags = [0.01 + 0.12 * d.u() ** 2 for _ in range(n_ebs)]
        for s in sci:
            acc = {"sum_weight": 0.0, "rows": 0, "time_on_source": 0.0, "flag": 0.0}
            for k, eb in enumerate(ebs):
                n_int = n_ints[k]
                if n_int == 0:
                    continue
                flagged = round(min(0.5, flags[k] * d.uniform(0.8, 1.25)), 3)
                sw = _sum_weight(sefd_eb[k] * math.exp(d.normal(0, 0.05)), s["nchan"] * s["effective_bw"], t_int,
                                 n_int, n_bl_eb[k], flagged)
                entry = {"field": fields[fid]["name"], "spw": s["id"], "eb": eb["id"], "sum_weight": _sig(sw),
                         "flagged_fraction": flagged, "rows": n_int * (n_bl_eb[k] + n_auto[k]),
                         "time_on_source": round(n_int * t_int, 3)}
                acc["sum_weight"] += entry["sum_weight"]
                acc["rows"] += entry["rows"]
                acc["time_on_source"] += entry["time_on_source"]
                acc["flag"] += flagged * entry["rows"]
                if per_eb:
                    weights.append(entry)
            sum_w[(fid, s["id"])] = acc["sum_weight"]
            if not per_eb and acc["rows"]:
                weights.append({"field": fields[fid]["name"], "spw": s["id"], "sum_weight": _sig(acc["sum_weight"]),
                                "flagged_fraction": round(acc["flag"] / acc["rows"], 3), "rows": acc["rows"],
                                "time_on_source": round(acc["time_on_source"], 3)})
    return weights, sum_w


def _uid(prefix: str, t: float, d: _Draw) -> str:
    """An ALMA-like uid whose middle part grows with time `t` (MJD seconds)."""
    serial = int(0x9f0000 + (t / 86400 - 57000) * 420 + d.int(0, 400))
    return f"uid://{prefix}/X{serial:x}/X{d.int(0x100, 0x3fff):x}"


def _measurements(d: _Draw, fields: list[dict], target_ids: list[int], sci: list[dict],
                  sum_w: dict[tuple[int, int], float], l80: float, bp_id: Optional[int],
                  phase_id: Optional[int], check_id: Optional[int]) -> list[dict]:
    """Image measurements for some images: targets (mfs, cube, cont) and calibrators (mfs).

    Sensitivity: sqrt(effective_bw / width) / sqrt(sum of weights) (the channels' correlation
    undone) x a robust-weighting factor; cubes x sqrt(nchan); mosaics x sqrt(pointings / 2).
    """
    out = []

    def beam(freqs: list[float]) -> dict[str, float]:
        f = sum(freqs) / len(freqs)
        major = 0.574 * C / f / l80 / ARCSEC * d.uniform(1.0, 1.3)
        return {"beam_major": _sig(major, 3), "beam_minor": _sig(major * d.uniform(0.55, 0.95), 3),
                "beam_pa": round(d.uniform(-90, 90), 1)}

    def one(field: dict, intent: str, spws: list[int], specmode: str, sigma: float, dr: float,
            freqs: list[float]) -> None:
        correction = max(1.0, dr / 150) ** 0.5 * (1.5 if dr > 20 else 1.0)
        m = {"field": field["name"], "intent": intent, "spws": spws, "specmode": specmode,
             "sensitivity": _sig(sigma, 3), "dirty_peak": _sig(dr * sigma, 3), "dirty_dr": _sig(dr, 3),
             "rms": _sig(sigma * correction * math.exp(d.normal(0.3, 0.4)), 3)}
        m.update(beam(freqs))
        if d.chance(0.15):
            m["residual_rms"] = _sig(m["rms"] * d.uniform(0.7, 1.0), 3)
        if specmode == "cube" and d.chance(0.1):
            m["bad_psf_channels"] = d.int(1, 20)
        out.append(m)

    centres = {s["id"]: sum(_edges(s)) / 2 for s in sci}
    corr = {s["id"]: math.sqrt(s["effective_bw"] / abs(s["channel_width"])) for s in sci}
    robust = d.uniform(1.1, 1.25)
    for fid in target_ids[: d.int(1, 2)]:
        field = fields[fid]
        mosaic = max(1.0, math.sqrt(len(field["pointings"]) / 2))
        for s in d.sample(sci, d.int(1, min(3, len(sci)))):
            sigma = robust * mosaic * corr[s["id"]] / math.sqrt(sum_w[(fid, s["id"])])
            one(field, "TARGET", [s["id"]], "mfs", sigma, d.logu(3, 2000), [centres[s["id"]]])
            if d.chance(0.8):
                one(field, "TARGET", [s["id"]], "cube", sigma * math.sqrt(s["nchan"]), d.logu(3, 2000),
                    [centres[s["id"]]])
        if d.chance(0.8):  # the continuum ranges hold 40-100 % of the channels
            total = sum(sum_w[(fid, s["id"])] / corr[s["id"]] ** 2 for s in sci)
            sigma = robust * mosaic / math.sqrt(total * d.uniform(0.4, 1.0))
            one(field, "TARGET", [s["id"] for s in sci], "cont", sigma, d.logu(3, 2000), list(centres.values()))
    for fid, intent, lo, hi in ((phase_id, "PHASE", 100, 5000), (bp_id, "BANDPASS", 500, 20000),
                                (check_id, "CHECK", 10, 500)):
        if fid is None or not d.chance(0.7):
            continue
        s = d.pick(sci)
        if sum_w.get((fid, s["id"])):
            sigma = robust * corr[s["id"]] / math.sqrt(sum_w[(fid, s["id"])])
            one(fields[fid], intent, [s["id"]], "mfs", sigma, d.logu(lo, hi), [centres[s["id"]]])
    return out


def _remove(d: _Draw, summary: dict, what: str, sci_ids: list[int], target_ids: list[int]) -> None:
    """Delete one fact so that rules see it as unknown."""
    if what == "ebs.baselines.l80":
        for eb in summary["ebs"]:
            eb["baselines"].pop("l80")
    elif what == "ebs.baselines":
        for eb in summary["ebs"]:
            eb.pop("baselines")
    elif what in ("representative_spw", "representative_frequency"):
        summary.pop(what)
    elif what == "antennas.dish_diameter":
        for a in summary["antennas"]:
            a.pop("dish_diameter")
    elif what == "ebs.integration_time":
        for eb in summary["ebs"]:
            eb.pop("integration_time")
    elif what in ("spws.intents", "spws.nchan"):
        sid = d.pick(sci_ids)
        next(s for s in summary["spws"] if s["id"] == sid).pop(what.split(".")[1])
    elif what == "fields.pointings":
        summary["fields"][d.pick(target_ids)].pop("pointings")


# ----------------------------------------------------------------------------- public API


def synth_dataset(rng: Union[np.random.Generator, int]) -> dict:
    """One synthetic summary (a dict that validates as `Dataset`) from a generator or an int seed."""
    return _draw(rng)[0]


def synthesize(n: int, seed: int = 0) -> Iterator[dict]:
    """`n` synthetic summaries; dataset i depends only on (seed, i)."""
    for i in range(n):
        yield _draw(dataset_rng(seed, i))[0]


def corpus_name(i: int, fmt: str = "yaml") -> str:
    """File name of dataset `i`: ``synth_000042.yaml``."""
    return f"synth_{i:06d}.{fmt}"


Fmt = Literal["yaml", "json"]
_WRITERS = 4  # threads writing files while the next datasets are drawn


def write_corpus(n: int, out_dir: Union[str, Path], seed: int = 0, fmt: Fmt = "yaml",
                 progress: Optional[Callable[[int, int], None]] = None) -> list[Path]:
    """Write `n` summaries to `out_dir` (created if needed), one file each, atomically.

    Files are ``synth_000000.<fmt>`` ...; YAML files start with a comment saying what was
    drawn, JSON files are compact. ``progress(i, n)`` is called, in order and from the calling
    thread, once the i-th file is written (i = 1..n). Returns the paths, in order. Files are
    written (and fsynced, `write_atomic`) by a few threads while the next datasets are drawn.
    """
    if fmt not in ("yaml", "json"):
        raise ValueError(f"fmt must be 'yaml' or 'json', not {fmt!r}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    pending: deque[Future] = deque()

    def finish_one() -> None:
        pending.popleft().result()  # re-raises a failed write
        if progress is not None:
            progress(len(paths) - len(pending), n)

    with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
        try:
            for i in range(n):
                summary, header = _draw(dataset_rng(seed, i))
                path = out / corpus_name(i, fmt)
                if fmt == "json":
                    text = json.dumps(summary, separators=(",", ":")) + "\n"
                else:
                    text = to_yaml(summary, [f"Synthetic dataset {i} (almarules synth, seed {seed}); "
                                             "not a real observation."] + header)
                pending.append(pool.submit(write_atomic, path, text))
                paths.append(path)
                while pending and (pending[0].done() or len(pending) > 4 * _WRITERS):
                    finish_one()
            while pending:
                finish_one()
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return paths


# ----------------------------------------------------------------------------- YAML output

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_+\-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# how each top-level list is laid out: "block" (a mapping per item) or "lines" (one line per item)
_LAYOUT = {"ebs": "block", "spws": "block", "fields": "block", "antennas": "lines", "scans": "lines",
           "weights": "lines", "measurements": "lines"}


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"not a finite number: {v}")
        return float.__repr__(v)
    if isinstance(v, str):
        return v if _PLAIN.match(v) and v.lower() not in _RESERVED else json.dumps(v)
    if v is None:
        return "null"
    raise TypeError(f"cannot write {type(v).__name__} to YAML")


def _flow(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def to_yaml(summary: dict, header: Sequence[str] = ()) -> str:
    """A summary as YAML in the layout of the shipped examples, with `header` comment lines."""
    out = [f"# {line}" for line in header]
    if out:
        out.append("")
    for key, value in summary.items():
        layout = _LAYOUT.get(key)
        if key == "fields" and isinstance(value, list) and len(value) > 8 and all(
                isinstance(f, dict) and len(f.get("pointings") or ()) <= 1 for f in value):
            layout = "lines"  # many single-pointing fields: one line each
        if not isinstance(value, list) or not value or layout is None:
            out.append(f"{key}: {_flow(value)}")
            continue
        out.append("")
        out.append(f"{key}:")
        for item in value:
            if layout == "lines" or not isinstance(item, dict):
                out.append(f"  - {_flow(item)}")
                continue
            lead = "  - "
            for k, x in item.items():
                if isinstance(x, list) and len(x) > 1 and all(isinstance(y, dict) for y in x):
                    out.append(f"{lead}{k}:")
                    out.extend(f"      - {_flow(y)}" for y in x)
                else:
                    out.append(f"{lead}{k}: {_flow(x)}")
                lead = "    "
    return "\n".join(out) + "\n"
