"""The truth file of one execution block: everything that went into its MS, as JSON.

Written beside each MS as ``<MS path without .ms>.truth.json`` (format `VERSION`): the
config and seed, the conventions, the antennas, scans and states, the spws, the fields
with their components, lines and Doppler factors, the gains and bandpasses drawn, the
noise levels, the flags, and ``expected_facts`` -- what ``almarules facts`` should read
back from the MS.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from almarules.kernels import corrupt as kcorrupt
from almarules.kernels import sky as ksky
from almarules.kernels.constants import ARCSEC

from .plan import EBPlan, Plan, Timeline
from .sky_model import imager_pb_model
from .times import utc_text

VERSION = 1  # truth-file format


def truth_record(plan: Plan, eb: EBPlan, tl: Timeline, elev, tsys, sefd, sigma, weight, gain_params, gains,
           bp_params, sky, line_truth, topo, ms_path: Path, syscal_rows, row_flag, chan_flag) -> dict:
    cfg = plan.cfg
    lay = plan.layout
    const_sigma = bool(np.allclose(sigma, sigma[:1], rtol=0, atol=0))
    scans = []
    for k, scan in enumerate(eb.scans):
        idx = np.flatnonzero(tl.scan_index == k)
        scans.append({
            "scan": scan.number, "field": plan.sources[scan.source].cfg.name, "role": scan.role,
            "obs_mode": scan.obs_mode, "intents": scan.intents,
            "field_ids": sorted({fid for fid, _, _, _ in scan.subscans}),
            "sub_scans": [{"field_id": fid, "sub_scan": sub, "state_id": plan.states[(scan.obs_mode, sub)],
                           "n_integrations": n} for fid, sub, _, n in scan.subscans],
            "start_mjd_s": float(tl.times[idx[0]] - cfg.schedule.integration / 2),
            "end_mjd_s": float(tl.times[idx[-1]] + cfg.schedule.integration / 2),
            "start_utc": utc_text(tl.times[idx[0]] - cfg.schedule.integration / 2),
            "n_integrations": int(idx.size),
        })
    fields = []
    for src in plan.sources:
        sel = np.isin(tl.field, src.field_ids)
        comps = []
        for ci, c in enumerate(src.cfg.components):
            l0, m0 = c.offset[0] * ARCSEC, c.offset[1] * ARCSEC
            cra, cdec = ksky.radec_from_lm(l0, m0, src.ra, src.dec)
            comp = {"index": ci, "shape": c.shape, "flux_jy_at_ref": c.flux, "spectral_index": c.spectral_index,
                    "reference_frequency_hz": c.reference_frequency or plan.ref_freq,
                    "offset_l_arcsec": c.offset[0], "offset_m_arcsec": c.offset[1],
                    "ra_deg": math.degrees(cra), "dec_deg": math.degrees(cdec)}
            if c.shape == "gaussian":
                comp.update({"major_fwhm_arcsec": c.major, "minor_fwhm_arcsec": c.minor, "pa_deg": c.pa})
            lines = []
            for ln in c.lines:
                rec = {"peak_jy": ln.peak, "frame": ln.frame, "centre_hz": ln.centre_hz(), "fwhm_hz": ln.fwhm_hz(),
                       "rest_frequency_hz": ln.rest_frequency, "velocity_km_s": ln.velocity,
                       "fwhm_km_s": ln.fwhm, "transition": ln.transition,
                       "profile": "peak * exp(-0.5 ((nu - centre) / (fwhm / 2.3548))^2), in `frame`"}
                if ln.frame == "LSRK" and src.index in topo and np.any(sel):
                    fac = topo[src.index][sel]
                    rec["topo_centre_hz_range"] = [float(ln.centre_hz() * fac.min()), float(ln.centre_hz() * fac.max())]
                    rec["topo_over_lsrk_range"] = [float(fac.min()), float(fac.max())]
                lines.append(rec)
            if lines:
                comp["lines"] = lines
            comps.append(comp)
        fields.append({
            "name": src.cfg.name, "source_id": src.index, "field_ids": src.field_ids,
            "ra_deg": src.cfg.ra, "dec_deg": src.cfg.dec, "intents": list(src.cfg.intents),
            "pointings_arcsec": [list(p) for p in src.pointing_offsets],
            "pointing_directions_deg": [[math.degrees(a), math.degrees(b)] for a, b in src.pointings],
            "n_integrations": int(sel.sum()),
            "elevation_deg_range": ([float(np.degrees(elev[sel].min())), float(np.degrees(elev[sel].max()))]
                                    if np.any(sel) else None),
            "components": comps,
        })
        if src.index in topo and np.any(sel):
            fields[-1]["doppler"] = {"times_mjd_s": tl.times[sel].tolist(),
                                     "topo_over_lsrk": topo[src.index][sel].tolist(),
                                     "note": "nu_TOPO / nu_LSRK per integration of this field (casacore measures)"}
    corruptions: dict[str, Any] = {"enabled": cfg.corruptions.enabled,
                                   "order": "DATA = g_a1 conj(g_a2) b_a1 conj(b_a2) * model + noise (noise not multiplied by gains)"}
    if gain_params is not None:
        corruptions["gains"] = {
            "formula": kcorrupt.__doc__.split("Gains")[1].split("Bandpass")[0].strip(),
            "parameters": gain_params.to_json(),
            "times_mjd_s": tl.times.tolist(),
            "antennas": lay.names, "pols": ["X", "Y"],
            "amplitude": np.round(np.abs(gains), 7).transpose(1, 2, 0).tolist(),
            "phase_deg": np.round(np.degrees(np.angle(gains)), 5).transpose(1, 2, 0).tolist(),
            "layout": "amplitude[antenna][pol][integration], phase_deg[antenna][pol][integration]",
        }
    if any(p is not None for p in bp_params):
        corruptions["bandpass"] = {
            "formula": "b(nu) = (1 + slope x + ripple cos(2 pi cycles x + ripple_phase)) * "
                       "exp(i (phase0 + 2 pi delay (nu - nu_centre))); x = (chan - (nchan-1)/2)/(nchan-1); "
                       "radians, seconds, Hz",
            "layout": "arrays [antenna][pol]",
            "per_spw": {str(i): p.to_json() for i, p in enumerate(bp_params) if p is not None},
        }
    nz = cfg.noise
    noise = {
        "enabled": nz.enabled,
        "formula": "sigma = sqrt(SEFD_i SEFD_j) / (eta_c sqrt(2 dnu t)); SEFD = 2 k Tsys / (eta_a pi D^2 / 4); "
                   "sigma per real/imaginary part of one visibility; dnu = EFFECTIVE_BW",
        "aperture_efficiency": nz.aperture_efficiency, "correlator_efficiency": nz.correlator_efficiency,
        "dish_diameter_m": plan.diameter, "integration_s": cfg.schedule.integration,
        "tsys_model": "atmosphere" if nz.atmosphere is not None else "constant",
        "per_spw": {},
    }
    if nz.atmosphere is not None:
        noise["atmosphere"] = nz.atmosphere.model_dump()
    for s in plan.spws:
        rec = {"effective_bw_hz": s.ebw}
        if const_sigma:
            rec.update({"tsys_k": float(tsys[0, s.id]), "sefd_jy": float(sefd[0, s.id]),
                        "sigma_jy": float(sigma[0, s.id]), "weight": float(weight[0, s.id])})
        else:
            rec.update({"tsys_k": tsys[:, s.id].tolist(), "sefd_jy": sefd[:, s.id].tolist(),
                        "sigma_jy": sigma[:, s.id].tolist(), "weight": weight[:, s.id].tolist(),
                        "layout": "one value per integration (times_mjd_s)"})
        noise["per_spw"][str(s.id)] = rec
    expected = _expected_facts(plan, eb, tl, ms_path, weight, row_flag, chan_flag)
    return {
        "format": f"almarules simulate truth v{VERSION}",
        "what": "SIMULATED ALMA-like execution block (not a real observation)",
        "ms_name": ms_path.name,
        "execution_block": {"index": eb.index + 1, "of": len(plan.ebs), "uid": eb.uid},
        "seed": plan.seed,
        "config": cfg.model_dump(mode="json"),
        "conventions": _conventions(cfg, plan.diameter),
        "observation": {
            "start_mjd_s": eb.start, "end_mjd_s": eb.end, "start_utc": utc_text(eb.start),
            "end_utc": utc_text(eb.end), "integration_s": cfg.schedule.integration,
            "site": cfg.site, "array_file": Path(plan.layout.source).name,
            "antennas": [{"name": n, "station": st, "position_itrf_m": p.tolist(), "dish_diameter_m": float(d)}
                         for n, st, p, d in zip(lay.names, lay.stations, lay.positions, lay.diameters)],
            "n_baselines": plan.nbl, "rows": int(tl.times.size * len(plan.spws) * plan.nbl),
            "row_order": "TIME, DATA_DESC_ID, ANTENNA1, ANTENNA2 (cross-correlations only)",
            "scans": scans,
            "states": [{"state_id": v, "obs_mode": k[0], "sub_scan": k[1]}
                       for k, v in sorted(plan.states.items(), key=lambda kv: kv[1])],
            "syscal_rows": len(syscal_rows),
        },
        "spectral_windows": [{"id": s.id, "name": s.name, "mode": s.mode, "nchan": s.nchan,
                              "first_chan_centre_hz": float(s.freqs[0]), "chan_width_hz": s.width,
                              "effective_bw_hz": s.ebw, "resolution_hz": s.resolution,
                              "online_hanning": s.hanning, "frame": "TOPO"} for s in plan.spws],
        "fields": fields,
        "reference_frequency_hz": plan.ref_freq,
        "corruptions": corruptions,
        "thermal_noise": noise,
        "flags": {"antennas": [lay.names[i] for i in plan.flagged_ants],
                  "channels": {str(k): [list(r) for r in v] for k, v in cfg.flags.channels.items()}},
        "expected_facts": expected,
    }


def _expected_facts(plan: Plan, eb: EBPlan, tl: Timeline, ms_path: Path, weight: np.ndarray,
                    row_flag: np.ndarray, chan_flag: list[np.ndarray]) -> dict:
    """What ``almarules facts`` should read back from this MS (the facts schema's keys and units)."""
    cfg = plan.cfg
    dt = cfg.schedule.integration
    field_intents: dict[int, set[str]] = {}
    for scan in eb.scans:
        field_intents.setdefault(scan.source, set()).update(scan.intents)
    fields = []
    for src in plan.sources:
        if src.index not in field_intents:
            continue
        ra0, dec0 = src.pointings[0]
        pts = [{"ra_offset": math.degrees((ra - ra0 + math.pi) % (2 * math.pi) - math.pi) * math.cos(dec0) * 3600.0,
                "dec_offset": math.degrees(dec - dec0) * 3600.0} for ra, dec in src.pointings]
        fields.append({"id": src.field_ids[0], "name": src.cfg.name, "ra": math.degrees(ra0) % 360.0,
                       "dec": math.degrees(dec0), "intents": sorted(field_intents[src.index]), "pointings": pts})
    scans = []
    for k, scan in enumerate(eb.scans):
        idx = np.flatnonzero(tl.scan_index == k)
        scans.append({"eb": eb.uid, "number": scan.number, "intents": sorted(set(scan.intents)),
                      "field_ids": sorted({fid for fid, _, _, _ in scan.subscans}),
                      "spw_ids": [s.id for s in plan.spws],
                      "start": float(tl.times[idx[0]] - dt / 2), "end": float(tl.times[idx[-1]] + dt / 2)})
    all_intents = sorted({i for s in eb.scans for i in s.intents})
    weights = []
    for src in plan.sources:
        sel = np.isin(tl.field, src.field_ids)
        if not np.any(sel):
            continue
        for s in plan.spws:
            good = np.outer(~row_flag, ~chan_flag[s.id])  # (nbl, nchan), per correlation
            n_good = float(good.sum()) * 2
            weights.append({"field": src.cfg.name, "spw": s.id, "eb": eb.uid,
                            "sum_weight": float(np.sum(weight[sel, s.id].astype(np.float32).astype(np.float64))
                                                * n_good),
                            "flagged_fraction": 1.0 - n_good / (2 * good.size),
                            "rows": int(sel.sum()) * plan.nbl, "time_on_source": float(sel.sum()) * dt})
    return {
        "project": cfg.project, "telescope": "ALMA" if cfg.site.upper() in ("ALMA", "ACA") else cfg.site,
        "array": "12m" if round(plan.diameter) == 12 else ("7m" if round(plan.diameter) == 7 else None),
        "ebs": [{"id": eb.uid, "ms_name": ms_path.name, "start": float(tl.times[0] - dt / 2),
                 "end": float(tl.times[-1] + dt / 2), "integration_time": dt, "n_antennas": plan.nant,
                 "syscal_rows": (plan.nant * len(plan.spws) * sum(1 for s in eb.scans if s.role == "atmosphere")
                                 if cfg.schedule.atmosphere_scans else 0),
                 "history_origins": ["almarules simulate"], "processing_history": False,
                 "has_model_data": False}],
        "antennas": [{"name": n, "station": st, "position": [float(x) for x in p], "dish_diameter": float(d)}
                     for n, st, p, d in zip(plan.layout.names, plan.layout.stations, plan.layout.positions,
                                            plan.layout.diameters)],
        "spws": [{"id": s.id, "name": s.name, "nchan": s.nchan, "start_frequency": float(s.freqs[0]),
                  "channel_width": s.width, "effective_bw": s.ebw, "frame": "TOPO",
                  "correlator_mode": s.mode, "online_hanning": s.hanning, "intents": all_intents}
                 for s in plan.spws],
        "fields": fields,
        "scans": scans,
        "weights": weights,
    }


def _pb_text(cfg, dish_m: float) -> str:
    """The primary beam of the truth's conventions, naming the model a reader re-evaluates it with."""
    if cfg.primary_beam == "gaussian":
        return f"Gaussian, FWHM = {cfg.pb_fwhm_factor} lambda / D"
    if cfg.primary_beam == "none":
        return "none"
    model = imager_pb_model(cfg.site, dish_m)
    return (f"kernels.primary_beam model {model!r} (dish {dish_m:g} m): the pattern the imaging corrects with, "
            f"per channel, at each component's offset from its pointing")


def _conventions(cfg, dish_m: float) -> dict:
    """The truth's conventions: how its numbers relate to the MS."""
    return {
        "uvw": "UVW = uvw(ANTENNA1) - uvw(ANTENNA2) (CASA), J2000 frame, casacore measures",
        "visibility": "V = sum S A T exp(+2 pi i (u l + v m + w (n - 1)) nu / c) with the stored UVW (CASA sign)",
        "primary_beam": _pb_text(cfg, dish_m),
        "primary_beam_model": (imager_pb_model(cfg.site, dish_m) if cfg.primary_beam == "imager"
                               else cfg.primary_beam),
        "correlations": "XX, YY; unpolarised sky: XX = YY = I before corruption",
        "time": "TIME = MJD seconds (UTC) at integration centres",
    }
