"""One synthetic dataset: the draws in order, the summary dict and the lines of its header comment."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from almarules.engine.facts.synth_catalogue import MISSING_FACTS
from almarules.engine.facts.synth_ebs import (
    Antennas, Observation, draw_antennas, draw_ebs, draw_history, draw_integration_time, draw_schedule,
    fill_spw_usage)
from almarules.engine.facts.synth_geometry import pads
from almarules.engine.facts.synth_measurements import draw_measurements
from almarules.engine.facts.synth_random import Draw
from almarules.engine.facts.synth_sky import (
    Fields, Instrument, Targets, draw_calibrators, draw_fields, draw_instrument, draw_mosaics, draw_targets)
from almarules.engine.facts.synth_spws import Setup, draw_lines, draw_setup
from almarules.engine.facts.synth_weights import draw_weights


def _metres(x: float) -> str:
    """A length (m) as ``850 m`` or ``1.30 km``."""
    return f"{x / 1000:.2f} km" if x >= 1000 else f"{x:.0f} m"


def _header(inst: Instrument, targets: Targets, f: Fields, setup: Setup, obs: Observation, rep: dict,
            rep_freq: float, l80: float, n_ant: int) -> list[str]:
    """Three comment lines saying what was drawn: array and baselines, the set-up, the fields."""
    n_targets, n_ebs = targets.n, len(obs.ebs)
    max_bl = max(eb["baselines"]["max"] for eb in obs.ebs)
    mosaic_txt = ""
    if f.mosaic:
        npts = [len(f.fields[i]["pointings"]) for i in f.target_ids]
        mosaic_txt = f", mosaic{'s' if n_targets > 1 else ''} of {min(npts)}-{max(npts)} pointings" if n_targets > 1 \
            else f", mosaic of {npts[0]} pointings"
    cals = [f"{role} {f.fields[i]['name']}" for role, i in
            (("bandpass", f.bp_id), ("flux", f.flux_id), ("phase", f.phase_id), ("check", f.check_id))
            if i is not None]
    return [
        f"{inst.array} array, Band {inst.band} (representative {rep_freq / 1e9:.3f} GHz in spw {rep['id']}), "
        f"{inst.config}: L80 {_metres(l80)}, max baseline {_metres(max_bl)}; {n_ant} antennas; "
        f"{n_ebs} EB{'s' if n_ebs > 1 else ''}, {obs.t_int} s integrations",
        f"{'TDM' if setup.tdm else 'FDM'} set-up, science spws {'; '.join(setup.notes)}"
        + ("; Tsys in TDM spws 9-15" if setup.tsys_spws else "") + ("" if setup.tdm else " (H = online Hanning)"),
        f"{n_targets} target field{'s' if n_targets > 1 else ''} ({', '.join(targets.names[:3])}"
        f"{', ...' if n_targets > 3 else ''}){mosaic_txt}; {', '.join(cals) or 'no calibrators'}",
    ]


def _summary(d: Draw, inst: Instrument, f: Fields, setup: Setup, obs: Observation, ants: Antennas, rep: dict,
             rep_freq: float, weights: list[dict], measurements: list[dict]) -> dict[str, Any]:
    """The summary dict, with an invented project code (its cycle from the first EB's date) and MOUS uid."""
    cycle_year = max(2013, min(2019, int(obs.year - 0.75)))  # a cycle starts in October
    kind = "2" if inst.array == "7m" and d.chance(0.3) else "1"
    project = f"{cycle_year}.{kind}.{d.int(1, 1600):05d}.{d.weighted('SLT', (0.95, 0.04, 0.01))}"
    pad_names = pads(inst.array)[1]
    summary: dict[str, Any] = {
        "project": project,
        "mous_id": f"uid://A001/X{d.int(0x2f0, 0x1500):x}/X{d.int(0x10, 0x3fff):x}",
        "telescope": "ALMA",
        "array": inst.array,
        "representative_spw": rep["id"],
        "representative_frequency": rep_freq,
        "ebs": obs.ebs,
        "antennas": [{"name": nm, "station": pad_names[p], "position": pos, "dish_diameter": inst.dish}
                     for nm, p, pos in zip(ants.names, ants.pad_idx.tolist(), ants.itrf, strict=True)],
        "spws": setup.spws,
        "fields": f.fields,
        "scans": obs.scans,
        "weights": weights,
    }
    if measurements:
        summary["measurements"] = measurements
    return summary


def remove_fact(d: Draw, summary: dict, what: str, sci_ids: list[int], target_ids: list[int]) -> None:
    """Delete one fact (one of `MISSING_FACTS`) so that rules see it as unknown."""
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


def draw_dataset(rng: Union[np.random.Generator, int]) -> tuple[dict, list[str]]:
    """One summary and the lines of its header comment, from a generator or an int seed."""
    d = Draw(rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng))
    notes: list[str] = []
    inst = draw_instrument(d)
    targets = draw_targets(d)
    cals = draw_calibrators(d, inst.array, notes)
    f = draw_fields(d, inst, targets, cals)
    setup = draw_setup(d, inst.array, inst.band, targets.n > 5, cals.tsys)
    sci = [sp for sp in setup.spws if not sp["intents"]]  # science spws: intents filled in from the scans
    sci_ids = [sp["id"] for sp in sci]
    rep, rep_freq = draw_lines(d, sci)
    ants = draw_antennas(d, inst, targets.n_ebs)
    t_int = draw_integration_time(d, inst)
    sched = draw_schedule(d, inst.array, targets.n_ebs, targets.ra0, notes)
    n_tsys = 0 if not cals.tsys else 4 if setup.tsys_spws else len(sci_ids)
    obs = draw_ebs(d, inst, f, ants, sched, targets.ra0, targets.dec0, cals.tsys,
                   [s["id"] for s in setup.spws], sci_ids, n_tsys, t_int)
    draw_history(d, obs, sched, notes)
    n_auto = fill_spw_usage(setup.spws, obs, ants.present)
    draw_mosaics(d, f, inst.array, inst.dish, rep_freq)
    weights, sum_w = draw_weights(d, f, obs, sci, n_auto)
    l80 = sum(eb["baselines"]["l80"] for eb in obs.ebs) / len(obs.ebs)
    measurements: list[dict] = []
    if d.chance(0.20):
        measurements = draw_measurements(d, f, sci, sum_w, l80)
        notes.append(f"{len(measurements)} image measurements")
    summary = _summary(d, inst, f, setup, obs, ants, rep, rep_freq, weights, measurements)
    header = _header(inst, targets, f, setup, obs, rep, rep_freq, l80, len(ants.names))
    if d.chance(0.02):
        what = d.pick(MISSING_FACTS)
        remove_fact(d, summary, what, sci_ids, f.target_ids)
        notes.append(f"missing on purpose: {what}")
    if notes:
        header.append("; ".join(notes))
    return summary, header
