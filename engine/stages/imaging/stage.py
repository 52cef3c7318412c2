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
from almarules.engine.stages.imaging import cube
from almarules.engine.stages.imaging import data as vdata
from almarules.engine.stages.imaging import joint
from almarules.engine.stages.imaging import plane
from almarules.engine.stages.imaging import resume
from almarules.engine.stages.imaging import steps
from almarules.engine.stages.imaging.job import ImageJob, ImagingError, read_job, setting, split_key
from almarules.engine.stages.imaging.writer import ProductWriter
from almarules.engine.stages.imaging.record import ImageRecord, RunRecord
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
        base.update({k: v for k, v in numbers.items() if v is not None and not steps.is_nan(v)})
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
            cube.make_cube(stage, job, rec, writer)
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


def _judge(rec: ImageRecord, data_calibrated: bool, unscaled: Optional[str] = None) -> None:
    """The status and concerns of a made image (see `record.Status`); `unscaled`: why the
    calibration has no flux scale."""
    if rec.status == "failed":
        return
    uncalibrated = steps.column_facts(rec, data_calibrated).get("calibrated") is False
    diverged = bool(steps.clean_diverged(rec))
    if uncalibrated:
        rec.concerns.append(
            "uncalibrated: the visibilities were read from the DATA column (CORRECTED_DATA absent or empty), "
            "so fluxes, noise and QA score describe uncalibrated data (calibrate first; if DATA holds "
            "calibrated visibilities, e.g. a split MS, say so with --data-calibrated)")
    if unscaled and not uncalibrated:
        rec.concerns.append(f"unscaled: {unscaled}, so its flux densities, noise and QA score are on a relative "
                            f"scale (give the flux calibrator's flux density with --fluxfile flux.csv)")
    if diverged:
        chans = steps.diverged_channels(rec)
        where = (f" in {len(chans)} of {len(rec.channels)} channels (first: channel {chans[0]})" if chans
                 else "")
        rec.concerns.append(f"diverged: the clean stopped because the residual grew{where}; the image holds "
                            f"clean artefacts (see the record's clean history and warnings)")
    rec.status = ("uncalibrated" if uncalibrated else "unscaled" if unscaled else "diverged" if diverged
                  else "ok")


def _joint_image(job: ImageJob) -> bool:
    """Made by `joint` (a mosaic or a multi-term image) rather than `plane`: known once the
    pointings are read; mtmfs images always."""
    return job.deconvolver == "mtmfs" or job.nterms > 1


def _continuum(stage: Stage, job: ImageJob, rec: ImageRecord, writer: "ProductWriter") -> None:
    t = time.perf_counter()
    sel = vdata.select_channels(stage.ms_paths, job.field, job.spws, job.specmode, 1, stage.contdat)
    rec.warnings += sel.notes
    vs, rows = vdata.read_pointings(sel)
    rec.timings["read"] = time.perf_counter() - t
    rec.warnings += [n for n in vs.notes if n not in rec.warnings]
    rec.warnings += plane.w_term_warnings(job, vs)
    rec.data = steps.data_record(sel, vs.uvw.shape[0], sum(s.nchan_selected for s in sel.spws), vs.nvis,
                                 int(vs.flag.sum()), ", ".join(vs.columns))
    steps.weblog_frequency(rec, sel)
    # tclean's mfs PB (and mtmfs reference frequency) is at the mid point of the selected
    # channels' LSRK edges (the mean channel frequency misses it by up to 3e-3 of the PB)
    centre_hz = rec.weblog.centre_frequency.value * 1e9
    joint_made = len(rows) > 1 or _joint_image(job)
    what = f"a mosaic of {len(rows)} pointings, " if len(rows) > 1 else ""
    stage.say(f"{job.key}: {vs.nvis:,} visibilities, {what}{job.imsize}x{job.imsize} pixels of "
              f"{job.cell_arcsec:.4g} arcsec" + (f", {job.deconvolver} nterms {job.nterms}" if job.nterms > 1 else ""))

    t = time.perf_counter()
    if joint_made:
        j = joint.arrange(job, vs, rows, centre_hz, stage.dish(), stage.nthreads, spw_centres=vdata.spw_centres(sel))
        rec.data.pointings = len(rows)
        if len(rows) > 1:
            rec.data.phase_centre = j.centre
        d = joint.dirty(j)
        rec.warnings += j.skipped
        pb = d.pb
    else:
        d = plane.dirty_plane(job, vs, stage.nthreads)
        pb = plane.pb_plane(job, centre_hz, stage.dish())
    peak, dr = plane.dirty_dr(d, pb)
    rec.timings["dirty"] = time.perf_counter() - t
    threshold = steps.threshold(stage, job, rec, d.sensitivity, peak, dr)

    t = time.perf_counter()
    if joint_made:
        cleaned, notes = joint.clean(j, d, threshold)
        pbcor = cleaned.pbcor[0]
        planes = joint.planes(j, d, cleaned)
    else:
        cleaned, notes = plane.clean_plane(job, vs, d, pb, threshold, stage.nthreads)
        pbcor = cleaned.pbcor
        planes = {"pbcor": cleaned.pbcor, "pb": pb, "image": cleaned.image, "residual": cleaned.result.residual,
                  "model": cleaned.result.model, "psf": d.psf, "mask": cleaned.mask.astype(np.float32)}
    rec.timings["clean"] = time.perf_counter() - t
    rec.warnings += cleaned.result.warnings
    rec.clean = steps.clean_record([cleaned.result], int(cleaned.mask.sum()))
    st = plane.plane_stats(job, cleaned, pb)
    rec.stats = steps.stats_record(job, st)
    steps.beam_weblog(rec, d.beam, "Gaussian fit to the PSF main lobe (kernels.beam.fit_beam)")
    rec.weblog.pbcor_max = steps.measured(float(np.nanmax(pbcor)) * 1e3, "mJy/beam", "max of the pbcor image")
    rec.weblog.pbcor_min = steps.measured(float(np.nanmin(pbcor)) * 1e3, "mJy/beam", "min of the pbcor image")
    resid = image_stats(cleaned.result.residual, mask=cleaned.mask, pb=pb, pblimit=job.pblimit)
    steps.score(stage, job, rec, st.rms_outside_mask, d.beam, resid.rms_outside_mask)
    steps.sanity(rec, st.rms_outside_mask, d.sensitivity)
    if notes:
        rec.warnings.append(notes[-1])

    t = time.perf_counter()
    writer.write_plane_products(centre_hz, rec.weblog.aggregate_bandwidth.value * 1e9, d.beam, planes)
    rec.timings["write"] = time.perf_counter() - t


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
