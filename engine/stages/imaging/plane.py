"""One image plane, from visibilities to the restored image: the kernels in the order the
imaging stage runs them. Pure functions of arrays; the stage does the I/O and the rules.

Units: Jy/beam for images, Jy/pixel for models, arcsec for cells and beams, Hz, metres.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from almarules.engine.stages.imaging.job import ImageJob, ImagingError
from almarules.kernels import beam as beamfit
from almarules.kernels import deconvolve, gridding, masks, primary_beam, restore, stats, weighting
from almarules.kernels.beam import Beam
from almarules.engine.ms.visset import VisSet

#: ducc0 gridding accuracy (relative L2 error of the dirty image and of the degridded model).
EPSILON = 1e-6


@dataclass
class Dirty:
    """The dirty plane and what the threshold needs: imaging weights, theoretical sensitivity
    (Jy/beam, `kernels.weighting.sensitivity`), PSF, fitted beam and its sidelobe level."""

    imaging_weight: np.ndarray
    sensitivity: float
    psf: np.ndarray
    beam: Beam
    sidelobe: float
    image: np.ndarray


@dataclass
class Cleaned:
    """The clean's result, the restored image (non-pbcor, Jy/beam), its pbcor, the mask used."""

    result: deconvolve.CleanResult
    image: np.ndarray
    pbcor: np.ndarray
    mask: np.ndarray


def ascending(vs: VisSet) -> VisSet:
    """`vs` with its channels in ascending frequency, as the gridder needs them: spws stored in
    descending order (SMA; negative CHAN_WIDTH) are legal and give the same image."""
    if vs.freq.size < 2 or vs.freq[0] < vs.freq[-1]:
        return vs
    flip = {name: getattr(vs, name)[:, ::-1].copy() for name in ("vis", "weight", "flag", "noise_weight")}
    return dataclasses.replace(vs, freq=vs.freq[::-1].copy(), **flip)


def dirty_plane(job: ImageJob, vs: VisSet, nthreads: int = 0) -> Dirty:
    """Briggs weights (robust from the rules), sensitivity, PSF, beam fit and dirty image."""
    n, cell = job.imsize, job.cell_arcsec
    vs = ascending(vs)
    if vs.nvis == 0:
        raise ImagingError(f"{job.path}: every visibility is flagged")
    kw = dict(flags=vs.flag, per_channel=job.specmode == "cube")  # CASA's cube vs mfs uv cells
    try:
        iw = weighting.briggs(vs.weighting_uvw, vs.freq, vs.weight, n, n, cell, job.robust, **kw)
    except ValueError as exc:
        raise ImagingError(f"{job.path}: weighting: {exc} (cell {cell:.4g} arcsec, {n} pixels)") from None
    sigma = weighting.sensitivity(vs.noise_weight, iw, flags=vs.flag)  # variance, not CASA's weights
    grid = dict(flags=vs.flag, epsilon=EPSILON, nthreads=nthreads, wgridding=job.gridder == "wproject")
    psf = gridding.psf(vs.uvw, vs.freq, iw, n, n, cell, **grid)
    try:
        fitted = beamfit.fit_beam(psf, cell)
    except ValueError as exc:
        raise ImagingError(f"{job.path}: the PSF main lobe cannot be fitted ({exc}); too few baselines "
                           f"or too coarse a cell") from None
    side = beamfit.sidelobe_level(psf, fitted, cell)  # CASA's measure, as the cycle threshold's
    dirty = gridding.dirty_image(vs.uvw, vs.freq, vs.vis, iw, n, n, cell, **grid)
    return Dirty(iw, sigma, psf, fitted, side, dirty)


def pb_plane(job: ImageJob, freq_hz: float, dish_m: float) -> np.ndarray:
    """The primary beam of the image at `freq_hz`: the rules' pb_model (a `kernels.primary_beam`
    model by name); `dish_m` (the smallest physical dish, m) sizes the generic "airy" and
    "gaussian" models, the telescopes' models carry their own apertures."""
    return primary_beam.pb_image(job.imsize, job.imsize, job.cell_arcsec, freq_hz, dish_m, model=job.pb_model)


def pb_notes(job: ImageJob, dish_m: float) -> list[str]:
    """The record's warning when the primary beam is a generic model (no telescope model chosen
    by the rules, or one forced by name), saying which; none for a telescope's model."""
    if job.pb_model not in primary_beam.GENERIC_MODELS:
        return []
    used = primary_beam.describe(job.pb_model, 1e9, dish_m)  # the generic models scale as 1 / nu
    return [f"primary beam: the generic model {used} [{job.settings['pb_model'].source}], not a measured "
            f"beam of the telescope; PB-corrected fluxes away from the phase centre are only as good as it"]


#: the largest w-term phase (rad) over an image that gridder "standard" ignores without a warning
W_PHASE_WARN = 0.1


def w_term_warnings(job: ImageJob, vs: VisSet) -> list[str]:
    """The record's warning when the rules' gridder ignores a w-term phase over W_PHASE_WARN rad at
    the image corners (`kernels.gridding.max_w_phase`): positions and fluxes far from the phase
    centre then suffer, as in tclean's standard gridder; none otherwise."""
    if job.gridder == "wproject" or vs.nvis == 0:
        return []
    vs = ascending(vs)
    phase = gridding.max_w_phase(vs.uvw, vs.freq, job.imsize, job.imsize, job.cell_arcsec)
    if phase <= W_PHASE_WARN:
        return []
    return [f"the w-term reaches {phase:.3g} rad at the image corners and gridder 'standard' ignores it "
            f"[{job.settings['gridder'].source}]: sources far from the phase centre are distorted; "
            f"gridder 'wproject' corrects it"]


def dirty_dr(d: Dirty, pb: np.ndarray) -> tuple[float, float]:
    """(dirty peak where PB > 0.2 in Jy/beam, dirty dynamic range = that peak / sensitivity)."""
    dr = stats.dirty_dynamic_range(d.image, pb, d.sensitivity)
    return dr * d.sensitivity, dr


def clean_masks(job: ImageJob, pb: np.ndarray, beam: Beam, sidelobe: float, notes: list[str]
                ) -> tuple[Optional[np.ndarray], Optional[deconvolve.MaskUpdate]]:
    """(mask, None) for the rules' "pb" mask (pb >= mask_pblimit inside pblimit), (None, update)
    for auto-multithresh (`kernels.masks`; each update appends its line to `notes`)."""
    if job.mask_method == "pb":
        return masks.pb_level_mask(pb, job.mask_pblimit) & (pb >= job.pblimit), None
    am = job.automask
    assert am is not None

    def update(residual: np.ndarray, previous: Optional[np.ndarray], cycle: int) -> np.ndarray:
        r = masks.auto_multithresh(
            residual, pb, beam, job.cell_arcsec, sidelobe, sidelobethreshold=am.sidelobethreshold,
            noisethreshold=am.noisethreshold, lownoisethreshold=am.lownoisethreshold,
            negativethreshold=am.negativethreshold, minbeamfrac=am.minbeamfrac, growiterations=am.growiterations,
            smoothfactor=am.smoothfactor, cutthreshold=am.cutthreshold, prev_mask=previous, pblimit=job.pblimit)
        notes.append(f"cycle {cycle}: auto-multithresh mask {int(r.mask.sum())} pixels, threshold "
                     f"{r.threshold_used:.4g} Jy/beam, noise {r.noise:.4g} Jy/beam")
        return r.mask
    return None, update


def clean_plane(job: ImageJob, vs: VisSet, d: Dirty, pb: np.ndarray, threshold: float,
                nthreads: int = 0) -> tuple[Cleaned, list[str]]:
    """Cotton-Schwab clean to `threshold` (Jy/beam) with the rules' mask, niter, gain and cycle
    factor; restore with the fitted beam; pbcor at the rules' pblimit. Returns also the mask notes."""
    if job.deconvolver not in ("hogbom", "clark"):
        raise ImagingError(f"{job.path}: deconvolver {job.deconvolver!r} (nterms {job.nterms}) is not available for "
                           f"{job.specmode} images; the imaging stage has hogbom and clark, and mtmfs for mfs and "
                           f"cont images [{job.settings['deconvolver'].source}]")
    n, cell = job.imsize, job.cell_arcsec
    vs = ascending(vs)
    notes: list[str] = []
    mask, update = clean_masks(job, pb, d.beam, d.sidelobe, notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence is in result.warnings
        result = deconvolve.cotton_schwab(
            vs.uvw, vs.freq, vs.vis, vs.weight, d.imaging_weight, n, n, cell, psf=d.psf, mask=mask,
            gain=job.gain, threshold=threshold, niter=job.niter, cycle_factor=job.cycle_factor, epsilon=EPSILON,
            minor=job.deconvolver, flags=vs.flag, nthreads=nthreads, mask_update=update, dirty=d.image,
            wgridding=job.gridder == "wproject",
            beam=d.beam)
    image = restore.restore(result.model, result.residual, d.beam, cell)
    final_mask = result.mask if result.mask is not None else np.zeros((n, n), bool)
    return Cleaned(result, image, primary_beam.pbcor(image, pb, job.pblimit), final_mask), notes


def plane_stats(job: ImageJob, c: Cleaned, pb: np.ndarray) -> stats.ImageStats:
    """Peak, min and the rms outside the clean mask of the non-pbcor image, inside the pblimit."""
    return stats.image_stats(c.image, mask=c.mask, pb=pb, pblimit=job.pblimit)
