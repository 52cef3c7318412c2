"""CASA calibration tables (the "new" CalTable layout of CASA >= 3.4) written and read with
python-casacore, so that CASA can open, list, plot and apply almarules' solutions.

Layout (mirrored from tables CASA 6.7.0-31 `gaincal`/`bandpass` wrote on ngc5921, dumped with
casatools `tb.getdesc`, `getkeywords`, `getdminfo`, `info`):

* main table, table info type "Calibration", subType the VisCal ("G Jones", "T Jones",
  "B Jones"); one StandardStMan data manager "MSMTAB"; columns TIME (double, s, MEASINFO epoch
  UTC), FIELD_ID, SPECTRAL_WINDOW_ID, ANTENNA1, ANTENNA2 (the reference antenna, -1 for none),
  INTERVAL (double, s), SCAN_NUMBER, OBSERVATION_ID (int), and the arrays of any shape CPARAM
  (complex), PARAMERR (float), FLAG (bool), SNR (float), WEIGHT (float); a cell holds
  (nchan, npol) in python-casacore's (C) axis order, (npol, nchan) in CASA's;
* keywords ParType "Complex", MSName (the MS's base name), VisCal, PolBasis "unknown",
  CASA_Version, and the subtables ANTENNA, FIELD, SPECTRAL_WINDOW, OBSERVATION, HISTORY;
* ANTENNA, FIELD, OBSERVATION: the MS's rows and values (CASA's column set); HISTORY: empty;
* SPECTRAL_WINDOW: the MS's rows. For a table with one channel (G, T): every spw has one
  channel at the mean frequency of the solved channels (all, unless `solved_channels` says
  otherwise) with their summed width. For a per-channel table (B): the MS's channels. Spws
  without solutions in the table have FLAG_ROW True, as in CASA. (CASA 6.7 writes RESOLUTION =
  CHAN_FREQ and TOTAL_BANDWIDTH = sum of CHAN_FREQ for the spws it solved; here RESOLUTION is the
  channel width and TOTAL_BANDWIDTH the summed width. CASA's applycal reads neither.)

Conventions: times are the MS's TIME values, in whatever scale the MS has (CASA copies them the
same way and labels them UTC); a solution c of antenna i corrects V_ij to V_ij / (c_i conj(c_j))
(`kernels.gaincal`'s convention, and CASA's); a flagged solution has CPARAM 1+0j, PARAMERR 0 and
SNR 0 (CASA's values for solutions it could not find).

In CASA 6.7 (benchmarks/compare_applycal.py, NGC 5921): `tb`, ``listcal`` and ``calanalysis``
read these B, G and T tables, and ``applycal`` (B 'nearest', G 'linear', with gainfield) gives
the CORRECTED_DATA of `kernels.gaincal.apply` to single precision (<= 7e-7 per sample). CASA's
own conventions differ from the kernel's in the weights (calwt: 1/SIGMA^2 scaled by |g_i g_j|^2
and the channel means of |b_i|^2 |b_j|^2) and in flags (data next to a flagged gain solution are
flagged rather than interpolated over; flagged bandpass channels are interpolated over unless
the frequency interpolation ends in 'flag', e.g. 'nearest,linearflag').
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from almarules.kernels.gaincal import GainTable

__all__ = ["CalTableError", "CalSolutions", "from_gain_table", "from_bandpass", "concat",
           "write_caltable", "read_caltable", "VIS_CALS"]

VIS_CALS = ("G Jones", "T Jones", "B Jones")
PAR_TYPE = "Complex"
DM_NAME = "MSMTAB"
_INDEX_COLUMNS = ("TIME", "FIELD_ID", "SPECTRAL_WINDOW_ID", "ANTENNA1", "ANTENNA2", "INTERVAL",
                  "SCAN_NUMBER", "OBSERVATION_ID")
_ARRAY_COLUMNS = ("CPARAM", "PARAMERR", "FLAG", "SNR", "WEIGHT")
#: CalSolutions attribute of each main-table column
_ATTR = {"TIME": "time", "FIELD_ID": "field_id", "SPECTRAL_WINDOW_ID": "spw_id", "ANTENNA1": "antenna1",
         "ANTENNA2": "antenna2", "INTERVAL": "interval", "SCAN_NUMBER": "scan", "OBSERVATION_ID": "obs_id",
         "CPARAM": "cparam", "PARAMERR": "paramerr", "FLAG": "flag", "SNR": "snr", "WEIGHT": "weight"}
#: the columns CASA 6.7 gives each subtable of a calibration table (copied from the MS but HISTORY)
SUBTABLE_COLUMNS = {
    "ANTENNA": ("DISH_DIAMETER", "FLAG_ROW", "MOUNT", "NAME", "OFFSET", "POSITION", "STATION", "TYPE"),
    "FIELD": ("CODE", "DELAY_DIR", "FLAG_ROW", "NAME", "NUM_POLY", "PHASE_DIR", "REFERENCE_DIR", "SOURCE_ID",
              "TIME"),
    "SPECTRAL_WINDOW": ("CHAN_FREQ", "CHAN_WIDTH", "EFFECTIVE_BW", "FLAG_ROW", "FREQ_GROUP", "FREQ_GROUP_NAME",
                        "IF_CONV_CHAIN", "MEAS_FREQ_REF", "NAME", "NET_SIDEBAND", "NUM_CHAN", "REF_FREQUENCY",
                        "RESOLUTION", "TOTAL_BANDWIDTH"),
    "OBSERVATION": ("FLAG_ROW", "LOG", "OBSERVER", "PROJECT", "RELEASE_DATE", "SCHEDULE", "SCHEDULE_TYPE",
                    "TELESCOPE_NAME", "TIME_RANGE"),
    "HISTORY": ("APPLICATION", "APP_PARAMS", "CLI_COMMAND", "MESSAGE", "OBJECT_ID", "OBSERVATION_ID", "ORIGIN",
                "PRIORITY", "TIME"),
}
SUBTABLES = tuple(SUBTABLE_COLUMNS)


class CalTableError(ValueError):
    """A calibration table (or the solutions or MS behind it) that cannot be written or read; the
    message names the table and, where it applies, the column."""


# ---------------------------------------------------------------- the container
@dataclass
class CalSolutions:
    """The rows of one calibration table.

    Attributes (nrow rows; arrays are coerced to the dtypes below):
        vis_cal: "G Jones", "T Jones" or "B Jones".
        time: (nrow,) float64, s, MS TIME values (MJD seconds) of the solutions.
        interval: (nrow,) float64, s.
        field_id, spw_id, antenna1, scan, obs_id: (nrow,) int32.
        antenna2: (nrow,) int32, the reference antenna, -1 for none.
        cparam: (nrow, nchan, npol) complex128, the solutions (1+0j where flagged).
        paramerr, snr, weight: (nrow, nchan, npol) float64 (NaN weight: not stored in the table).
        flag: (nrow, nchan, npol) bool, True = no valid solution.
        par_type: "Complex" (the only type supported).
    """

    vis_cal: str
    time: np.ndarray
    interval: np.ndarray
    field_id: np.ndarray
    spw_id: np.ndarray
    antenna1: np.ndarray
    antenna2: np.ndarray
    scan: np.ndarray
    obs_id: np.ndarray
    cparam: np.ndarray
    paramerr: np.ndarray
    flag: np.ndarray
    snr: np.ndarray
    weight: np.ndarray
    par_type: str = PAR_TYPE

    def __post_init__(self) -> None:
        if self.vis_cal not in VIS_CALS:
            raise CalTableError(f"vis_cal must be one of {VIS_CALS}, got {self.vis_cal!r}")
        if self.par_type != PAR_TYPE:
            raise CalTableError(f"par_type must be {PAR_TYPE!r}, got {self.par_type!r}")
        self.time = np.asarray(self.time, dtype=np.float64)
        nrow = self.time.shape[0] if self.time.ndim == 1 else -1
        if nrow < 0:
            raise CalTableError(f"time must be one-dimensional, got shape {self.time.shape}")
        self.interval = _per_row("interval", self.interval, nrow, np.float64)
        for name in ("field_id", "spw_id", "antenna1", "antenna2", "scan", "obs_id"):
            setattr(self, name, _per_row(name, getattr(self, name), nrow, np.int32))
        self.cparam = np.asarray(self.cparam, dtype=np.complex128)
        if self.cparam.ndim != 3 or self.cparam.shape[0] != nrow:
            raise CalTableError(f"cparam must be (nrow={nrow}, nchan, npol), got shape {self.cparam.shape}")
        for name, dtype in (("paramerr", np.float64), ("flag", bool), ("snr", np.float64), ("weight", np.float64)):
            arr = np.asarray(getattr(self, name), dtype=dtype)
            if arr.shape != self.cparam.shape:
                raise CalTableError(f"{name} must have cparam's shape {self.cparam.shape}, got {arr.shape}")
            setattr(self, name, arr)

    @property
    def nrow(self) -> int:
        return int(self.time.shape[0])

    @property
    def nchan(self) -> int:
        return int(self.cparam.shape[1])

    @property
    def npol(self) -> int:
        return int(self.cparam.shape[2])


def _per_row(name: str, value, nrow: int, dtype) -> np.ndarray:
    """`value` (scalar or (nrow,)) as an (nrow,) array of `dtype`."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(nrow, arr)
    if arr.shape != (nrow,):
        raise CalTableError(f"{name} must be a scalar or have shape ({nrow},), got {arr.shape}")
    if np.issubdtype(dtype, np.integer) and arr.size and not np.array_equal(arr, np.round(arr)):
        raise CalTableError(f"{name} must hold integers")
    return arr.astype(dtype)


def _flagged(values: np.ndarray, flags: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(cparam with 1+0j where flagged or not finite, flag)."""
    values = np.asarray(values, dtype=np.complex128)
    bad = ~np.isfinite(values)
    if flags is not None:
        f = np.asarray(flags, dtype=bool)
        if f.shape != values.shape:
            raise CalTableError(f"flags must have the solutions' shape {values.shape}, got {f.shape}")
        bad = bad | f
    return np.where(bad, 1.0 + 0.0j, values), bad


def from_gain_table(table: GainTable, *, field_id: int, spw_id: int, interval: Union[float, np.ndarray],
                    scans: Union[None, int, np.ndarray] = None, vis_cal: str = "G Jones",
                    snr: Optional[np.ndarray] = None, obs_id: int = 0) -> CalSolutions:
    """Rows of a G (or T) table from a `kernels.gaincal.GainTable`.

    One row per solution time and antenna (time-major, antennas in index order, as CASA orders
    them), one channel; CPARAM[row, 0, pol] = gains[t, ant, pol]. NaN or flagged gains are written
    flagged with CPARAM 1+0j. ANTENNA2 = the reference antenna of the first polarisation that has
    one (-1 when none). PARAMERR = 0 (not estimated); SNR = `snr` ((nt, nant, npol)) or 0;
    WEIGHT = the unflagged samples behind each solution (`n_used`).

    Args:
        interval: s, scalar or (nt,); scans: SCAN_NUMBER per solution (scalar or (nt,); -1 when
            unknown); vis_cal: "G Jones" (npol 1 or 2) or "T Jones" (npol 1).
    """
    if vis_cal not in ("G Jones", "T Jones"):
        raise CalTableError(f"from_gain_table: vis_cal must be 'G Jones' or 'T Jones', got {vis_cal!r}")
    gains = np.asarray(table.gains)
    if gains.ndim != 3:
        raise CalTableError(f"from_gain_table: gains must be (nt, nant, npol), got shape {gains.shape}")
    nt, nant, npol = gains.shape
    if npol not in (1, 2) or (vis_cal == "T Jones" and npol != 1):
        raise CalTableError(f"from_gain_table: {vis_cal} needs {'1' if vis_cal == 'T Jones' else '1 or 2'} "
                            f"polarisations, the gains have {npol}")
    cparam, flag = _flagged(gains, np.asarray(table.flags))
    ref = np.asarray(table.refant).reshape(nt, -1)
    first = np.argmax(ref >= 0, axis=1)
    refant = np.where((ref >= 0).any(axis=1), ref[np.arange(nt), first], -1)
    s = np.zeros(gains.shape) if snr is None else np.asarray(snr, dtype=np.float64)
    if s.shape != gains.shape:
        raise CalTableError(f"from_gain_table: snr must have the gains' shape {gains.shape}, got {s.shape}")
    shape = (nt * nant, 1, npol)
    return CalSolutions(
        vis_cal=vis_cal, time=np.repeat(np.asarray(table.times, dtype=np.float64), nant),
        interval=np.repeat(_per_row("interval", interval, nt, np.float64), nant),
        field_id=np.full(nt * nant, field_id),
        spw_id=np.full(nt * nant, spw_id), antenna1=np.tile(np.arange(nant), nt), antenna2=np.repeat(refant, nant),
        scan=np.repeat(_per_row("scans", -1 if scans is None else scans, nt, np.int32), nant),
        obs_id=np.full(nt * nant, obs_id),
        cparam=cparam.reshape(shape), paramerr=np.zeros(shape), flag=flag.reshape(shape),
        snr=np.where(flag, 0.0, s).reshape(shape), weight=np.asarray(table.n_used, dtype=np.float64).reshape(shape))


def from_bandpass(bandpass: np.ndarray, flags: Optional[np.ndarray], *, time: float, interval: float,
                  field_id: int, spw_id: int, refant: int, scan: int = -1, obs_id: int = 0,
                  snr: Optional[np.ndarray] = None) -> CalSolutions:
    """Rows of a B table: one row per antenna, CPARAM[ant] = bandpass[ant] (nchan, npol).

    Args:
        bandpass: (nant, nchan, npol) complex (`kernels.gaincal.solve_bandpass`); NaN = no solution.
        flags: same shape, True = flagged (or None: flagged where not finite).
        time: s, MS TIME of the solution (e.g. the mean time of the data solved); interval: s.
        refant: ANTENNA2 of every row (-1 for none); snr: optional, the bandpass's shape (else 0).
    PARAMERR is 0 (not estimated); WEIGHT 1, 0 where flagged.
    """
    bp = np.asarray(bandpass)
    if bp.ndim != 3:
        raise CalTableError(f"from_bandpass: bandpass must be (nant, nchan, npol), got shape {bp.shape}")
    nant = bp.shape[0]
    cparam, flag = _flagged(bp, flags)
    s = np.zeros(bp.shape) if snr is None else np.asarray(snr, dtype=np.float64)
    if s.shape != bp.shape:
        raise CalTableError(f"from_bandpass: snr must have the bandpass's shape {bp.shape}, got {s.shape}")
    return CalSolutions(
        vis_cal="B Jones", time=np.full(nant, float(time)), interval=np.full(nant, float(interval)),
        field_id=np.full(nant, field_id), spw_id=np.full(nant, spw_id), antenna1=np.arange(nant),
        antenna2=np.full(nant, refant), scan=np.full(nant, scan), obs_id=np.full(nant, obs_id), cparam=cparam,
        paramerr=np.zeros(bp.shape), flag=flag, snr=np.where(flag, 0.0, s),
        weight=np.where(flag, 0.0, 1.0))


def concat(parts: Sequence[CalSolutions]) -> CalSolutions:
    """One table from several (spws, fields, times): rows in the order given. All parts must have
    the same vis_cal and the same (nchan, npol)."""
    if not parts:
        raise CalTableError("concat: no solutions given")
    first = parts[0]
    for k, p in enumerate(parts):
        if p.vis_cal != first.vis_cal:
            raise CalTableError(f"concat: part {k} is {p.vis_cal}, part 0 is {first.vis_cal}")
        if p.cparam.shape[1:] != first.cparam.shape[1:]:
            raise CalTableError(f"concat: part {k} has (nchan, npol) {p.cparam.shape[1:]}, part 0 has "
                                f"{first.cparam.shape[1:]}; write spws of different channel counts to separate tables")
    arrays = {f.name: np.concatenate([getattr(p, f.name) for p in parts])
              for f in fields(CalSolutions) if f.name not in ("vis_cal", "par_type")}
    return CalSolutions(vis_cal=first.vis_cal, par_type=first.par_type, **arrays)


# ---------------------------------------------------------------- writing
def write_caltable(path: Union[str, Path], sol: CalSolutions, ms_path: Union[str, Path], *,
                   solved_channels: Optional[Mapping[int, tuple[int, int]]] = None,
                   overwrite: bool = False) -> Path:
    """Write `sol` as a CASA calibration table at `path` for the Measurement Set `ms_path`.

    Built in a temporary directory beside `path` and renamed into place, so `path` never holds a
    half-written table (with `overwrite`, an existing table is replaced only once the new one is
    complete). `solved_channels` ({spw: (first, last)}, inclusive, as CASA's ``spw='0:6~56'``)
    sets the frequency of the single channel of a G/T table (default: all channels). Returns the
    path.
    """
    path = Path(path)
    ms_path = Path(ms_path)
    if path.exists() and not overwrite:
        raise CalTableError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise CalTableError(f"{path}: the directory {path.parent} does not exist")
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        _build_table(tmp, sol, ms_path, solved_channels)
        _move_into_place(tmp, path)
    except RuntimeError as exc:  # casacore
        shutil.rmtree(tmp, ignore_errors=True)
        raise CalTableError(f"{path}: cannot write the calibration table: {_first_line(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished table `tmp` to `path`, replacing an existing table last."""
    if not path.exists():
        os.rename(tmp, path)
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- reading
def read_caltable(path: Union[str, Path], *, spw: Optional[int] = None) -> CalSolutions:
    """The solutions of a Complex CASA calibration table (written here or by CASA).

    `spw` keeps the rows of one spectral window (needed for a B table whose spws have different
    channel counts). WEIGHT cells that are not stored (CASA leaves them empty) read as NaN.
    Raises `CalTableError` naming the table (and column) when it cannot be read.
    """
    return _read_main(Path(path), spw)



# ---------------------------------------------------------------- building a table (internals)
def _open_readonly(path: Path, what: str, missing: str):
    """The casacore table at `path`, read-only; CalTableError `missing` when it has no table.dat,
    naming `what` when casacore cannot open it."""
    from casacore.tables import table

    if not (path / "table.dat").exists():
        raise CalTableError(missing)
    try:
        return table(str(path), ack=False, readonly=True)
    except RuntimeError as exc:
        raise CalTableError(f"{path}: cannot open {what}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


@dataclass
class _SubTable:
    """One subtable of the MS to copy: column descriptions and cell values (None = undefined)."""

    name: str
    descs: dict
    cells: dict  # column -> list of per-row values
    nrow: int


def _read_ms_subtable(ms_path: Path, name: str, with_rows: bool) -> _SubTable:
    """CASA's columns of MS subtable `name` (descriptions from the MS, or casacore's standard MS
    description for a column the MS lacks) and, if `with_rows`, every cell."""
    from casacore.tables import required_ms_desc

    where = ms_path / name
    t = _open_readonly(where, f"the {name} subtable", f"{ms_path}: missing subtable {name}")
    try:
        have = set(t.colnames())
        cols = list(SUBTABLE_COLUMNS[name])
        standard = required_ms_desc(name)
        descs = {}
        for col in cols:
            if col in have:
                descs[col] = t.getcoldesc(col)
            elif col in standard:
                descs[col] = dict(standard[col])
            else:
                raise CalTableError(f"{where}: missing column {col}")
            ref = (descs[col].get("keywords", {}).get("MEASINFO", {}) or {}).get("VarRefCol")
            if ref and ref not in cols and ref in have:
                cols.append(ref)
                descs[ref] = t.getcoldesc(ref)
        nrow = t.nrows() if with_rows else 0
        cells = {col: [_cell(t, where, col, r) for r in range(nrow)] if col in have else [None] * nrow
                 for col in cols}
    finally:
        t.close()
    return _SubTable(name, descs, cells, nrow)


def _cell(t, where: Path, col: str, row: int):
    """One cell (None when undefined); CalTableError naming the column when unreadable."""
    try:
        return t.getcell(col, row) if t.iscelldefined(col, row) else None
    except RuntimeError as exc:
        raise CalTableError(f"{where}: cannot read column {col} (row {row}): {_first_line(exc)}") from None


def _spectral_windows(spw: _SubTable, sol: CalSolutions,
                      solved_channels: Optional[Mapping[int, tuple[int, int]]]) -> _SubTable:
    """The SPECTRAL_WINDOW rows of the table (module doc): one channel per spw for a single-channel
    table, the MS's channels otherwise; FLAG_ROW for spws without solutions."""
    solved = set(int(s) for s in np.unique(sol.spw_id))
    cells = {k: list(v) for k, v in spw.cells.items()}
    chosen = dict(solved_channels or {})
    for s in chosen:
        if s not in solved:
            raise CalTableError(f"solved_channels: spw {s} has no solutions in the table")
    for r in range(spw.nrow):
        cells["FLAG_ROW"][r] = r not in solved
        freq = np.asarray(cells["CHAN_FREQ"][r], dtype=np.float64)
        nchan = freq.size
        if sol.nchan > 1:
            if r in solved and nchan != sol.nchan:
                raise CalTableError(f"SPECTRAL_WINDOW row {r}: the MS has {nchan} channels, the solutions "
                                    f"{sol.nchan}")
            continue
        first, last = chosen.get(r, (0, nchan - 1))
        if not 0 <= first <= last < nchan:
            raise CalTableError(f"solved_channels: spw {r} has channels 0..{nchan - 1}, got {first}~{last}")
        sel = slice(first, last + 1)
        width = np.asarray(cells["CHAN_WIDTH"][r], dtype=np.float64)[sel]
        ebw = np.asarray(cells["EFFECTIVE_BW"][r], dtype=np.float64)[sel]
        total = float(np.sum(width))
        cells["CHAN_FREQ"][r] = np.array([freq[sel].mean()])
        cells["CHAN_WIDTH"][r] = np.array([total])
        cells["EFFECTIVE_BW"][r] = np.array([float(np.sum(ebw))])
        cells["RESOLUTION"][r] = np.array([total])
        cells["NUM_CHAN"][r] = 1
        if r in solved:
            cells["TOTAL_BANDWIDTH"][r] = abs(total)
    return _SubTable(spw.name, spw.descs, cells, spw.nrow)


def _check_ids(sol: CalSolutions, ms_path: Path, counts: Mapping[str, int]) -> None:
    """CalTableError when an index of `sol` has no row in the MS subtable it points to."""
    checks = (("antenna1", "ANTENNA", 0), ("antenna2", "ANTENNA", -1), ("field_id", "FIELD", 0),
              ("spw_id", "SPECTRAL_WINDOW", 0), ("obs_id", "OBSERVATION", 0))
    for attr, sub, low in checks:
        v = getattr(sol, attr)
        if v.size and (v.min() < low or v.max() >= counts[sub]):
            raise CalTableError(f"{attr} spans {v.min()}..{v.max()}, but {ms_path}/{sub} has {counts[sub]} rows")


def _make_subtable(path: Path, sub: _SubTable) -> None:
    """Create subtable `sub` at `path` (StandardStMan "MSMTAB", as CASA) and fill it."""
    from casacore.tables import maketabdesc, table

    cols = []
    for name, desc in sub.descs.items():
        d = {k: v for k, v in desc.items() if k not in ("dataManagerType", "dataManagerGroup")}
        d.update(dataManagerType="StandardStMan", dataManagerGroup=DM_NAME)
        cols.append({"name": name, "desc": d})
    t = table(str(path), maketabdesc(cols), nrow=sub.nrow, ack=False)
    try:
        for name, values in sub.cells.items():
            for r, v in enumerate(values):
                if v is not None:
                    t.putcell(name, r, v)
    finally:
        t.close()


def _main_desc() -> dict:
    """The main table's description (module doc)."""
    from casacore.tables import makearrcoldesc, makescacoldesc, maketabdesc

    dm = {"datamanagertype": "StandardStMan", "datamanagergroup": DM_NAME}
    sec = {"QuantumUnits": ["s"]}
    cols = [makescacoldesc("TIME", 0.0, valuetype="double", keywords={**sec, "MEASINFO": {"type": "epoch",
                                                                                           "Ref": "UTC"}}, **dm),
            makescacoldesc("FIELD_ID", 0, valuetype="int", **dm),
            makescacoldesc("SPECTRAL_WINDOW_ID", 0, valuetype="int", **dm),
            makescacoldesc("ANTENNA1", 0, valuetype="int", **dm),
            makescacoldesc("ANTENNA2", 0, valuetype="int", **dm),
            makescacoldesc("INTERVAL", 0.0, valuetype="double", keywords=sec, **dm),
            makescacoldesc("SCAN_NUMBER", 0, valuetype="int", **dm),
            makescacoldesc("OBSERVATION_ID", 0, valuetype="int", **dm),
            makearrcoldesc("CPARAM", 0j, valuetype="complex", **dm),
            makearrcoldesc("PARAMERR", 0.0, valuetype="float", **dm),
            makearrcoldesc("FLAG", False, valuetype="boolean", **dm),
            makearrcoldesc("SNR", 0.0, valuetype="float", **dm),
            makearrcoldesc("WEIGHT", 0.0, valuetype="float", **dm)]
    return maketabdesc(cols)


def _build_table(path: Path, sol: CalSolutions, ms_path: Path,
                 solved_channels: Optional[Mapping[int, tuple[int, int]]]) -> None:
    """Write the whole table at `path` (which must not exist)."""
    from casacore.tables import table

    from almarules import __version__

    if not (ms_path / "table.dat").exists():
        raise CalTableError(f"{ms_path}: not a Measurement Set (no table.dat)")
    subs = {name: _read_ms_subtable(ms_path, name, with_rows=name != "HISTORY") for name in SUBTABLES}
    _check_ids(sol, ms_path, {name: s.nrow for name, s in subs.items()})
    subs["SPECTRAL_WINDOW"] = _spectral_windows(subs["SPECTRAL_WINDOW"], sol, solved_channels)
    t = table(str(path), _main_desc(), nrow=sol.nrow, ack=False)
    try:
        for col in _INDEX_COLUMNS + _ARRAY_COLUMNS:
            if sol.nrow:
                t.putcol(col, getattr(sol, _ATTR[col]))
        t.putinfo({"type": "Calibration", "subType": sol.vis_cal, "readme": ""})
        for key, value in (("ParType", sol.par_type), ("MSName", ms_path.name), ("VisCal", sol.vis_cal),
                           ("PolBasis", "unknown"), ("CASA_Version", f"almarules {__version__}")):
            t.putkeyword(key, value)
        for name, sub in subs.items():
            _make_subtable(path / name, sub)
            t.putkeyword(name, f"Table: {(path / name).resolve()}")
    finally:
        t.close()


# ---------------------------------------------------------------- reading (internals)
def _open_caltable(path: Path):
    """The table at `path`, read-only, checked to be a Complex calibration table of a known VisCal."""
    if not path.exists():
        raise CalTableError(f"{path}: no such calibration table")
    t = _open_readonly(path, "the calibration table", f"{path}: not a casacore table (no table.dat)")
    try:
        info, kw = t.info(), t.getkeywords()
        if info.get("type") != "Calibration":
            raise CalTableError(f"{path}: not a calibration table (table type {info.get('type')!r})")
        vis_cal = kw.get("VisCal", info.get("subType"))
        if vis_cal not in VIS_CALS:
            raise CalTableError(f"{path}: VisCal {vis_cal!r} is not supported (supported: {', '.join(VIS_CALS)})")
        if kw.get("ParType") != PAR_TYPE:
            raise CalTableError(f"{path}: keyword ParType is {kw.get('ParType')!r}; only Complex tables are supported")
        have = set(t.colnames())
        for col in _INDEX_COLUMNS + _ARRAY_COLUMNS:
            if col not in have:
                raise CalTableError(f"{path}: missing column {col}")
    except BaseException:
        t.close()
        raise
    return t, vis_cal


def _read_array(t, path: Path, col: str, nrow: int) -> Optional[np.ndarray]:
    """An array column as (nrow, nchan, npol); None when no cell is defined (CASA's WEIGHT)."""
    defined = [t.iscelldefined(col, r) for r in range(nrow)]
    if not any(defined):
        return None
    if not all(defined):
        empty = [r for r in range(nrow) if not defined[r]]
        raise CalTableError(f"{path}: column {col} has empty cells (rows {empty[:5]}...)")
    try:
        shapes = set(t.getcolshapestring(col))
    except RuntimeError as exc:
        raise CalTableError(f"{path}: cannot read column {col}: {_first_line(exc)}") from None
    if len(shapes) > 1:
        raise CalTableError(f"{path}: column {col} has cells of different shapes {sorted(shapes)} (spws with "
                            "different channel counts): read one spw at a time with spw=...")
    try:
        arr = np.asarray(t.getcol(col))
    except RuntimeError as exc:
        raise CalTableError(f"{path}: cannot read column {col}: {_first_line(exc)}") from None
    if arr.ndim != 3:
        raise CalTableError(f"{path}: column {col} has cells of {arr.ndim - 1} dimensions, expected (nchan, npol)")
    return arr


def _read_main(path: Path, spw: Optional[int]) -> CalSolutions:
    """`read_caltable`."""
    t, vis_cal = _open_caltable(path)
    sel = t
    try:
        if spw is not None:
            rows = np.flatnonzero(t.getcol("SPECTRAL_WINDOW_ID") == int(spw))
            if rows.size == 0:
                raise CalTableError(f"{path}: no rows for spw {spw}")
            sel = t.selectrows(rows.tolist())
        nrow = sel.nrows()
        out = {}
        for col in _INDEX_COLUMNS:
            try:
                out[_ATTR[col]] = sel.getcol(col) if nrow else np.zeros(0)
            except RuntimeError as exc:
                raise CalTableError(f"{path}: cannot read column {col}: {_first_line(exc)}") from None
        arrays = {col: (_read_array(sel, path, col, nrow) if nrow else np.zeros((0, 0, 0))) for col in _ARRAY_COLUMNS}
    finally:
        if sel is not t:
            sel.close()
        t.close()
    cparam = arrays["CPARAM"]
    if cparam is None:
        raise CalTableError(f"{path}: column CPARAM holds no values")
    for col in ("PARAMERR", "FLAG", "SNR"):
        if arrays[col] is None or arrays[col].shape != cparam.shape:
            got = None if arrays[col] is None else arrays[col].shape
            raise CalTableError(f"{path}: column {col} has shape {got}, CPARAM {cparam.shape}")
    weight = arrays["WEIGHT"]
    if weight is None:
        weight = np.full(cparam.shape, np.nan)
    elif weight.shape != cparam.shape:
        raise CalTableError(f"{path}: column WEIGHT has shape {weight.shape}, CPARAM {cparam.shape}")
    return CalSolutions(vis_cal=vis_cal, cparam=cparam, paramerr=arrays["PARAMERR"], flag=arrays["FLAG"],
                        snr=arrays["SNR"], weight=weight, **out)
