"""The flagging stages: flagdata (deterministic agents and the user's template), lowgainflag, and
the amplitude-outlier review (heuristics.md section 9), on the working copies.

Before every flagging stage the flag state is saved as a flag version (CASA's
``<ms>.flagversions``), so a user can restore it with almarules or CASA's flagmanager. flagdata
starts from the version ``Original`` (the input's flags), so a re-run never flags twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from almarules.engine.io import write_atomic
from almarules.engine.stages.calibration import flagtemplate, flagversions
from almarules.engine.stages.calibration.session import CalSession, MSInfo, Outcome
from almarules.engine.stages.calibration.solve import solve_gains
from almarules.engine.stages.calibration.solve_stages import model_flux, reject_sigma, solve_channels
from almarules.engine.stages.calibration.visdata import open_table, read_flags, read_spw
from almarules.kernels import flagging, gaincal


def save_version(info: MSInfo, name: str, comment: str) -> None:
    """Save the flags of `info`'s working copy as version `name` (replacing an older one)."""
    if any(n == name for n, _ in flagversions.versions(info.path)):
        flagversions.delete(info.path, name)
    flagversions.save(info.path, name, comment)


def _cross_flag_count(info: MSInfo) -> tuple[int, int]:
    """(flagged, total) visibilities of the cross-correlations of the working copy."""
    n = tot = 0
    for setup in info.setups.values():
        flag = read_flags(info.path, setup)[3]
        n, tot = n + int(flag.sum()), tot + flag.size
    return n, tot


def _deterministic(s: CalSession, info: MSInfo) -> dict[str, int]:
    """Autocorrelations, shadowed antennas and TDM edge channels (rules), written to FLAG;
    newly flagged visibilities per agent."""
    counts = {"autocorr": 0, "shadow": 0, "edge channels": 0}
    autocorr = bool(s.value("dataset.flag_autocorrelations", True))
    tol = float(s.value("dataset.shadow_tolerance", 0.0))
    t = open_table(info.path, readonly=False)
    try:
        cols = {c: np.asarray(t.getcol(c)) for c in ("TIME", "UVW", "ANTENNA1", "ANTENNA2", "DATA_DESC_ID")}
        shadow = flagging.shadowed_rows(cols["TIME"], cols["UVW"], cols["ANTENNA1"], cols["ANTENNA2"],
                                        info.diameters, tol)
        auto = flagging.autocorrelations(cols["ANTENNA1"], cols["ANTENNA2"]) if autocorr else np.zeros(shadow.shape, bool)
        for setup in info.setups.values():
            rows = np.flatnonzero(cols["DATA_DESC_ID"] == setup.ddid)
            if rows.size == 0:
                continue
            sub = t.query(f"DATA_DESC_ID == {setup.ddid}")  # rows ascending: those of `rows`
            flag = np.asarray(sub.getcol("FLAG"), bool)
            nedge = int(s.value(f"spw[{setup.spw}].edge_channels", 0) or 0)
            a, sh = auto[rows], shadow[rows] & ~auto[rows]
            for name, mask in (("autocorr", a), ("shadow", sh)):
                counts[name] += int((~flag[mask]).sum())
                flag[mask] = True
            if nedge > 0:
                edge = np.zeros(flag.shape[1], bool)
                edge[:nedge] = edge[-nedge:] = True
                counts["edge channels"] += int((~flag[~a][:, edge]).sum())
                flag[np.ix_(~a, edge)] = True
            sub.putcol("FLAG", flag)
            sub.putcol("FLAG_ROW", np.asarray(sub.getcol("FLAG_ROW"), bool) | flag.all(axis=(1, 2)))
            sub.close()
        t.flush()
    finally:
        t.close()
    return counts


def flagdata(s: CalSession, template: Optional[str], template_name: Optional[str]) -> Outcome:
    """flagdata's agents in order: online flags (FLAG_CMD), autocorrelations, shadow, TDM edges,
    the user's flag template; the newly flagged fraction is measured for the score."""
    out = Outcome(score="dataset.flagdata_score", colour="dataset.flagdata_colour")
    s.data.clear()
    s.gains.clear()
    commands = flagtemplate.parse(template, template_name or "flag template") if template else []
    before = total = new = 0
    for info in s.ms:
        if not any(n == "Original" for n, _ in flagversions.versions(info.path)):
            flagversions.save(info.path, "Original", "the input's flags (almarules flagdata)")
        else:
            flagversions.restore(info.path, "Original")
        b, tot = _cross_flag_count(info)
        before, total = before + b, total + tot
        per = {}
        if s.value("dataset.flag_online", True):
            online = flagtemplate.online_flags(info.path)
            if online:
                rep = flagtemplate.apply(info.path, online)
                per["online (FLAG_CMD)"] = rep.flagged_after - rep.flagged_before
            else:
                out.notes.append(f"{info.source.name}: no online flags (FLAG_CMD empty or absent)")
        per.update(_deterministic(s, info))
        if commands:
            rep = flagtemplate.apply(info.path, commands)
            per[f"template {template_name}"] = rep.flagged_after - rep.flagged_before
            for c in rep.commands:
                out.notes.append(f"{info.source.name}: template {c.where}: {c.newly_flagged} newly flagged "
                                 f"({c.already_flagged} already){' - ' + c.reason if c.reason else ''}")
        after, _ = _cross_flag_count(info)
        new += after - b
        save_version(info, "flagdata", "after almarules flagdata")
        out.items.append(info.source.name)
        out.notes.append(f"{info.source.name}: " + ", ".join(f"{k} {v}" for k, v in per.items())
                         + f" visibilities newly flagged; {100 * after / max(tot, 1):.2f} % of the cross-correlation "
                           f"data flagged now ({100 * b / max(tot, 1):.2f} % before)")
        out.numbers[info.source.name] = per
    cal = s.facts.calibration
    cal.flagged_before = before / max(total, 1)
    cal.flagged_flagdata = new / max(total, 1)
    s.changed()
    edges = {spw: s.value(f"spw[{spw}].edge_channels", 0) for info in s.ms for spw in info.setups}
    out.notes.append("edge channels flagged per side: " + ", ".join(f"spw {k}: {v}" for k, v in sorted(edges.items()))
                     + f" ({s.source(f'spw[{min(edges)}].edge_channels') if edges else ''})")
    return out


def lowgainflag(s: CalSession) -> Outcome:
    """Amplitude per scan on the bandpass calibrator (after a per-integration phase solution);
    antennas outside [lowgain_min, lowgain_max] x the median flagged in the whole spw
    (`kernels.flagging.low_gain_antennas`, hif_lowgainflag)."""
    out = Outcome(score="dataset.lowgainflag_score", colour="dataset.lowgainflag_colour")
    s.data.clear()
    s.gains.clear()
    lo, hi = float(s.value("dataset.lowgain_min", 0.5)), float(s.value("dataset.lowgain_max", 1.5))
    nmin = int(s.value("dataset.lowgain_min_antennas", 5))
    cals = s.fields_with("BANDPASS") or s.fields_with("PHASE")
    flagged_ants: set[str] = set()
    for info in s.ms:
        name = next((c for c in cals if c in info.fields), None)
        if name is None:
            out.notes.append(f"{info.source.name}: no bandpass or phase calibrator: nothing to judge")
            continue
        save_version(info, "lowgainflag", "before almarules lowgainflag")
        commands = []
        spws = [(spw, setup, read_spw(info.path, setup, [info.fields[name]]), solve_channels(s, setup))
                for spw, setup in sorted(info.setups.items())]
        spws = [x for x in spws if x[2].rows.size]
        reject = reject_sigma(s)

        def amplitudes(task) -> gaincal.GainTable:
            _, setup, cd, ch = task
            flux = np.ones(setup.freq.size)
            ph = solve_gains(cd, flux, info.nant, None, solint="int", channels=ch, bandpass=None, phase_only=True,
                             reject=reject)
            return solve_gains(cd, flux, info.nant, None, solint="inf", channels=ch, bandpass=None,
                               phase_only=False, pre=ph, reject=reject)

        for (spw, _, _, _), amp in zip(spws, s.map(amplitudes, spws), strict=True):
            bad, report = flagging.low_gain_antennas(np.abs(amp.gains), lo, hi, nmin, diameters=info.diameters)
            ants = [info.antennas[a] for a in np.flatnonzero(bad.any(axis=0))]
            if ants:
                commands.append(f"mode='manual' antenna='{','.join(ants)}' spw='{spw}' reason='lowgainflag'")
                flagged_ants.update(ants)
                out.notes.append(f"{info.source.name} spw {spw}: {', '.join(ants)} outside [{lo:g}, {hi:g}] x the "
                                 f"median gain amplitude on {name}")
            out.items.append(f"{info.source.name} spw {spw}")
        if commands:
            flagtemplate.apply(info.path, flagtemplate.parse("\n".join(commands), "lowgainflag"))
    by_name = {a.name: a for a in s.facts.antennas or []}
    for n in flagged_ants:
        if n in by_name:
            by_name[n].low_gain = True
    s.facts.calibration.low_gain_antennas = len(flagged_ants)
    s.changed()
    if not flagged_ants:
        out.notes.append(f"no antenna outside [{lo:g}, {hi:g}] x the median ({s.source('dataset.lowgain_min')})")
    return out


def correctedampflag(s: CalSession, folder: Path) -> Outcome:
    """The amplitude-outlier heuristic on the calibrated data (|corrected| - |model| against uv
    distance, per field, spw and correlation): the outliers are written as a flag template
    (``outliers.flagtemplate.txt``) for the user to review, *not* applied."""
    out = Outcome()
    t_lo, t_hi = float(s.value("dataset.outlier_target_low", -13)), float(s.value("dataset.outlier_target_high", 12))
    c_lo = float(s.value("dataset.outlier_calibrator_low", -4.0))
    c_hi = float(s.value("dataset.outlier_calibrator_high", 4.6))
    limits = dict(low_sigma=-t_lo, high_sigma=t_hi, ant_low_sigma=-c_lo, ant_high_sigma=c_hi)
    reject = reject_sigma(s)
    tasks = [(info, spw, setup) for info in s.ms for spw, setup in sorted(info.setups.items())]
    found = s.map(lambda t: _outliers_spw(s, *t, limits, reject), tasks)
    lines, total = [], 0
    for spw_lines, n, items, notes in found:
        lines += spw_lines
        total += n
        out.items += items
        out.notes += notes
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "outliers.flagtemplate.txt"
    write_atomic(path, "# amplitude outliers found by almarules correctedampflag (heuristics.md section 9);\n"
                       "# review, then pass with --flagtemplate to apply\n" + "".join(x + "\n" for x in lines))
    s.facts.calibration.outliers = total
    s.changed()
    out.notes.append(f"{total} outlier visibilities (limits {t_lo:g}/{t_hi:g} sigma for targets, antenna-based "
                     f"{c_lo:g}/{c_hi:g} for calibrators; {s.source('dataset.outlier_target_low')}); written to "
                     f"{path.name} for review, not applied")
    out.products[str(path)] = "flagtemplate (outliers, for review)"
    if total:
        out.warnings.append(f"correctedampflag found {total} outlier visibilities: review {path.name} (not applied)")
    out.numbers["outliers"] = total
    return out


def _outliers_spw(s: CalSession, info: MSInfo, spw: int, setup, limits: dict, reject: float
                  ) -> tuple[list[str], int, list[str], list[str]]:
    """The amplitude outliers of one spw of one working copy, per field and parallel hand: (flag
    template lines, their number, the fields searched, notes)."""
    lines, total, items, notes = [], 0, [], []
    spw_data = read_spw(info.path, setup, column="CORRECTED_DATA")
    vis, w, flag = spw_data.parallel_hands()
    ok = ~flag & (w > 0)
    n_all = gaincal.channel_sum(ok)  # the rows' channel means, once for the whole spw
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_all = np.where(n_all > 0, gaincal.channel_sum(np.where(ok, vis, 0)) / np.maximum(n_all, 1), np.nan)
    for name, fid in [(n, i) for n, first in info.fields.items() for i in info.field_ids.get(n, [first])]:
        m = spw_data.field == fid  # a mosaic's pointings one by one: each sees its own sky
        if not m.any():
            continue
        calibrator = name in s.calibrators
        model = model_flux(s, name, spw, setup.freq)
        if calibrator and model is None:
            notes.append(f"{name} spw {spw}: no flux model, so no |model| to compare with: not searched")
            continue
        mean, n = mean_all[m], n_all[m]
        if calibrator and model is not None:  # a calibrator's own rows, for its per-integration gains
            mean, n = _without_integration_gains(spw_data.subset(m), mean, n, model, info.nant, reject)
        level = float(np.mean(model)) if calibrator and model is not None else 0.0
        metric = np.abs(mean) - level
        uvw, ant1, ant2, time, scan = (getattr(spw_data, c)[m] for c in ("uvw", "ant1", "ant2", "time", "scan"))
        uvd = np.hypot(uvw[:, 0], uvw[:, 1])
        for p, corr in enumerate(setup.parallel):
            bad, _ = flagging.amplitude_outliers(
                metric[:, p], uvd, ant1, ant2, calibrator=calibrator, flag=n[:, p] == 0, time=time,
                nant=info.nant, nscans=int(np.unique(scan).size), **limits)
            rows = np.flatnonzero(bad)
            for r, when in zip(rows, _time_ranges(time[rows]), strict=True):
                lines.append(f"mode='manual' field='{name}' spw='{spw}' antenna='{info.antennas[ant1[r]]}&"
                             f"{info.antennas[ant2[r]]}' scan='{scan[r]}' correlation="
                             f"'{setup.corr_names[corr]}' timerange='{when}' reason='amplitude outlier'")
            total += int(rows.size)
        if f"{name} spw {spw}" not in items:
            items.append(f"{name} spw {spw}")
    return lines, total, items, notes


def _without_integration_gains(cd, mean: np.ndarray, n: np.ndarray, model: np.ndarray, nant: int, reject: float
                               ) -> tuple[np.ndarray, np.ndarray]:
    """A calibrator's rows' channel means of corrected data (`mean`, with `n` samples; (nrow,
    npol)) with per-integration antenna gains (amplitude and phase) divided out: the gains' drift
    within a scan, which the calibration follows only per scan, is then not taken for outliers; a
    bad baseline or a bad sample still is. A gain is constant over a row's channels, so the mean
    of V / g is the mean of V over g; a row without a gain has no samples left."""
    g = solve_gains(cd, model, nant, None, solint="int", channels=slice(None), bandpass=None, phase_only=False,
                    reject=reject)
    gi, gj = gaincal.gains_for_rows(g, cd.time, cd.ant1, cd.ant2)
    gg = gi * np.conj(gj)
    usable = np.isfinite(gg) & (gg != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(usable, mean / np.where(usable, gg, 1), np.nan), np.where(usable, n, 0)


def _time_ranges(t: np.ndarray) -> list[str]:
    """flagdata timeranges of one integration around each of MJD seconds `t` (+- 0.5 s), in
    ms (MJD 0 = 1858-11-17; the MS's seconds count 86400 per day, as the calendar does)."""
    epoch = np.datetime64("1858-11-17T00:00:00", "ms")
    ms = np.round(np.asarray(t, dtype=np.float64) * 1000.0).astype(np.int64)

    def text(x: np.ndarray) -> list[str]:
        iso = np.datetime_as_string(epoch + x.astype("timedelta64[ms]"), unit="ms")
        return [v.replace("-", "/").replace("T", "/") for v in iso]

    return [f"{a}~{b}" for a, b in zip(text(ms - 500), text(ms + 500), strict=True)]
