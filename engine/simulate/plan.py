"""The plan of a simulation: what is observed, when, and in which spectral windows.

`Plan` resolves a `SimConfig` once: the antennas (`arrays`), the site and its geometry,
the baselines, the spectral windows (default ALMA names; effective bandwidth and
resolution with online Hanning smoothing), the fields (one FIELD row per mosaic pointing;
pointings share NAME and SOURCE_ID), the STATE rows (one per OBS_MODE and sub-scan) and
the schedule: execution blocks, each starting ``eb_gap`` after the previous one ends, of
bandpass/flux scans, target visits between phase-calibrator scans, the check source(s)
near the end and, optionally, atmosphere scans. `make_timeline` lays out the integrations of
one EB: ``TIME`` is MJD seconds (UTC) at the centre of each integration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from almarules.kernels.constants import ARCSEC

from .arrays import geodetic_to_itrf, observatory_of, load_array
from .config import OBS_MODES, FieldConfig, SimConfig
from .errors import SimConfigError
from .geometry import Geometry
from .times import mjd_seconds, parse_utc

_ROLE_INTENTS = {"BANDPASS", "AMPLITUDE", "PHASE", "TARGET", "CHECK"}
# ALMA receiver bands (GHz) for default spw names
_BANDS = [(1, 35, 52), (2, 65, 90), (3, 84, 116), (4, 125, 163), (5, 158, 211), (6, 211, 275),
          (7, 275, 373), (8, 385, 500), (9, 602, 720), (10, 787, 950)]
_HANNING_EBW = 2.667  # effective (noise) bandwidth / channel width with online Hanning smoothing


@dataclass
class Spw:
    id: int
    name: str
    mode: str
    freqs: np.ndarray
    width: float
    ebw: float
    resolution: float
    hanning: bool
    tsys: Optional[float]
    baseband: int

    @property
    def nchan(self) -> int:
        return int(self.freqs.size)

    @property
    def centre(self) -> float:
        return float((self.freqs[0] + self.freqs[-1]) / 2.0)

    @property
    def bandwidth(self) -> float:
        return abs(self.width) * self.nchan


@dataclass
class _Source:
    index: int
    cfg: FieldConfig
    ra: float  # rad
    dec: float
    pointings: list[tuple[float, float]]  # (ra, dec) rad of each pointing
    pointing_offsets: list[tuple[float, float]]  # arcsec, as in the config
    field_ids: list[int] = field(default_factory=list)


@dataclass
class _Scan:
    number: int
    source: int
    role: str  # bandpass, flux, calibrator, phase, target, check, atmosphere
    obs_mode: str
    intents: list[str]
    subscans: list[tuple[int, int, float, int]] = field(default_factory=list)  # (field_id, sub_scan, start, nint)

    @property
    def start(self) -> float:
        return self.subscans[0][2]


@dataclass
class EBPlan:
    index: int
    start: float
    end: float
    scans: list[_Scan]
    uid: str


class Plan:
    def __init__(self, cfg: SimConfig, seed: int):
        self.cfg = cfg
        self.seed = seed
        self.layout = load_array(cfg.array, cfg.antennas)
        diam = np.unique(np.round(self.layout.diameters, 3))
        if diam.size != 1:
            raise SimConfigError("array: mixed dish diameters are not supported")
        self.diameter = float(diam[0])
        self.nant = len(self.layout.names)
        self.flagged_ants = sorted({self._antenna(n, "flags.antennas") for n in cfg.flags.antennas})
        self.low_gain = self._low_gain()
        self.site_lon, self.site_lat, self.site_h = observatory_of(cfg.site)
        self.site_itrf = geodetic_to_itrf(self.site_lon, self.site_lat, self.site_h)
        self.geometry = Geometry(self.site_itrf, self.site_lon, self.site_lat)
        self.a1, self.a2 = np.triu_indices(self.nant, 1)
        self.a1 = self.a1.astype(np.int32)
        self.a2 = self.a2.astype(np.int32)
        self.nbl = self.a1.size
        self.spws = self._spws()
        self.ref_freq = cfg.reference_frequency or float(np.mean([s.centre for s in self.spws]))
        self.sources, self.field_rows = self._sources()
        self.states: dict[tuple[str, int], int] = {}
        self.ebs = self._schedule()

    # ------------------------------------------------ antennas
    def _antenna(self, name: str, where: str) -> int:
        """Index of the antenna called `name` (antenna or pad name); `where` is the config path for errors."""
        if name in self.layout.names:
            return self.layout.names.index(name)
        if name in self.layout.stations:
            return self.layout.stations.index(name)
        raise SimConfigError(f"{where}: no antenna or pad {name!r} in the array "
                             f"({', '.join(self.layout.names[:6])}, ...)")

    def _low_gain(self) -> list[tuple[int, float]]:
        """(antenna index, amplitude factor) of `corruptions.low_gain_antennas`, in config order."""
        out: list[tuple[int, float]] = []
        for k, lg in enumerate(self.cfg.corruptions.low_gain_antennas):
            where = f"corruptions.low_gain_antennas[{k}].antenna"
            index = self._antenna(lg.antenna, where)
            if index in [i for i, _ in out]:
                raise SimConfigError(f"{where}: antenna {self.layout.names[index]} is given twice")
            out.append((index, lg.factor))
        return out

    # ------------------------------------------------ spectral windows
    def _spws(self) -> list[Spw]:
        out = []
        per_bb: dict[int, int] = {}
        for i, s in enumerate(self.cfg.spws):
            nchan, width = s.resolved()
            freqs = s.frequencies()
            if freqs.min() - abs(width) / 2 <= 0:
                raise SimConfigError(f"spws[{i}]: channel frequencies must be positive")
            bb = s.baseband or (i % 4) + 1
            per_bb[bb] = per_bb.get(bb, 0) + 1
            name = s.name
            if name is None:
                centre = float(freqs.mean()) / 1e9
                band = next((b for b, lo, hi in _BANDS if lo <= centre <= hi), None)
                if band is None:
                    raise SimConfigError(f"spws[{i}]: {centre:.3f} GHz is in no ALMA band; give a 'name'")
                name = f"ALMA_RB_{band:02d}#BB_{bb}#SW-{per_bb[bb]:02d}#FULL_RES"
            ebw = abs(width) * (_HANNING_EBW if s.online_hanning else 1.0)
            res = abs(width) * (2.0 if s.online_hanning else 1.0)
            out.append(Spw(i, name, s.mode, freqs, float(width), ebw, res, s.online_hanning, s.tsys, bb))
        return out

    # ------------------------------------------------ fields
    def _sources(self):
        sources, rows = [], []
        for i, f in enumerate(self.cfg.fields):
            ra, dec = math.radians(f.ra), math.radians(f.dec)
            offsets = f.pointings or [(0.0, 0.0)]
            pts = []
            for dra, ddec in offsets:
                pdec = dec + ddec * ARCSEC
                pra = (ra + dra * ARCSEC / math.cos(dec)) % (2 * math.pi)
                if not -math.pi / 2 <= pdec <= math.pi / 2:
                    raise SimConfigError(f"fields[{i}].pointings: a pointing lies beyond the pole")
                pts.append((pra, pdec))
            src = _Source(i, f, ra, dec, pts, [tuple(map(float, o)) for o in offsets])
            for k, (pra, pdec) in enumerate(pts):
                src.field_ids.append(len(rows))
                rows.append((i, k, pra, pdec))
            sources.append(src)
        return sources, rows

    def _state(self, obs_mode: str, sub_scan: int) -> int:
        key = (obs_mode, sub_scan)
        if key not in self.states:
            self.states[key] = len(self.states)
        return self.states[key]

    # ------------------------------------------------ schedule
    def _start_times(self) -> list[float]:
        sch = self.cfg.schedule
        if sch.start is not None:
            return [mjd_seconds(parse_utc(sch.start))]
        # hour angle of the first target at the start
        target = next(s for s in self.sources if "TARGET" in s.cfg.intents)
        ra, dec = target.pointings[0]
        ha0 = sch.start_hour_angle if sch.start_hour_angle is not None else sch.hour_angle_range[0]
        day = parse_utc(sch.date)
        t = mjd_seconds(day.replace(hour=0, minute=0, second=0, microsecond=0))
        omega = 7.2921158553e-5  # rad per UT1 second (Earth rotation angle rate)
        want = math.radians(ha0 * 15.0)
        for it in range(3):
            ha = self.geometry.hour_angle(self.geometry.uvw_matrix(t, ra, dec))
            delta = want - ha
            delta = delta % (2 * math.pi) if it == 0 else (delta + math.pi) % (2 * math.pi) - math.pi
            t += delta / omega
        return [round(t, 3)]

    def _duration(self) -> float:
        sch = self.cfg.schedule
        if sch.hour_angle_range is not None:
            a, b = sch.hour_angle_range
            return (b - a) * 3600.0 / 1.00273781191135448
        return sch.duration if sch.duration is not None else 3600.0

    def _schedule(self) -> list[EBPlan]:
        sch = self.cfg.schedule
        t0 = self._start_times()[0]
        duration = self._duration()
        ebs = []
        start = t0
        for e in range(sch.execution_blocks):
            scans, end = self._eb_scans(start, duration)
            uid = "uid://A002/X{:x}/X{:x}".format(
                int(np.random.SeedSequence(self.seed, spawn_key=(e, 0)).generate_state(1)[0]) & 0xFFFFFF, e + 1)
            ebs.append(EBPlan(e, start, end, scans, uid))
            start = end + sch.eb_gap
        return ebs

    def _eb_scans(self, start: float, duration: float) -> tuple[list[_Scan], float]:
        sch = self.cfg.schedule
        dt = sch.integration
        atm_len = sch.atmosphere_scan or 3 * dt
        srcs = self.sources
        bandpass = [s for s in srcs if "BANDPASS" in s.cfg.intents]
        phase = [s for s in srcs if "PHASE" in s.cfg.intents]
        targets = [s for s in srcs if "TARGET" in s.cfg.intents]
        checks = [s for s in srcs if "CHECK" in s.cfg.intents]
        others = [s for s in srcs if not ({"BANDPASS", "PHASE", "TARGET", "CHECK"} & set(s.cfg.intents))]
        scans: list[_Scan] = []
        clock = [start]
        last_atm: dict[int, float] = {}

        def extras(src: _Source) -> list[str]:
            return [i for i in src.cfg.intents if i not in _ROLE_INTENTS]

        def add(src: _Source, role: str, intents: list[str], length: float, all_pointings: bool) -> None:
            obs_mode = ",".join(OBS_MODES[i] for i in intents)
            scan = _Scan(len(scans) + 1, src.index, role, obs_mode, intents)
            n = max(1, int(round(length / dt)))
            fids = src.field_ids if all_pointings else src.field_ids[:1]
            per = max(1, int(round(n / len(fids))))
            t = clock[0]
            for k, fid in enumerate(fids):
                sub = k + 1
                self._state(obs_mode, sub)
                scan.subscans.append((fid, sub, t, per))
                t += per * dt
            scans.append(scan)
            clock[0] = t + sch.scan_gap

        def atm(src: _Source, force: bool = False) -> None:
            if not sch.atmosphere_scans:
                return
            if not force and src.index in last_atm and clock[0] - last_atm[src.index] < sch.atmosphere_interval:
                return
            last_atm[src.index] = clock[0]
            intents = ["ATMOSPHERE"] + (["WVR"] if "WVR" in src.cfg.intents else [])
            add(src, "atmosphere", intents, atm_len, False)

        for s in bandpass:
            atm(s)
            add(s, "bandpass", ["BANDPASS"] + (["AMPLITUDE"] if "AMPLITUDE" in s.cfg.intents else []) + extras(s),
                sch.bandpass_scan, True)
        for s in others:
            atm(s)
            role = "flux" if "AMPLITUDE" in s.cfg.intents else "calibrator"
            add(s, role, [i for i in s.cfg.intents if i in ("AMPLITUDE",)] + extras(s), sch.flux_scan, True)
        def phase_scan() -> None:
            for ph in phase:  # a second phase calibrator follows the first
                atm(ph)
                add(ph, "phase", ["PHASE"] + extras(ph), sch.phase_scan, True)

        def cost(length: float) -> float:
            return max(1, round(length / dt)) * dt + sch.scan_gap

        end_block = cost(sch.check_scan) * len(checks) + cost(sch.phase_scan) * len(phase)
        cycle = sum(cost(sch.target_scan) for _ in targets) + cost(sch.phase_scan) * len(phase)
        phase_scan()
        first = True
        while first or clock[0] + cycle + end_block <= start + duration + 1e-6:
            for s in targets:
                atm(s)
                add(s, "target", ["TARGET"] + extras(s), sch.target_scan, True)
            phase_scan()
            first = False
        if checks:
            # the check source(s) near the end, then a closing phase scan
            for s in checks:
                atm(s)
                add(s, "check", ["CHECK"] + extras(s), sch.check_scan, True)
            phase_scan()
        end = clock[0] - sch.scan_gap
        return scans, end


# ---------------------------------------------------------------- the timeline of one EB
@dataclass
class Timeline:
    times: np.ndarray  # (nint,) MJD s, integration centres
    field: np.ndarray  # (nint,) FIELD row
    scan: np.ndarray
    state: np.ndarray
    scan_index: np.ndarray  # index into eb.scans


def make_timeline(plan: Plan, eb: EBPlan) -> Timeline:
    dt = plan.cfg.schedule.integration
    t, f, sc, st, si = [], [], [], [], []
    for k, scan in enumerate(eb.scans):
        for fid, sub, start, n in scan.subscans:
            state = plan.states[(scan.obs_mode, sub)]
            for j in range(n):
                t.append(start + (j + 0.5) * dt)
                f.append(fid)
                sc.append(scan.number)
                st.append(state)
                si.append(k)
    return Timeline(np.round(np.array(t), 6), np.array(f, np.int32), np.array(sc, np.int32),
                     np.array(st, np.int32), np.array(si, np.int32))
