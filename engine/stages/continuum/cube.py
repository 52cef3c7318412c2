"""findcont's coarse dirty cube of one field and spw (heuristics.md section 10, issue 15).

The ALMA pipeline finds line-free channels on a cheap "coarse" cube rather than the cube it
delivers: few pixels per beam, a uv taper, a small image. The rules give the set-up per image
(`image.findcont_cell`, `image.findcont_imsize`, `image.findcont_taper`, the robust); this module
grids every channel of the spw at that set-up and returns the cube, the primary beam and the
channels' LSRK frequencies. A coarse image is small, so its visibilities can be averaged in time,
per baseline, for as long as the smearing at the image's corner stays below the rules'
`image.findcont_smearing` (`kernels.averaging`): on long observations most rows are merged. Units: arcsec, Hz, Jy/beam; cube (nx, ny, nchan) as `kernels.stats`,
NaN planes for channels with no unflagged sample.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from almarules.engine.stages.imaging import data as vdata
from almarules.engine.stages.imaging.job import ImagingError
from almarules.engine.stages.imaging.plane import ascending
from almarules.engine.ms.visibilities import Chunk
from almarules.kernels import averaging
from almarules.kernels import beam as beamfit
from almarules.kernels import gridding, primary_beam, weighting
from almarules.kernels.masks import beam_area_pixels

#: gridding accuracy of the coarse cube (ducc0 epsilon): far below any line's contrast
EPSILON = 1e-5
#: rows are averaged only where that leaves at most this fraction of a chunk's rows (measured:
#: averaging 20 % of NGC 5921's rows away cost more time than it saved)
MIN_REDUCTION = 0.5


@dataclass(frozen=True)
class CoarseSetup:
    """The coarse cube's set-up (from the rules)."""

    cell_arcsec: float
    imsize: int
    robust: float
    taper_arcsec: float  # FWHM of the uv taper in the image plane (0: none)
    pb_model: str
    dish_m: Optional[float]
    smearing: float = 0.0  # largest amplitude loss from time averaging at the image corner (0: none)


@dataclass(frozen=True)
class CoarseCube:
    """A coarse dirty cube and what findcont needs with it."""

    cube: np.ndarray  # (nx, ny, nchan) Jy/beam
    pb: np.ndarray  # (nx, ny) at the spw's centre frequency
    beam_pixels: float  # the mid channel's beam area in pixels
    freq_lsrk: np.ndarray  # (nchan,) channel centres, LSRK Hz
    width_lsrk: np.ndarray  # (nchan,) channel widths, LSRK Hz (positive)
    notes: tuple[str, ...]
    rows_read: int = 0  # visibility rows read
    rows_gridded: int = 0  # rows gridded (after time averaging)


def coarse_cube(ms_paths: Sequence[Path], field: str, spw: int, setup: CoarseSetup, *, nthreads: int = 0,
                memory_limit: int = 1024 ** 3, say: Optional[Callable[[str], None]] = None) -> CoarseCube:
    """Dirty image of every channel of `spw` of `field` (all MSs, all rows) at `setup`: Briggs
    weights per channel (CASA's cube convention) times the taper, `kernels.gridding`. Raises
    ImagingError when the field or spw has no data."""
    sel = vdata.select_channels(ms_paths, field, [spw], "cube", 1)
    first = sel.spws[0]
    nchan = first.nchan_selected
    n, cell = setup.imsize, setup.cell_arcsec
    cube = np.full((n, n, nchan), np.nan)
    counted = [0, 0]
    reduce = _time_averaging(setup, float(np.max(first.axis.freq)), counted) if setup.smearing > 0 else None
    probe = vdata.read(sel, 1, (0, 1))
    per_chunk = max(1, int(memory_limit // max(probe.nbytes, 1)))
    beam_px = float("nan")
    mid = nchan // 2
    rows: Optional[tuple[int, int]] = None  # (read, gridded): every channel block reads the same rows
    for a in range(0, nchan, per_chunk):
        b = min(nchan, a + per_chunk)
        vs = vdata.read(sel, 1, (a, b), reduce=reduce) if reduce or (a, b) != (0, 1) else probe
        rows = rows or ((counted[0], counted[1]) if reduce else (vs.uvw.shape[0],) * 2)
        for j in range(b - a):
            ch = _channel_plane(vs, j, setup, nthreads, a + j == mid)
            if ch is not None:
                cube[:, :, a + j], area = ch
                beam_px = area if area is not None else beam_px
        if say:
            say(f"findcont {field} spw {spw}: coarse cube channel {b}/{nchan}")
    freq = first.axis.freq * first.doppler
    width = np.abs(first.axis.width) * first.doppler
    pb = primary_beam.pb_image(n, n, cell, float(np.mean(freq)), setup.dish_m, model=setup.pb_model)
    if not np.isfinite(beam_px):  # the mid channel was flagged: the beam of the plan
        beam_px = beam_area_pixels(beamfit.Beam(3 * cell, 3 * cell, 0.0), cell)
    return CoarseCube(cube, pb, beam_px, freq, width, tuple(sel.notes), *(rows or (0, 0)))


def _time_averaging(setup: CoarseSetup, freq_max: float, counted: list[int]) -> Callable[[Chunk], Chunk]:
    """A chunk reducer averaging rows per baseline and field over `kernels.averaging.interval` at the
    image's corner (radius imsize cell / sqrt 2) and the spw's highest frequency; counts the rows
    in and out in `counted`."""
    radius = np.radians(setup.imsize * setup.cell_arcsec / np.sqrt(2) / 3600.0)

    def reduce(chunk: Chunk) -> Chunk:
        dt = averaging.interval(chunk.uvw, freq_max, radius, setup.smearing)
        label = averaging.bins(chunk.time, chunk.antenna1, chunk.antenna2, chunk.field_id, dt)
        if int(label.max(initial=-1)) + 1 > MIN_REDUCTION * chunk.nrow:  # averaging would cost more than it saves
            counted[0] += chunk.nrow
            counted[1] += chunk.nrow
            return chunk
        av = averaging.average(label, chunk.uvw, chunk.vis, chunk.weight, chunk.noise_weight, chunk.flag)
        counted[0] += chunk.nrow
        counted[1] += av.uvw.shape[0]
        f = av.first
        return replace(chunk, uvw=av.uvw, vis=av.vis, weight=av.weight, flag=av.flag, noise_weight=av.noise_weight,
                       time=chunk.time[f], antenna1=chunk.antenna1[f], antenna2=chunk.antenna2[f],
                       field_id=chunk.field_id[f], row=chunk.row[f])

    return reduce


def _channel_plane(vs, j: int, setup: CoarseSetup, nthreads: int, fit: bool
                   ) -> Optional[tuple[np.ndarray, Optional[float]]]:
    """(dirty plane, its beam area in pixels when `fit`) of channel j of `vs`; None when flagged."""
    one = ascending(vs.channel(j))
    if one.nvis == 0:
        return None
    n, cell = setup.imsize, setup.cell_arcsec
    try:
        iw = weighting.briggs(one.weighting_uvw, one.freq, one.weight, n, n, cell, setup.robust, flags=one.flag,
                              per_channel=True)
    except ValueError as exc:
        raise ImagingError(f"findcont coarse cube: weighting: {exc} (cell {cell:.4g} arcsec, {n} pixels)") from None
    iw = iw * weighting.gaussian_taper(one.uvw, one.freq, setup.taper_arcsec)
    if not np.any(iw > 0):
        return None
    grid = dict(flags=one.flag, epsilon=EPSILON, nthreads=nthreads, wgridding=False)
    plane = gridding.dirty_image(one.uvw, one.freq, one.vis, iw, n, n, cell, **grid)
    area = None
    if fit:
        try:
            area = beam_area_pixels(beamfit.fit_beam(gridding.psf(one.uvw, one.freq, iw, n, n, cell, **grid), cell),
                                    cell)
        except ValueError:
            area = None
    return plane, area
