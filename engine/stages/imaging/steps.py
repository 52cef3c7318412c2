"""The imaging stage's steps between the kernels and the rules: what an image's measurements
give the facts (the threshold after the dirty image, the QA score after cleaning) and how they
go into its record and weblog numbers, each with where it came from."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence

from almarules.engine.evaluate.decisions import Decisions
from almarules.engine.stages.imaging import data as vdata
from almarules.engine.stages.imaging.job import ImageJob, ImagingError, Setting, setting
from almarules.engine.stages.imaging.record import (CleanRecord, DataRecord, ImageRecord, MajorCycleRecord,
                                                    StatsRecord)
from almarules.kernels.beam import Beam

if TYPE_CHECKING:
    from almarules.engine.stages.imaging.stage import Stage


def is_nan(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def measured(value: Optional[float], unit: str, how: str) -> Setting:
    ok = value is not None and math.isfinite(value)
    return Setting(value=float(value) if ok else None, unit=unit, source=f"measured: {how}")


def ruled(dec: Decisions, job: ImageJob, attr: str, unit: Optional[str] = None) -> Optional[Setting]:
    try:
        return setting(dec, f"{job.path}.{attr}", unit)
    except ImagingError:
        return None


def data_record(sel: vdata.Selection, vs_rows: int, nchan: int, nvis: int, nflag: int, column: str) -> DataRecord:
    total = nvis + nflag
    return DataRecord(measurement_sets=sel.ms_names, field_ids=sel.field_ids(), column=column, rows=vs_rows,
                      channels=nchan, visibilities=nvis, flagged_fraction=nflag / total if total else 1.0,
                      channel_selection=sel.how)


def bandwidths(sel: vdata.Selection) -> tuple[float, float, float]:
    """(centre frequency LSRK, aggregate bandwidth, fractional bandwidth) in Hz, Hz, 1."""
    lo, hi = sel.lsrk_edges()
    agg = sum(s.bandwidth * s.doppler for s in sel.spws) / max(1, len({s.ms for s in sel.spws}))
    centre = (lo + hi) / 2
    return centre, agg, (hi - lo) / centre


def weblog_frequency(rec: ImageRecord, sel: vdata.Selection) -> None:
    centre, agg, frac = bandwidths(sel)
    how = "the selected channels' LSRK edges (casacore measures)"
    rec.weblog.centre_frequency = measured(centre / 1e9, "GHz", f"mid point of {how}")
    rec.weblog.aggregate_bandwidth = measured(agg / 1e9, "GHz", "sum of the selected channel widths (LSRK)")
    rec.weblog.fractional_bandwidth = measured(frac, "", f"span / centre of {how}")


def column_facts(rec: ImageRecord, data_calibrated: bool) -> dict:
    """The measurement's data_column and calibrated: DATA read from any MS (CORRECTED_DATA absent
    or empty there) makes the image uncalibrated, unless the user says DATA is calibrated."""
    if rec.data is None:
        return {}
    columns = {c.strip() for c in rec.data.column.split(",") if c.strip()}
    if not columns <= {"DATA", "CORRECTED_DATA"}:
        return {}
    data = "DATA" in columns
    return {"data_column": "DATA" if data else "CORRECTED_DATA", "calibrated": data_calibrated or not data}


def threshold(stage: Stage, job: ImageJob, rec: ImageRecord, sigma: float, peak: float, dr: float) -> float:
    dec = stage.measure(job, sensitivity=sigma, dirty_peak=peak, dirty_dr=dr,
                        **column_facts(rec, stage.data_calibrated))
    rec.weblog.sensitivity = ruled(dec, job, "sensitivity", "mJy/beam")
    rec.weblog.dirty_dr = ruled(dec, job, "dirty_dr")
    rec.weblog.dr_correction = ruled(dec, job, "dr_correction")
    thr = setting(dec, f"{job.path}.threshold", "Jy/beam")
    rec.weblog.threshold = Setting(value=float(thr.value) * 1e3, unit="mJy/beam", source=thr.source)
    return float(thr.value)


def score(stage: Stage, job: ImageJob, rec: ImageRecord, rms: float, beam: Optional[Beam],
           residual_rms: Optional[float], **more) -> None:
    """Measure the cleaned image (rms, residual rms, divergence, beam, and `more` measurement
    fields) and read its QA score and colour from the rules."""
    dec = stage.measure(job, rms=rms, residual_rms=residual_rms, clean_diverged=clean_diverged(rec),
                        beam_major=beam.bmaj_arcsec if beam else None, beam_minor=beam.bmin_arcsec if beam else None,
                        beam_pa=beam.bpa_deg if beam else None, **more)
    rec.weblog.rms = ruled(dec, job, "rms", "mJy/beam")
    rec.weblog.qa_score = ruled(dec, job, "qa_score")
    rec.weblog.qa_colour = ruled(dec, job, "qa_colour")
    try:
        reasons = dec.value(f"{job.path}.qa_score").reasons
    except KeyError:
        reasons = []
    rec.weblog.qa_reasons = [f"{r.sign}{r.amount:.3g} {r.reason}" for r in reasons]


def beam_weblog(rec: ImageRecord, b: Beam, how: str) -> None:
    rec.weblog.beam_major = measured(b.bmaj_arcsec, "arcsec", how)
    rec.weblog.beam_minor = measured(b.bmin_arcsec, "arcsec", how)
    rec.weblog.beam_pa = measured(b.bpa_deg, "deg", how)


def clean_record(results: Sequence, masks_px: int) -> CleanRecord:
    if len(results) == 1:
        r = results[0]
        return CleanRecord(iterations=r.iterations, major_cycles=len(r.history), stopped_by=r.stopped_by,
                           initial_peak=r.initial_peak, final_peak=r.history[-1].residual_peak if r.history else
                           r.initial_peak, model_flux=float(r.model.sum()), psf_sidelobe=r.sidelobe,
                           mask_pixels=masks_px,
                           history=[MajorCycleRecord(iterations=h.iterations, cycle_threshold=h.cycle_threshold,
                                                     minor_stopped_by=h.minor_stopped_by, peak_after=h.residual_peak,
                                                     model_flux=h.model_flux) for h in r.history])
    reasons = sorted({r.stopped_by for r in results})
    return CleanRecord(iterations=sum(r.iterations for r in results),
                       major_cycles=max((len(r.history) for r in results), default=0),
                       stopped_by=", ".join(reasons), model_flux=float(sum(r.model.sum() for r in results)),
                       mask_pixels=masks_px)


def stats_record(job: ImageJob, st, channel: Optional[int] = None) -> StatsRecord:
    ix, iy = st.peak_pixel
    n, cell = job.imsize, job.cell_arcsec
    finite = (lambda v: float(v) if math.isfinite(v) else None)
    return StatsRecord(peak=st.peak, peak_pixel=(ix, iy), peak_offset_arcsec=((n // 2 - ix) * cell, (iy - n // 2) * cell),
                       peak_channel=channel, min=st.min, rms_outside_mask=st.rms_outside_mask,
                       rms_annulus=finite(st.rms_annulus), pixels_outside_mask=st.n_outside, pixels_annulus=st.n_annulus)


def sanity(rec: ImageRecord, rms: float, sigma: float) -> None:
    if sigma > 0 and math.isfinite(rms) and not 0.1 < rms / sigma < 10:
        rec.warnings.append(
            f"the measured rms ({rms:.3g} Jy/beam) is {rms / sigma:.3g} x the sensitivity from the weights "
            f"({sigma:.3g} Jy/beam): the WEIGHT column may not hold absolute 1/sigma^2 weights, or the data "
            f"are not calibrated")


def diverged_channels(rec: ImageRecord) -> list[int]:
    return [c.channel for c in rec.channels if c.stopped_by == "divergence"]


def clean_diverged(rec: ImageRecord) -> Optional[bool]:
    """The clean stopped on divergence (a cube: in some channel); None when there was no clean."""
    if rec.clean is None:
        return None
    return "divergence" in rec.clean.stopped_by.split(", ") or bool(diverged_channels(rec))
