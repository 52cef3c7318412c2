"""Weights of a synthetic dataset: radiometer-equation sums of weights per field, science spw and EB."""

from __future__ import annotations

import math
from typing import Optional

from almarules.engine.facts.synth_catalogue import ETA_C
from almarules.engine.facts.synth_ebs import Observation
from almarules.engine.facts.synth_random import Draw, sig
from almarules.engine.facts.synth_sky import Fields

MAX_PER_EB_ENTRIES = 32  # above: weights summed over EBs, without "eb"


def sum_weight(sefd: float, bandwidth: float, t_int: float, n_int: int, n_bl: int, flagged: float) -> float:
    """Natural-weighting sum of weights (Jy^-2): both hands, all baselines and integrations.

    Per channel w = 2 effective_bw t_int eta_c^2 / SEFD^2 (SEFD in Jy, `bandwidth` = nchan x
    effective_bw in Hz, `t_int` in s), x 2 hands x baselines x integrations x (1 - flagged).
    """
    w = 2 * bandwidth * t_int * ETA_C ** 2 / sefd ** 2
    return 2 * n_bl * n_int * (1 - flagged) * w


def _integrations(d: Draw, fid: int, f: Fields, obs: Observation) -> tuple[list[int], list[float]]:
    """Integrations on source and typical flagged fraction (1-13 %) of field `fid`, per EB."""
    n_ebs, n_targets, t_int = len(obs.ebs), len(f.target_ids), obs.t_int
    if fid in f.target_ids:
        n_ints = [max(1, round(obs.t_target_eb[k] / n_targets * d.uniform(0.97, 1.0) / t_int)) for k in range(n_ebs)]
    else:
        n_ints = [round(obs.on_source.get((fid, k), 0.0) / t_int) for k in range(n_ebs)]
    flags = [0.01 + 0.12 * d.u() ** 2 for _ in range(n_ebs)]
    return n_ints, flags


def _field_spw_entries(d: Draw, name: str, s: dict, obs: Observation, n_auto: list[int],
                       n_ints: list[int], flags: list[float]) -> list[dict]:
    """Per-EB weight entries of one field (`name`) in science spw `s` (EBs without it left out)."""
    t_int = obs.t_int
    entries = []
    for k, eb in enumerate(obs.ebs):
        n_int = n_ints[k]
        if n_int == 0:
            continue
        flagged = round(min(0.5, flags[k] * d.uniform(0.8, 1.25)), 3)
        sw = sum_weight(obs.sefd_eb[k] * math.exp(d.normal(0, 0.05)), s["nchan"] * s["effective_bw"], t_int,
                        n_int, obs.n_bl_eb[k], flagged)
        entries.append({"field": name, "spw": s["id"], "eb": eb["id"], "sum_weight": sig(sw),
                        "flagged_fraction": flagged, "rows": n_int * (obs.n_bl_eb[k] + n_auto[k]),
                        "time_on_source": round(n_int * t_int, 3)})
    return entries


def _summed_over_ebs(entries: list[dict]) -> tuple[float, Optional[dict]]:
    """The sum of weights (Jy^-2) of per-EB entries and their entry summed over EBs (None if no rows)."""
    acc = {"sum_weight": 0.0, "rows": 0, "time_on_source": 0.0, "flag": 0.0}
    for entry in entries:
        acc["sum_weight"] += entry["sum_weight"]
        acc["rows"] += entry["rows"]
        acc["time_on_source"] += entry["time_on_source"]
        acc["flag"] += entry["flagged_fraction"] * entry["rows"]
    if not acc["rows"]:
        return acc["sum_weight"], None
    return acc["sum_weight"], {"field": entries[0]["field"], "spw": entries[0]["spw"],
                               "sum_weight": sig(acc["sum_weight"]),
                               "flagged_fraction": round(acc["flag"] / acc["rows"], 3), "rows": acc["rows"],
                               "time_on_source": round(acc["time_on_source"], 3)}


def draw_weights(d: Draw, f: Fields, obs: Observation, sci: list[dict], n_auto: list[int]
                 ) -> tuple[list[dict], dict[tuple[int, int], float]]:
    """Weight entries of every field with a science intent (calibrators and targets) in every
    science spw, as the Measurement Set reader gives them: per EB unless that makes more than
    32 entries, else summed over EBs. Also returns sum of weights per (field id, spw id), Jy^-2.

    Calibrators' time on source: `obs.on_source`; targets share `obs.t_target_eb`; `n_auto`:
    antennas per EB.
    """
    weights = []
    cal_ids = sorted({fid for fid, _ in obs.on_source})
    per_eb = (len(cal_ids) + len(f.target_ids)) * len(sci) * len(obs.ebs) <= MAX_PER_EB_ENTRIES
    sum_w: dict[tuple[int, int], float] = {}
    for fid in cal_ids + f.target_ids:
        n_ints, flags = _integrations(d, fid, f, obs)
        for s in sci:
            entries = _field_spw_entries(d, f.fields[fid]["name"], s, obs, n_auto, n_ints, flags)
            sum_w[(fid, s["id"])], summed = _summed_over_ebs(entries)
            if per_eb:
                weights.extend(entries)
            elif summed is not None:
                weights.append(summed)
    return weights, sum_w
