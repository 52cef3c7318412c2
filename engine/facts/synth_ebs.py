"""Antennas, execution blocks and scans of a synthetic dataset, and what the spws see of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from almarules.engine.facts.synth_catalogue import (
    ANTENNA_NAMES_7M, ANTENNA_NAMES_12M, CENTRE_ENU, JY, K_B, LATER_TASKS)
from almarules.engine.facts.synth_geometry import baseline_stats, choose_pads, itrf, lst_hours, pads, time_at
from almarules.engine.facts.synth_random import Draw
from almarules.engine.facts.synth_sky import Fields, Instrument

ATMOSPHERE_SCAN = {"7m": 20.16, "12m": 18.144}  # length of an ATMOSPHERE scan, s
SCAN_GAP = 12.0  # between scans, s
INTENT_ORDER = ("TARGET", "PHASE", "BANDPASS", "AMPLITUDE", "CHECK", "ATMOSPHERE")


@dataclass
class Antennas:
    """The antennas of a dataset, on pads of the array's catalogue."""

    names: list[str]
    pad_idx: np.ndarray  # indices into `pads(array)`
    enu: np.ndarray  # (n, 3) east, north, up, m
    itrf: list[list[float]]  # ITRF positions, m (rounded to mm)
    present: np.ndarray  # (n_ebs, n) bool: antenna has data in the EB


@dataclass
class Schedule:
    """When the EBs are: back to back (gaps, s) or days apart; lengths (s); the first start (MJD s)."""

    back_to_back: bool
    day: int  # MJD of the first EB
    eb_len: list[float]
    gaps: list[float]
    start: float
    history: bool  # some EBs have processing history
    model_data: bool  # one EB has MODEL_DATA


@dataclass
class Observation:
    """The EBs and scans as drawn, with what the weights need per EB."""

    t_int: float  # integration time, s
    ebs: list[dict] = field(default_factory=list)
    scans: list[dict] = field(default_factory=list)
    on_source: dict[tuple[int, int], float] = field(default_factory=dict)  # (calibrator field, EB) -> s
    sefd_eb: list[float] = field(default_factory=list)  # Jy
    n_bl_eb: list[int] = field(default_factory=list)  # cross baselines
    t_target_eb: list[float] = field(default_factory=list)  # target seconds (shared by the targets)
    year: float = 0.0  # calendar year of the first EB, approximately


def sefd(tsys: float, eta_a: float, diameter: float) -> float:
    """System equivalent flux density (Jy): 2 k Tsys / (eta_a pi D^2 / 4)."""
    return 2 * K_B * tsys / (eta_a * math.pi * diameter ** 2 / 4) / JY


def uid(prefix: str, t: float, d: Draw) -> str:
    """An ALMA-like uid whose middle part grows with time `t` (MJD seconds)."""
    serial = int(0x9f0000 + (t / 86400 - 57000) * 420 + d.int(0, 400))
    return f"uid://{prefix}/X{serial:x}/X{d.int(0x100, 0x3fff):x}"


def draw_antennas(d: Draw, inst: Instrument, n_ebs: int) -> Antennas:
    """40-50 (12m) or 10-12 (7m) antennas on pads giving ~ the target L80; each EB lacks each with 2 %."""
    array = inst.array
    n_ant = d.int(40, 50) if array == "12m" else d.int(10, 12)
    names = d.sample(ANTENNA_NAMES_12M if array == "12m" else ANTENNA_NAMES_7M, n_ant)
    scale = inst.l80_target / (1.02 if array == "12m" else 1.32)  # pad-selection radius giving ~ that L80
    pad_idx = choose_pads(d, array, n_ant, scale)
    enu = pads(array)[0][pad_idx]
    positions = itrf(enu + CENTRE_ENU).round(3).tolist()
    present = d.g.random((n_ebs, n_ant)) >= 0.02
    present[0] |= ~present.any(axis=0)  # every listed antenna has data in some EB
    return Antennas(names, pad_idx, enu, positions, present)


def draw_integration_time(d: Draw, inst: Instrument) -> float:
    """6.048 s (12m; 2.016 s in 20 %, 50 % for L80 > 2 km), 10.08 s (7m)."""
    if inst.array == "12m":
        return 2.016 if d.chance(0.5 if inst.long_baseline else 0.2) else 6.048
    return 10.08


def draw_schedule(d: Draw, array: str, n_ebs: int, ra0: float, notes: list[str]) -> Schedule:
    """EB lengths, gaps and the first start, around transit; processing history and MODEL_DATA (notes)."""
    back_to_back = n_ebs > 1 and d.chance(0.5)
    day = d.int(57300, 59000)
    eb_len = [d.uniform(35, 80) * 60 if array == "12m" else d.uniform(40, 60) * 60 for _ in range(n_ebs)]
    gaps = [d.uniform(2, 20) * 60 if back_to_back else 0.0 for _ in range(n_ebs)]
    total = sum(eb_len) + sum(gaps[1:])
    ha_mid = d.uniform(-1.0, 1.0) if back_to_back else d.uniform(-1.5, 1.5)
    start = time_at(day, ra0, ha_mid) * 86400 - total / 2
    history = d.chance(0.05)
    model_data = d.chance(0.03)
    if history:
        notes.append("processing history")
    if model_data:
        notes.append("MODEL_DATA column")
    return Schedule(back_to_back, day, eb_len, gaps, start, history, model_data)


def draw_calibration_times(d: Draw, band: int) -> dict[str, float]:
    """Seconds on each calibrator per scan, by intent."""
    return {"BANDPASS": d.uniform(300, 600) * (1.5 if band >= 8 else 1.0),
            "AMPLITUDE": d.uniform(120, 300), "PHASE": d.uniform(30, 60), "CHECK": d.uniform(60, 120)}


class _ScanWriter:
    """Appends the scans of one EB, back to back from `start` (MJD s), and counts calibrator time."""

    def __init__(self, obs: Observation, eb_id: str, eb_index: int, start: float):
        self.obs, self.eb_id, self.eb_index = obs, eb_id, eb_index
        self.number = 0
        self.start = start
        self.n_atm = 0  # ATMOSPHERE scans

    def scan(self, intents: list[str], field_ids: list[int], spw_ids: list[int], length: float) -> None:
        self.number += 1
        self.obs.scans.append({"eb": self.eb_id, "number": self.number, "intents": intents, "field_ids": field_ids,
                               "spw_ids": spw_ids, "start": round(self.start, 3),
                               "end": round(self.start + length, 3)})
        if intents == ["ATMOSPHERE"]:
            self.n_atm += 1
        elif "TARGET" not in intents:
            key = (field_ids[0], self.eb_index)
            self.obs.on_source[key] = self.obs.on_source.get(key, 0.0) + length
        self.start += length + SCAN_GAP


def _calibrator_scans(w: _ScanWriter, f: Fields, has_tsys: bool, cal_time: dict[str, float],
                      all_ids: list[int], sci_ids: list[int], t_atm: float) -> None:
    """ATMOSPHERE, bandpass, flux and phase scans, then the targets' ATMOSPHERE scan."""
    if has_tsys and f.bp_id is not None:
        w.scan(["ATMOSPHERE"], [f.bp_id], all_ids, t_atm)
    if f.bp_id is not None:
        w.scan(["BANDPASS", "AMPLITUDE"] if f.flux_id == f.bp_id else ["BANDPASS"], [f.bp_id], sci_ids,
               cal_time["BANDPASS"])
    if f.flux_id is not None and f.flux_id != f.bp_id:
        w.scan(["AMPLITUDE"], [f.flux_id], sci_ids, cal_time["AMPLITUDE"])
    if f.phase_id is not None:
        if "ATMOSPHERE" in f.fields[f.phase_id]["intents"]:
            w.scan(["ATMOSPHERE"], [f.phase_id], all_ids, t_atm)
        w.scan(["PHASE"], [f.phase_id], sci_ids, cal_time["PHASE"])
    if has_tsys:
        w.scan(["ATMOSPHERE"], f.target_ids, all_ids, t_atm)


def _target_scans(w: _ScanWriter, f: Fields, t_start: float, eb_len: float, n_visits: int,
                  cal_time: dict[str, float], has_check: bool, sci_ids: list[int], t_int: float) -> float:
    """Target scans filling the EB (gaps: unlisted phase visits), then the check scan; target seconds."""
    used_time = w.start - t_start
    remaining = max(600.0, eb_len - used_time - (cal_time["CHECK"] if has_check else 0))
    visit_gap = (cal_time["PHASE"] + 24.0) if f.phase_id is not None else 12.0
    t_scan = (remaining - (n_visits - 1) * visit_gap) / n_visits
    t_scan = round(t_scan / t_int) * t_int
    for k in range(n_visits):
        w.scan(["TARGET"], f.target_ids, sci_ids, t_scan)
        if k < n_visits - 1:
            w.start += visit_gap - 12.0
            if f.phase_id is not None:  # an unlisted phase-calibrator visit
                w.obs.on_source[(f.phase_id, w.eb_index)] += cal_time["PHASE"]
    if f.check_id is not None:
        w.scan(["CHECK"], [f.check_id], sci_ids, cal_time["CHECK"])
    return n_visits * t_scan


def _one_eb(d: Draw, obs: Observation, inst: Instrument, ants: Antennas, t: float, e: int,
            dec0: float, mid_ha: float) -> tuple[str, int, dict[str, float]]:
    """An EB's uid, antenna count and projected baselines (m); appends its SEFD (Jy, Tsys x lognormal
    20 %) and cross-baseline count to `obs`."""
    eb_id = uid("A002", t, d)
    ant_idx = np.flatnonzero(ants.present[e])
    n_e = int(ant_idx.size)
    stats = baseline_stats(ants.enu[ant_idx], dec0, mid_ha)
    tsys = inst.tsys * math.exp(d.normal(0, 0.2))
    obs.sefd_eb.append(sefd(tsys, inst.eta_a, inst.dish))
    obs.n_bl_eb.append(n_e * (n_e - 1) // 2)
    return eb_id, n_e, stats


def draw_ebs(d: Draw, inst: Instrument, f: Fields, ants: Antennas, sched: Schedule, ra0: float, dec0: float,
             has_tsys: bool, all_ids: list[int], sci_ids: list[int], n_tsys: int, t_int: float) -> Observation:
    """The EBs and their scans: per EB one ATMOSPHERE scan per field with that intent, one scan per
    calibrator intent and 1-3 target scans (one with 3-4 EBs); `n_tsys` Tsys spws (SYSCAL rows)."""
    n_ebs = len(sched.eb_len)
    obs = Observation(t_int)
    target_scans = d.int(1, 3) if n_ebs <= 2 else 1
    cal_time = draw_calibration_times(d, inst.band)
    t, mjd_day = sched.start, sched.day
    for e in range(n_ebs):
        if e > 0:
            if sched.back_to_back:
                t = obs.ebs[-1]["end"] + sched.gaps[e]
            else:
                mjd_day += d.int(1, 30)
                t = time_at(mjd_day, ra0, d.uniform(-1.5, 1.5)) * 86400 - sched.eb_len[e] / 2
        mid_ha = ((lst_hours((t + sched.eb_len[e] / 2) / 86400) - ra0 / 15 + 12) % 24) - 12
        if e == 0:
            obs.year = 1858.877 + t / 86400 / 365.2425  # MJD -> calendar year, approximately
        eb_id, n_e, stats = _one_eb(d, obs, inst, ants, t, e, dec0, mid_ha)
        w = _ScanWriter(obs, eb_id, e, t)
        _calibrator_scans(w, f, has_tsys, cal_time, all_ids, sci_ids, ATMOSPHERE_SCAN[inst.array])
        obs.t_target_eb.append(_target_scans(w, f, t, sched.eb_len[e], target_scans, cal_time,
                                             f.check_id is not None, sci_ids, t_int))
        obs.ebs.append({"id": eb_id, "ms_name": eb_id.replace("uid://", "uid___").replace("/", "_") + ".ms",
                        "start": round(t, 3), "end": obs.scans[-1]["end"], "integration_time": t_int,
                        "n_antennas": n_e, "syscal_rows": n_e * n_tsys * w.n_atm,
                        "processing_history": False, "history_origins": ["importasdm"],
                        "has_model_data": False, "baselines": stats})
    return obs


def draw_history(d: Draw, obs: Observation, sched: Schedule, notes: list[str]) -> None:
    """Processing history in some EBs, MODEL_DATA in one; a first header note on how far apart the EBs are."""
    ebs = obs.ebs
    if sched.history:
        for eb in d.sample(ebs, d.int(1, len(ebs))):
            eb["processing_history"] = True
            eb["history_origins"] = ["importasdm"] + d.pick(LATER_TASKS)
    if sched.model_data:
        d.pick(ebs)["has_model_data"] = True
    if len(ebs) > 1:
        gap_h = (ebs[1]["start"] - ebs[0]["end"]) / 3600
        notes.insert(0, f"EBs {'back to back' if sched.back_to_back else f'{gap_h:.0f} h apart'}")


def fill_spw_usage(spws: list[dict], obs: Observation, present: np.ndarray) -> list[int]:
    """Science spws' intents (those of the scans), every spw's rows and baselines; returns antennas per EB.

    rows = integrations x (cross baselines + antennas) summed over the spw's scans.
    """
    seen = {i for s in obs.scans for i in s["intents"]}
    for s in spws:
        if not s["intents"]:
            s["intents"] = [i for i in INTENT_ORDER if i in seen]
    n_auto = present.sum(axis=1).tolist()
    rows = {s["id"]: 0 for s in spws}
    eb_index = {eb["id"]: k for k, eb in enumerate(obs.ebs)}
    for sc in obs.scans:
        k = eb_index[sc["eb"]]
        n_int = round((sc["end"] - sc["start"]) / obs.t_int)
        for sid in sc["spw_ids"]:
            rows[sid] += n_int * (obs.n_bl_eb[k] + n_auto[k])
    pair = (present.T.astype(np.int32) @ present.astype(np.int32)) > 0
    n_pairs = int((pair.sum() - np.trace(pair)) // 2)
    for s in spws:
        s["rows"] = rows[s["id"]]
        s["baselines"] = n_pairs
    return n_auto
