"""Joint imaging: a mosaic's pointings on one grid, and multi-term (mtmfs) continuum images --
the kernels of `kernels.mosaic` and `kernels.mtmfs` in the order the imaging stage runs them.

One code path serves every image that is a mosaic or has nterms > 1 (a single pointing is a
mosaic of one: its flat-noise image is its ordinary dirty image, its pb the primary beam):

* Briggs weights per MS and FIELD row (tclean's mosweight=True, the rules' `mosweight`) or over
  all samples together;
* per pointing p, its samples with its own phase centre; (l_p, m_p) its direction cosines about
  the image's phase centre (the rules' ``phasecenter``: the centre of the pointings);
* residuals (`kernels.mosaic`: D x pb, CASA's normtype 'flatnoise'), Taylor-weighted for
  nterms > 1 (x = (nu_LSRK - nu0) / nu0, nu0 = the image's centre frequency, CASA's reffreq), and
  the PSFs as CASA's mosaic gridder makes them (each pointing's PSF times its beam at its spw's
  centre frequency and its weight, normalised at the centre: `kernels.mosaic.beam_weighted_psf`);
* the minor cycle (Hogbom / Clark for nterms 1, `kernels.mtmfs.multiterm_clean` otherwise) on the
  flat-noise residuals, the major cycle predicting the sky model (the flat-noise model divided by
  pb) through each pointing's beam at each sample's frequency (`kernels.mosaic.mosaic_predict`
  with `spectral`: one sky model then fits every pointing, whatever spectral index each
  pointing's beam adds; `kernels.deconvolve.clean_cycles`);
* restoration: image (flat noise: sky x pb), pbcor = image / pb; for nterms > 1 the Taylor images
  with CASA's principal-solution residuals, and alpha / alpha.error where the restored tt0 is above
  the rules' fraction of the tt0 residual's maximum -- the sky's spectral index, since the model
  was fitted through the beams' frequency dependence.

Units: Jy/beam (images), Jy/pixel (models), arcsec, Hz, degrees for directions.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from almarules.engine.ms.visset import VisSet
from almarules.engine.stages.imaging.data import PointingRows
from almarules.engine.stages.imaging.job import ImageJob, ImagingError
from almarules.engine.stages.imaging import plane
from almarules.kernels import beam as beamfit
from almarules.kernels import deconvolve, gridding, mosaic, mtmfs, primary_beam, restore, weighting
from almarules.kernels.beam import Beam
from almarules.kernels.sky import lmn, radec_from_lm

#: CASA's minpsffraction and maxpsffraction (the cycle threshold's bounds, fractions of the peak)
MIN_PSF_FRACTION, MAX_PSF_FRACTION = 0.05, 0.8


def pointings_centre(rows: list[PointingRows]) -> tuple[float, float]:
    """(RA, Dec) in degrees of the centre of the pointings: the midpoint of their extent in the
    SIN projection about the first pointing (a single pointing: its direction)."""
    ra0, dec0 = math.radians(rows[0].ra_deg), math.radians(rows[0].dec_deg)
    lm = [lmn(math.radians(p.ra_deg), math.radians(p.dec_deg), ra0, dec0)[:2] for p in rows]
    ls, ms = [a for a, _ in lm], [b for _, b in lm]
    ra, dec = radec_from_lm((min(ls) + max(ls)) / 2, (min(ms) + max(ms)) / 2, ra0, dec0)
    return math.degrees(ra) % 360.0, math.degrees(dec)


def phase_centre(job: ImageJob, rows: list[PointingRows]) -> tuple[float, float, str]:
    """The image's phase centre (RA, Dec deg, frame) as the rules' ``phasecenter`` says."""
    how = job.phasecenter
    if how is None:
        if len(rows) > 1:
            raise ImagingError(f"{job.path}: the rules give no phasecenter, which a mosaic needs "
                               f"('pointings_centre' or 'first_pointing')")
        how = "first_pointing"
    if how == "first_pointing":
        return rows[0].ra_deg, rows[0].dec_deg, rows[0].frame
    if how == "pointings_centre":
        frames = {p.frame for p in rows}
        if len(frames) > 1:
            raise ImagingError(f"{job.path}: the pointings' FIELD directions are in different frames "
                               f"({', '.join(sorted(frames))})")
        return (*pointings_centre(rows), rows[0].frame)
    raise ImagingError(f"{job.path}.phasecenter is {how!r}; the imaging stage knows 'pointings_centre' and "
                       f"'first_pointing' [{job.settings['phasecenter'].source}]")


@dataclass
class Joint:
    """The samples of one image arranged for the mosaic kernels (module docstring).

    pointings: the kernel's pointings (imaging weights, direction cosines), in `rows`' order;
    taylor: per pointing x = (nu - nu0) / nu0 of its samples (broadcastable to its (nrow, nchan));
    noise_weight: per pointing, the samples' inverse variances (for the sensitivity)."""

    job: ImageJob
    grid: mosaic.MosaicGrid
    pointings: list[mosaic.Pointing]
    rows: list[PointingRows]
    taylor: list[np.ndarray]
    noise_weight: list[np.ndarray]
    centre: tuple[float, float, str]
    ref_freq: float
    prepared: mosaic.Prepared
    spw_centres: list[float] = field(default_factory=list)  # each spw's LSRK centre (Hz): the PSF's beams
    skipped: list[str] = field(default_factory=list)

    @property
    def nterms(self) -> int:
        return self.job.nterms


def arrange(job: ImageJob, vs: VisSet, rows: list[PointingRows], ref_freq: float, dish_m: float,
            nthreads: int = 0, spw_centres: Optional[list[float]] = None) -> Joint:
    """Briggs weights (`_briggs`) and the pointings of the image about its phase centre (the
    samples of a VisSet from `data.read_pointings`). ref_freq (Hz, LSRK): the Taylor
    reference and the frequency of the primary beams; spw_centres: each spw's LSRK centre (Hz),
    the frequency of the beams that weight the PSF of its samples (default: ref_freq for all)."""
    n, cell = job.imsize, job.cell_arcsec
    vs = plane.ascending(vs)
    if vs.nvis == 0:
        raise ImagingError(f"{job.path}: every visibility is flagged")
    iw = _briggs(job, vs, rows)
    centre = phase_centre(job, rows)
    ra0, dec0 = math.radians(centre[0]), math.radians(centre[1])
    try:
        grid = mosaic.MosaicGrid(n, n, cell, ref_freq, model=job.pb_model, dish_m=dish_m, phase_centre="pointing",
                                 dec0_rad=dec0, pblimit=job.pblimit, epsilon=plane.EPSILON,
                                 wgridding=job.gridder == "wproject", nthreads=nthreads)
    except ValueError as exc:
        raise ImagingError(f"{job.path}: {exc}") from None
    freqs = vs.lsrk_frequencies()
    out, taylor, noise = [], [], []
    for p in rows:
        a, b = p.start, p.stop
        l, m, _ = lmn(math.radians(p.ra_deg), math.radians(p.dec_deg), ra0, dec0)
        out.append(mosaic.Pointing(uvw_m=vs.uvw[a:b], freq_hz=vs.freq, weight=iw[a:b], l=l, m=m, vis=vs.vis[a:b],
                                   flags=vs.flag[a:b], name=p.name))
        f = freqs[a:b] if freqs.shape[0] == vs.uvw.shape[0] else freqs
        taylor.append((f - ref_freq) / ref_freq)
        noise.append(vs.noise_weight[a:b])
    try:
        prepared = mosaic.prepare(out, grid)
    except ValueError as exc:
        raise ImagingError(f"{job.path}: {exc}") from None
    return Joint(job, grid, out, rows, taylor, noise, centre, ref_freq, prepared, list(spw_centres or [ref_freq]))


def _briggs(job: ImageJob, vs: VisSet, rows: list[PointingRows]) -> np.ndarray:
    """Briggs imaging weights: the samples of each FIELD row of each MS by their own uv density and
    robustness normalisation (the rules' mosweight "per_pointing": tclean's mosweight=True, which
    keeps one density grid per MS and FIELD id, VisImagingWeight) or all samples together ("joint")."""
    n, cell = job.imsize, job.cell_arcsec
    spans = [sp for p in rows for sp in p.spans] if job.mosweight == "per_pointing" else [(0, vs.rows)]
    iw = np.zeros(vs.weight.shape)
    uvw = vs.weighting_uvw
    for a, b in spans:
        if b <= a or not np.any(vs.weight[a:b] > 0):
            continue
        try:
            iw[a:b] = weighting.briggs(uvw[a:b], vs.freq, vs.weight[a:b], n, n, cell, job.robust, flags=vs.flag[a:b],
                                       per_channel=job.specmode == "cube")  # CASA's cube vs mfs uv cells
        except ValueError as exc:
            raise ImagingError(f"{job.path}: weighting: {exc} (cell {cell:.4g} arcsec, {n} pixels)") from None
    return iw


@dataclass
class JointDirty:
    """The dirty products: flat-noise Taylor residuals (nterms, n, n), Taylor PSFs (2 nterms - 1,
    n, n), the mosaic (weight, pb, mask), fitted beam, sidelobe level and the sensitivity at the
    best-covered pixel (Jy/beam, flat noise)."""

    residuals: np.ndarray
    psfs: np.ndarray
    mosaic: mosaic.MosaicImage
    beam: Beam
    sidelobe: float
    sensitivity: float

    @property
    def image(self) -> np.ndarray:
        return self.residuals[0]

    @property
    def pb(self) -> np.ndarray:
        return self.mosaic.pb


def taylor_residuals(j: Joint, vis: list[Optional[np.ndarray]]) -> tuple[np.ndarray, mosaic.MosaicImage]:
    """Flat-noise Taylor residual images (nterms, n, n) of the visibilities `vis` (one array per
    pointing) and the mosaic of the t = 0 term (its weight, pb and mask)."""
    images, first = [], None
    for t in range(j.nterms):
        vt = vis if t == 0 else [None if v is None else v * x ** t for v, x in zip(vis, j.taylor, strict=True)]
        mi = mosaic.mosaic_image(j.pointings, j.grid, vis=vt, prepared=j.prepared)
        first = mi if first is None else first
        images.append(mi.flat_noise)
    assert first is not None
    return np.stack(images), first


def _sensitivity(j: Joint, mi: mosaic.MosaicImage) -> float:
    """The flat-noise image's noise (Jy/beam) at its best-covered pixel: with sigma_p the dirty
    noise of pointing p alone (`kernels.weighting.sensitivity`) and w_p its sum of imaging weights,
    Var D = sum_p A_p^2 w_p^2 sigma_p^2 / weight^2 and the flat-noise image is D x pb."""
    ix, iy = np.unravel_index(int(np.argmax(mi.weight)), mi.weight.shape)
    var = 0.0
    for p, nw, wp in zip(j.pointings, j.noise_weight, mi.sumwt, strict=True):
        if wp <= 0:
            continue
        a = mosaic.beam_value(j.grid, p.l, p.m, *gridding.pixel_lm(ix, iy, j.grid.npix_x, j.grid.npix_y, j.grid.cell_arcsec))
        sigma = weighting.sensitivity(nw, np.broadcast_to(p.weight, nw.shape), flags=p.flags)
        var += (a * wp * sigma) ** 2
    return float(math.sqrt(var) / mi.weight[ix, iy] * mi.pb[ix, iy])


def _psfs(j: Joint) -> np.ndarray:
    """The Taylor PSFs (2 nterms - 1, n, n) as CASA's mosaic gridder makes them: each pointing's
    PSF times its beam pattern (centred on the pointing, at each spw's centre frequency) and its
    sum of weights, summed, every term divided by the t = 0 sum's value at the centre
    (`kernels.mosaic.beam_weighted_psf`; CASA's normPSF)."""
    subs, freqs, xs = [], [], []
    centres = np.asarray(j.spw_centres)
    for p, x in zip(j.pointings, j.taylor, strict=True):
        f = np.broadcast_to(x * j.ref_freq + j.ref_freq, p.weight.shape)[:, 0]  # each row's LSRK frequency
        band = np.argmin(np.abs(f[:, None] - centres[None, :]), axis=1) if f.size else np.zeros(0, int)
        for b, centre in enumerate(centres):
            rows = band == b
            if not rows.any():
                continue
            take = rows if not np.all(rows) else slice(None)
            subs.append(mosaic.Pointing(p.uvw_m[take], p.freq_hz, p.weight[take], p.l, p.m,
                                        flags=None if p.flags is None else p.flags[take], name=p.name))
            freqs.append(centre)
            xs.append(np.broadcast_to(x, p.weight.shape)[take])
    sums = [mosaic.beam_weighted_psf(subs, j.grid, freqs, spectral=None if t == 0 else [x ** t for x in xs])
            for t in range(2 * j.nterms - 1)]
    centre = sums[0][j.grid.npix_x // 2, j.grid.npix_y // 2]
    return np.stack(sums) / centre


def dirty(j: Joint) -> JointDirty:
    """Weights, Taylor PSFs, beam fit, sensitivity and the dirty (flat-noise) Taylor residuals."""
    residuals, mi = taylor_residuals(j, [p.vis for p in j.pointings])
    j.skipped = [f"pointing {s.name}: {s.reason}; left out of the mosaic" for s in mi.skipped]
    psfs = _psfs(j)
    try:
        fitted = beamfit.fit_beam(psfs[0], j.job.cell_arcsec)
    except ValueError as exc:
        raise ImagingError(f"{j.job.path}: the PSF main lobe cannot be fitted ({exc}); too few baselines "
                           f"or too coarse a cell") from None
    side = beamfit.sidelobe_level(psfs[0], fitted, j.job.cell_arcsec)
    return JointDirty(residuals, psfs, mi, fitted, side, _sensitivity(j, mi))


@dataclass
class JointCleaned:
    """The clean's result and the planes the products need: restored Taylor images (flat noise,
    (nterms, n, n)), their pbcor, the sky models (Jy/pixel), the residuals, the mask, and for
    nterms > 1 alpha, alpha.error (NaN where not computed) and the alpha cut-off (Jy/beam)."""

    result: deconvolve.CleanResult
    images: np.ndarray
    pbcor: np.ndarray
    models: np.ndarray
    residuals: np.ndarray
    mask: np.ndarray
    alpha: Optional[np.ndarray] = None
    alpha_error: Optional[np.ndarray] = None
    alpha_cutoff: Optional[float] = None

    @property
    def image(self) -> np.ndarray:
        return self.images[0]


def _minor(j: Joint, d: JointDirty, threshold: float) -> deconvolve.Minor:
    job = j.job
    if j.nterms == 1:
        psf = d.psfs[0]
        if job.deconvolver == "clark":
            h = deconvolve.default_patch_halfwidth(psf)
            return lambda r, m, n, cyc: _stacked(deconvolve.clark(r[0], psf, m, job.gain, threshold, n, cyc,
                                                                  patch_halfwidth=h))
        return lambda r, m, n, cyc: _stacked(deconvolve.hogbom(r[0], psf, m, job.gain, threshold, n, cyc,
                                                               full_residual=False))

    def minor(r: np.ndarray, m: np.ndarray, n: int, cyc: float) -> deconvolve.MinorResult:
        mt = mtmfs.multiterm_clean(r, d.psfs, m, job.gain, n, threshold, cyc, full_residual=False)
        return deconvolve.MinorResult(mt.models, mt.residuals, mt.iterations, mt.peak, mt.stopped_by, mt.work_pixels)
    return minor


def _stacked(mr: deconvolve.MinorResult) -> deconvolve.MinorResult:
    """A single-plane minor cycle's result as a stack of one term."""
    return deconvolve.MinorResult(mr.model[None], mr.residual[None], mr.iterations, mr.peak, mr.stopped_by,
                                  mr.work_pixels)


def clean(j: Joint, d: JointDirty, threshold: float) -> tuple[JointCleaned, list[str]]:
    """Major and minor cycles to `threshold` (Jy/beam) with the rules' mask, niter, gain and cycle
    factor; restoration, pbcor and (nterms > 1) the spectral index. Returns also the mask notes."""
    job = j.job
    if job.deconvolver not in ("hogbom", "clark", "mtmfs"):
        raise ImagingError(f"{job.path}: deconvolver {job.deconvolver!r} is not available; the imaging stage has "
                           f"hogbom, clark and mtmfs [{job.settings['deconvolver'].source}]")
    mi = d.mosaic
    notes: list[str] = []
    mask, update = plane.clean_masks(job, mi.pb, d.beam, d.sidelobe, notes)
    mask = np.ones(mi.pb.shape, bool) if mask is None else mask
    mask &= mi.mask

    def sky(models: np.ndarray) -> np.ndarray:
        return np.stack([mi.to_sky(m) for m in models])

    def residual_of(models: np.ndarray) -> np.ndarray:
        predicted = mosaic.mosaic_predict(sky(models), j.pointings, j.grid, j.prepared, spectral=j.taylor)
        return taylor_residuals(j, [p.vis - v for p, v in zip(j.pointings, predicted, strict=True)])[0]

    fraction = min(max(job.cycle_factor * d.sidelobe, MIN_PSF_FRACTION), MAX_PSF_FRACTION)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence is in the result's warnings
        c = deconvolve.clean_cycles(d.residuals, residual_of, _minor(j, d, threshold), mask, threshold=threshold,
                                    niter=job.niter, fraction=fraction, beam=d.beam, sidelobe=d.sidelobe,
                                    mask_update=update, flux_of=lambda models: float(mi.to_sky(models[0]).sum()))
    models = sky(c.model)
    result = dataclasses.replace(c, model=models[0], residual=c.residual[0])  # tt0: the sky model, flat noise
    out = _restore(j, d, c.model, c.residual, models, result)
    return out, notes


def _restore(j: Joint, d: JointDirty, flat_models: np.ndarray, residuals: np.ndarray, models: np.ndarray,
             result: deconvolve.CleanResult) -> JointCleaned:
    job, pb = j.job, d.pb
    if j.nterms == 1:
        images = restore.restore(flat_models[0], residuals[0], d.beam, job.cell_arcsec)[None]
    else:
        images = mtmfs.restore_taylor(flat_models, residuals, d.beam, job.cell_arcsec, psfs=d.psfs)
    pbcor = np.stack([primary_beam.pbcor(im, pb, job.pblimit) for im in images])
    final_mask = result.mask if result.mask is not None else np.zeros(pb.shape, bool)
    out = JointCleaned(result, images, pbcor, models, residuals, final_mask)
    if j.nterms > 1:
        fraction = job.alpha_cutoff_fraction
        if fraction is None:
            raise ImagingError(f"{job.path}: the rules give no alpha_cutoff_fraction, which an mtmfs image needs")
        si = mtmfs.spectral_index(images, mtmfs.principal_solution(residuals, d.psfs), threshold_fraction=fraction)
        si.alpha[~d.mosaic.mask] = np.nan
        si.alpha_error[~d.mosaic.mask] = np.nan
        out.alpha = si.alpha
        out.alpha_error, out.alpha_cutoff = si.alpha_error, si.cutoff
    return out


def planes(j: Joint, d: JointDirty, c: JointCleaned) -> dict[str, np.ndarray]:
    """The product planes of a joint image by kind (`writer` names them): one term as a single
    pointing's, Taylor terms as CASA's ``.ttN``; a mosaic adds its weight image."""
    mask = c.mask.astype(np.float32)
    if j.nterms == 1:
        planes = {"pbcor": c.pbcor[0], "pb": d.pb, "image": c.images[0], "residual": c.residuals[0],
                  "model": c.models[0], "psf": d.psfs[0], "mask": mask}
    else:
        planes = {"pb.tt0": d.pb, "alpha": c.alpha, "alpha.error": c.alpha_error, "mask": mask}
        for t in range(j.nterms):
            planes.update({f"tt{t}.pbcor": c.pbcor[t], f"image.tt{t}": c.images[t], f"residual.tt{t}": c.residuals[t],
                           f"model.tt{t}": c.models[t]})
        planes.update({f"psf.tt{t}": d.psfs[t] for t in range(2 * j.nterms - 1)})
    if len(j.rows) > 1:
        planes["weight"] = d.mosaic.weight / float(np.mean([w for w in d.mosaic.sumwt if w > 0]))
    return planes
