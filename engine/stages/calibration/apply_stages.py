"""setjy (flux models of the flux calibrators) and applycal (the solutions applied to every field).

applycal: for each field, spw and row, c_ij = g_i conj(g_j) b_i(nu) conj(b_j(nu)) per
correlation (receptor p on antenna i, q on antenna j), with g the product of the phase and
amplitude solutions interpolated linearly in time (`kernels.gaincal.interpolate_gains`);
CORRECTED_DATA = DATA / c, WEIGHT = (1 / SIGMA^2) x |c|^2 (calwt; SIGMA describes DATA, as in
CASA), samples without a valid solution flagged and counted. Calibrators take their own solutions (phase per integration, amplitude per scan);
targets and check sources the nearest phase calibrator's per-scan solutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numexpr
import numpy as np

from almarules.engine.facts.model import FluxMeasurement
from almarules.engine.stages.calibration.session import CalibrationError, CalSession, MSInfo, Outcome, SpwSolutions
from almarules.engine.stages.calibration.solve import multiply
from almarules.engine.stages.calibration.visdata import (
    CalData, SpwSetup, column_filled, ensure_columns, read_rows, spw_rows, write_rows)
from almarules.kernels import gaincal


# ---------------------------------------------------------------- setjy
def setjy(s: CalSession, fluxfile: Optional[str], epoch_mjd: float) -> Outcome:
    """The flux model of every flux calibrator in every spw: the flux file (flux.csv) when it
    names the field and spw, else a catalogue model (Perley-Butler 2017), else unknown (said);
    solar-system objects are unsupported. The flux file's values for the other calibrators are
    kept as the catalogue gfluxscale is checked against."""
    from almarules.engine.stages.calibration import fluxmodels

    out = Outcome()
    entries = fluxmodels.read_flux_csv(fluxfile) if fluxfile else []
    by_key = {}
    for e in entries:
        by_key[(str(e.field), int(e.spw))] = e
        if e.field_id is not None:
            by_key[(str(e.field_id), int(e.spw))] = e
    fluxes = [m for m in s.facts.fluxscales or [] if not m.reference]
    for info in s.ms:
        for name in s.calibrators:
            if name not in info.fields:
                continue
            for spw, setup in sorted(info.setups.items()):
                e = by_key.get((name, spw)) or by_key.get((str(info.fields[name]), spw))
                if e is not None:
                    s.catalogue[(name, spw)] = float(e.I)
        for name in s.fields_with("AMPLITUDE"):
            if name not in info.fields:
                continue
            if fluxmodels.is_solar_system(name):
                out.warnings.append(f"{name}: solar-system flux calibrators are not supported (no planet models): "
                                    f"no flux scale from it")
                continue
            for spw, setup in sorted(info.setups.items()):
                e = by_key.get((name, spw)) or by_key.get((str(info.fields[name]), spw))
                if e is not None:
                    flux, spix, source = float(e.I), float(e.spix or 0.0), e.source
                else:
                    m = fluxmodels.model_for(name, np.array([setup.centre]), epoch_mjd)
                    if m is None:
                        out.warnings.append(f"{name} spw {spw}: flux density unknown (not in the flux file, no "
                                            f"catalogue model for it): give it with --fluxfile flux.csv")
                        continue
                    flux, spix, source = float(m.flux_jy[0]), float(m.spix[0]), m.source
                    if not m.in_range:
                        out.warnings.append(f"{name} spw {spw}: {setup.centre / 1e9:.3f} GHz is outside the flux "
                                            f"model's range ({m.source})")
                s.models[(name, spw)] = (flux, spix, setup.centre, source)
                out.numbers.setdefault("models", {}).setdefault(name, {})[str(spw)] = {
                    "frequency": setup.centre, "flux": flux, "spix": spix, "source": source}
                fluxes.append(FluxMeasurement(field=name, spw=spw, frequency=setup.centre, flux=flux, error=0.0,
                                              spix=spix, catalogue=flux, reference=True))
                out.items.append(f"{name} spw {spw}")
                out.notes.append(f"{name} spw {spw}: {flux:.4f} Jy at {setup.centre / 1e9:.4f} GHz, spectral index "
                                 f"{spix:.3f} ({source})")
    s.facts.fluxscales = fluxes
    s.changed()
    if not s.models:
        out.warnings.append("no flux calibrator has a flux model: fluxes will be on a relative scale")
    return out


# ---------------------------------------------------------------- applycal
def field_gains(s: CalSession, k: int, info: MSInfo, sol: SpwSolutions, name: str) -> Optional[gaincal.GainTable]:
    """The gains applied to field `name`: its own (phase per integration x amplitude per scan) for a
    calibrator, the nearest phase calibrator's per-scan phase x amplitude otherwise."""
    if name in sol.phase_int and name in sol.amp_scan:
        return multiply(sol.phase_int[name], sol.amp_scan[name])
    cal = s.phase_calibrator_for(info, name)
    if cal is None or cal not in sol.amp_scan:
        return None
    phase = sol.phase_scan.get(cal)
    return multiply(phase, sol.amp_scan[cal]) if phase is not None else sol.amp_scan[cal]


def gain_columns(setup) -> np.ndarray:
    """(ncorr, 2): for each correlation, the column of its two receptors in the gain and bandpass
    arrays, whose columns are the parallel hands in `setup.parallel` order (a single YY hand is
    column 0); -1 for a receptor no parallel hand was solved for."""
    col = np.full(2, -1)
    col[setup.receptors[setup.parallel, 0]] = np.arange(len(setup.parallel))
    return col[setup.receptors]


def _take(a: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """a[..., cols] with NaN where a column is -1 (a receptor without solutions)."""
    out = a[..., np.maximum(cols, 0)]
    return np.where(cols >= 0, out, np.nan) if (cols < 0).any() else out


def correct(cd: CalData, gains: Optional[gaincal.GainTable], bandpass: Optional[np.ndarray],
            row_gains: Optional[tuple[np.ndarray, np.ndarray]] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(corrected vis, weight, flag) of every correlation of `cd` (module doc), with the gains of
    `gains` interpolated to each row, or given per row and receptor as `row_gains` (g_i, g_j), each
    (nrow, npol). The bandpass products b_i conj(b_j) are formed once per baseline, then gathered
    per row; the element-wise work runs in numexpr (threads, no temporaries)."""
    rec = gain_columns(cd.setup)
    nrow, nchan, ncorr = cd.vis.shape
    if bandpass is not None:
        nant = bandpass.shape[0]
        baseline, inverse = np.unique(cd.ant1 * nant + cd.ant2, return_inverse=True)
        b1, b2 = baseline // nant, baseline % nant
        c = (_take(bandpass[b1], rec[:, 0]) * np.conj(_take(bandpass[b2], rec[:, 1])))[inverse]
    else:
        c = np.ones((nrow, nchan, ncorr), complex)
    if gains is not None and row_gains is None:
        row_gains = gaincal.gains_for_rows(gains, cd.time, cd.ant1, cd.ant2)
    if row_gains is not None:
        gi, gj = row_gains  # (nrow, npol) per receptor
        g = (_take(gi, rec[:, 0]) * np.conj(_take(gj, rec[:, 1])))[:, None, :]  # noqa: F841 (numexpr reads it)
        c = numexpr.evaluate("c * g")
    v, w = cd.vis, cd.weight  # noqa: F841
    c2 = numexpr.evaluate("real(c) ** 2 + imag(c) ** 2")
    good = numexpr.evaluate("(c2 > 0) & (c2 < 1e300)")  # NaN and inf fail both
    vis = numexpr.evaluate("where(good, v / c, 0)")
    weight = numexpr.evaluate("where(good, w * c2, 0)")
    return vis, weight, cd.flag | ~good


def applycal(s: CalSession) -> Outcome:
    """Write CORRECTED_DATA, FLAG and the weights of every field of every working copy."""
    out = Outcome(score="dataset.applycal_score", colour="dataset.applycal_colour")
    if not any(sol.bandpass or sol.amp_scan for sol in s.solutions.values()):
        raise CalibrationError("applycal: nothing to apply (no bandpass or gain solved; do the calibrators have "
                               "intents? pass --intents for an MS without them)")
    tasks = []  # chunks of rows of each spw of each MS: their table access alternates with the others' numerics
    for k, info in enumerate(s.ms):
        ensure_columns(info.path, ("CORRECTED_DATA",))
        spectrum = column_filled(info.path, "WEIGHT_SPECTRUM")
        for spw, setup in sorted(info.setups.items()):
            sol = s.solutions.get((k, spw), SpwSolutions())
            chunk = _Chunk(info, spw, setup, sol.bandpass.solution if sol.bandpass else None,
                           {name: field_gains(s, k, info, sol, name) for name in info.fields}, spectrum)
            rows = spw_rows(info.path, setup)
            step = max(1, CHUNK_BYTES // (16 * setup.freq.size * len(setup.corr_names)))
            tasks += [(chunk, rows[start:start + step]) for start in range(0, rows.size, step)]
        out.items.append(info.source.name)
    counts = s.map(lambda t: t[0].apply(t[1]), tasks)
    new, total, flagged_after = (sum(c[i] for c in counts) for i in range(3))
    uncalibrated: dict[str, list[int]] = {}
    for (chunk, _), c in zip(tasks, counts, strict=True):
        for name in c[3]:
            if chunk.spw not in uncalibrated.setdefault(name, []):
                uncalibrated[name].append(chunk.spw)
    cal = s.facts.calibration
    cal.flagged_applycal = new / max(total, 1)
    cal.flagged_after = flagged_after / max(total, 1)
    s.changed()
    out.notes.append(f"{new} visibilities ({100 * new / max(total, 1):.2f} %) newly flagged for want of a valid "
                     f"solution; {100 * flagged_after / max(total, 1):.2f} % flagged in all; calwt: weights x |c|^2")
    for name, spws in uncalibrated.items():
        out.warnings.append(f"{name} (spws {', '.join(map(str, spws))}): no gain solution applies (no phase "
                            f"calibrator solved): its CORRECTED_DATA carries the bandpass only")
    out.numbers.update({"newly_flagged": new, "visibilities": total})
    return out


#: rows per applycal chunk: about this many bytes of complex128 visibilities (the chunk's arrays
#: are reused from one chunk to the next instead of whole-spw arrays allocated once each)
CHUNK_BYTES = 16 * 1024 ** 2


@dataclass(frozen=True)
class _Chunk:
    """What applycal applies to the rows of one spw of one working copy."""

    info: MSInfo
    spw: int
    setup: SpwSetup
    bandpass: Optional[np.ndarray]
    gains: dict[str, Optional[gaincal.GainTable]]  # field name -> its gains (None: no solution applies)
    spectrum: bool  # the MS has WEIGHT_SPECTRUM

    def apply(self, rows: np.ndarray) -> tuple[int, int, int, list[str]]:
        """Calibrate main-table rows `rows`: (newly flagged, samples, flagged after, the fields
        among them that no gain solution applies to)."""
        cd = read_rows(self.info.path, self.setup, rows)
        npol = len(self.setup.parallel)
        gi, gj = np.ones((cd.rows.size, npol), complex), np.ones((cd.rows.size, npol), complex)
        without = []
        for name, fid in self.info.fields.items():
            m = np.isin(cd.field, self.info.field_ids.get(name, [fid]))  # every pointing of a mosaic
            if not m.any():
                continue
            if self.gains[name] is None:
                without.append(name)
            else:
                gi[m], gj[m] = gaincal.gains_for_rows(self.gains[name], cd.time[m], cd.ant1[m], cd.ant2[m])
        vis, weight, flag = correct(cd, None, self.bandpass, (gi, gj))
        _write(self.info, cd, vis, weight, flag, self.spectrum)
        return int((flag & ~cd.flag).sum()), flag.size, int(flag.sum()), without


def _write(info: MSInfo, cd: CalData, vis: np.ndarray, weight: np.ndarray, flag: np.ndarray, spectrum: bool) -> None:
    """CORRECTED_DATA, FLAG, FLAG_ROW, WEIGHT (the channel mean of the per-channel weights of the
    unflagged samples) and WEIGHT_SPECTRUM when the MS has it filled. SIGMA stays DATA's (CASA's
    convention: WEIGHT describes CORRECTED_DATA), so a re-run solves with the weights DATA came with."""
    ok = ~flag
    n = gaincal.channel_sum(ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        wrow = np.where(n > 0, gaincal.channel_sum(np.where(ok, weight, 0)) / np.maximum(n, 1), 0.0)
    cols = {"CORRECTED_DATA": vis, "FLAG": flag, "FLAG_ROW": flag.all(axis=(1, 2)), "WEIGHT": wrow}
    if spectrum:
        cols["WEIGHT_SPECTRUM"] = weight
    write_rows(info.path, cd.rows, cols)
