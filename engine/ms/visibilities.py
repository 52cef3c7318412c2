"""Data selection for imaging: Stokes I visibilities from a Measurement Set, read-only, streamed.

`select` yields `Chunk`s of at most `chunk_rows` rows (a bounded amount of memory whatever the
size of the MS) with exactly what `kernels.gridding` takes: ``uvw`` (nrow, 3) in metres, ``freq``
(nchan,) in Hz, ``vis`` (nrow, nchan) complex Stokes I in Jy, ``weight`` (nrow, nchan) in Jy^-2
and ``flag`` (nrow, nchan). `lsrk_frequencies` converts an spw's channel frequencies to LSRK with
casacore measures.

Conventions and choices
-----------------------
* Stokes I = (P + Q) / 2 of the two parallel hands (XX, YY for linear feeds; RR, LL for
  circular), whatever else the POLARIZATION row holds (cross hands of a full-polarisation spw
  are not used). Its weight, from per-hand weights w_p, w_q (Jy^-2), is the inverse variance
  ``4 / (1/w_p + 1/w_q)``.
* A flagged hand flags Stokes I (we do *not* fall back on the other hand: one hand alone is
  not Stokes I for a polarised source). A hand counts as flagged when FLAG or FLAG_ROW is set,
  or its weight is not positive and finite.
* Flagged output samples carry ``vis = 0`` and ``weight = 0`` (and ``flag = True``), so that a
  consumer which ignores the flags still gives them no weight.
* Weights: WEIGHT_SPECTRUM when the column exists and its cells are filled, else WEIGHT
  broadcast over the channels.
* Data column: ``CORRECTED_DATA`` by default; when it is absent (or its cells are not filled)
  ``DATA`` is read instead and the fact is recorded in `Chunk.notes`; an MS with neither is an
  error naming it (`data_column`). Any other column asked for must exist.
* Channels ``chan_start <= c < chan_stop`` (Python slice convention), averaged in bins of
  ``nbin`` adjacent channels: weighted mean of the unflagged samples, weight = sum of their
  weights (the inverse variance of the mean), a bin with no unflagged sample is flagged. The
  frequency of a bin is the plain mean of its channel frequencies. ``chan_stop - chan_start``
  must be a multiple of ``nbin`` (no silently dropped or ragged last bin).
* Only cross-correlations (ANTENNA1 != ANTENNA2). Rows come in main-table order, one data
  description at a time; a chunk never mixes data descriptions.
* Arrays are float64 / complex128 whatever the column types.

Every problem with the input is a `DataSelectionError` whose message names the table and the
column, read errors of casacore (a truncated or damaged data file) included. Tables are opened
read-only, without waiting for locks held by other processes (like `engine.ms.facts`), and closed when
the generator is exhausted or closed.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from almarules.engine.ms.metadata import STOKES_NAMES
from almarules.engine.ms.tables import TableAccessError, close_all, open_readonly

__all__ = ["Chunk", "DataSelectionError", "SpwAxis", "select", "lsrk_frequencies", "spw_axis", "field_rows",
           "phase_centre", "data_column", "CHUNK_ELEMENTS"]

# visibilities (row x channel x correlation) read per chunk by default (~ 8-16 B each)
CHUNK_ELEMENTS = 4_000_000

# casacore Stokes codes (CORR_TYPE) of the parallel hands: (first, second)
_PAIRS = ((9, 12), (5, 8))  # (XX, YY), (RR, LL)
# casacore MFrequency codes
_FRAMES = {0: "REST", 1: "LSRK", 2: "LSRD", 3: "BARY", 4: "GEO", 5: "TOPO", 6: "GALACTO",
           7: "LGROUP", 8: "CMB"}
_OBSERVATORY_ALIASES = {"EVLA": "VLA", "JVLA": "VLA", "ACA": "ALMA"}


class DataSelectionError(Exception):
    """A selection that cannot be made; the message names the MS, table and column."""


@dataclass
class Chunk:
    """A block of selected cross-correlation rows, Stokes I, (binned) channels.

    Attributes (n = rows in the chunk, nchan = output channels):
        uvw: (n, 3) float64, metres (the MS UVW column).
        vis: (n, nchan) complex128, Stokes I in the data column's unit (Jy when calibrated);
            0 where flagged.
        weight: (n, nchan) float64, the Stokes I sample's weight as CASA grids it: the sum of
            the two hands' weights (Jy^-2 for absolute weights); 0 where flagged. It is the basis
            of the imaging weights (`kernels.weighting`) and their normalisation.
        noise_weight: (n, nchan) float64, the inverse variance of the Stokes I sample,
            4 / (1/w_p + 1/w_q) (<= weight; equal when the hands' weights are); 0 where flagged.
            The sensitivity comes from it (`stokes_i` says why the two differ).
        flag: (n, nchan) bool, True = do not use.
        time: (n,) float64, MS TIME (MJD seconds, in the column's time scale).
        antenna1, antenna2: (n,) int32 antenna ids.
        field_id: (n,) int32 FIELD ids.
        row: (n,) int64 row numbers in the main table.
        freq: (nchan,) float64, Hz, channel (bin) frequencies in the spw's own frame (`frame`).
        frame: the spw's frequency frame (MEAS_FREQ_REF), e.g. "TOPO" or "LSRK".
        column: the data column actually read.
        notes: what the selection decided on its own (e.g. the fallback to DATA).
        lsrk_factor: nu_LSRK / nu in `frame` for these rows (1 unless the reader of the chunk
            sets it; `kernels.weighting` says who needs it).
    """

    uvw: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    flag: np.ndarray
    time: np.ndarray
    antenna1: np.ndarray
    antenna2: np.ndarray
    field_id: np.ndarray
    row: np.ndarray
    freq: np.ndarray
    frame: str
    column: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    noise_weight: Optional[np.ndarray] = None
    lsrk_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.noise_weight is None:
            self.noise_weight = self.weight

    @property
    def nrow(self) -> int:
        return int(self.uvw.shape[0])


# ---------------------------------------------------------------- table access
class _MS:
    """The main table and subtables, opened read-only with clear errors; `close` closes all."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._opened: list[Any] = []
        self._subs: dict[str, Any] = {}
        if not self.path.is_dir() or not (self.path / "table.dat").exists():
            raise DataSelectionError(f"{self.path}: not a Measurement Set (no such directory or no table.dat)")
        self.main = self._open(str(self.path), "main table")

    def _open(self, name: str, what: str):
        try:
            t = open_readonly(name, what)
        except TableAccessError as exc:
            self.close()
            raise DataSelectionError(str(exc)) from None
        self._opened.append(t)
        return t

    def sub(self, name: str, columns: Sequence[str] = ()):
        if name not in self._subs:
            if not (self.path / name / "table.dat").exists():
                raise DataSelectionError(f"{self.path}: missing subtable {name}")
            self._subs[name] = self._open(str(self.path / name), f"{name} subtable")
        t = self._subs[name]
        self.require(t, columns, name)
        return t

    def require(self, t, columns: Sequence[str], name: Optional[str] = None) -> None:
        have = set(t.colnames())
        for col in columns:
            if col not in have:
                where = f"{self.path}/{name}" if name else f"{self.path} (main table)"
                raise DataSelectionError(f"{where}: missing column {col}")

    def close(self) -> None:
        close_all(self._opened)
        self._opened = []
        self._subs = {}


@contextmanager
def _read_errors() -> Iterator[None]:
    """casacore read errors (`TableAccessError`, naming table and column) as `DataSelectionError`s."""
    try:
        yield
    except TableAccessError as exc:
        raise DataSelectionError(str(exc)) from None


def _converting(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: `_read_errors` around a function that reads an MS."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _read_errors():
            return fn(*args, **kwargs)

    return call


def _filled(t, column: str) -> bool:
    """The column exists and its first cell holds a value (optional MS columns may be empty)."""
    if column not in t.colnames():
        return False
    return t.nrows() == 0 or bool(t.iscelldefined(column, 0))


def _data_column(ms: "_MS", column: str) -> tuple[str, list[str]]:
    """The data column to read, and notes: CORRECTED_DATA falls back to DATA (see the module doc)."""
    main = ms.main
    if _filled(main, column):
        return column, []
    if column == "CORRECTED_DATA":
        if _filled(main, "DATA"):
            why = "absent" if column not in main.colnames() else "not filled"
            return "DATA", [f"{ms.path}: column CORRECTED_DATA {why}; read DATA instead"]
        have = [c for c in ("CORRECTED_DATA", "DATA") if c in main.colnames()]
        if not have:
            raise DataSelectionError(f"{ms.path} (main table): no DATA column (and no CORRECTED_DATA): "
                                     f"no visibilities to image")
        raise DataSelectionError(f"{ms.path} (main table): column {' and '.join(have)} holds no data "
                                 f"(and {'DATA' if 'DATA' not in have else 'CORRECTED_DATA'} is absent): "
                                 f"no visibilities to image")
    if column not in main.colnames():
        raise DataSelectionError(f"{ms.path} (main table): missing column {column}")
    raise DataSelectionError(f"{ms.path} (main table): column {column} holds no data")


@_converting
def data_column(ms_path: str | Path, column: str = "CORRECTED_DATA") -> str:
    """The data column `select` reads from an MS for `column` (CORRECTED_DATA falls back to DATA);
    a `DataSelectionError` naming the MS and the column when it has none to read."""
    ms = _MS(ms_path)
    try:
        return _data_column(ms, column)[0]
    finally:
        ms.close()


def _spw_row(ms: _MS, spw_id: int) -> tuple[np.ndarray, int]:
    """(CHAN_FREQ in Hz, MEAS_FREQ_REF) of one spectral window."""
    spw_t = ms.sub("SPECTRAL_WINDOW", ("CHAN_FREQ", "NUM_CHAN", "MEAS_FREQ_REF"))
    if not 0 <= spw_id < spw_t.nrows():
        raise DataSelectionError(f"{ms.path}/SPECTRAL_WINDOW: unknown spw {spw_id} "
                                 f"(the table has {spw_t.nrows()} rows)")
    freqs = np.asarray(spw_t.getcell("CHAN_FREQ", spw_id), dtype=np.float64)
    nchan = int(spw_t.getcell("NUM_CHAN", spw_id))
    ref = int(spw_t.getcell("MEAS_FREQ_REF", spw_id))
    if freqs.shape != (nchan,):
        raise DataSelectionError(f"{ms.path}/SPECTRAL_WINDOW: row {spw_id} column CHAN_FREQ has "
                                 f"{freqs.size} values but NUM_CHAN is {nchan}")
    return freqs, ref


def _check_fields(ms: _MS, field_ids: Sequence[int]) -> None:
    field_t = ms.sub("FIELD", ("NAME", "PHASE_DIR"))
    n = field_t.nrows()
    for f in field_ids:
        if not 0 <= f < n:
            raise DataSelectionError(f"{ms.path}/FIELD: unknown field {f} (the table has {n} rows)")


def _parallel_hands(ms: _MS, pol_id: int) -> tuple[int, int, list[int]]:
    """Indices of the two parallel hands in a POLARIZATION row's CORR_TYPE, and CORR_TYPE."""
    pol_t = ms.sub("POLARIZATION", ("CORR_TYPE", "NUM_CORR"))
    if not 0 <= pol_id < pol_t.nrows():
        raise DataSelectionError(f"{ms.path}/DATA_DESCRIPTION: column POLARIZATION_ID is {pol_id}, "
                                 f"but POLARIZATION has {pol_t.nrows()} rows")
    corr = [int(c) for c in pol_t.getcell("CORR_TYPE", pol_id)]
    for p, q in _PAIRS:
        if p in corr and q in corr:
            return corr.index(p), corr.index(q), corr
    names = ", ".join(STOKES_NAMES.get(c, str(c)) for c in corr) or "none"
    raise DataSelectionError(f"{ms.path}/POLARIZATION: row {pol_id} column CORR_TYPE holds {names}: "
                             f"no pair of parallel hands (XX and YY, or RR and LL) to form Stokes I")


# ---------------------------------------------------------------- Stokes I and binning
def stokes_i(vis_p: np.ndarray, vis_q: np.ndarray, w_p: np.ndarray, w_q: np.ndarray, flag_p: np.ndarray,
             flag_q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stokes I = (P + Q) / 2 of two parallel hands: (vis, weight, noise_weight, flag).

    weight = w_p + w_q is CASA's: tclean grids the hands' mean with the mean of their weights
    (twice that here: the scale cancels in the imaging weights) and apparentsens takes 1/sum(w_p +
    w_q) as the variance. The variance of (P + Q) / 2 is (1/w_p + 1/w_q) / 4, so the inverse
    variance is noise_weight = 4 / (1/w_p + 1/w_q), the harmonic mean: equal to weight when the
    hands' weights are equal, smaller otherwise. Imaging follows CASA (weight), the sensitivity
    follows the variance (noise_weight): where calibration left the hands' weights unequal,
    CASA's apparentsens is optimistic by the ratio of the arithmetic to the harmonic mean.
    The mean itself is unweighted, as in CASA: a weighted mean would leak Stokes Q into I.

    A sample is flagged where either hand is flagged or has a weight that is not positive and
    finite; flagged samples get vis 0 and weights 0.
    """
    w_p = np.asarray(w_p, dtype=np.float64)
    w_q = np.asarray(w_q, dtype=np.float64)
    flag = (np.asarray(flag_p, dtype=bool) | np.asarray(flag_q, dtype=bool)
            | ~(np.isfinite(w_p) & (w_p > 0)) | ~(np.isfinite(w_q) & (w_q > 0)))
    good = ~flag
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = np.where(good, 4.0 / (1.0 / w_p + 1.0 / w_q), 0.0)
    weight = np.where(good, w_p + w_q, 0.0)
    vis = np.where(good, 0.5 * (np.asarray(vis_p, np.complex128) + np.asarray(vis_q, np.complex128)), 0.0)
    return vis.astype(np.complex128), weight, noise, flag


def bin_channels(vis: np.ndarray, weight: np.ndarray, noise_weight: np.ndarray, flag: np.ndarray,
                 nbin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Average `nbin` adjacent channels (last axis; its length a multiple of nbin).

    The bin is the `weight`-weighted mean of its unflagged samples, its weight their sum; its
    noise weight is the inverse variance of that mean, (sum w)^2 / sum(w^2 / noise_weight)
    (= the sum of the noise weights when they equal the weights). A bin without unflagged
    samples is flagged, with vis 0 and weights 0. Returns (vis, weight, noise_weight, flag).
    """
    if nbin == 1:
        return vis, weight, noise_weight, flag
    n, nchan = vis.shape
    shape = (n, nchan // nbin, nbin)
    w = np.where(flag, 0.0, weight).reshape(shape)
    v = np.where(flag, 0.0, vis).reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(flag, 0.0, weight * weight / np.where(flag, 1.0, noise_weight)).reshape(shape)
    wsum = w.sum(axis=2)
    bflag = flag.reshape(shape).all(axis=2) | ~(wsum > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        bvis = np.where(bflag, 0.0, (w * v).sum(axis=2) / np.where(bflag, 1.0, wsum))
        bnoise = np.where(bflag, 0.0, wsum * wsum / np.where(bflag, 1.0, var.sum(axis=2)))
    return bvis.astype(np.complex128), np.where(bflag, 0.0, wsum), bnoise, bflag


# ---------------------------------------------------------------- selection
def select(ms_path: str | Path, field_ids: int | Sequence[int], spw_id: int, chan_start: int = 0,
           chan_stop: Optional[int] = None, nbin: int = 1, column: str = "CORRECTED_DATA",
           chunk_rows: Optional[int] = None) -> Iterator[Chunk]:
    """Stream the Stokes I cross-correlation visibilities of some fields in one spw.

    Args:
        ms_path: the Measurement Set (opened read-only).
        field_ids: FIELD id or ids (rows of any of them are selected).
        spw_id: SPECTRAL_WINDOW id (every data description of it is read).
        chan_start, chan_stop: channels ``chan_start <= c < chan_stop`` of the spw (default all).
        nbin: channels averaged per output channel (weighted by weight; see the module doc).
        column: the data column; the default CORRECTED_DATA falls back to DATA (with a note in
            `Chunk.notes`) when it is missing or unfilled; any other name must exist.
        chunk_rows: rows per chunk (default: about `CHUNK_ELEMENTS` visibilities per chunk).

    Yields:
        `Chunk`s, in main-table row order within each data description.

    Raises:
        DataSelectionError naming the table and column (raised on the first ``next()``).
    """
    fids = [int(field_ids)] if np.ndim(field_ids) == 0 else [int(f) for f in field_ids]
    spw_id = int(spw_id)
    nbin = int(nbin)
    if nbin < 1:
        raise DataSelectionError(f"nbin must be a positive integer, got {nbin}")
    if chunk_rows is not None and int(chunk_rows) < 1:
        raise DataSelectionError(f"chunk_rows must be a positive integer, got {chunk_rows}")
    ms = _MS(ms_path)
    try:
        with _read_errors():
            yield from _select(ms, fids, spw_id, chan_start, chan_stop, nbin, column, chunk_rows)
    finally:
        ms.close()


def _select(ms: _MS, fids: list[int], spw_id: int, chan_start: int, chan_stop: Optional[int], nbin: int,
            column: str, chunk_rows: Optional[int]) -> Iterator[Chunk]:
    main = ms.main
    ms.require(main, ("UVW", "TIME", "ANTENNA1", "ANTENNA2", "FIELD_ID", "DATA_DESC_ID", "FLAG", "WEIGHT"))
    freqs, ref = _spw_row(ms, spw_id)
    frame = _FRAMES.get(ref, str(ref))
    _check_fields(ms, fids)
    nchan = freqs.size
    stop = nchan if chan_stop is None else int(chan_stop)
    start = int(chan_start)
    if not 0 <= start < stop <= nchan:
        raise DataSelectionError(f"{ms.path}/SPECTRAL_WINDOW: spw {spw_id} has channels 0..{nchan - 1}; "
                                 f"chan_start={start}, chan_stop={stop} select none or too many")
    if (stop - start) % nbin:
        raise DataSelectionError(f"channels {start}..{stop - 1} of spw {spw_id} ({stop - start}) are not a "
                                 f"multiple of nbin={nbin}; choose chan_stop so that they are")
    nout = (stop - start) // nbin
    freq_out = freqs[start:stop].reshape(nout, nbin).mean(axis=1)

    column, notes = _data_column(ms, column)

    dd_t = ms.sub("DATA_DESCRIPTION", ("SPECTRAL_WINDOW_ID", "POLARIZATION_ID"))
    dd_spw = dd_t.getcol("SPECTRAL_WINDOW_ID") if dd_t.nrows() else np.zeros(0, int)
    dd_pol = dd_t.getcol("POLARIZATION_ID") if dd_t.nrows() else np.zeros(0, int)
    dds = [d for d in range(len(dd_spw)) if int(dd_spw[d]) == spw_id]
    if not dds:
        raise DataSelectionError(f"{ms.path}/DATA_DESCRIPTION: no row with SPECTRAL_WINDOW_ID {spw_id}")
    hands = {d: _parallel_hands(ms, int(dd_pol[d])) for d in dds}

    # index columns (4 B a row each): the selection itself
    ddid = main.getcol("DATA_DESC_ID")
    fld = main.getcol("FIELD_ID")
    a1 = main.getcol("ANTENNA1")
    a2 = main.getcol("ANTENNA2")
    cross = (a1 != a2) & np.isin(fld, fids)
    has_spectrum = "WEIGHT_SPECTRUM" in main.colnames()
    has_flag_row = "FLAG_ROW" in main.colnames()
    time_all = None
    for d in dds:
        rows = np.flatnonzero(cross & (ddid == d))
        if rows.size == 0:
            continue
        ip, iq, corr = hands[d]
        c0, c1 = min(ip, iq), max(ip, iq)
        ip, iq = ip - c0, iq - c0
        step = int(chunk_rows) if chunk_rows else max(1, CHUNK_ELEMENTS // max(1, (stop - start) * len(corr)))
        sub = main.selectrows(rows)
        use_spectrum = has_spectrum and _filled(sub, "WEIGHT_SPECTRUM")
        if time_all is None:
            time_all = main.getcol("TIME")
        blc, trc = [start, c0], [stop - 1, c1]
        for r0 in range(0, rows.size, step):
            n = min(step, rows.size - r0)
            # a failed read is a TableAccessError naming the column (engine.ms.tables)
            data = sub.getcolslice(column, blc, trc, [], r0, n)  # (n, nchan, ncorr)
            flag = sub.getcolslice("FLAG", blc, trc, [], r0, n)
            if use_spectrum:
                wsp = sub.getcolslice("WEIGHT_SPECTRUM", blc, trc, [], r0, n)
                w_p, w_q = wsp[:, :, ip], wsp[:, :, iq]
            else:
                wrow = sub.getcol("WEIGHT", r0, n)  # (n, ncorr)
                w_p = np.broadcast_to(wrow[:, c0 + ip, None], (n, stop - start))
                w_q = np.broadcast_to(wrow[:, c0 + iq, None], (n, stop - start))
            uvw = sub.getcol("UVW", r0, n)
            frow = sub.getcol("FLAG_ROW", r0, n) if has_flag_row else np.zeros(n, bool)
            if data.shape != (n, stop - start, c1 - c0 + 1) or flag.shape != data.shape:
                raise DataSelectionError(f"{ms.path} (main table): column {column} or FLAG has cells of shape "
                                         f"{data.shape[1:]} / {flag.shape[1:]}, expected "
                                         f"({stop - start}, {c1 - c0 + 1}) for spw {spw_id}")
            frow = np.asarray(frow, bool)[:, None]
            vis, weight, noise, fl = stokes_i(data[:, :, ip], data[:, :, iq], w_p, w_q,
                                              flag[:, :, ip] | frow, flag[:, :, iq] | frow)
            vis, weight, noise, fl = bin_channels(vis, weight, noise, fl, nbin)
            idx = rows[r0:r0 + n]
            yield Chunk(uvw=np.asarray(uvw, np.float64), vis=vis, weight=weight, flag=fl,
                        time=np.asarray(time_all[idx], np.float64), antenna1=a1[idx], antenna2=a2[idx],
                        field_id=fld[idx], row=idx.astype(np.int64), freq=freq_out.copy(), frame=frame,
                        column=column, notes=tuple(notes), noise_weight=noise)


@_converting
def zero_weight_column(ms_path: str | Path, field_ids: Sequence[int], spw_id: int) -> Optional[str]:
    """The weight column ("WEIGHT_SPECTRUM" when filled, else "WEIGHT") when the cross-correlation
    rows of these fields in spw `spw_id` have no positive weight at all (so nothing can be imaged
    although FLAG may leave them unflagged); None when some weight is positive or there are no
    rows. Streams the column in chunks and stops at the first positive weight."""
    ms = _MS(ms_path)
    try:
        main = ms.main
        dd_spw = ms.sub("DATA_DESCRIPTION", ("SPECTRAL_WINDOW_ID",)).getcol("SPECTRAL_WINDOW_ID")
        dds = [d for d, s in enumerate(dd_spw) if int(s) == int(spw_id)]
        cross = ((main.getcol("ANTENNA1") != main.getcol("ANTENNA2")) & np.isin(main.getcol("FIELD_ID"), field_ids)
                 & np.isin(main.getcol("DATA_DESC_ID"), dds))
        rows = np.flatnonzero(cross)
        if rows.size == 0:
            return None
        sub = main.selectrows(rows)
        column = "WEIGHT_SPECTRUM" if _filled(sub, "WEIGHT_SPECTRUM") else "WEIGHT"
        step = max(1, CHUNK_ELEMENTS // max(1, int(np.prod(sub.getcell(column, 0).shape))))
        for r0 in range(0, rows.size, step):
            w = sub.getcol(column, r0, min(step, rows.size - r0))
            if np.any(np.isfinite(w) & (w > 0)):
                return None
        return column
    finally:
        ms.close()


# ---------------------------------------------------------------- frequency frames
@dataclass(frozen=True)
class SpwAxis:
    """The channels of one spw: centre frequencies and widths (Hz) in its own frame."""

    freq: np.ndarray
    width: np.ndarray
    frame: str


@_converting
def spw_axis(ms_path: str | Path, spw_id: int) -> SpwAxis:
    """CHAN_FREQ, CHAN_WIDTH (Hz) and the frame name (MEAS_FREQ_REF) of one spw."""
    ms = _MS(ms_path)
    try:
        freqs, ref = _spw_row(ms, int(spw_id))
        spw_t = ms.sub("SPECTRAL_WINDOW", ("CHAN_WIDTH",))
        width = np.asarray(spw_t.getcell("CHAN_WIDTH", int(spw_id)), dtype=np.float64)
        if width.shape != freqs.shape:
            raise DataSelectionError(f"{ms.path}/SPECTRAL_WINDOW: row {spw_id} column CHAN_WIDTH has "
                                     f"{width.size} values for {freqs.size} channels")
        return SpwAxis(freqs, width, _FRAMES.get(ref, str(ref)))
    finally:
        ms.close()


@_converting
def field_rows(ms_path: str | Path, name: str) -> list[int]:
    """FIELD rows (ids) whose NAME is `name` (several for an ALMA mosaic)."""
    ms = _MS(ms_path)
    try:
        names = ms.sub("FIELD", ("NAME",)).getcol("NAME")
        return [i for i, n in enumerate(names) if n == name]
    finally:
        ms.close()


@_converting
def phase_centre(ms_path: str | Path, field_id: int) -> tuple[float, float, str]:
    """(RA, Dec in degrees, direction frame) of a field's PHASE_DIR (its first polynomial term)."""
    return phase_centres(ms_path, [int(field_id)])[int(field_id)]


def phase_centres(ms_path: str | Path, field_ids: Sequence[int]) -> dict[int, tuple[float, float, str]]:
    """`phase_centre` of several FIELD rows, the table opened once: id -> (RA, Dec deg, frame)."""
    ms = _MS(ms_path)
    try:
        ids = [int(f) for f in field_ids]
        _check_fields(ms, ids)
        field_t = ms.sub("FIELD", ("PHASE_DIR",))
        ref = str((field_t.getcolkeywords("PHASE_DIR").get("MEASINFO", {}) or {}).get("Ref", "J2000"))
        out = {}
        for fid in ids:
            pdir = np.asarray(field_t.getcell("PHASE_DIR", fid), dtype=np.float64).reshape(-1, 2)[0]
            out[fid] = (float(np.degrees(pdir[0])) % 360.0, float(np.degrees(pdir[1])), ref)
        return out
    finally:
        ms.close()


@_converting
def lsrk_frequencies(ms_path: str | Path, spw_id: int, field_id: int) -> np.ndarray:
    """Channel frequencies (Hz) of one spw in the LSRK frame, as seen towards one field.

    Converted with casacore measures at the mid time of the observation (the mid point of the
    main-table TIME span of this field and spw; of OBSERVATION.TIME_RANGE if there are no such
    rows), towards the field's PHASE_DIR, from the position of the observatory named in
    OBSERVATION.TELESCOPE_NAME (casacore's observatory list; EVLA/JVLA as VLA) or, for an
    unknown name, the mean ANTENNA.POSITION. An spw whose MEAS_FREQ_REF is already LSRK is
    returned unchanged.
    """
    spw_id, field_id = int(spw_id), int(field_id)
    ms = _MS(ms_path)
    try:
        freqs, ref = _spw_row(ms, spw_id)
        if ref == 1:
            return freqs.copy()
        if ref not in _FRAMES or ref == 0:
            raise DataSelectionError(f"{ms.path}/SPECTRAL_WINDOW: row {spw_id} column MEAS_FREQ_REF is "
                                     f"{_FRAMES.get(ref, ref)}: cannot convert to LSRK")
        _check_fields(ms, [field_id])
        field_t = ms.sub("FIELD")
        pdir = np.asarray(field_t.getcell("PHASE_DIR", field_id), dtype=np.float64).reshape(-1, 2)[0]
        dir_ref = (field_t.getcolkeywords("PHASE_DIR").get("MEASINFO", {}) or {}).get("Ref", "J2000")
        t_mid, t_ref = _mid_time(ms, spw_id, field_id)
        position = _position(ms)

        from casacore.measures import measures
        from casacore import quanta as qa

        dm = measures()
        dm.do_frame(position)
        dm.do_frame(dm.epoch(t_ref, qa.quantity(t_mid, "s")))
        dm.do_frame(dm.direction(dir_ref, qa.quantity(float(pdir[0]), "rad"), qa.quantity(float(pdir[1]), "rad")))
        out = np.empty_like(freqs)
        for k, f in enumerate(freqs):
            m = dm.measure(dm.frequency(_FRAMES[ref], qa.quantity(float(f), "Hz")), "LSRK")
            out[k] = m["m0"]["value"]
        return out
    finally:
        ms.close()


def _mid_time(ms: _MS, spw_id: int, field_id: int) -> tuple[float, str]:
    """(mid time in MJD seconds, its time scale) for the field and spw."""
    main = ms.main
    ms.require(main, ("TIME", "FIELD_ID", "DATA_DESC_ID"))
    ref = (main.getcolkeywords("TIME").get("MEASINFO", {}) or {}).get("Ref", "UTC")
    dd_t = ms.sub("DATA_DESCRIPTION", ("SPECTRAL_WINDOW_ID",))
    dds = np.flatnonzero(dd_t.getcol("SPECTRAL_WINDOW_ID") == spw_id) if dd_t.nrows() else np.zeros(0, int)
    sel = (main.getcol("FIELD_ID") == field_id) & np.isin(main.getcol("DATA_DESC_ID"), dds)
    if np.any(sel):
        t = main.getcol("TIME")[sel]
        return 0.5 * (float(t.min()) + float(t.max())), ref
    obs_t = ms.sub("OBSERVATION", ("TIME_RANGE",))
    if obs_t.nrows() == 0:
        raise DataSelectionError(f"{ms.path}/OBSERVATION: no rows, and no main-table rows of field "
                                 f"{field_id} in spw {spw_id}: no time for the LSRK conversion (column TIME_RANGE)")
    tr = np.asarray(obs_t.getcell("TIME_RANGE", 0), dtype=np.float64)
    oref = (obs_t.getcolkeywords("TIME_RANGE").get("MEASINFO", {}) or {}).get("Ref", "UTC")
    return 0.5 * float(tr[0] + tr[1]), oref


def _position(ms: _MS) -> dict:
    """casacore position measure of the array: the named observatory, else the mean antenna position."""
    from casacore.measures import measures
    from casacore import quanta as qa

    dm = measures()
    name = ""
    if (ms.path / "OBSERVATION" / "table.dat").exists():
        obs_t = ms.sub("OBSERVATION")
        if "TELESCOPE_NAME" in obs_t.colnames() and obs_t.nrows():
            name = str(obs_t.getcell("TELESCOPE_NAME", 0)).strip().upper()
    name = _OBSERVATORY_ALIASES.get(name, name)
    known = {o.upper(): o for o in dm.obslist()}
    if name in known:
        return dm.observatory(known[name])
    ant_t = ms.sub("ANTENNA", ("POSITION",))
    if ant_t.nrows() == 0:
        raise DataSelectionError(f"{ms.path}/ANTENNA: no rows and telescope {name or '(none)'!r} unknown to "
                                 f"casacore: no array position (column POSITION)")
    xyz = np.asarray(ant_t.getcol("POSITION"), dtype=np.float64)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1)]  # antennas without a known position do not count
    if xyz.shape[0] == 0:
        raise DataSelectionError(f"{ms.path}/ANTENNA: column POSITION holds no finite position and telescope "
                                 f"{name or '(none)'!r} is unknown to casacore: no array position")
    xyz = xyz.mean(axis=0)
    return dm.position("ITRF", *(qa.quantity(float(v), "m") for v in xyz))
