"""Visibilities for calibration: the cross-correlations of one spectral window of a (working-copy)
Measurement Set, every correlation, as the solvers take them; and writing results back.

Conventions
-----------
* Rows: cross-correlations only (ANTENNA1 != ANTENNA2), in main-table order; `rows` holds their
  main-table row numbers. Autocorrelations are never calibrated (CASA leaves them too).
* ``vis`` (nrow, nchan, ncorr) complex128 in the column's units (DATA: raw correlator units;
  CORRECTED_DATA: Jy); ``weight`` (nrow, nchan, ncorr): for DATA 1/SIGMA^2 (SIGMA_SPECTRUM when
  filled), for CORRECTED_DATA WEIGHT (WEIGHT_SPECTRUM when filled) -- CASA's convention, in
  which SIGMA describes DATA and WEIGHT CORRECTED_DATA; row weights are broadcast over the
  channels, read-only; ``flag`` = FLAG | FLAG_ROW.
* ``receptors`` (ncorr, 2): for each correlation its receptor index (0 or 1) on antenna 1 and
  on antenna 2 (XX -> (0, 0), XY -> (0, 1), YY -> (1, 1); RR/LL likewise), so that a gain
  array (.., nant, 2) per receptor calibrates every correlation. ``parallel`` lists the
  parallel-hand correlations (the ones solved for) in receptor order.
* Times: the MS TIME column (s), in its own reference (UTC for ALMA; TAI for ngc5921).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

import numpy as np

from almarules.engine.ms.metadata import STOKES_NAMES
from almarules.engine.ms.tables import TableAccessError, open_readonly

#: receptor index of each feed letter (R and X first, L and Y second)
RECEPTOR = {"R": 0, "X": 0, "L": 1, "Y": 1}

#: casacore table access is not thread-safe: the calibration's parallel tasks (one per MS and spw,
#: `CalSession.map`) read and write the working copies one at a time, and compute in parallel
IO_LOCK = threading.RLock()

_F = TypeVar("_F", bound=Callable[..., Any])


def serialised(fn: _F) -> _F:
    """`fn` holds `IO_LOCK` while it runs."""
    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with IO_LOCK:
            return fn(*args, **kwargs)
    return locked  # type: ignore[return-value]


class CalDataError(ValueError):
    """An MS the calibration cannot read: the message names the MS, table and column."""


@dataclass
class SpwSetup:
    """One spectral window as the calibration sees it."""

    spw: int
    ddid: int
    freq: np.ndarray  # (nchan,) Hz, channel centres
    corr_names: list[str]
    receptors: np.ndarray  # (ncorr, 2) int
    parallel: list[int]  # correlation indices of the parallel hands, receptor 0 first

    @property
    def centre(self) -> float:
        return float(0.5 * (self.freq.min() + self.freq.max()))


@dataclass
class CalData:
    """Cross-correlation rows of one spw (see the module doc)."""

    setup: SpwSetup
    rows: np.ndarray
    time: np.ndarray
    field: np.ndarray
    scan: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    uvw: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    flag: np.ndarray
    column: str
    screens: dict = field(default_factory=dict, repr=False)  # outlier screens of these data, by channel range
    hands: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default=None, repr=False)  # parallel_hands

    def subset(self, mask: np.ndarray) -> "CalData":
        """The rows where `mask` is True."""
        return CalData(self.setup, *(getattr(self, f)[mask] for f in (
            "rows", "time", "field", "scan", "ant1", "ant2", "uvw", "vis", "weight", "flag")), self.column)

    def parallel_hands(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vis, weight, flag) of the parallel hands only, (nrow, nchan, npol): the arrays
        themselves when they hold nothing else (read them, do not write them), else copies made once."""
        p = self.setup.parallel
        if p == list(range(self.vis.shape[2])):
            return self.vis, self.weight, self.flag
        if self.hands is None:
            self.hands = (self.vis[:, :, p], self.weight[:, :, p], self.flag[:, :, p])
        return self.hands


def open_table(ms: Path, sub: str = "", readonly: bool = True):
    name = str(ms / sub) if sub else str(ms)
    what = f"{sub} subtable" if sub else "main table"
    if readonly:
        try:
            return open_readonly(name, what)
        except TableAccessError as exc:
            raise CalDataError(str(exc)) from None
    from casacore.tables import table

    try:
        return table(name, readonly=False, ack=False)
    except RuntimeError as exc:
        raise CalDataError(f"{name}: cannot open the {what} for writing: {exc}") from None


@serialised
def spw_setups(ms: str | Path) -> dict[int, SpwSetup]:
    """The spectral windows with a data description in the MS, by spw id."""
    ms = Path(ms)
    dd, spw_t, pol_t = open_table(ms, "DATA_DESCRIPTION"), open_table(ms, "SPECTRAL_WINDOW"), open_table(ms, "POLARIZATION")
    try:
        out: dict[int, SpwSetup] = {}
        for ddid in range(dd.nrows()):
            spw, pol = int(dd.getcell("SPECTRAL_WINDOW_ID", ddid)), int(dd.getcell("POLARIZATION_ID", ddid))
            if spw in out:
                continue
            corr = [int(c) for c in pol_t.getcell("CORR_TYPE", pol)]
            names = [STOKES_NAMES.get(c, str(c)) for c in corr]
            unknown = [n for n in names if len(n) != 2 or not set(n) <= set(RECEPTOR)]
            if unknown:
                raise CalDataError(f"{ms}/POLARIZATION: row {pol} column CORR_TYPE holds {unknown}: only "
                                   f"circular (RR, RL, LR, LL) and linear (XX, XY, YX, YY) correlations calibrate")
            rec = np.array([[RECEPTOR[n[0]], RECEPTOR[n[1]]] for n in names], dtype=np.int64)
            par = sorted((i for i, r in enumerate(rec) if r[0] == r[1]), key=lambda i: rec[i, 0])
            freq = np.asarray(spw_t.getcell("CHAN_FREQ", spw), dtype=np.float64)
            out[spw] = SpwSetup(spw, ddid, freq, names, rec, par)
        return out
    finally:
        for t in (dd, spw_t, pol_t):
            t.close()


def filled(t, column: str, row: int = 0) -> bool:
    """The open table `t` has `column` with a value in row `row` (optional MS columns may be empty)."""
    return column in t.colnames() and t.nrows() > row and bool(t.iscelldefined(column, row))


@serialised
def column_filled(ms: str | Path, column: str) -> bool:
    """The main table of `ms` has `column`, filled (see `filled`)."""
    t = open_table(Path(ms))
    try:
        return filled(t, column)
    finally:
        t.close()


def _weights(t, rows: np.ndarray, shape: tuple[int, ...], column: str) -> np.ndarray:
    """Weights of `column` (CASA's convention): SIGMA belongs to DATA (w = 1/SIGMA^2, from
    SIGMA_SPECTRUM when filled), WEIGHT to CORRECTED_DATA (WEIGHT_SPECTRUM when filled). So
    calibration solves on DATA with the weights DATA came with, whatever applycal wrote."""
    spectrum, row = ("SIGMA_SPECTRUM", "SIGMA") if column == "DATA" else ("WEIGHT_SPECTRUM", "WEIGHT")
    per_channel = filled(t, spectrum, int(rows[0]))
    w = np.asarray(t.getcol(spectrum if per_channel else row), dtype=np.float64)[rows]
    if column == "DATA":  # 1/sigma^2, on the rows before they are spread over the channels
        with np.errstate(divide="ignore"):
            w = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0) ** 2, 0.0)
    return w if per_channel else np.broadcast_to(w[:, None, :], shape)  # read-only: no copy per channel


def _where(setup: SpwSetup, fields: Optional[Sequence[int]]) -> str:
    """TaQL: the cross-correlation rows of spw `setup` (of `fields`, when given)."""
    q = f"DATA_DESC_ID == {setup.ddid} && ANTENNA1 != ANTENNA2"
    if fields is not None:
        q += f" && FIELD_ID IN [{','.join(str(int(f)) for f in fields) or '-1'}]"
    return q


@contextlib.contextmanager
def _main_table(ms: Path) -> Iterator[Any]:
    """The main table of `ms`, read-only, closed after; a table access error is a CalDataError."""
    t = open_table(ms)
    try:
        yield t
    except TableAccessError as exc:
        raise CalDataError(str(exc)) from None
    finally:
        t.close()


@serialised
def spw_rows(ms: str | Path, setup: SpwSetup, fields: Optional[Sequence[int]] = None) -> np.ndarray:
    """The main-table row numbers (ascending) of the cross-correlation rows of spw `setup` (all
    fields, or `fields`)."""
    with _main_table(Path(ms)) as t:
        sel = t.query(_where(setup, fields), sortlist="", columns="ROWID() AS ROW")
        try:
            return np.asarray(sel.getcol("ROW"), dtype=np.int64) if sel.nrows() else np.zeros(0, np.int64)
        finally:
            sel.close()


def read_spw(ms: str | Path, setup: SpwSetup, fields: Optional[Sequence[int]] = None,
             column: str = "DATA") -> CalData:
    """The cross-correlation rows of spw `setup` (all fields, or `fields`), from `column`."""
    return read_rows(ms, setup, spw_rows(ms, setup, fields), column)


@serialised
def read_rows(ms: str | Path, setup: SpwSetup, rows: np.ndarray, column: str = "DATA") -> CalData:
    """Main-table rows `rows` (ascending, of spw `setup`: `spw_rows`) as `CalData`, from `column`."""
    ms = Path(ms)
    with _main_table(ms) as t:
        if column not in t.colnames():
            raise CalDataError(f"{ms} (main table): missing column {column}")
        sub = t.selectrows(rows.tolist())
        try:
            get = lambda c: np.asarray(sub.getcol(c))  # noqa: E731
            vis = get(column).astype(np.complex128) if rows.size else np.zeros((0, setup.freq.size, len(setup.corr_names)), complex)
            flag = get("FLAG").astype(bool) if rows.size else np.zeros(vis.shape, bool)
            if rows.size:
                flag |= get("FLAG_ROW").astype(bool)[:, None, None]
            idx = np.arange(rows.size)
            weight = _weights(sub, idx, vis.shape, column) if rows.size else np.zeros(vis.shape)
            cols = {c: get(c) if rows.size else np.zeros(0) for c in ("TIME", "FIELD_ID", "SCAN_NUMBER",
                                                                        "ANTENNA1", "ANTENNA2")}
            uvw = get("UVW").astype(np.float64) if rows.size else np.zeros((0, 3))
        finally:
            sub.close()
    return CalData(setup, rows, cols["TIME"].astype(np.float64), cols["FIELD_ID"].astype(np.int64),
                   cols["SCAN_NUMBER"].astype(np.int64), cols["ANTENNA1"].astype(np.int64),
                   cols["ANTENNA2"].astype(np.int64), uvw, vis, weight, flag, column)


@serialised
def read_flags(ms: str | Path, setup: SpwSetup, fields: Optional[Sequence[int]] = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(FIELD_ID, ANTENNA1, ANTENNA2, FLAG | FLAG_ROW) of the cross-correlation rows of spw
    `setup` (all fields, or `fields`)."""
    with _main_table(Path(ms)) as t:
        sub = t.query(_where(setup, fields), columns="FIELD_ID, ANTENNA1, ANTENNA2, FLAG, FLAG_ROW")
        try:
            if sub.nrows() == 0:
                empty = np.zeros(0, np.int64)
                return empty, empty, empty, np.zeros((0, setup.freq.size, len(setup.corr_names)), bool)
            flag = np.asarray(sub.getcol("FLAG"), bool) | np.asarray(sub.getcol("FLAG_ROW"), bool)[:, None, None]
            return tuple(np.asarray(sub.getcol(c), np.int64) for c in ("FIELD_ID", "ANTENNA1", "ANTENNA2")) + (flag,)
        finally:
            sub.close()


@serialised
def ensure_columns(ms: str | Path, names: Sequence[str] = ("CORRECTED_DATA",)) -> None:
    """Add the data columns `names` (CORRECTED_DATA, MODEL_DATA) to a writable MS, described like
    DATA, when they are absent; the autocorrelation rows get a copy of DATA (CORRECTED_DATA) or
    zeros (MODEL_DATA), the cross-correlations are left for the caller (applycal writes them all)."""
    from casacore.tables import makecoldesc, maketabdesc

    t = open_table(Path(ms), readonly=False)
    try:
        for name in names:
            if name in t.colnames():
                continue
            dm = t.getdminfo("DATA")
            spec = dm.get("SPEC", {})
            tile = {"DEFAULTTILESHAPE": spec["DEFAULTTILESHAPE"]} if "DEFAULTTILESHAPE" in spec else {}
            t.addcols(maketabdesc(makecoldesc(name, t.getcoldesc("DATA"))),
                      {"TYPE": dm["TYPE"], "NAME": f"{name.title().replace('_', '')}Tiled", "SPEC": tile})
            for ddid in np.unique(t.getcol("DATA_DESC_ID")):  # one shape per data description
                # applycal writes every cross-correlation; the autocorrelations keep DATA (as in CASA's
                # convention that uncalibrated rows carry their data)
                sub = t.query(f"DATA_DESC_ID == {int(ddid)} && ANTENNA1 == ANTENNA2")
                for start in range(0, sub.nrows(), 20000):
                    n = min(20000, sub.nrows() - start)
                    d = sub.getcol("DATA", start, n)
                    sub.putcol(name, d if name == "CORRECTED_DATA" else np.zeros_like(d), start, n)
                sub.close()
        t.flush()
    finally:
        t.close()


#: casacore column value types -> numpy dtypes (a column's cells may not be written yet)
_DTYPES = {"boolean": np.bool_, "float": np.float32, "double": np.float64, "complex": np.complex64,
           "dcomplex": np.complex128, "int": np.int32}


@serialised
def write_rows(ms: str | Path, rows: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    """Write per-row arrays into the main table of a writable MS at main-table rows `rows`
    (sorted ascending, as `read_spw` gives them), one putcol per column on a reference table of
    those rows (an MS interleaves spws and autocorrelations: thousands of short runs otherwise)."""
    if rows.size == 0:
        return
    t = open_table(Path(ms), readonly=False)
    try:
        sub = t.selectrows(rows.tolist())
        try:
            for name, values in columns.items():
                if name not in t.colnames():
                    raise CalDataError(f"{ms} (main table): missing column {name}")
                dtype = _DTYPES[t.getcoldesc(name)["valueType"]]
                sub.putcol(name, np.ascontiguousarray(values).astype(dtype, copy=False))
        finally:
            sub.close()
        t.flush()
    except RuntimeError as exc:
        raise CalDataError(f"{ms} (main table): writing {', '.join(columns)} failed: {exc}") from None
    finally:
        t.close()
