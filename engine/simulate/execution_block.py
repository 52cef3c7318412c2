"""One execution block: geometry, noise levels, corruptions and flags, then the visibilities.

* Noise: radiometer equation (`almarules.kernels.noise`); ``SIGMA`` = sigma and
  ``WEIGHT`` = 1/sigma^2 per correlation, the values of the noise actually added (with
  noise off they hold the nominal values of the noise that would have been added).
* Corruptions: `almarules.kernels.corrupt` (antenna gains drifting in time, bandpasses), and
  for flagging tests low-gain antennas and outlier visibilities (`outliers`).
* Random draws: `_rng` (see Determinism in the package docstring).

Work is done in chunks of consecutive integrations on one field (at most
`CHUNK_VISIBILITIES`): the sky model (`sky_model`) with numexpr (2 threads), corruptions
and noise per integration on a 2-thread pool, and the table writes on a background thread
(`writer`), so memory stays bounded (a few hundred MB) whatever the length of the
observation. The truth record of the EB comes from `truth`.
"""

from __future__ import annotations

import math
import time as _time
from pathlib import Path
from typing import Optional

import numpy as np

from almarules.kernels import corrupt as kcorrupt
from almarules.kernels import noise as knoise
from almarules.kernels import sky as ksky

from .errors import SimError
from .outliers import plan_outliers, truth_extras
from .plan import EBPlan, Plan, make_timeline
from .sky_model import sky_model_for
from .tables import main_desc, main_dminfo, write_subtables, write_syscal
from .times import utc_text
from .truth import truth_record
from .writer import Writer


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))))


class Timer:
    """Seconds spent per stage (what `simulate` returns in `timings`)."""

    def __init__(self):
        self.t: dict[str, float] = {}

    def add(self, key: str, start: float) -> float:
        now = _time.perf_counter()
        self.t[key] = self.t.get(key, 0.0) + now - start
        return now


CHUNK_VISIBILITIES = 8_000_000  # visibilities (row x channel x correlation) computed per chunk


def _chunks(field: np.ndarray, per_chunk: int):
    """(start, stop) runs of integrations on one FIELD row, at most `per_chunk` long."""
    n = field.size
    c0 = 0
    while c0 < n:
        c1 = c0 + 1
        while c1 < n and c1 - c0 < per_chunk and field[c1] == field[c0]:
            c1 += 1
        yield c0, c1
        c0 = c1


def _corruptions(plan: Plan, eb: EBPlan, tl, seed: int):
    """(gain parameters, gains (nint, nant, npol), bandpass parameters per spw, per-baseline
    bandpasses per spw) of EB `eb`; Nones where corruptions (or bandpasses) are off."""
    cfg, nspw, nant, npol = plan.cfg, len(plan.spws), plan.nant, 2
    cc = cfg.corruptions
    gains = None
    gain_params = None
    bp_params: list[Optional[kcorrupt.BandpassParams]] = [None] * nspw
    bb: list[Optional[np.ndarray]] = [None] * nspw
    if cc.enabled:
        gain_params = kcorrupt.draw_gains(
            _rng(seed, eb.index, 1), nant, npol, amp_rms=cc.gain_amplitude, amp_drift=cc.gain_amplitude_drift,
            phase_rms=math.radians(cc.gain_phase), pol_phase_rms=math.radians(cc.gain_phase_pol),
            phase_drift=math.radians(cc.gain_phase_drift), period_min=cc.drift_periods[0],
            period_max=cc.drift_periods[1], t0=eb.start)
        gains = kcorrupt.evaluate_gains(gain_params, tl.times)  # (nint, nant, npol)
        if plan.low_gain:
            gains = kcorrupt.scale_antenna_gains(gains, [a for a, _ in plan.low_gain], [f for _, f in plan.low_gain])
        if cc.bandpass:
            for s in plan.spws:
                bp_params[s.id] = kcorrupt.draw_bandpass(
                    _rng(seed, eb.index, 2, s.id), nant, npol, s.centre, slope_rms=cc.bandpass_slope,
                    ripple_min=cc.bandpass_ripple[0], ripple_max=cc.bandpass_ripple[1],
                    phase_rms=math.radians(cc.bandpass_phase), delay_rms=cc.bandpass_delay * 1e-12)
                bb[s.id] = kcorrupt.baseline_bandpass(kcorrupt.evaluate_bandpass(bp_params[s.id], s.freqs),
                                                      plan.a1, plan.a2).astype(np.complex64)
    return gain_params, gains, bp_params, bb


def simulate_eb(plan: Plan, eb: EBPlan, ms_path: Path, progress, done_before: int, total: int,
                 timer: Timer, final_path: Path) -> dict:
    import casacore.tables as ct

    cfg = plan.cfg
    seed = plan.seed
    t_start = _time.perf_counter()
    tl = make_timeline(plan, eb)
    nint = tl.times.size
    nspw, nbl, nant = len(plan.spws), plan.nbl, plan.nant
    npol = 2
    geo = plan.geometry
    pos = plan.layout.positions - plan.layout.positions.mean(axis=0)

    # -------------------------------------------- geometry per integration
    mats = np.empty((nint, 3, 3))
    elev = np.empty(nint)
    for i in range(nint):
        _, _, ra, dec = plan.field_rows[tl.field[i]]
        mats[i] = geo.uvw_matrix(tl.times[i], ra, dec)
        elev[i] = geo.elevation(mats[i])
    low = np.flatnonzero(elev < math.radians(cfg.schedule.min_elevation))
    if low.size:
        i = int(low[0])
        name = plan.sources[plan.field_rows[tl.field[i]][0]].cfg.name
        raise SimError(f"schedule: field {name} is at elevation {math.degrees(elev[i]):.1f} deg at "
                       f"{utc_text(tl.times[i])} UTC, below min_elevation {cfg.schedule.min_elevation:g} deg; "
                       f"choose another start or hour angle")
    ant_uvw = np.einsum("tij,aj->tai", mats, pos)  # (nint, nant, 3); baselines per chunk below
    t0 = timer.add("uvw and geometry (casacore measures)", t_start)

    # -------------------------------------------- noise level per integration and spw
    nz = cfg.noise
    if nz.atmosphere is not None:
        tsys_t = knoise.tsys_airmass(nz.atmosphere.trx, nz.atmosphere.tatm, nz.atmosphere.tau_zenith, elev)
    else:
        tsys_t = np.full(nint, nz.tsys)
    tsys = np.empty((nint, nspw))
    for s in plan.spws:
        tsys[:, s.id] = s.tsys if s.tsys is not None else tsys_t
    sefd = knoise.sefd(tsys, plan.diameter, nz.aperture_efficiency)
    sigma = knoise.sigma_visibility(sefd, np.array([s.ebw for s in plan.spws])[None, :],
                                    cfg.schedule.integration, eta_c=nz.correlator_efficiency)  # (nint, nspw)
    weight = knoise.weight_from_sigma(sigma)

    # -------------------------------------------- corruptions
    gain_params, gains, bp_params, bb = _corruptions(plan, eb, tl, seed)

    # -------------------------------------------- sky per (field row, spw)
    sky, line_truth, topo = sky_model_for(plan, eb, tl)
    t0 = timer.add("sky-model setup (components, Doppler)", t0)

    # -------------------------------------------- flags
    ant_flag = np.zeros(nant, bool)
    ant_flag[plan.flagged_ants] = True
    row_flag = ant_flag[plan.a1] | ant_flag[plan.a2]  # (nbl,)
    chan_flag = []
    for s in plan.spws:
        cf = np.zeros(s.nchan, bool)
        for a, b in cfg.flags.channels.get(s.id, []):
            cf[a:b + 1] = True
        chan_flag.append(cf)
    frow = np.stack([row_flag | chan_flag[s.id].all() for s in plan.spws]).reshape(-1)  # (nspw * nbl,)
    outl = plan_outliers(plan, eb, tl, frow, lambda sd: _rng(sd, eb.index, 4))

    # -------------------------------------------- the MS
    nchan_max = max(s.nchan for s in plan.spws)
    uniform = len({s.nchan for s in plan.spws}) == 1
    ms = ct.default_ms(str(ms_path), main_desc(), main_dminfo(nchan_max))
    try:
        ms.putcolkeyword("UVW", "MEASINFO", {"type": "uvw", "Ref": "J2000"})
        write_subtables(ct, ms, plan, eb, line_truth)
        syscal_rows = []
        if cfg.schedule.atmosphere_scans:
            for k, scan in enumerate(eb.scans):
                if scan.role != "atmosphere":
                    continue
                idx = np.flatnonzero(tl.scan_index == k)
                tmid = float(tl.times[idx].mean())
                length = idx.size * cfg.schedule.integration
                for a in range(nant):
                    for s in plan.spws:
                        syscal_rows.append((a, s.id, tmid, length, float(tsys[idx[0], s.id])))
            write_syscal(ct, ms, plan, syscal_rows)
        nrows = nint * nspw * nbl
        ms.addrows(nrows)
        t0 = timer.add("table writing", t0)

        per_chunk = max(1, int(CHUNK_VISIBILITIES // (nspw * nbl * nchan_max * npol)))
        flag_blocks = []
        for s in plan.spws:
            f = np.zeros((nbl, s.nchan, npol), bool)
            f[row_flag] = True
            f[:, chan_flag[s.id], :] = True
            flag_blocks.append(f)
        writer = Writer(ms, plan, tl, sigma, weight, flag_blocks, frow, uniform, timer)
        pool = knoise._pool()
        done = 0
        try:
            for c0, c1 in _chunks(tl.field, per_chunk):
                nt = c1 - c0
                fid = int(tl.field[c0])
                uvw = ant_uvw[c0:c1, plan.a1] - ant_uvw[c0:c1, plan.a2]  # CASA: uvw(ANTENNA1) - uvw(ANTENNA2)
                data = np.empty((nt, nspw, nbl, nchan_max, npol), np.complex64) if uniform else None
                blocks = []
                for s in plan.spws:
                    t0 = _time.perf_counter()
                    model = np.zeros((nt, nbl, s.nchan), np.complex128)
                    comps = sky[(fid, s.id)](np.arange(c0, c1))
                    if comps:
                        ksky.predict(uvw, s.freqs, comps, out=model)
                    t0 = timer.add("sky model (direct Fourier sum)", t0)
                    out = data[:, s.id] if uniform else np.empty((nt, nbl, s.nchan, npol), np.complex64)
                    g = gains[c0:c1] if gains is not None else None
                    sig = sigma[c0:c1, s.id].astype(np.float32)

                    def finish(j: int, s=s, out=out, model=model, g=g, sig=sig) -> None:
                        # corruptions (outliers included), then noise, of one integration (on a pool thread)
                        kcorrupt.apply_corruptions(model[j:j + 1], out[j:j + 1], plan.a1, plan.a2,
                                                   g[j:j + 1] if g is not None else None, bb[s.id])
                        if outl is not None:
                            outl.apply(c0 + j, s.id, out[j], model[j], ~chan_flag[s.id])
                        if nz.enabled:
                            noise = np.empty((nbl, s.nchan, npol), np.complex64)
                            knoise.fill_standard_complex([(_rng(seed, eb.index, 3, c0 + j, s.id), noise)])
                            noise *= sig[j]
                            out[j] += noise

                    list(pool.map(finish, range(nt)))
                    del model
                    timer.add("corruptions and noise (2 threads)", t0)
                    if not uniform:
                        blocks.append(out)
                writer.put(c0, c1, uvw, data if uniform else blocks)
                done += nt * nspw * nbl
                if progress is not None:
                    progress(done_before + done, total)
        finally:
            t0 = _time.perf_counter()
            writer.close()
            timer.add("waiting for the table writer", t0)
        t0 = _time.perf_counter()
    finally:
        ms.close()
    timer.add("table writing", t0)

    record = truth_record(plan, eb, tl, elev, tsys, sefd, sigma, weight, gain_params, gains, bp_params, sky,
                          line_truth, topo, final_path, syscal_rows if cfg.schedule.atmosphere_scans else [],
                          row_flag, chan_flag)
    record["corruptions"].update(truth_extras(plan, tl, outl, gains))
    return record
