"""The solving stages: refant, setjy, bandpass, spwphaseup, gfluxscale, timegaincal.

Each is *measurements into the facts -> the rules' choices -> kernels -> solutions (kept in the
session, written as CASA calibration tables) -> an `Outcome` whose score comes from the rules*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from almarules.engine.facts.model import FluxMeasurement
from almarules.engine.ms.geodesy import itrf_to_enu
from almarules.engine.stages.calibration import caltables
from almarules.engine.stages.calibration.session import (
    CALIBRATOR_INTENTS, CalibrationError, CalSession, MSInfo, Outcome, SpwSolutions)
from almarules.engine.stages.calibration.solve import (
    baselines_per_antenna, channel_window, flux_snr, multiply, solve_bandpass, solve_gains, spectral_index,
    visibility_snr)
from almarules.engine.stages.calibration.visdata import CalData, read_flags, read_spw
from almarules.kernels import gaincal


# ---------------------------------------------------------------- refant
def local_horizontal_distance(positions: np.ndarray) -> np.ndarray:
    """Distance (m) of each ITRF position from their median, in the local horizontal frame at
    the median (east and north: heuristics.md section 8)."""
    enu = itrf_to_enu(positions, np.median(np.asarray(positions, dtype=np.float64), axis=0))
    return np.hypot(enu[:, 0], enu[:, 1])


def unflagged_per_antenna(s: CalSession, info: MSInfo) -> np.ndarray:
    """Unflagged visibilities (rows x channels x correlations) per antenna, the least over the
    calibrator intents (heuristics.md section 8); the flags of each spw are read once."""
    intents = {i: [info.fields[f] for f in s.fields_with(i) if f in info.fields] for i in CALIBRATOR_INTENTS}
    intents = {i: ids for i, ids in intents.items() if ids}
    if not intents:
        return np.zeros(info.nant, np.int64)
    n = {i: np.zeros(info.nant, np.int64) for i in intents}
    every = sorted({f for ids in intents.values() for f in ids})
    for setup in info.setups.values():
        field, ant1, ant2, flag = read_flags(info.path, setup, every)
        good = (~flag).sum(axis=(1, 2))
        for intent, ids in intents.items():
            m = np.isin(field, ids)
            n[intent] += (np.bincount(ant1[m], good[m], info.nant) + np.bincount(ant2[m], good[m], info.nant)
                          ).astype(np.int64)
    return np.min(np.stack(list(n.values())), axis=0)


def refant(s: CalSession) -> Outcome:
    """Rank the antennas (rules: antenna.refant_score, antenna.refant_candidate)."""
    out = Outcome(score=None)
    info = s.ms[0]
    dist = local_horizontal_distance(info.positions)
    unflagged = unflagged_per_antenna(s, info)
    by_name = {a.name: a for a in s.facts.antennas or []}
    for i, name in enumerate(info.antennas):
        if name in by_name:
            by_name[name].centre_distance = float(dist[i])
            by_name[name].unflagged = int(unflagged[i])
    s.changed()
    ranked = []
    for name in info.antennas:
        if name in by_name and s.value(f"antenna[{name}].refant_candidate", False):
            ranked.append((-float(s.value(f"antenna[{name}].refant_score", 0.0)), info.antennas.index(name), name))
    if not ranked:
        raise CalibrationError(f"no reference antenna: no antenna of {info.source.name} has unflagged calibrator data")
    s.refants = [n for _, _, n in sorted(ranked)]
    out.items = s.refants
    top = s.refants[0]
    out.notes.append(f"reference antenna {top} (score {s.value(f'antenna[{top}].refant_score'):.1f}: geometry "
                     f"{s.value(f'antenna[{top}].geometry_score'):.1f} + flagging "
                     f"{s.value(f'antenna[{top}].flagging_score'):.1f}; {s.source(f'antenna[{top}].refant_score')}); "
                     f"then {', '.join(s.refants[1:6])}{' ...' if len(s.refants) > 6 else ''}")
    dropped = [a for a in info.antennas if a in by_name and a not in s.refants]
    if dropped:
        out.notes.append(f"not candidates (no unflagged calibrator data): {', '.join(dropped)}")
    out.numbers["refants"] = s.refants
    return out


# ---------------------------------------------------------------- models
def model_flux(s: CalSession, name: str, spw: int, freq: np.ndarray) -> Optional[np.ndarray]:
    """S(nu) (Jy) of calibrator `name` in spw `spw` at `freq` (Hz), from setjy or gfluxscale; None
    when unknown."""
    m = s.models.get((name, spw))
    if m is None:
        return None
    flux, spix, ref, _ = m
    return flux * (np.asarray(freq) / ref) ** (spix if np.isfinite(spix) else 0.0)


def _spw_loop(s: CalSession):
    for k, info in enumerate(s.ms):
        for spw, setup in sorted(info.setups.items()):
            yield k, info, spw, setup, s.solutions.setdefault((k, spw), SpwSolutions())


def calibrator_data(s: CalSession, info: MSInfo, setup, name: str) -> Optional[CalData]:
    """The DATA of calibrator `name` in one spw, read once per flag state (the flagging stages
    clear `CalSession.data`)."""
    if name not in info.fields:
        return None
    key = (str(info.path), setup.spw, name)
    if key not in s.data:
        cd = read_spw(info.path, setup, [info.fields[name]])
        s.data[key] = cd if cd.rows.size else None
    return s.data[key]


def reject_sigma(s: CalSession) -> float:
    """The rules' robust re-solve threshold (0: none)."""
    return float(s.value("dataset.solve_reject_sigma", 0.0) or 0.0)



def solve_channels(s: CalSession, setup) -> slice:
    """The channels of `setup`'s spw that the phase-up and gain solutions use (rules:
    spw.solve_channels; all of them when the rules give none)."""
    nchan = setup.freq.size
    return channel_window(nchan, int(s.value(f"spw[{setup.spw}].solve_channels", nchan) or nchan))


def _measure_spw(s: CalSession, spw: int, cd: CalData, prefix: str) -> None:
    f = s.spw_fact(spw)
    setattr(f, f"{prefix}_vis_snr", visibility_snr(cd))
    f.baselines_per_antenna = int(round(baselines_per_antenna(cd)))
    if prefix == "bandpass":
        f.bandpass_integrations = int(np.unique(cd.time).size)
    s.changed()


# ---------------------------------------------------------------- bandpass
def bandpass(s: CalSession) -> Outcome:
    """Phase-up then bandpass on the bandpass calibrator, per spw (rules: spw.bandpass_chanavg,
    spw.phaseup_integrations)."""
    out = Outcome(score="dataset.bandpass_score", colour="dataset.bandpass_colour")
    cals = s.fields_with("BANDPASS")
    flagged, flat, parts = [], [], {}
    jobs = []  # measured first, so the rules are evaluated once on every spw's measurements
    for k, info, spw, setup, sol in _spw_loop(s):
        name = next((c for c in cals if c in info.fields), None)
        cd = calibrator_data(s, info, setup, name) if name else None
        if cd is None:
            out.warnings.append(f"{info.source.name} spw {spw}: no bandpass calibrator data")
            continue
        _measure_spw(s, spw, cd, "bandpass")
        jobs.append((k, info, spw, setup, sol, name, cd))
    tasks = []
    for k, info, spw, setup, sol, name, cd in jobs:
        chanavg = int(s.value(f"spw[{spw}].bandpass_chanavg", 1))
        nint = int(s.value(f"spw[{spw}].phaseup_integrations", 1))
        interval = float(np.median(np.diff(np.unique(cd.time)))) if np.unique(cd.time).size > 1 else 0.0
        solint = "int" if nint <= 1 else nint * interval + 1e-3
        flux = model_flux(s, name, spw, setup.freq)
        tasks.append(((cd, np.ones(setup.freq.size) if flux is None else flux, info.nant, s.refant_index(info)),
                      dict(phaseup_solint=solint, channels=solve_channels(s, setup), chanavg=chanavg,
                           reject=reject_sigma(s))))
    solved = s.map(lambda t: solve_bandpass(*t[0], **t[1]), tasks)
    for (k, info, spw, setup, sol, name, cd), (_, task), bp in zip(jobs, tasks, solved, strict=True):
        solint, chanavg = task["phaseup_solint"], task["chanavg"]
        sol.bandpass = bp
        have = np.isin(np.arange(info.nant), np.concatenate([cd.ant1, cd.ant2]))
        used = (~cd.flag).any(axis=(0, 2))  # channels with data (flagged edges are not failed solutions)
        frac = float(bp.flags[have][:, used].mean()) if have.any() and used.any() else 1.0
        amp = np.abs(bp.solution[have][:, task["channels"]])  # the band's roll-off at the edges is not a fault
        rms = float(np.sqrt(np.nanmean((amp - 1) ** 2))) if np.isfinite(amp).any() else float("nan")
        flagged.append(frac)
        flat.append(rms)
        parts.setdefault(k, []).append(caltables.bandpass_part(bp, info, name, spw))
        out.items.append(f"{info.source.name} spw {spw}")
        out.notes.append(
            f"{info.source.name} spw {spw}: {name}, phase-up solint {solint if isinstance(solint, str) else f'{solint:.1f} s'} "
            f"({s.source(f'spw[{spw}].phaseup_integrations')}), {chanavg} channel(s) per solution "
            f"(per-channel SNR {s.value(f'spw[{spw}].bandpass_channel_snr', float('nan')):.0f}, "
            f"{s.source(f'spw[{spw}].bandpass_chanavg')}); {100 * frac:.1f} % of solutions flagged, "
            f"amplitude rms {100 * rms:.1f} %")
    if not flagged:
        raise CalibrationError("bandpass: no spw has bandpass calibrator data")
    s.facts.calibration.bandpass_flagged = max(flagged)
    s.facts.calibration.bandpass_flatness = max(flat)
    s.changed()
    out.tables += caltables.write(s, parts, "bandpass.tbl")
    return out


# ---------------------------------------------------------------- spwphaseup
def spwphaseup(s: CalSession) -> Outcome:
    """Per-spw phase SNR of the phase calibrator; low-SNR spws borrow the phases of the best spw
    plus their own offset (rules: spw.phase_mapped)."""
    out = Outcome()
    cals = s.fields_with("PHASE")
    for k, info in enumerate(s.ms):
        name = next((c for c in cals if c in info.fields), None)
        if name is None:
            out.warnings.append(f"{info.source.name}: no phase calibrator")
            continue
        data = {}
        for spw, setup in sorted(info.setups.items()):
            cd = calibrator_data(s, info, setup, name)
            if cd is not None:
                _measure_spw(s, spw, cd, "phase")
                data[spw] = cd
        snr = {spw: float(s.value(f"spw[{spw}].phase_int_snr", 0.0) or 0.0) for spw in data}
        if not snr:
            continue
        best = max(snr, key=lambda x: snr[x])
        for spw, cd in data.items():
            mapped = bool(s.value(f"spw[{spw}].phase_mapped", False)) and spw != best
            sol = s.solutions.setdefault((k, spw), SpwSolutions())
            out.items.append(f"{info.source.name} spw {spw}")
            if mapped:
                sol.mapped_to = best
                bp = sol.bandpass.solution if sol.bandpass else None
                sol.offset = solve_gains(cd, _flux_or_one(s, name, spw, cd.setup.freq), info.nant,
                                         s.refant_index(info), solint="inf", channels=solve_channels(s, cd.setup),
                                         bandpass=bp, phase_only=True, per_scan=False, reject=reject_sigma(s))
            out.notes.append(f"{info.source.name} spw {spw}: phase SNR per integration {snr[spw]:.1f} on {name} "
                             f"({s.source(f'spw[{spw}].phase_int_snr')}): "
                             + (f"mapped to spw {best} with its own phase offset ({s.source(f'spw[{spw}].phase_mapped')})"
                                if mapped else "solved on its own"))
    return out


def _flux_or_one(s: CalSession, name: str, spw: int, freq: np.ndarray) -> np.ndarray:
    f = model_flux(s, name, spw, freq)
    return np.ones(freq.size) if f is None else f


# ---------------------------------------------------------------- gfluxscale
def gfluxscale(s: CalSession) -> Outcome:
    """Flux transfer from the flux calibrator to the phase, check and bandpass calibrators: gains
    per scan with the flux model and with a 1 Jy model, the ratio of their amplitudes
    (`kernels.gaincal.fluxscale`), per spw; a spectral index over the spws."""
    out = Outcome(score="dataset.gfluxscale_score", colour="dataset.gfluxscale_colour")
    refs = s.fields_with("AMPLITUDE")
    if not any(r == name for r in refs for name, _ in s.models):
        raise CalibrationError("no flux calibrator with a known flux density (setjy found no catalogue model and no "
                               "--fluxfile entry): no flux scale, the calibrated flux densities are relative; give "
                               "the flux calibrator's flux with --fluxfile flux.csv")
    transfer = [f for f in dict.fromkeys(s.fields_with("PHASE") + s.fields_with("CHECK") + s.fields_with("BANDPASS"))
                if f not in refs]
    derived: dict[str, list[tuple[float, float, float, int]]] = {}
    jobs = []  # per MS and spw: the reference and the transfer fields with their data and models
    for k, info, spw, setup, sol in _spw_loop(s):
        ref = next((r for r in refs if r in info.fields and (r, spw) in s.models), None)
        if ref is None:
            out.warnings.append(f"{info.source.name} spw {spw}: no flux calibrator with a flux model: no flux scale")
            continue
        models = [(ref, model_flux(s, ref, spw, setup.freq))] + [
            (name, np.ones(setup.freq.size)) for name in transfer if name in info.fields]
        data = [(name, calibrator_data(s, info, setup, name), flux) for name, flux in models]
        jobs.append((info, spw, setup, data, _GainSolve(info.nant, s.refant_index(info), solve_channels(s, setup),
                                                       sol.bandpass.solution if sol.bandpass else None,
                                                       reject_sigma(s))))
    solved = s.map(lambda j: [None if cd is None else j[4].amplitude(cd, flux) for _, cd, flux in j[3]], jobs)
    for (info, spw, setup, data, _), gains in zip(jobs, solved, strict=True):
        for (name, _, flux), g in zip(data, gains, strict=True):
            if g is not None:
                s.gains[(str(info.path), spw, name)] = (*g, np.asarray(flux, dtype=np.float64))
        g_ref = gains[0][1] if gains[0] is not None else None
        for (name, _, _), g in zip(data[1:], gains[1:], strict=True):
            if g_ref is None or g is None:
                continue
            try:
                fs = gaincal.fluxscale(g_ref, g[1])
            except ValueError as exc:
                out.warnings.append(f"{info.source.name} spw {spw} {name}: {exc}")
                continue
            derived.setdefault(name, []).append((setup.centre, fs.flux, fs.error, spw))
            out.items.append(f"{name} spw {spw}")
    fluxes = [m for m in s.facts.fluxscales or [] if m.reference]
    for name, rows in derived.items():
        f, v, e, spws = (np.array(x) for x in zip(*rows, strict=True))
        alpha, alpha_err, _ = spectral_index(f, v, e)
        use = np.isfinite(alpha_err) and alpha_err <= float(s.value("dataset.spix_max_error", 0.0))
        for fi, vi, ei, spw in rows:
            s.models[(name, spw)] = (vi, alpha if use else 0.0, fi, "gfluxscale")
            fluxes.append(FluxMeasurement(field=name, spw=spw, frequency=fi, flux=vi, error=ei, spix=alpha,
                                          catalogue=s.catalogue.get((name, spw)), reference=False))
            out.notes.append(f"{name} spw {spw}: {vi:.4f} ± {ei:.4f} Jy at {fi / 1e9:.4f} GHz "
                             f"(SNR {flux_snr(vi, ei):.0f})" + (f", catalogue {s.catalogue[(name, spw)]:.4f} Jy"
                                                                 if (name, spw) in s.catalogue else ""))
        if np.isfinite(alpha):
            out.notes.append(f"{name}: spectral index {alpha:.2f} ± {alpha_err:.2f} over spws {', '.join(map(str, spws))}"
                             + ("" if use else f": too uncertain to model its spectrum (error above spix_max_error, "
                                               f"{s.source('dataset.spix_max_error')}); flat within each spw"))
    s.facts.fluxscales = fluxes
    s.changed()
    out.reasons_from = [f"fluxscale[{m.field}.{m.spw}].qa_score" for m in fluxes if not m.reference]
    out.numbers["derived"] = {n: {str(r[3]): {"frequency": r[0], "flux": r[1], "error": r[2],
                                              "catalogue": s.catalogue.get((n, r[3]))} for r in rows}
                              for n, rows in derived.items()}
    if not derived:
        out.warnings.append("gfluxscale derived no flux density: the calibrators' amplitudes are on an arbitrary scale")
    return out


@dataclass(frozen=True)
class _GainSolve:
    """The settings of one spw's gain solves (from the rules, read before the parallel tasks)."""

    nant: int
    refant: Optional[int]
    channels: slice
    bandpass: Optional[np.ndarray]
    reject: float

    def solve(self, cd: CalData, flux: np.ndarray, *, solint: str, phase_only: bool,
              pre: Optional[gaincal.GainTable] = None) -> gaincal.GainTable:
        return solve_gains(cd, flux, self.nant, self.refant, solint=solint, channels=self.channels,
                           bandpass=self.bandpass, phase_only=phase_only, pre=pre, reject=self.reject)

    def amplitude(self, cd: CalData, flux: np.ndarray) -> tuple[gaincal.GainTable, gaincal.GainTable]:
        """(phase per integration, amplitude and phase per scan after it), with model `flux`."""
        ph = self.solve(cd, flux, solint="int", phase_only=True)
        return ph, self.solve(cd, flux, solint="inf", phase_only=False, pre=ph)


def _reuse(s: CalSession, info: MSInfo, spw: int, name: str, flux: np.ndarray
           ) -> Optional[tuple[gaincal.GainTable, gaincal.GainTable]]:
    """gfluxscale's (phase per integration, amplitude per scan) of `name`, valid for the model
    `flux` when it is the model they were solved with times a constant r: the phases do not
    depend on the model's scale and the amplitudes scale as 1/sqrt(r) (V = g_i g_j* r M)."""
    hit = s.gains.get((str(info.path), spw, name))
    if hit is None:
        return None
    ph, amp, used = hit
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.asarray(flux, dtype=np.float64) / used
    if not (np.all(np.isfinite(r)) and np.ptp(r) <= 1e-12 * abs(r[0]) and r[0] > 0):
        return None
    return ph, gaincal.rescale(amp, float(r[0]))


# ---------------------------------------------------------------- timegaincal
def timegaincal(s: CalSession) -> Outcome:
    """Gains of every calibrator with its flux model: phase per integration (applied to the
    calibrators), phase per scan (transferred to the targets) and amplitude per scan."""
    out = Outcome(score="dataset.timegaincal_score", colour="dataset.timegaincal_colour")
    parts: dict[int, dict[str, list]] = {}
    rms_worst: Optional[float] = None
    phase_cals = set(s.fields_with("PHASE"))
    groups = []  # per MS and spw: (k, spw, sol, settings, [(name, cd, flux, reused)])
    for k, info, spw, setup, sol in _spw_loop(s):
        gs = _GainSolve(info.nant, s.refant_index(info), solve_channels(s, setup),
                        sol.bandpass.solution if sol.bandpass else None, reject_sigma(s))
        mapped = sol.mapped_to is not None and sol.offset is not None
        items = []
        for name in s.calibrators:
            cd = calibrator_data(s, info, setup, name)
            if cd is None:
                continue
            flux = model_flux(s, name, spw, setup.freq)
            if flux is None:
                out.warnings.append(f"{name} spw {spw}: no flux density known (no setjy model, no gfluxscale "
                                    f"result): a 1 Jy model, its amplitudes are relative")
                flux = np.ones(setup.freq.size)
            items.append((name, cd, flux, None if mapped else _reuse(s, info, spw, name, flux)))
        groups.append((k, spw, sol, gs, mapped, items))

    def solve_group(group) -> list[tuple]:
        k, _, sol, gs, mapped, items = group
        results = []
        for name, cd, flux, reused in items:
            if reused is not None:
                ph, amp = reused
            else:
                best = s.solutions.get((k, sol.mapped_to)) if mapped else None
                if best and name in best.phase_int:  # the mapped spw's phases, solved in the first wave
                    ph = multiply(best.phase_int[name], sol.offset)
                else:
                    ph = gs.solve(cd, flux, solint="int", phase_only=True)
                amp = gs.solve(cd, flux, solint="inf", phase_only=False, pre=ph)
            pscan = gs.solve(cd, flux, solint="inf", phase_only=True) if name in phase_cals else None
            results.append((ph, amp, pscan))
        return results

    solved: dict[tuple[int, int], list[tuple]] = {}
    for wave in (False, True):  # spws mapped to another spw take its phases: after it
        todo = [g for g in groups if g[4] == wave]
        for g, res in zip(todo, s.map(solve_group, todo), strict=True):
            solved[(g[0], g[1])] = res
            for (name, *_), (ph, amp, _) in zip(g[5], res, strict=True):
                g[2].phase_int[name], g[2].amp_scan[name] = ph, amp
    for k, spw, sol, _, _, items in groups:
        info = s.ms[k]
        for (name, cd, flux, _), (ph, amp, pscan) in zip(items, solved[(k, spw)], strict=True):
            p = parts.setdefault(k, {"phase_int": [], "amp_scan": [], "phase_scan": []})
            p["phase_int"].append(caltables.gain_part(ph, info, name, spw, cd))
            p["amp_scan"].append(caltables.gain_part(amp, info, name, spw, cd))
            if pscan is not None:
                sol.phase_scan[name] = pscan
                p["phase_scan"].append(caltables.gain_part(pscan, info, name, spw, cd))
                rms = _phase_rms_deg(ph, pscan, cd)
                if np.isfinite(rms):
                    rms_worst = max(rms_worst or 0.0, rms)
                out.notes.append(f"{info.source.name} spw {spw} {name}: " + (
                    f"phase rms within scans {rms:.1f} deg (median over antennas)" if np.isfinite(rms) else
                    "phase rms within scans not measurable (one integration per scan)"))
            out.items.append(f"{name} spw {spw}")
    s.facts.calibration.gain_phase_rms = rms_worst
    s.changed()
    for kind in ("phase_int", "amp_scan", "phase_scan"):
        out.tables += caltables.write(s, {k: p[kind] for k, p in parts.items() if p[kind]}, f"{kind}.tbl")
    return out


def _phase_rms_deg(fine: gaincal.GainTable, coarse: gaincal.GainTable, cd: CalData) -> float:
    """Median over antennas and receptors of the rms (deg) of the fine phases about the coarse
    solutions interpolated to their times, over the scans with more than one integration (NaN
    when there is none: one integration per scan leaves nothing to measure)."""
    ut, first = np.unique(cd.time, return_index=True)
    scans, counts = np.unique(cd.scan[first], return_counts=True)
    many = set(scans[counts > 1].tolist())
    scan_of = cd.scan[first][np.abs(ut[None, :] - fine.times[:, None]).argmin(axis=1)] if ut.size else []
    keep = np.array([int(sc) in many for sc in scan_of], bool)
    if not keep.any():
        return float("nan")
    g = gaincal.interpolate_gains(coarse, fine.times[keep])
    d = np.angle(fine.gains[keep] * np.conj(g), deg=True)
    ok = np.isfinite(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt((np.where(ok, d, 0.0) ** 2).sum(axis=0) / ok.sum(axis=0))
    rms = rms[np.isfinite(rms)]
    return float(np.median(rms)) if rms.size else float("nan")


__all__ = ["refant", "bandpass", "spwphaseup", "gfluxscale", "timegaincal", "model_flux",
           "local_horizontal_distance"]
