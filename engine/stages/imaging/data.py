"""The visibilities of one image: which MSs, FIELD rows, spws and channels, read with
`engine.ms.visibilities` and joined with `engine.ms.visset`.

Channels: mfs and cube images use all channels of their spws (cubes binned by nbin; channels
beyond the last whole bin are left out and said so); cont images use the channels a cont.dat
selects for the field and spw (their LSRK centres inside its ranges), or all channels when no
cont.dat is given or it has no entry (said so in the record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from almarules.engine.products.contdat import ContDat, channel_mask, lookup
from almarules.engine.stages.imaging.job import ImagingError
from almarules.engine.ms import visibilities as msdata
from almarules.engine.ms.visset import VisSet, join


@dataclass
class SpwData:
    """One spw of one MS as the image uses it: the FIELD rows, the axis, the Doppler factor
    (LSRK / own-frame frequency, towards the field at mid-observation) and the channel runs
    [start, stop) to read."""

    ms: Path
    spw: int
    field_ids: list[int]
    axis: msdata.SpwAxis
    doppler: float
    runs: list[tuple[int, int]]

    @property
    def nchan_selected(self) -> int:
        return sum(b - a for a, b in self.runs)

    @property
    def bandwidth(self) -> float:
        """Selected bandwidth (Hz)."""
        return float(sum(np.abs(self.axis.width[a:b]).sum() for a, b in self.runs))


@dataclass
class Selection:
    """Everything read for one image, before the visibilities."""

    spws: list[SpwData]
    how: str
    notes: list[str] = field(default_factory=list)

    @property
    def ms_names(self) -> list[str]:
        return sorted({str(s.ms) for s in self.spws})

    def field_ids(self) -> dict[str, list[int]]:
        return {str(s.ms): s.field_ids for s in self.spws}

    def lsrk_edges(self) -> tuple[float, float]:
        """Lowest and highest LSRK channel edge of the selected channels (Hz)."""
        lo, hi = [], []
        for s in self.spws:
            for a, b in s.runs:
                f, w = s.axis.freq[a:b] * s.doppler, np.abs(s.axis.width[a:b]) * s.doppler
                lo.append(float((f - w / 2).min()))
                hi.append(float((f + w / 2).max()))
        return min(lo), max(hi)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in a 1-D bool array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _doppler(ms: Path, spw: int, field_id: int, axis: msdata.SpwAxis) -> float:
    """The LSRK/TOPO frequency ratio of the spw towards the field, rounded to 1e-11 (3 mm/s): casacore's
    conversions differ in their last bits (~1e-15) with what the process converted before, and the
    rounding keeps those bits out of the products, so an image does not depend on which worker
    made it or in which order."""
    if axis.frame == "LSRK":
        return 1.0
    lsrk = msdata.lsrk_frequencies(ms, spw, field_id)
    return round(float(np.median(lsrk / axis.freq)), 11)


def select_channels(ms_paths: Sequence[Path], field: str, spws: Sequence[int], specmode: str, nbin: int,
                    contdat: Optional[ContDat] = None) -> Selection:
    """Which rows and channels of each MS image `field` in `spws` (see the module docstring)."""
    out: list[SpwData] = []
    notes: list[str] = []
    how = "all channels"
    for ms in ms_paths:
        ids = msdata.field_rows(ms, field)
        if not ids:
            continue
        _single_pointing(Path(ms), field, ids)
        for spw in spws:
            axis = msdata.spw_axis(ms, spw)
            nchan = axis.freq.size
            doppler = _doppler(ms, spw, ids[0], axis)
            runs = [(0, nchan)]
            if specmode == "cube" and nbin > 1:
                whole = nchan - nchan % nbin
                if whole == 0:
                    raise ImagingError(f"{ms}: spw {spw} has {nchan} channels, fewer than nbin = {nbin}")
                if whole < nchan:
                    notes.append(f"spw {spw}: the last {nchan - whole} channel(s) do not fill a bin of {nbin} "
                                 f"and are left out")
                runs = [(0, whole)]
            elif specmode == "cont":
                sel = lookup(contdat, field, spw) if contdat is not None else None
                if sel is None:
                    if contdat is not None:
                        notes.append(f"cont.dat has no ranges for field {field} spw {spw}: all its channels used")
                else:
                    how = "cont.dat ranges"
                    freq = axis.freq * doppler if _frame_lsrk(sel) else axis.freq
                    runs = _runs(channel_mask(freq, np.abs(axis.width), sel))
                    if not runs:
                        notes.append(f"cont.dat selects no channel of field {field} spw {spw}")
            out.append(SpwData(Path(ms), spw, ids, axis, doppler, runs))
    if not out:
        raise ImagingError(f"no FIELD row named {field!r} in {', '.join(map(str, ms_paths))}")
    if specmode == "cont" and contdat is None:
        notes.append("no cont.dat given: the continuum image uses all channels (line emission included)")
    _check_weights(out, field)
    if not any(s.runs for s in out):
        raise ImagingError(f"no channels selected for field {field} spws {list(spws)}")
    return Selection(out, how, notes)


#: FIELD rows of one name whose phase centres differ by more than this (arcsec) are a mosaic
MOSAIC_SEPARATION_ARCSEC = 0.001


def _single_pointing(ms: Path, field: str, ids: Sequence[int]) -> None:
    """ImagingError when the FIELD rows named `field` point at different directions: gridding the
    pointings of a mosaic as one would superpose their skies shifted against each other, so the
    stage makes no image rather than a wrong one until joint mosaic imaging lands (issue 16)."""
    if len(ids) < 2:
        return
    centres = np.radians([msdata.phase_centre(ms, i)[:2] for i in ids])
    ra0, dec0 = centres[0]
    cos_sep = (np.sin(dec0) * np.sin(centres[:, 1])
               + np.cos(dec0) * np.cos(centres[:, 1]) * np.cos(centres[:, 0] - ra0))
    spread = float(np.degrees(np.arccos(np.clip(cos_sep, -1.0, 1.0))).max() * 3600.0)
    if spread > MOSAIC_SEPARATION_ARCSEC:
        raise ImagingError(f"field {field} is a mosaic: {ms} has {len(ids)} FIELD rows of that name (ids "
                           f"{', '.join(map(str, ids))}) pointing up to {spread:.1f} arcsec apart; joint mosaic "
                           f"imaging is not implemented in the imaging stage yet (issue 16), so no image is made "
                           f"rather than one that superposes the pointings' skies")


def _check_weights(spws: Sequence[SpwData], field: str) -> None:
    """ImagingError when every weight of the selected rows is zero: named as such, not as flags."""
    columns = []
    for s in spws:
        column = msdata.zero_weight_column(s.ms, s.field_ids, s.spw)
        if column is None:
            return
        columns.append(f"{s.ms} (main table) column {column} spw {s.spw}")
    if columns:
        raise ImagingError(f"every weight of field {field} is zero ({'; '.join(columns)}): nothing can be "
                           f"imaged; the data are not flagged, their weights are all zero")


def _frame_lsrk(sel) -> bool:
    frames = {r.frame for r in sel.ranges}
    return frames <= {"LSRK", None} and "LSRK" in frames


def read(selection: Selection, nbin: int = 1, channels: Optional[tuple[int, int]] = None,
         progress: Optional[Callable[[int], None]] = None,
         reduce: Optional[Callable[[msdata.Chunk], msdata.Chunk]] = None) -> VisSet:
    """Read the selected visibilities into one `VisSet` (spws with different axes flattened).

    channels: for a cube, the (binned) output channels [first, stop) to read instead of the
    runs; progress(rows) is called after every chunk (rows read); reduce(chunk), when given,
    replaces every chunk before it is kept (e.g. averaged in time).
    """
    chunks = []
    for s in selection.spws:
        runs = [(channels[0] * nbin, channels[1] * nbin)] if channels is not None else s.runs
        for a, b in runs:
            for chunk in msdata.select(s.ms, s.field_ids, s.spw, a, b, nbin=nbin):
                chunk.lsrk_factor = s.doppler  # where CASA bins the weight density (kernels.weighting)
                if progress:
                    progress(chunk.nrow)
                chunks.append(reduce(chunk) if reduce else chunk)
    if not chunks:
        raise ImagingError("the selection holds no cross-correlation rows")
    return join(chunks)
