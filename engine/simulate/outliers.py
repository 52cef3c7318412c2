"""Corruptions for flagging tests: outlier visibilities and low-gain antennas of one execution block.

* Outliers (`corruptions.outliers`): the candidates are the (integration, spw, baseline,
  correlation) slots of the EB whose row is not flagged (FLAG_ROW false) and whose field is
  in `fields` (default: all); `floor(fraction * n + 1/2)` of them (or `count`) are drawn without
  replacement (`almarules.kernels.corrupt.choose_outliers`) from
  ``SeedSequence(outliers.seed or the simulation's seed, spawn_key=(eb, 4))``. Each is a
  baseline-based gain glitch: every channel of the corrupted model is multiplied by
  `amplitude_factor` (`kernels.corrupt.apply_outliers`) before the noise is added, as antenna
  gains are (the noise is not scaled). FLAG, WEIGHT and SIGMA are left as they are. So on
  calibrated data (corrected = DATA / (g g* b b*)) with the model M, an outlier's
  channel-averaged ``|corrected| - |model|`` is ``(amplitude_factor - 1) |mean M|`` plus noise of
  the usual size; the truth records ``|mean M|`` of each (`model_amplitude_jy`, mean over the
  unflagged channels), so a test knows which outliers its threshold can see.
* Low-gain antennas (`corruptions.low_gain_antennas`): the antenna's drawn complex gain is
  multiplied by `factor` at every integration, both polarisations
  (`kernels.corrupt.scale_antenna_gains`); the truth file's gains include the factor.

Neither changes any other random draw, so everything else in the MS is byte-identical to the
same config without these sections. Main-table row of slot (i, s, b) (`row_number`):
``(i * nspw + s) * nbl + b``, the writer's order (TIME, DATA_DESC_ID = spw, ANTENNA1, ANTENNA2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from almarules.kernels import corrupt as kcorrupt

from .errors import SimConfigError
from .plan import EBPlan, Plan, Timeline

CORR_NAMES = ("XX", "YY")


@dataclass
class Outliers:
    """The outliers of one EB: slots as flat indices into (nint, nspw, nbl, npol)."""

    factor: float
    seed: int
    flat: np.ndarray
    shape: tuple[int, int, int, int]
    n_candidates: int

    def __post_init__(self) -> None:
        self.model_amplitude = np.full(self.flat.size, np.nan)  # Jy, filled by `apply`
        self._slots = self._by_slot()

    def _by_slot(self) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(integration, spw) -> (baseline indices, correlation indices, positions in `flat`)."""
        if self.flat.size == 0:
            return {}
        i, s, b, p = np.unravel_index(self.flat, self.shape)
        slot = i * self.shape[1] + s  # non-decreasing: `flat` is sorted
        keys, starts = np.unique(slot, return_index=True)
        ends = np.append(starts[1:], slot.size)
        return {(int(k) // self.shape[1], int(k) % self.shape[1]): (b[a:e], p[a:e], np.arange(a, e))
                for k, a, e in zip(keys, starts, ends, strict=True)}

    def apply(self, integration: int, spw: int, vis: np.ndarray, model: np.ndarray, chan_ok: np.ndarray) -> None:
        """Scale the outlier spectra of one (integration, spw) in `vis` (nbl, nchan, npol; corrupted model,
        before noise) and record the amplitude of each one's model (nbl, nchan; Jy) averaged over `chan_ok`."""
        hit = self._slots.get((integration, spw))
        if hit is None:
            return
        b, p, pos = hit
        kcorrupt.apply_outliers(vis, b, p, self.factor)
        self.model_amplitude[pos] = np.abs(model[b][:, chan_ok].mean(axis=1))


def row_number(integration: np.ndarray, spw: np.ndarray, baseline: np.ndarray, nspw: int, nbl: int) -> np.ndarray:
    """Main-table row of (integration, spw, baseline) slots, in the writer's row order."""
    return (np.asarray(integration) * nspw + np.asarray(spw)) * nbl + np.asarray(baseline)


def plan_outliers(plan: Plan, eb: EBPlan, tl: Timeline, frow: np.ndarray,
                  rng_for: Callable[[int], np.random.Generator]) -> Optional[Outliers]:
    """The outliers of EB `eb`, or None when none are configured (or corruptions are off).

    frow: FLAG_ROW per (spw, baseline), flattened (nspw * nbl,); rng_for(seed) gives the
    generator of that seed for this EB's outliers.
    """
    cc = plan.cfg.corruptions
    oc = cc.outliers
    if oc is None or not cc.enabled:
        return None
    nint, nspw, nbl, npol = tl.times.size, len(plan.spws), plan.nbl, len(CORR_NAMES)
    if oc.fields is None:
        on_field = np.ones(nint, bool)
    else:
        ids = [fid for src in plan.sources if src.cfg.name in oc.fields for fid in src.field_ids]
        on_field = np.isin(tl.field, ids)
    candidates = np.broadcast_to(on_field[:, None, None, None] & ~frow.reshape(nspw, nbl)[None, :, :, None],
                                 (nint, nspw, nbl, npol))
    seed = plan.seed if oc.seed is None else oc.seed
    try:
        flat = kcorrupt.choose_outliers(rng_for(seed), candidates, fraction=oc.fraction, count=oc.count)
    except ValueError as exc:
        raise SimConfigError(f"corruptions.outliers.count: execution block {eb.index + 1}: {exc}") from None
    return Outliers(oc.amplitude_factor, seed, flat, (nint, nspw, nbl, npol), int(np.count_nonzero(candidates)))


def outliers_truth(plan: Plan, tl: Timeline, o: Outliers) -> dict:
    """The truth record of the outliers: settings, and one entry per (row, correlation) made an outlier."""
    oc = plan.cfg.corruptions.outliers
    nint, nspw, nbl, npol = o.shape
    i, s, b, p = np.unravel_index(o.flat, o.shape)
    rows = row_number(i, s, b, nspw, nbl)
    names = plan.layout.names
    entries = []
    for r, ii, ss, bb, pp, m in zip(rows.tolist(), i.tolist(), s.tolist(), b.tolist(), p.tolist(),
                                    o.model_amplitude.tolist(), strict=True):
        fid = int(tl.field[ii])
        a1, a2 = int(plan.a1[bb]), int(plan.a2[bb])
        entries.append({
            "row": r, "time_mjd_s": float(tl.times[ii]), "integration": ii, "scan": int(tl.scan[ii]),
            "field_id": fid, "field": plan.sources[plan.field_rows[fid][0]].cfg.name,
            "spw": ss, "data_desc_id": ss, "antenna1": a1, "antenna2": a2,
            "antenna1_name": names[a1], "antenna2_name": names[a2], "correlation": pp, "corr_type": CORR_NAMES[pp],
            "model_amplitude_jy": m})
    return {
        "model": "DATA[row, every channel, correlation] = amplitude_factor * g_a1 conj(g_a2) b_a1 conj(b_a2) model "
                 "+ noise (noise not scaled); FLAG, WEIGHT, SIGMA unchanged",
        "model_amplitude_jy": "|mean over the unflagged channels of the model (sky x primary beam)| of the row: "
                              "the calibrated outlier's |corrected| - |model| is (amplitude_factor - 1) times it, "
                              "plus noise",
        "amplitude_factor": o.factor, "fraction": oc.fraction, "count": int(o.flat.size),
        "seed": o.seed, "spawn_key": "(execution block index from 0, 4)",
        "fields": oc.fields, "n_candidates": o.n_candidates,
        "candidates": "(row, correlation) pairs with FLAG_ROW false on the chosen fields",
        "row_order": "row = (integration * n_spw + spw) * n_baselines + baseline (TIME, DATA_DESC_ID, ANTENNA1, "
                     "ANTENNA2); the (time_mjd_s, spw, antenna1, antenna2, correlation) tuple identifies the "
                     "visibility also in a re-sorted copy",
        "visibilities": entries,
    }


def low_gain_truth(plan: Plan) -> list[dict]:
    """The truth record of the low-gain antennas (their factors are in the recorded gains)."""
    lay = plan.layout
    return [{"antenna": lay.names[a], "station": lay.stations[a], "index": a, "factor": f,
             "model": "g_a,p(t) = factor * drawn gain, both pols, every integration; included in gains.amplitude"}
            for a, f in plan.low_gain]


def truth_extras(plan: Plan, tl: Timeline, o: Optional[Outliers], gains: Optional[np.ndarray]) -> dict:
    """The flagging corruptions' part of an EB's truth record (under ``corruptions``): the
    outliers and the low-gain antennas, each only when there are some."""
    extras: dict = {}
    if o is not None:
        extras["outliers"] = outliers_truth(plan, tl, o)
    if gains is not None and plan.low_gain:
        extras["low_gain_antennas"] = low_gain_truth(plan)
    return extras
