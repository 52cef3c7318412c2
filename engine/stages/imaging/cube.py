"""Cubes: one channel at a time (per-channel weights, PSF, beam and clean) in two passes. The
first measures every channel's sensitivity and dirty peak (the cube's sensitivity is the median
over channels, its dirty peak the largest), the second cleans to the one threshold and streams the
planes to disk. Channel data are read in chunks of at most the stage's `memory_limit` bytes, and
kept for the second pass only when the whole cube fits in it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from almarules.engine.stages.imaging import data as vdata
from almarules.engine.stages.imaging import joint
from almarules.engine.stages.imaging import plane
from almarules.engine.stages.imaging import steps
from almarules.engine.stages.imaging.job import ImageJob, ImagingError
from almarules.engine.stages.imaging.record import ChannelRecord, ImageRecord
from almarules.kernels.beam import Beam

if TYPE_CHECKING:
    from almarules.engine.stages.imaging.stage import Stage
    from almarules.engine.stages.imaging.writer import ProductWriter


@dataclass
class _Pass1:
    sigma: list[Optional[float]] = field(default_factory=list)
    peak: list[Optional[float]] = field(default_factory=list)
    beams: list[Optional[Beam]] = field(default_factory=list)
    kept: list = field(default_factory=list)  # VisSets of the chunks, when they fit in memory
    kept_bytes: int = 0
    reread: bool = False
    dirty: dict[int, tuple] = field(default_factory=dict)  # channel -> (dirty products, mosaic arrangement), while they fit
    dirty_bytes: int = 0


def _chunks(nout: int, per_chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + per_chunk, nout)) for a in range(0, nout, per_chunk)]


def make_cube(stage: Stage, job: ImageJob, rec: ImageRecord, writer: "ProductWriter") -> None:
    sel = vdata.select_channels(stage.ms_paths, job.field, job.spws, "cube", job.nbin, stage.contdat)
    if len(job.spws) != 1:
        raise ImagingError(f"{job.path}: a cube is made of one spw, this one has {job.spws}")
    rows = vdata.pointings(sel)
    mosaic = rows if len(rows) > 1 else None
    rec.warnings += sel.notes
    axis = vdata.cube_axis(sel, job.nbin)
    rec.warnings += axis.notes
    nout = axis.nchan
    doppler = sel.spws[0].doppler
    freqs = axis.own_centres  # the first EB's own frame, bin centres
    width = axis.own_width
    stage.say(f"{job.key}: {nout} channels of {abs(width) * doppler / 1e6:.4g} MHz, {job.imsize}x{job.imsize} "
              f"pixels of {job.cell_arcsec:.4g} arcsec")
    steps.weblog_frequency(rec, sel)
    dish = stage.dish()

    # pass 1: per-channel sensitivity, beam and dirty peak
    t = time.perf_counter()
    first = vdata.read_cube(sel, axis, (0, 1), pointings=mosaic)
    rec.warnings += plane.w_term_warnings(job, first.channel(0))  # one channel: the spw's spread in nu is small
    per_chunk = max(1, int(stage.memory_limit // max(first.nbytes, 1)))
    p1 = _Pass1()
    rows = nvis = nflag = 0
    notes: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    for a, b in _chunks(nout, per_chunk):
        vs = first if (a, b) == (0, 1) else vdata.read_cube(sel, axis, (a, b), pointings=mosaic)
        rows, notes, columns = vs.rows, vs.notes, vs.columns
        nvis += vs.nvis
        nflag += vs.nflag
        for j in range(b - a):
            _pass1_channel(stage, job, _at(vs, j, mosaic), a + j, freqs[a + j], dish, p1)
            if _report(a + j + 1, nout):
                stage.say(f"{job.key}: pass 1 (sensitivity, dirty peak): channel {a + j + 1}/{nout}")
        _keep(p1, vs, stage.memory_limit)
    rec.timings["dirty"] = time.perf_counter() - t
    rec.warnings += [n for n in notes if n not in rec.warnings]
    rec.data = steps.data_record(sel, rows, nout, nvis, nflag, ", ".join(columns))
    sig = [s for s in p1.sigma if s is not None]
    if not sig:
        raise ImagingError(f"{job.path}: every channel is flagged")
    sigma = float(np.median(sig))
    peak = max(p for p in p1.peak if p is not None)
    threshold = steps.threshold(stage, job, rec, sigma, peak, peak / sigma)

    # pass 2: clean every channel to the threshold, stream the planes
    t = time.perf_counter()
    acc = _Pass2()
    with writer.cube(nout, freqs[0] * doppler, width * doppler, p1.beams) as cube:
        sources = iter(p1.kept) if not p1.reread else (vdata.read_cube(sel, axis, c, pointings=mosaic)
                                                       for c in _chunks(nout, per_chunk))
        for vs in sources:
            for j in range(vs.nchan):
                k = len(acc.chans)
                cr, res, st, planes = _pass2_channel(stage, job, _at(vs, j, mosaic), k, freqs[k], dish, p1, threshold)
                acc.add(k, cr, res, st, planes)
                cube.write(k, planes)
                if _report(k + 1, nout):
                    stage.say(f"{job.key}: pass 2 (clean): channel {k + 1}/{nout}")
    rec.timings["clean"] = time.perf_counter() - t
    rec.channels = acc.chans
    rec.clean = steps.clean_record(acc.results, acc.mask_px) if acc.results else None
    for c in acc.chans:
        rec.warnings += [f"channel {c.channel}: {w}" for w in c.warnings]
    good = [b for b in p1.beams if b is not None]
    median_beam = sorted(good, key=lambda b: b.bmaj_arcsec * b.bmin_arcsec)[len(good) // 2]
    steps.beam_weblog(rec, median_beam, "median-area Gaussian fit to the channel PSFs")
    rec.weblog.pbcor_max = steps.measured(cube.pbcor_max * 1e3, "mJy/beam", "max of the pbcor cube")
    rec.weblog.pbcor_min = steps.measured(cube.pbcor_min * 1e3, "mJy/beam", "min of the pbcor cube")
    rms = math.sqrt(acc.rms2 / acc.npx) if acc.npx else float("nan")
    if acc.best is not None:
        rec.stats = steps.stats_record(job, acc.best[0], acc.best[1])
        rec.stats.min, rec.stats.rms_outside_mask, rec.stats.pixels_outside_mask = acc.low, rms, int(acc.npx)
        rec.stats.rms_annulus, rec.stats.pixels_annulus = None, 0  # per channel in rec.channels
    steps.score(stage, job, rec, rms, median_beam, None, bad_psf_channels=bad_psf_channels(good, median_beam))
    steps.sanity(rec, rms, sigma)


@dataclass
class _Pass2:
    """What pass 2 gathers over the channels: their records, the clean results, mask pixels, the
    rms outside the masks (sum of squares, pixels), the channel holding the cube's peak, the min."""

    chans: list[ChannelRecord] = field(default_factory=list)
    results: list = field(default_factory=list)
    mask_px: int = 0
    rms2: float = 0.0
    npx: float = 0.0
    best: Optional[tuple] = None  # (stats, channel)
    low: float = math.inf

    def add(self, k: int, cr: ChannelRecord, res, st, planes: dict) -> None:
        self.chans.append(cr)
        if res is not None:
            self.results.append(res)
            self.mask_px += int(planes["mask"].sum())
        if st is not None and st.n_outside:
            self.rms2 += st.rms_outside_mask ** 2 * st.n_outside
            self.npx += st.n_outside
        if st is not None and math.isfinite(st.peak):
            self.low = min(self.low, st.min)
            if self.best is None or st.peak > self.best[0].peak:
                self.best = (st, k)


def _at(vs, j: int, mosaic) -> tuple:
    """Channel j as (VisSet, its pointings' rows or None for a single pointing)."""
    return vs.channel_pointings(j) if mosaic else (vs.channel(j), None)


#: a channel's PSF fit is "bad" when its beam area differs from the cube's median-area beam by more
#: than this factor either way (the QA score's bad-PSF channels; a fit that fails stops the cube)
BAD_PSF_AREA_FACTOR = 2.0


def bad_psf_channels(beams: list[Beam], median: Beam) -> int:
    """The channels (with data) whose fitted beam area is off the median's by > BAD_PSF_AREA_FACTOR."""
    area = median.bmaj_arcsec * median.bmin_arcsec
    ratios = [b.bmaj_arcsec * b.bmin_arcsec / area for b in beams]
    return sum(1 for r in ratios if not 1 / BAD_PSF_AREA_FACTOR <= r <= BAD_PSF_AREA_FACTOR)


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


def _dirty(stage: Stage, job: ImageJob, ch, freq: float, dish: float) -> tuple:
    """(dirty products, pb, the mosaic's arrangement or None) of one channel `ch` = (VisSet,
    pointings or None): a single pointing's (`plane`) or a mosaic's (`joint`, one term; its pb the
    mosaic's)."""
    vs, rows = ch
    if rows is None:
        return plane.dirty_plane(job, vs, stage.nthreads), plane.pb_plane(job, freq, dish), None
    j = joint.arrange(job, vs, rows, freq, dish, stage.nthreads)
    d = joint.dirty(j)
    return d, d.pb, j


def _nbytes(d, j) -> int:
    """Bytes of a channel's kept dirty products (and a mosaic's weights and rotated uvw)."""
    if j is None:
        return sum(a.nbytes for a in (d.imaging_weight, d.psf, d.image))
    arranged = sum(p.weight.nbytes for p in j.pointings) + sum(u.uvw0.nbytes for u in j.prepared.used)
    return d.residuals.nbytes + d.psfs.nbytes + arranged


def _pass1_channel(stage: Stage, job: ImageJob, ch, k: int, freq: float, dish: float, p1: _Pass1) -> None:
    """Measure channel k; keep its weights, PSF and dirty image for pass 2 while they fit in the
    memory limit (with the visibilities), so that pass 2 does not grid them again."""
    if ch[0].nvis == 0:
        p1.sigma.append(None), p1.peak.append(None), p1.beams.append(None)
        return
    d, pb, j = _dirty(stage, job, ch, freq, dish)
    peak, _ = plane.dirty_dr(d, pb)
    p1.sigma.append(d.sensitivity)
    p1.peak.append(peak)
    p1.beams.append(d.beam)
    size = _nbytes(d, j)
    if p1.kept_bytes + p1.dirty_bytes + size <= stage.memory_limit:
        p1.dirty[k] = (d, j)
        p1.dirty_bytes += size


def _pass2_channel(stage: Stage, job: ImageJob, ch, k: int, freq: float, dish: float, p1: _Pass1,
                   threshold: float):
    vs, rows = ch
    n = job.imsize
    if vs.nvis == 0:
        blank = np.full((n, n), np.nan)
        pb = plane.pb_plane(job, freq, dish) if rows is None else np.zeros((n, n))
        planes = {"pbcor": blank, "pb": pb, "image": blank, "residual": blank, "model": np.zeros((n, n)),
                  "psf": np.zeros((n, n)), "mask": np.zeros((n, n), np.float32)}
        cr = ChannelRecord(channel=k, frequency=freq, sensitivity=None, dirty_peak=None, rms=None, peak=None,
                           beam_major=None, beam_minor=None, beam_pa=None, iterations=0, stopped_by="no data")
        return cr, None, None, planes
    kept = p1.dirty.pop(k, None)
    if kept is None:
        d, _, j = _dirty(stage, job, ch, freq, dish)
    else:
        d, j = kept
    if rows is None:
        pb = plane.pb_plane(job, freq, dish)
        cleaned, _ = plane.clean_plane(job, vs, d, pb, threshold, stage.nthreads)
        planes = {"pbcor": cleaned.pbcor, "pb": pb, "image": cleaned.image, "residual": cleaned.result.residual,
                  "model": cleaned.result.model, "psf": d.psf, "mask": cleaned.mask.astype(np.float32)}
    else:
        pb = d.pb
        cleaned, _ = joint.clean(j, d, threshold)
        planes = joint.planes(j, d, cleaned)
    st = plane.plane_stats(job, cleaned, pb)
    r = cleaned.result
    cr = ChannelRecord(channel=k, frequency=freq, sensitivity=p1.sigma[k], dirty_peak=p1.peak[k],
                       rms=st.rms_outside_mask, peak=st.peak, min=st.min,
                       rms_annulus=st.rms_annulus if math.isfinite(st.rms_annulus) else None,
                       beam_major=d.beam.bmaj_arcsec,
                       beam_minor=d.beam.bmin_arcsec, beam_pa=d.beam.bpa_deg, iterations=r.iterations,
                       stopped_by=r.stopped_by, warnings=list(r.warnings))
    return cr, r, st, planes
