"""The visibilities of one image: which MSs, FIELD rows, spws and channels, read with
`engine.ms.visibilities` and joined with `engine.ms.visset`.

Channels: mfs and cube images use all channels of their spws (cubes binned by nbin; channels
beyond the last whole bin are left out and said so); cont images use the channels a cont.dat
selects for the field and spw (their LSRK centres inside its ranges), or all channels when no
cont.dat is given or it has no entry (said so in the record).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from almarules.engine.products.contdat import ContDat, channel_mask, lookup
from almarules.engine.stages.imaging.job import ImagingError
from almarules.engine.ms import visibilities as msdata
from almarules.engine.ms.visset import VisSet, join
from almarules.kernels import regrid


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


def spw_centres(selection: "Selection") -> list[float]:
    """Each selected spw's LSRK centre (Hz): the mid point of its selected channels' LSRK frequencies
    (over the MSs)."""
    out: dict[int, list[float]] = {}
    for s in selection.spws:
        f = np.concatenate([s.axis.freq[a:b] for a, b in s.runs]) * s.doppler if s.runs else np.zeros(0)
        if f.size:
            out.setdefault(s.spw, []).extend([float(f.min()), float(f.max())])
    return [(min(v) + max(v)) / 2 for _, v in sorted(out.items())]


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
    chunks = [reduce(c) if reduce else c for s in selection.spws
              for c in _spw_chunks(s, s.field_ids, nbin, channels, progress)]
    if not chunks:
        raise ImagingError("the selection holds no cross-correlation rows")
    return join(chunks)


def _spw_chunks(s: SpwData, fids: Sequence[int], nbin: int, channels: Optional[tuple[int, int]],
                progress: Optional[Callable[[int], None]]) -> Iterator[msdata.Chunk]:
    """The chunks of FIELD rows `fids` of one spw of one MS: its channel runs, or the (binned)
    output channels [first, stop) when `channels` is given."""
    runs = [(channels[0] * nbin, channels[1] * nbin)] if channels is not None else s.runs
    for a, b in runs:
        for chunk in msdata.select(s.ms, fids, s.spw, a, b, nbin=nbin):
            chunk.lsrk_factor = s.doppler  # where CASA bins the weight density (kernels.weighting)
            if progress:
                progress(chunk.nrow)
            yield chunk


# ---------------------------------------------------------------- pointings (mosaics)
#: FIELD rows (of any MS) whose phase centres agree within this (arcsec) are one pointing
SAME_POINTING_ARCSEC = 0.01


@dataclass
class PointingRows:
    """One pointing of an image: its direction (RA, Dec deg, the FIELD table's frame), the
    (MS, FIELD id)s that observed it, and its rows [start, stop) in the VisSet of `read_pointings`
    (`spans`: those of each (MS, FIELD id), in the order of `fields`)."""

    ra_deg: float
    dec_deg: float
    frame: str
    fields: list[tuple[str, int]]
    start: int = 0
    stop: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)  # rows of each of `fields` (read_pointings)

    @property
    def name(self) -> str:
        return ", ".join(f"{Path(ms).name} field {fid}" for ms, fid in self.fields)


def _separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    ra1, dec1, ra2, dec2 = map(np.radians, (*a, *b))
    c = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(ra1 - ra2)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))) * 3600.0)


def pointings(selection: Selection) -> list[PointingRows]:
    """The distinct pointings of the selection's FIELD rows over all MSs (phase centres within
    SAME_POINTING_ARCSEC are one), in the order first seen; one for a single field."""
    out: list[PointingRows] = []
    seen: set[tuple[str, int]] = set()
    for s in selection.spws:
        ms = str(s.ms)
        todo = [f for f in s.field_ids if (ms, f) not in seen]
        if not todo:
            continue
        for fid, (ra, dec, frame) in msdata.phase_centres(s.ms, todo).items():
            seen.add((ms, fid))
            match = next((p for p in out if p.frame == frame
                          and _separation_arcsec((p.ra_deg, p.dec_deg), (ra, dec)) <= SAME_POINTING_ARCSEC), None)
            if match is None:
                out.append(PointingRows(ra, dec, frame, [(ms, fid)]))
            else:
                match.fields.append((ms, fid))
    return out


def read_pointings(selection: Selection, nbin: int = 1, channels: Optional[tuple[int, int]] = None,
                   progress: Optional[Callable[[int], None]] = None) -> tuple[VisSet, list[PointingRows]]:
    """`read`, with the rows grouped by pointing: the VisSet's rows of pointing p are
    [p.start, p.stop) (a pointing without selected rows has start == stop)."""
    groups = pointings(selection)
    chunks: list[msdata.Chunk] = []
    counts: list[list[list[msdata.Chunk]]] = []
    for p in groups:
        mine: list[list[msdata.Chunk]] = []
        for ms, fid in p.fields:
            mine.append([])
            for s in selection.spws:
                if str(s.ms) == ms and fid in s.field_ids:
                    mine[-1].extend(_spw_chunks(s, [fid], nbin, channels, progress))
        counts.append(mine)
        chunks += [c for per_field in mine for c in per_field]
    if not chunks:
        raise ImagingError("the selection holds no cross-correlation rows")
    vs = join(chunks)
    start = 0
    for p, mine in zip(groups, counts, strict=True):
        p.start, p.spans = start, []
        for per_field in mine:
            n = sum(c.vis.size if vs.flattened else c.nrow for c in per_field)
            p.spans.append((start, start + n))
            start += n
        p.stop = start
    return vs, groups


# ---------------------------------------------------------------- cubes of several EBs
#: EBs whose LSRK channel centres agree with the cube's within this fraction of a channel are
#: read channel by channel as they are; the others are regridded (`kernels.regrid`)
SAME_AXIS_CHANNELS = 1e-3


@dataclass
class CubeAxis:
    """A cube's output channels: LSRK centres and width (Hz; the first EB's binned channels kept
    inside every EB's span, `kernels.regrid.common_axis`), the same in the first EB's own frame,
    the first EB's first bin, and per selected spw whether it is regridded (else read by index)."""

    lsrk_centres: np.ndarray
    lsrk_width: float
    own_centres: np.ndarray
    own_width: float
    start: int
    nbin: int
    regridded: list[bool]
    notes: list[str] = field(default_factory=list)

    @property
    def nchan(self) -> int:
        return int(self.lsrk_centres.size)


def cube_axis(selection: Selection, nbin: int) -> CubeAxis:
    """The output channel axis of a cube of the selection's spws (one spw, one per MS)."""
    first = selection.spws[0]
    axes = [(s.axis.freq[:s.runs[0][1]] * s.doppler, s.axis.width[:s.runs[0][1]] * s.doppler)
            for s in selection.spws]
    try:
        out = regrid.common_axis(axes[:1], nbin)  # the first EB's binned channels
        if not all(_same_axis(lsrk, out, nbin) for lsrk, _ in axes):
            out = regrid.common_axis(axes, nbin)
    except ValueError as exc:
        raise ImagingError(f"the cube's execution blocks: {exc}") from None
    notes = []
    if out.dropped_low or out.dropped_high:
        notes.append(f"{out.dropped_low + out.dropped_high} channel(s) of {first.ms.name} spw {first.spw} at the band "
                     f"edges are left out of the cube: another execution block does not cover them in LSRK")
    regridded = [not _same_axis(lsrk, out, nbin) for lsrk, _ in axes]
    if any(regridded):
        which = [f"{s.ms.name} spw {s.spw}" for s, r in zip(selection.spws, regridded, strict=True) if r]
        notes.append(f"{', '.join(which)} regridded onto the cube's LSRK channels (linear interpolation, as "
                     f"tclean's default): its channels are offset from {first.ms.name}'s in LSRK")
    return CubeAxis(out.centres_hz, out.width_hz, out.centres_hz / first.doppler, out.width_hz / first.doppler,
                    out.start, nbin, regridded, notes)


def _same_axis(lsrk: np.ndarray, out: regrid.OutputAxis, nbin: int) -> bool:
    """An EB's LSRK channels (the same indices as the output's first-EB channels, binned) on the
    output channels within SAME_AXIS_CHANNELS of a channel: read by index, not regridded."""
    own = lsrk[out.first_eb_channels()]
    return own.size == out.nchan * nbin and bool(np.all(
        np.abs(own.reshape(out.nchan, nbin).mean(axis=1) - out.centres_hz) <= SAME_AXIS_CHANNELS
        * abs(out.width_hz) / nbin))


def _channel_slice(chunk: msdata.Chunk, a: int, b: int) -> msdata.Chunk:
    return dataclasses.replace(chunk, vis=chunk.vis[:, a:b], weight=chunk.weight[:, a:b], flag=chunk.flag[:, a:b],
                               noise_weight=chunk.noise_weight[:, a:b], freq=chunk.freq[a:b])


@dataclass
class ChannelSets:
    """The visibilities of cube channels [a, b) when EBs are regridded: one chunk list whose
    chunks share the output channels but not their frequencies (each EB's own frame); `channel(j)`
    joins channel j of every chunk (flattened when the EBs' frequencies differ: exact for one
    channel). The attributes the cube reads of a `VisSet`."""

    chunks: list[msdata.Chunk]
    pointing_of: Optional[list[tuple[int, int]]] = None  # a mosaic: each chunk's (pointing, its FIELD row), in order
    pointings: Optional[list[PointingRows]] = None

    @property
    def nchan(self) -> int:
        return int(self.chunks[0].freq.size)

    @property
    def rows(self) -> int:
        return sum(c.nrow for c in self.chunks)

    @property
    def nbytes(self) -> int:
        return sum(c.vis.nbytes + c.weight.nbytes + c.flag.nbytes + c.noise_weight.nbytes + c.uvw.nbytes
                   for c in self.chunks)

    @property
    def nvis(self) -> int:
        return int(sum(np.count_nonzero(~c.flag) for c in self.chunks))

    @property
    def nflag(self) -> int:
        return int(sum(np.count_nonzero(c.flag) for c in self.chunks))

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for c in self.chunks for n in c.notes))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted({c.column for c in self.chunks}))

    def channel(self, j: int) -> VisSet:
        return join([_channel_slice(c, j, j + 1) for c in self.chunks])

    def channel_pointings(self, j: int) -> tuple[VisSet, list[PointingRows]]:
        """Channel j and its pointings' rows in it (a mosaic's `ChannelSets`): one channel, so each
        chunk gives its rows whether the join flattens or not."""
        assert self.pointing_of is not None and self.pointings is not None
        rows = [dataclasses.replace(p, start=0, stop=0, spans=[]) for p in self.pointings]
        start = 0
        for i, p in enumerate(rows):
            p.start = start
            for k in range(len(p.fields)):
                n = sum(c.nrow for c, tag in zip(self.chunks, self.pointing_of, strict=True) if tag == (i, k))
                p.spans.append((start, start + n))
                start += n
            p.stop = start
        return self.channel(j), rows


def _regridded(chunk: msdata.Chunk, in_lsrk: np.ndarray, axis: CubeAxis, a: int, b: int, doppler: float
               ) -> msdata.Chunk:
    """`chunk` (channels with LSRK centres in_lsrk) interpolated onto output channels [a, b)."""
    out = axis.lsrk_centres[a:b]
    vis, weight, flag = regrid.regrid(chunk.vis, chunk.weight, chunk.flag, in_lsrk, out, axis.lsrk_width,
                                      nbin=axis.nbin)
    _, noise, _ = regrid.regrid(np.zeros(chunk.vis.shape, np.complex64), chunk.noise_weight, chunk.flag, in_lsrk,
                                out, axis.lsrk_width, nbin=axis.nbin)
    return dataclasses.replace(chunk, vis=vis.astype(np.complex128, copy=False), weight=weight, flag=flag,
                               noise_weight=np.where(flag, 0.0, noise), freq=out / doppler)


def read_cube(selection: Selection, axis: CubeAxis, channels: tuple[int, int],
              progress: Optional[Callable[[int], None]] = None,
              pointings: Optional[list[PointingRows]] = None) -> "VisSet | ChannelSets":
    """Output channels [a, b) of a cube: a `VisSet` (channels by index, binned) when no EB is
    regridded and the field is one pointing, else `ChannelSets` (regridded EBs interpolated onto
    the cube's LSRK channels, the input channels around them read unbinned; a mosaic's chunks
    read per FIELD row and ordered by `pointings`, `ChannelSets.channel_pointings`)."""
    a, b = channels
    if not any(axis.regridded) and pointings is None:
        return read(selection, axis.nbin, (axis.start + a, axis.start + b), progress)
    tagged: list[tuple[tuple[int, int], msdata.Chunk]] = []
    half = abs(axis.lsrk_width) / 2
    for s, regridded in zip(selection.spws, axis.regridded, strict=True):
        groups = [((0, 0), s.field_ids)] if pointings is None else [
            ((i, k), [fid]) for i, p in enumerate(pointings) for k, (ms, fid) in enumerate(p.fields)
            if ms == str(s.ms) and fid in s.field_ids]
        for tag, fids in groups:
            for chunk in _cube_chunks(s, fids, regridded, axis, a, b, half):
                if progress:
                    progress(chunk.nrow)
                tagged.append((tag, chunk))
    if not tagged:
        raise ImagingError("the selection holds no cross-correlation rows")
    tagged.sort(key=lambda t: t[0])  # stable: a mosaic's rows grouped by pointing and FIELD row
    chunks = [c for _, c in tagged]
    if pointings is None:
        return ChannelSets(chunks)
    return ChannelSets(chunks, [tag for tag, _ in tagged], pointings)


def _cube_chunks(s: SpwData, fids: list[int], regridded: bool, axis: CubeAxis, a: int, b: int,
                 half: float) -> Iterator[msdata.Chunk]:
    """The chunks of output channels [a, b) of one spw of one MS, FIELD rows `fids`: binned by
    index, or read unbinned around them and regridded."""
    if not regridded:
        yield from _spw_chunks(s, fids, axis.nbin, (axis.start + a, axis.start + b), None)
        return
    lsrk = s.axis.freq * s.doppler
    f_lo, f_hi = sorted((float(axis.lsrk_centres[a]), float(axis.lsrk_centres[b - 1])))
    inside = np.flatnonzero((lsrk >= f_lo - half - np.abs(s.axis.width) * s.doppler)
                            & (lsrk <= f_hi + half + np.abs(s.axis.width) * s.doppler))
    lo, hi = max(int(inside.min()) - 1, 0), min(int(inside.max()) + 2, lsrk.size)
    for chunk in _spw_chunks(s, fids, 1, (lo, hi), None):
        yield _regridded(chunk, lsrk[lo:hi], axis, a, b, s.doppler)
