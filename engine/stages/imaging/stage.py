"""The imaging stage: the rules decide, the kernels compute.

For each image of the imaging list (or the ones asked for):

1. the rules give its parameters (`job.read_job`);
2. its visibilities are read (`data`), Briggs-weighted, gridded: PSF, fitted beam, dirty image,
   theoretical sensitivity from the weights (heuristics.md section 4) and the dirty dynamic
   range (section 5);
3. these go into the facts as the image's *measurement* and the rules are evaluated again: the
   DR correction and the clean threshold come out;
4. Cotton-Schwab clean with the rules' mask, niter, gain and cycle factor; restore; pbcor;
5. the rms outside the mask goes into the measurement and the rules are evaluated again: the
   image QA score (section 6);
6. FITS products named as pipeline.md says and a JSON record, written atomically.

Cubes go one channel at a time (per-channel weights, PSF, beam and clean) in two passes: the
first measures every channel's sensitivity and dirty peak (the cube's sensitivity is the median
over channels, its dirty peak the largest), the second cleans to the one threshold and streams the
planes to disk. Channel data are read in chunks of at most `memory_limit` bytes, and kept for the
second pass only when the whole cube fits in it.
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from almarules.engine.evaluate import api
from almarules.engine.products.contdat import ContDat
from almarules.engine.evaluate.decisions import Decisions, decisions
from almarules.engine.evaluate.program import Program
from almarules.engine.facts.model import Dataset, ImageMeasurement
from almarules.engine.stages.imaging import data as vdata
from almarules.engine.stages.imaging import plane
from almarules.engine.stages.imaging import resume
from almarules.engine.stages.imaging.job import ImageJob, ImagingError, Setting, read_job, setting, split_key
from almarules.engine.stages.imaging.writer import ProductWriter
from almarules.engine.stages.imaging.record import (ChannelRecord, CleanRecord, DataRecord, ImageRecord,
                                             MajorCycleRecord, RunRecord, StatsRecord)
from almarules.kernels.beam import Beam
from almarules.engine.ms.visibilities import DataSelectionError
from almarules.kernels.stats import image_stats

Progress = Callable[[str], None]


@dataclass
class Stage:
    """The inputs of an imaging run and the facts as they grow with each image's measurements."""

    program: Program
    facts: Dataset
    ms_paths: list[Path]
    out_dir: Path
    sets: Sequence[str] = ()
    mous: Optional[str] = None
    contdat: Optional[ContDat] = None
    extra_products: bool = False
    memory_limit: int = 2 * 1024 ** 3
    nthreads: int = 0
    log: Optional[Progress] = None
    data_calibrated: bool = False  # the user says DATA holds calibrated visibilities (--data-calibrated)
    unscaled: Optional[str] = None  # why the calibration of the data has no flux scale (None: it has one)
    inputs: Optional[str] = None  # the digest of this run's inputs, when the caller computed it (almarules run)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    dec: Decisions = field(init=False)
    _inputs: Optional[str] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.dec = self.evaluate()

    # ------------------------------------------------------------ the rules
    def evaluate(self) -> Decisions:
        return decisions(api.run(self.program, self.facts, self.sets, ", ".join(map(str, self.ms_paths))))

    def keys(self) -> list[str]:
        """The imaging list (`engine.stages.base.RuleStage`)."""
        return list(self.dec.entities.get("image", []))

    def run(self, key: str) -> ImageRecord:
        """Make one image: `make_image` (`engine.stages.base.RuleStage`)."""
        return make_image(self, key)

    def job(self, key: str) -> ImageJob:
        if key not in self.keys():
            close = [k for k in self.keys() if k.split(".")[0] == key.split(".")[0]]
            raise ImagingError(f"no image {key!r} in the imaging list"
                               + (f"; this field has {', '.join(close)}" if close else
                                  f"; the list has {len(self.keys())} images (see 'almarules plan')"))
        field_name, intent, spws, specmode = split_key(key)
        return read_job(self.dec, key, {"field": field_name, "intent": intent, "spws": spws, "specmode": specmode})

    def measure(self, job: ImageJob, **numbers) -> Decisions:
        """Record `numbers` (ImageMeasurement fields, Jy/beam, arcsec, deg) for the image and
        evaluate the rules again."""
        old = [m for m in (self.facts.measurements or []) if m.key == job.key]
        base = old[0].model_dump(exclude={"key"}) if old else {
            "field": job.field, "intent": job.intent, "spws": job.spws, "specmode": job.specmode}
        base.update({k: v for k, v in numbers.items() if v is not None and not _nan(v)})
        others = [m for m in (self.facts.measurements or []) if m.key != job.key]
        self.facts = self.facts.model_copy(update={"measurements": others + [ImageMeasurement(**base)]})
        self.dec = self.evaluate()
        return self.dec

    def inputs_sha256(self) -> str:
        """The digest of this run's inputs (`resume.inputs_digest`), computed once."""
        if self._inputs is None:
            self._inputs = self.inputs or resume.inputs_digest(self)
        return self._inputs

    def dish(self) -> float:
        return float(setting(self.dec, "dataset.dish_min", "m").value)

    def say(self, text: str) -> None:
        if self.log:
            self.log(text)


def _nan(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _measured(value: Optional[float], unit: str, how: str) -> Setting:
    ok = value is not None and math.isfinite(value)
    return Setting(value=float(value) if ok else None, unit=unit, source=f"measured: {how}")


def _ruled(dec: Decisions, job: ImageJob, attr: str, unit: Optional[str] = None) -> Optional[Setting]:
    try:
        return setting(dec, f"{job.path}.{attr}", unit)
    except ImagingError:
        return None


# ---------------------------------------------------------------- one image
def make_image(stage: Stage, key: str) -> ImageRecord:
    """Make one image; a failure the user can act on becomes a record with status "failed"."""
    t0 = time.perf_counter()
    rec = ImageRecord(key=key, field="", intent="", spws=[], specmode="", status="ok", rules=stage.dec.rules,
                      rules_sha256=stage.dec.rules_sha256, settings=list(stage.sets),
                      inputs_sha256=stage.inputs_sha256(),
                      run=RunRecord(started=stage.started.isoformat(), host=socket.gethostname(),
                                    threads=stage.nthreads))
    job: Optional[ImageJob] = None
    try:
        job = stage.job(key)
        rec.field, rec.intent, rec.spws, rec.specmode = job.field, job.intent, job.spws, job.specmode
        rec.parameters = job.settings
        rec.warnings += plane.pb_notes(job, stage.dish())
        _threshold_reachable(stage, job)
        writer = ProductWriter(stage, job, rec)
        writer.forget_record()
        if job.specmode == "cube":
            _cube(stage, job, rec, writer)
        else:
            _continuum(stage, job, rec, writer)
    except (ImagingError, DataSelectionError) as exc:
        rec.status, rec.error = "failed", str(exc)
        if job is not None:
            stage.measure(job, failed=True)
    except BaseException:  # Ctrl-C, a full disk, a bug: the image is whole or absent
        _discard_products(stage, rec)
        raise
    _judge(rec, stage.data_calibrated, stage.unscaled)
    rec.timings["total"] = time.perf_counter() - t0
    if job is not None:
        try:
            ProductWriter(stage, job, rec).write_record()  # last: products without it are incomplete
        except BaseException:
            _discard_products(stage, rec)
            raise
    return rec


def _discard_products(stage: Stage, rec: ImageRecord) -> None:
    """Remove the products of an interrupted image already written (an image is whole or absent)."""
    for p in rec.products:
        (stage.out_dir / p.file).unlink(missing_ok=True)


def _data_record(sel: vdata.Selection, vs_rows: int, nchan: int, nvis: int, nflag: int, column: str) -> DataRecord:
    total = nvis + nflag
    return DataRecord(measurement_sets=sel.ms_names, field_ids=sel.field_ids(), column=column, rows=vs_rows,
                      channels=nchan, visibilities=nvis, flagged_fraction=nflag / total if total else 1.0,
                      channel_selection=sel.how)


def _bandwidths(sel: vdata.Selection) -> tuple[float, float, float]:
    """(centre frequency LSRK, aggregate bandwidth, fractional bandwidth) in Hz, Hz, 1."""
    lo, hi = sel.lsrk_edges()
    agg = sum(s.bandwidth * s.doppler for s in sel.spws) / max(1, len({s.ms for s in sel.spws}))
    centre = (lo + hi) / 2
    return centre, agg, (hi - lo) / centre


def _weblog_frequency(rec: ImageRecord, sel: vdata.Selection) -> None:
    centre, agg, frac = _bandwidths(sel)
    how = "the selected channels' LSRK edges (casacore measures)"
    rec.weblog.centre_frequency = _measured(centre / 1e9, "GHz", f"mid point of {how}")
    rec.weblog.aggregate_bandwidth = _measured(agg / 1e9, "GHz", "sum of the selected channel widths (LSRK)")
    rec.weblog.fractional_bandwidth = _measured(frac, "", f"span / centre of {how}")


def _threshold_reachable(stage: Stage, job: ImageJob) -> None:
    """ImagingError before any visibility is read when the rules could not give the clean
    threshold even once the dirty image is measured: it is an error already, or it waits for
    something besides this image's measurement (a fact the data lack). The image would
    otherwise be made, minutes on a wide field, and then fail."""
    try:
        v = stage.dec.value(f"{job.path}.threshold")
    except KeyError:
        return  # setting() says what is missing, when the threshold is needed
    measured = {f"measurements[{job.key}]", "dataset.measurements"}  # what the dirty image provides
    others = [w for w in v.waits_for if w not in measured]
    if v.status == "error" or (v.status == "unknown" and others):
        why = "; ".join(v.errors) or ("it waits for " + ", ".join(others))
        raise ImagingError(f"{job.path}.threshold could not be computed even after the dirty image "
                           f"({why}) [{v.at}]: nothing imaged")


def _column_facts(rec: ImageRecord, data_calibrated: bool) -> dict:
    """The measurement's data_column and calibrated: DATA read from any MS (CORRECTED_DATA absent
    or empty there) makes the image uncalibrated, unless the user says DATA is calibrated."""
    if rec.data is None:
        return {}
    columns = {c.strip() for c in rec.data.column.split(",") if c.strip()}
    if not columns <= {"DATA", "CORRECTED_DATA"}:
        return {}
    data = "DATA" in columns
    return {"data_column": "DATA" if data else "CORRECTED_DATA", "calibrated": data_calibrated or not data}


def _diverged_channels(rec: ImageRecord) -> list[int]:
    return [c.channel for c in rec.channels if c.stopped_by == "divergence"]


def _clean_diverged(rec: ImageRecord) -> Optional[bool]:
    """The clean stopped on divergence (a cube: in some channel); None when there was no clean."""
    if rec.clean is None:
        return None
    return "divergence" in rec.clean.stopped_by.split(", ") or bool(_diverged_channels(rec))


def _judge(rec: ImageRecord, data_calibrated: bool, unscaled: Optional[str] = None) -> None:
    """The status and concerns of a made image (see `record.Status`); `unscaled`: why the
    calibration has no flux scale."""
    if rec.status == "failed":
        return
    uncalibrated = _column_facts(rec, data_calibrated).get("calibrated") is False
    diverged = bool(_clean_diverged(rec))
    if uncalibrated:
        rec.concerns.append(
            "uncalibrated: the visibilities were read from the DATA column (CORRECTED_DATA absent or empty), "
            "so fluxes, noise and QA score describe uncalibrated data (calibrate first; if DATA holds "
            "calibrated visibilities, e.g. a split MS, say so with --data-calibrated)")
    if unscaled and not uncalibrated:
        rec.concerns.append(f"unscaled: {unscaled}, so its flux densities, noise and QA score are on a relative "
                            f"scale (give the flux calibrator's flux density with --fluxfile flux.csv)")
    if diverged:
        chans = _diverged_channels(rec)
        where = (f" in {len(chans)} of {len(rec.channels)} channels (first: channel {chans[0]})" if chans
                 else "")
        rec.concerns.append(f"diverged: the clean stopped because the residual grew{where}; the image holds "
                            f"clean artefacts (see the record's clean history and warnings)")
    rec.status = ("uncalibrated" if uncalibrated else "unscaled" if unscaled else "diverged" if diverged
                  else "ok")


def _threshold(stage: Stage, job: ImageJob, rec: ImageRecord, sigma: float, peak: float, dr: float) -> float:
    dec = stage.measure(job, sensitivity=sigma, dirty_peak=peak, dirty_dr=dr,
                        **_column_facts(rec, stage.data_calibrated))
    rec.weblog.sensitivity = _ruled(dec, job, "sensitivity", "mJy/beam")
    rec.weblog.dirty_dr = _ruled(dec, job, "dirty_dr")
    rec.weblog.dr_correction = _ruled(dec, job, "dr_correction")
    thr = setting(dec, f"{job.path}.threshold", "Jy/beam")
    rec.weblog.threshold = Setting(value=float(thr.value) * 1e3, unit="mJy/beam", source=thr.source)
    return float(thr.value)


def _score(stage: Stage, job: ImageJob, rec: ImageRecord, rms: float, beam: Optional[Beam],
           residual_rms: Optional[float]) -> None:
    dec = stage.measure(job, rms=rms, residual_rms=residual_rms, clean_diverged=_clean_diverged(rec),
                        beam_major=beam.bmaj_arcsec if beam else None, beam_minor=beam.bmin_arcsec if beam else None,
                        beam_pa=beam.bpa_deg if beam else None)
    rec.weblog.rms = _ruled(dec, job, "rms", "mJy/beam")
    rec.weblog.qa_score = _ruled(dec, job, "qa_score")
    rec.weblog.qa_colour = _ruled(dec, job, "qa_colour")
    try:
        reasons = dec.value(f"{job.path}.qa_score").reasons
    except KeyError:
        reasons = []
    rec.weblog.qa_reasons = [f"{r.sign}{r.amount:.3g} {r.reason}" for r in reasons]


def _beam_weblog(rec: ImageRecord, b: Beam, how: str) -> None:
    rec.weblog.beam_major = _measured(b.bmaj_arcsec, "arcsec", how)
    rec.weblog.beam_minor = _measured(b.bmin_arcsec, "arcsec", how)
    rec.weblog.beam_pa = _measured(b.bpa_deg, "deg", how)


def _clean_record(results: Sequence, masks_px: int) -> CleanRecord:
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


def _stats_record(job: ImageJob, st, channel: Optional[int] = None) -> StatsRecord:
    ix, iy = st.peak_pixel
    n, cell = job.imsize, job.cell_arcsec
    finite = (lambda v: float(v) if math.isfinite(v) else None)
    return StatsRecord(peak=st.peak, peak_pixel=(ix, iy), peak_offset_arcsec=((n // 2 - ix) * cell, (iy - n // 2) * cell),
                       peak_channel=channel, min=st.min, rms_outside_mask=st.rms_outside_mask,
                       rms_annulus=finite(st.rms_annulus), pixels_outside_mask=st.n_outside, pixels_annulus=st.n_annulus)


def _sanity(rec: ImageRecord, rms: float, sigma: float) -> None:
    if sigma > 0 and math.isfinite(rms) and not 0.1 < rms / sigma < 10:
        rec.warnings.append(
            f"the measured rms ({rms:.3g} Jy/beam) is {rms / sigma:.3g} x the sensitivity from the weights "
            f"({sigma:.3g} Jy/beam): the WEIGHT column may not hold absolute 1/sigma^2 weights, or the data "
            f"are not calibrated")


def _continuum(stage: Stage, job: ImageJob, rec: ImageRecord, writer: "ProductWriter") -> None:
    t = time.perf_counter()
    sel = vdata.select_channels(stage.ms_paths, job.field, job.spws, job.specmode, 1, stage.contdat)
    rec.warnings += sel.notes
    vs = vdata.read(sel)
    rec.timings["read"] = time.perf_counter() - t
    rec.warnings += [n for n in vs.notes if n not in rec.warnings]
    rec.warnings += plane.w_term_warnings(job, vs)
    rec.data = _data_record(sel, vs.uvw.shape[0], sum(s.nchan_selected for s in sel.spws), vs.nvis,
                            int(vs.flag.sum()), ", ".join(vs.columns))
    _weblog_frequency(rec, sel)
    stage.say(f"{job.key}: {vs.nvis:,} visibilities, {job.imsize}x{job.imsize} pixels of "
              f"{job.cell_arcsec:.4g} arcsec")

    t = time.perf_counter()
    d = plane.dirty_plane(job, vs, stage.nthreads)
    # tclean's mfs PB is at the image's reference frequency, the mid point of the selected
    # channels' LSRK edges (the mean channel frequency misses it by up to 3e-3 of the PB)
    pb = plane.pb_plane(job, rec.weblog.centre_frequency.value * 1e9, stage.dish())
    peak, dr = plane.dirty_dr(d, pb)
    rec.timings["dirty"] = time.perf_counter() - t
    threshold = _threshold(stage, job, rec, d.sensitivity, peak, dr)

    t = time.perf_counter()
    cleaned, notes = plane.clean_plane(job, vs, d, pb, threshold, stage.nthreads)
    rec.timings["clean"] = time.perf_counter() - t
    rec.warnings += cleaned.result.warnings
    rec.clean = _clean_record([cleaned.result], int(cleaned.mask.sum()))
    st = plane.plane_stats(job, cleaned, pb)
    rec.stats = _stats_record(job, st)
    _beam_weblog(rec, d.beam, "Gaussian fit to the PSF main lobe (kernels.beam.fit_beam)")
    rec.weblog.pbcor_max = _measured(float(np.nanmax(cleaned.pbcor)) * 1e3, "mJy/beam", "max of the pbcor image")
    rec.weblog.pbcor_min = _measured(float(np.nanmin(cleaned.pbcor)) * 1e3, "mJy/beam", "min of the pbcor image")
    resid = image_stats(cleaned.result.residual, mask=cleaned.mask, pb=pb, pblimit=job.pblimit)
    _score(stage, job, rec, st.rms_outside_mask, d.beam, resid.rms_outside_mask)
    _sanity(rec, st.rms_outside_mask, d.sensitivity)
    if notes:
        rec.warnings.append(notes[-1])

    t = time.perf_counter()
    freq_lsrk = rec.weblog.centre_frequency.value * 1e9
    bw = rec.weblog.aggregate_bandwidth.value * 1e9
    writer.write_plane_products(freq_lsrk, bw, d.beam, {
        "pbcor": cleaned.pbcor, "pb": pb, "image": cleaned.image, "residual": cleaned.result.residual,
        "model": cleaned.result.model, "psf": d.psf, "mask": cleaned.mask.astype(np.float32)})
    rec.timings["write"] = time.perf_counter() - t


# ---------------------------------------------------------------- cubes
@dataclass
class _Pass1:
    sigma: list[Optional[float]] = field(default_factory=list)
    peak: list[Optional[float]] = field(default_factory=list)
    beams: list[Optional[Beam]] = field(default_factory=list)
    kept: list = field(default_factory=list)  # VisSets of the chunks, when they fit in memory
    kept_bytes: int = 0
    reread: bool = False
    dirty: dict[int, plane.Dirty] = field(default_factory=dict)  # channel -> its dirty plane, while they fit
    dirty_bytes: int = 0


def _chunks(nout: int, per_chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + per_chunk, nout)) for a in range(0, nout, per_chunk)]


def _channel(vs, j: int):
    from almarules.engine.ms.visset import VisSet

    return VisSet(vs.uvw, vs.freq[j:j + 1], vs.vis[:, j:j + 1], vs.weight[:, j:j + 1], vs.flag[:, j:j + 1],
                  vs.flattened, vs.notes, vs.columns, vs.noise_weight[:, j:j + 1], vs.lsrk_factor)


def _cube(stage: Stage, job: ImageJob, rec: ImageRecord, writer: "ProductWriter") -> None:
    sel = vdata.select_channels(stage.ms_paths, job.field, job.spws, "cube", job.nbin, stage.contdat)
    if len(job.spws) != 1:
        raise ImagingError(f"{job.path}: a cube is made of one spw, this one has {job.spws}")
    rec.warnings += sel.notes
    nout = sel.spws[0].nchan_selected // job.nbin
    ax = sel.spws[0].axis
    doppler = sel.spws[0].doppler
    freqs = ax.freq[:nout * job.nbin].reshape(nout, job.nbin).mean(axis=1)  # own frame, bin centres
    width = float(np.sum(ax.width[:job.nbin]))
    stage.say(f"{job.key}: {nout} channels of {abs(width) * doppler / 1e6:.4g} MHz, {job.imsize}x{job.imsize} "
              f"pixels of {job.cell_arcsec:.4g} arcsec")
    _weblog_frequency(rec, sel)
    dish = stage.dish()

    # pass 1: per-channel sensitivity, beam and dirty peak
    t = time.perf_counter()
    first = vdata.read(sel, job.nbin, (0, 1))
    rec.warnings += plane.w_term_warnings(job, first)  # one channel: the spw's spread in nu is small
    per_chunk = max(1, int(stage.memory_limit // max(first.nbytes, 1)))
    p1 = _Pass1()
    rows = nvis = nflag = 0
    notes: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    for a, b in _chunks(nout, per_chunk):
        vs = first if (a, b) == (0, 1) else vdata.read(sel, job.nbin, (a, b))
        rows, notes, columns = vs.uvw.shape[0], vs.notes, vs.columns
        nvis += vs.nvis
        nflag += int(vs.flag.sum())
        for j in range(b - a):
            _pass1_channel(stage, job, _channel(vs, j), a + j, freqs[a + j], dish, p1)
            if _report(a + j + 1, nout):
                stage.say(f"{job.key}: pass 1 (sensitivity, dirty peak): channel {a + j + 1}/{nout}")
        _keep(p1, vs, stage.memory_limit)
    rec.timings["dirty"] = time.perf_counter() - t
    rec.warnings += [n for n in notes if n not in rec.warnings]
    rec.data = _data_record(sel, rows, nout, nvis, nflag, ", ".join(columns))
    sig = [s for s in p1.sigma if s is not None]
    if not sig:
        raise ImagingError(f"{job.path}: every channel is flagged")
    sigma = float(np.median(sig))
    peak = max(p for p in p1.peak if p is not None)
    threshold = _threshold(stage, job, rec, sigma, peak, peak / sigma)

    # pass 2: clean every channel to the threshold, stream the planes
    t = time.perf_counter()
    chans: list[ChannelRecord] = []
    results = []
    rms2 = npx = 0.0
    mask_px = 0
    best: Optional[tuple] = None  # (stats, channel) of the channel holding the cube's peak
    low = math.inf
    with writer.cube(nout, freqs[0] * doppler, width * doppler, p1.beams) as cube:
        sources = iter(p1.kept) if not p1.reread else (vdata.read(sel, job.nbin, c) for c in _chunks(nout, per_chunk))
        k = 0
        for vs in sources:
            for j in range(vs.freq.size):
                cr, res, st, planes = _pass2_channel(stage, job, _channel(vs, j), k, freqs[k], dish, p1, threshold)
                chans.append(cr)
                if res is not None:
                    results.append(res)
                    mask_px += int(planes["mask"].sum())
                if st is not None and st.n_outside:
                    rms2 += st.rms_outside_mask ** 2 * st.n_outside
                    npx += st.n_outside
                if st is not None and math.isfinite(st.peak):
                    low = min(low, st.min)
                    if best is None or st.peak > best[0].peak:
                        best = (st, k)
                cube.write(k, planes)
                k += 1
                if _report(k, nout):
                    stage.say(f"{job.key}: pass 2 (clean): channel {k}/{nout}")
    rec.timings["clean"] = time.perf_counter() - t
    rec.channels = chans
    rec.clean = _clean_record(results, mask_px) if results else None
    for c in chans:
        rec.warnings += [f"channel {c.channel}: {w}" for w in c.warnings]
    good = [b for b in p1.beams if b is not None]
    median_beam = sorted(good, key=lambda b: b.bmaj_arcsec * b.bmin_arcsec)[len(good) // 2]
    _beam_weblog(rec, median_beam, "median-area Gaussian fit to the channel PSFs")
    rec.weblog.pbcor_max = _measured(cube.pbcor_max * 1e3, "mJy/beam", "max of the pbcor cube")
    rec.weblog.pbcor_min = _measured(cube.pbcor_min * 1e3, "mJy/beam", "min of the pbcor cube")
    rms = math.sqrt(rms2 / npx) if npx else float("nan")
    if best is not None:
        rec.stats = _stats_record(job, best[0], best[1])
        rec.stats.min, rec.stats.rms_outside_mask, rec.stats.pixels_outside_mask = low, rms, int(npx)
        rec.stats.rms_annulus, rec.stats.pixels_annulus = None, 0  # per channel in rec.channels
    _score(stage, job, rec, rms, median_beam, None)
    _sanity(rec, rms, sigma)


def _report(done: int, total: int) -> bool:
    """Progress at every quarter of the channels."""
    return done == total or done % max(1, total // 4) == 0


def _keep(p1: _Pass1, vs, limit: int) -> None:
    if p1.reread:
        return
    p1.kept_bytes += vs.nbytes
    if p1.kept_bytes > limit:
        p1.kept, p1.reread = [], True
    else:
        p1.kept.append(vs)


def _pass1_channel(stage: Stage, job: ImageJob, vs, k: int, freq: float, dish: float, p1: _Pass1) -> None:
    """Measure channel k; keep its weights, PSF and dirty image for pass 2 while they fit in the
    memory limit (with the visibilities), so that pass 2 does not grid them again."""
    if vs.nvis == 0:
        p1.sigma.append(None), p1.peak.append(None), p1.beams.append(None)
        return
    d = plane.dirty_plane(job, vs, stage.nthreads)
    peak, _ = plane.dirty_dr(d, plane.pb_plane(job, freq, dish))
    p1.sigma.append(d.sensitivity)
    p1.peak.append(peak)
    p1.beams.append(d.beam)
    size = d.imaging_weight.nbytes + d.psf.nbytes + d.image.nbytes
    if p1.kept_bytes + p1.dirty_bytes + size <= stage.memory_limit:
        p1.dirty[k] = d
        p1.dirty_bytes += size


def _pass2_channel(stage: Stage, job: ImageJob, vs, k: int, freq: float, dish: float, p1: _Pass1,
                   threshold: float):
    pb = plane.pb_plane(job, freq, dish)
    n = job.imsize
    if vs.nvis == 0:
        blank = np.full((n, n), np.nan)
        planes = {"pbcor": blank, "pb": pb, "image": blank, "residual": blank, "model": np.zeros((n, n)),
                  "psf": np.zeros((n, n)), "mask": np.zeros((n, n), np.float32)}
        cr = ChannelRecord(channel=k, frequency=freq, sensitivity=None, dirty_peak=None, rms=None, peak=None,
                           beam_major=None, beam_minor=None, beam_pa=None, iterations=0, stopped_by="no data")
        return cr, None, None, planes
    d = p1.dirty.pop(k, None) or plane.dirty_plane(job, vs, stage.nthreads)
    cleaned, _ = plane.clean_plane(job, vs, d, pb, threshold, stage.nthreads)
    st = plane.plane_stats(job, cleaned, pb)
    r = cleaned.result
    cr = ChannelRecord(channel=k, frequency=freq, sensitivity=p1.sigma[k], dirty_peak=p1.peak[k],
                       rms=st.rms_outside_mask, peak=st.peak, min=st.min,
                       rms_annulus=st.rms_annulus if math.isfinite(st.rms_annulus) else None,
                       beam_major=d.beam.bmaj_arcsec,
                       beam_minor=d.beam.bmin_arcsec, beam_pa=d.beam.bpa_deg, iterations=r.iterations,
                       stopped_by=r.stopped_by, warnings=list(r.warnings))
    planes = {"pbcor": cleaned.pbcor, "pb": pb, "image": cleaned.image, "residual": r.residual, "model": r.model,
              "psf": d.psf, "mask": cleaned.mask.astype(np.float32)}
    return cr, r, st, planes


# ---------------------------------------------------------------- the list
def make_images(stage: Stage, keys: Optional[Sequence[str]] = None) -> list[ImageRecord]:
    """Make the images `keys` (default: the whole imaging list, in its order)."""
    keys = list(keys) if keys else stage.keys()
    if not keys:
        raise ImagingError("the rules' imaging list is empty for this dataset")
    records = []
    for i, key in enumerate(keys, 1):
        kept = kept_image(stage, key)
        if kept is not None:
            records.append(kept)
            stage.say(f"[{i}/{len(keys)}] {key}: kept (its record and products match this run's inputs)")
            continue
        rec = make_image(stage, key)
        records.append(rec)
        stage.say(f"[{i}/{len(keys)}] {key}: {rec.timings['total']:.1f} s; {_progress_tail(rec)}")
    return records


def _probe_writer(stage: Stage, key: str) -> Optional[ProductWriter]:
    """A writer for `key`'s names (no record of its own yet), or None when the rules give no such image."""
    try:
        job = stage.job(key)
    except ImagingError:
        return None
    probe = ImageRecord(key=key, field=job.field, intent=job.intent, spws=job.spws, specmode=job.specmode,
                        status="ok", rules=[], rules_sha256="")
    return ProductWriter(stage, job, probe)


def kept_image(stage: Stage, key: str) -> Optional[ImageRecord]:
    """The record of `key` already on disk when the image need not be made again (`resume`)."""
    writer = _probe_writer(stage, key)
    return None if writer is None else resume.kept_record(stage, writer, stage.inputs_sha256())


def record_path(stage: Stage, key: str) -> Optional[Path]:
    """Where the record of `key` is written (None when the rules give no such image)."""
    writer = _probe_writer(stage, key)
    return None if writer is None else writer.path("record", "json")


def _progress_tail(rec: ImageRecord) -> str:
    """What the progress line says of a made image: why it failed, its status if not ok, its
    rms and threshold if ok, and its score."""
    w = rec.weblog
    if rec.status == "failed":
        return f"failed: {rec.error}"
    if not (w.qa_score and w.qa_colour):
        return "done"
    score = f"score {w.qa_score.value:.2f} {w.qa_colour.value}"
    if rec.status != "ok":
        return f"{rec.status.upper()}, {score}"
    if w.rms and w.threshold:
        return f"rms {w.rms.value:.3g} mJy/beam, threshold {w.threshold.value:.3g} mJy/beam, {score}"
    return score
