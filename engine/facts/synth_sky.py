"""The sky of a synthetic dataset: array, band and configuration, target and calibrator fields, mosaics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from almarules.engine.facts.synth_catalogue import (
    ARCSEC, BANDS, C, CONFIGS_12M, GRID_QUASARS, PLANETS, SURVEY_STYLES, TARGET_STYLES)
from almarules.engine.facts.synth_geometry import GRID_POSITIONS, hex_pointings, offset, sky_name
from almarules.engine.facts.synth_random import Draw


@dataclass
class Instrument:
    """Array, band and configuration of a dataset."""

    array: str  # "12m" or "7m"
    band: int
    tsys: float  # the band's typical Tsys, K
    eta_a: float  # aperture efficiency
    dish: float  # diameter, m
    config: str  # "C43-5", ..., or "ACA"
    l80_target: float  # projected L80 the pads are chosen for, m

    @property
    def long_baseline(self) -> bool:
        return self.l80_target > 2000


@dataclass
class Targets:
    """The science targets (and the number of EBs, drawn with them: surveys have 1-2)."""

    n: int
    survey: bool  # more than 15 targets: 1-2 EBs, no mosaics
    n_ebs: int
    ra0: float  # first target, deg
    dec0: float
    positions: list[tuple[float, float]]  # (ra, dec) deg
    names: list[str]


@dataclass
class Calibrators:
    """Which calibrations a dataset has (some are missing on purpose)."""

    phase: bool
    flux: bool
    bandpass: bool
    tsys: bool
    check: bool


@dataclass
class Fields:
    """Field dicts (calibrators first, then the targets) and the ids of their roles."""

    fields: list[dict] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # names taken
    target_ids: list[int] = field(default_factory=list)
    bp_id: Optional[int] = None
    flux_id: Optional[int] = None
    phase_id: Optional[int] = None
    check_id: Optional[int] = None
    mosaic: bool = False

    def add(self, name: str, ra: float, dec: float, intents: list[str], target: bool = False) -> int:
        """Append a single-pointing field (deg); a calibrator's name taken already gets a 'b'."""
        while name in self.used and not target:  # two invented names at the same position
            name += "b"
        self.used.add(name)
        self.fields.append({"id": len(self.fields), "name": name, "ra": round(ra, 7), "dec": round(dec, 7),
                            "intents": intents, "pointings": [{"ra_offset": 0.0, "dec_offset": 0.0}]})
        return len(self.fields) - 1


def draw_instrument(d: Draw) -> Instrument:
    """Array (12m 75 %), band (weights per array), configuration and its L80 (m)."""
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
    return Instrument(array, band, tsys_band, eta_a, dish, config, l80_target)


def _target_names(d: Draw, n: int, ra: float, dec: float) -> list[str]:
    """An invented name for a single target, or a survey's numbered names."""
    if n == 1:
        style = d.pick(TARGET_STYLES)
        j = sky_name(ra, dec)[1:]
        return [style.format(n=d.int(1, 7840), n2=d.int(1, 40), n3=d.int(1, 400), n5=d.int(1, 99999),
                             n6=d.int(100000, 240000), j=j, l=f"{d.int(0, 359):03d}_{d.int(0, 99):02d}")]
    style = d.pick(SURVEY_STYLES)
    start = d.int(1, 300)
    return [style.format(k=start + k) for k in range(n)]


def draw_targets(d: Draw) -> Targets:
    """Number of targets and EBs, the targets' positions (within 1.5 deg, or 5-40 deg in 20 %) and names."""
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
        positions.append(offset(d, ra0, dec0, 5, 40) if spread_sample else offset(d, ra0, dec0, 0.02, 1.5))
    names = _target_names(d, n_targets, ra0, dec0)
    return Targets(n_targets, survey, n_ebs, ra0, dec0, positions, names)


def draw_calibrators(d: Draw, array: str, notes: list[str]) -> Calibrators:
    """Which calibrations there are; appends a header note for each one missing on purpose."""
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
    return Calibrators(has_phase, has_flux, has_bandpass, has_tsys, has_check)


def _add_bandpass_and_flux(d: Draw, f: Fields, cals: Calibrators, targets: Targets, atm: list[str]) -> None:
    """Bandpass: a grid quasar near the target; flux: that field (45 %), another quasar (30 %), a planet."""
    ra0, dec0 = targets.ra0, targets.dec0
    grid = sorted(GRID_QUASARS, key=lambda n: abs(GRID_POSITIONS[n][1] - dec0) + 0.2 * abs(GRID_POSITIONS[n][0] - ra0))
    bp_name = d.pick(grid[:4])
    flux_kind = d.weighted(("same", "quasar", "planet"), (0.45, 0.30, 0.25)) if cals.flux else None
    if flux_kind == "same" and not cals.bandpass:
        flux_kind = "quasar"
    if cals.bandpass:
        bp_intents = atm + ["BANDPASS"] + (["AMPLITUDE"] if flux_kind == "same" else [])
        f.bp_id = f.add(bp_name, *GRID_POSITIONS[bp_name], bp_intents)
        f.flux_id = f.bp_id if flux_kind == "same" else None
    if flux_kind == "quasar":
        name = d.pick([n for n in grid[:8] if n != bp_name])
        f.flux_id = f.add(name, *GRID_POSITIONS[name], ["AMPLITUDE"])
    elif flux_kind == "planet":
        lam = d.uniform(0, 2 * math.pi)
        f.flux_id = f.add(d.pick(PLANETS), math.degrees(lam) % 360, 23.44 * math.sin(lam), ["AMPLITUDE"])


def draw_fields(d: Draw, inst: Instrument, targets: Targets, cals: Calibrators) -> Fields:
    """The fields, calibrators first (ALMA observes them first), then the targets; whether they are mosaics."""
    f = Fields(used=set(targets.names))
    atm = ["ATMOSPHERE"] if cals.tsys else []
    _add_bandpass_and_flux(d, f, cals, targets, atm)
    if cals.phase:
        ra, dec = offset(d, targets.ra0, targets.dec0, *((0.5, 3.0) if inst.long_baseline else (2.0, 10.0)))
        phase_atm = atm[:1] if targets.n_ebs <= 2 and d.chance(0.5) else []
        f.phase_id = f.add(sky_name(ra, dec), ra, dec, phase_atm + ["PHASE"])
    if cals.check:
        ra, dec = offset(d, targets.ra0, targets.dec0, 0.5, 5.0)
        f.check_id = f.add(sky_name(ra, dec), ra, dec, ["CHECK"])
    l80 = inst.l80_target
    p_mosaic = 0.6 if inst.array == "7m" else (0.18 if l80 < 500 else 0.08 if l80 < 1000 else 0.03)
    if targets.n > 5:
        p_mosaic = 0.0 if targets.survey else p_mosaic / 2
    f.mosaic = d.chance(p_mosaic)
    first_target = len(f.fields)
    for (ra, dec), name in zip(targets.positions, targets.names, strict=True):
        f.add(name, ra, dec, atm + ["TARGET"], target=True)
    f.target_ids = list(range(first_target, len(f.fields)))
    return f


def draw_mosaics(d: Draw, f: Fields, array: str, dish: float, rep_freq: float) -> None:
    """Hexagonal mosaics of the targets (if `f.mosaic`), lambda/(sqrt(3) D) apart at `rep_freq` (Hz)."""
    spacing = C / rep_freq / (math.sqrt(3) * dish) / ARCSEC
    if not f.mosaic:
        return
    n_targets = len(f.target_ids)
    hi = 60 if array == "7m" else 150
    hi = hi if n_targets == 1 else max(3, min(19, 60 // n_targets))
    lo = min(hi, 3 if array == "7m" else 7)
    for fid in f.target_ids:
        npt = min(hi, int(d.logu(lo, hi + 1)))
        f.fields[fid]["pointings"] = hex_pointings(npt, round(spacing, 2))
