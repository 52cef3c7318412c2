"""Dataset facts from Measurement Sets (python-casacore), read-only.

Metadata come from the subtables and from the main table's index columns (TIME,
ANTENNA1/2, FIELD_ID, DATA_DESC_ID, SCAN_NUMBER, STATE_ID, INTERVAL, UVW; engine.ms.metadata);
the flag and weight pass streams FLAG, FLAG_ROW, WEIGHT (and WEIGHT_SPECTRUM when filled) of
the cross-correlation rows (ANTENNA1 != ANTENNA2: what imaging uses) in chunks of at most
`CHUNK_ELEMENTS` visibilities, never DATA. Several MSs are the execution blocks of one
dataset. Every problem with the input is an `MSError`: one line naming the table and column,
casacore's read errors (a truncated or damaged data file) included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np

from almarules.engine.facts.model import INTENTS, Dataset

from almarules.engine.ms.metadata import (MainIndex, add_spw_row_facts, antenna_entries, baseline_stats,
                                          check_index, eb_entry, execution_block_id, field_entries,
                                          intents_by_field, observation_cell, open_subtables, parse_obs_mode,
                                          read_main_index, read_row_intents, rest_frequencies, scan_entries,
                                          spw_entries)
from almarules.engine.ms.msfile import MSError, MSTables, is_ms, measure_ref, mjd_utc
from almarules.engine.ms.tables import TableAccessError

__all__ = ["CHUNK_ELEMENTS", "MSError", "ObservationInfo", "is_ms", "observation_info", "parse_obs_mode",
           "read_ms", "read_one"]

# visibilities (row x channel x correlation) read per chunk: bounds memory to ~ 9 B each
CHUNK_ELEMENTS = 4_000_000

_PARALLEL = {5, 8, 9, 12}  # RR, LL, XX, YY


# ---------------------------------------------------------------- one MS
@dataclass
class _EB:
    """What one MS contributes, before merging EBs into a Dataset."""

    eb: dict
    antennas: list[dict]
    spws: dict[int, dict]
    fields: dict[str, dict]
    scans: list[dict]
    weights: list[dict]
    telescope: Optional[str]
    project: Optional[str]
    dish_diameters: list[float] = field(default_factory=list)


def read_one(path: Path, intents_map: Optional[dict[str, list[str]]] = None,
             progress: Optional[Callable[[int, int], None]] = None) -> _EB:
    """The facts of the MS at `path` (one execution block); `intents_map`: field name or id ->
    intents, for an MS without intents; `progress(rows done, rows)` during the flag pass."""
    tabs = MSTables(path)
    try:
        return _read(tabs, intents_map or {}, progress)
    except TableAccessError as exc:  # a read that failed (damaged file): names the table and column
        raise MSError(str(exc)) from None
    finally:
        tabs.close()


def _read(tabs: MSTables, intents_map: dict[str, list[str]],
          progress: Optional[Callable[[int, int], None]]) -> _EB:
    """Reads the subtables, the index columns, then FLAG and WEIGHT, in this order (it decides
    which problem of a damaged MS is reported)."""
    if tabs.main.nrows() == 0:
        raise MSError(f"{tabs.path}: the main table has no rows")
    subs = open_subtables(tabs)
    idx = read_main_index(tabs.main)
    dd_spw, dd_pol = check_index(tabs, subs, idx)
    intents = read_row_intents(tabs, subs.state, idx)
    field_names = list(subs.field.getcol("NAME"))
    phase_dir = subs.field.getcol("PHASE_DIR")  # (nfield, npoly, 2) radians
    intents.by_field = intents_by_field(intents, field_names, intents_map)
    fields = field_entries(field_names, phase_dir, idx, intents.by_field)
    telescope = observation_cell(subs.observation, "TELESCOPE_NAME")
    spws = spw_entries(tabs, subs, idx.ddid, dd_spw, dd_pol, telescope)
    spw_of_row = dd_spw[idx.ddid]
    add_spw_row_facts(spws, rest_frequencies(subs.source), spw_of_row, intents)
    antennas, diameters = antenna_entries(tabs, subs.antenna, idx)
    cross = idx.a1 != idx.a2
    baselines = baseline_stats(tabs.main, cross)
    t_utc = mjd_utc(idx.time, idx.time_ref)
    half = idx.interval / 2.0
    starts, ends = t_utc - half, t_utc + half  # MJD seconds UTC: each integration's edges
    eb_id = execution_block_id(tabs, subs.observation)
    scans = scan_entries(eb_id, starts, ends, spw_of_row, intents)
    eb = eb_entry(tabs, subs, eb_id, starts, ends, idx.interval, len(antennas), baselines)
    weights = _flag_weight_pass(tabs, idx, dd_spw, field_names, spws, eb_id, cross, progress)
    project = observation_cell(subs.observation, "PROJECT")
    for entry in spws.values():
        entry.pop("_corr", None)
    return _EB(eb, antennas, spws, fields, scans, weights, telescope, project, diameters)


# ---------------------------------------------------------------- flags and weights (streamed)
def _flag_weight_pass(tabs: MSTables, idx: MainIndex, dd_spw: np.ndarray, field_names: list[str],
                      spws: dict[int, dict], eb_id: str, cross: np.ndarray,
                      progress: Optional[Callable[[int, int], None]]) -> list[dict]:
    """Per field and spw, over the cross-correlation rows (ANTENNA1 != ANTENNA2: what imaging
    uses; autocorrelations carry weights too but are never imaged): flagged fraction, sum of
    weights of unflagged parallel-hand visibilities (Jy^-2), rows and time on source (s);
    streamed one data description at a time."""
    main = tabs.main
    has_spectrum = "WEIGHT_SPECTRUM" in main.colnames()
    has_flag_row = "FLAG_ROW" in main.colnames()
    acc: dict[tuple[str, int], dict] = {}
    total_rows = main.nrows()
    done = 0
    for d in np.unique(idx.ddid):
        sid = int(dd_spw[d])
        rows_idx = np.flatnonzero((idx.ddid == d) & cross)
        done += int(np.count_nonzero(idx.ddid == d)) - rows_idx.size  # autocorrelation rows: not read
        if rows_idx.size == 0:
            continue
        spw = spws[sid]
        per_row = max(1, spw["nchan"] * len(spw["_corr"]))
        sub = main.selectrows(rows_idx)
        for start, w, nflag in _chunk_weights(tabs, sub, len(rows_idx), sid, spw, has_spectrum, has_flag_row):
            _accumulate(acc, field_names, sid, idx.fld[rows_idx[start:start + len(w)]], w, nflag, per_row)
            done += len(w)
            if progress is not None:
                progress(done, total_rows)
        _add_time_on_source(acc, field_names, sid, idx, rows_idx)
    return [{"field": fname, "spw": sid, "eb": eb_id, "sum_weight": a["w"],
             "flagged_fraction": a["flagged"] / a["total"] if a["total"] else None,
             "rows": a["rows"], "time_on_source": a["interval"]} for (fname, sid), a in sorted(acc.items())]


def _chunk_weights(tabs: MSTables, sub: Any, nrows: int, sid: int, spw: dict, has_spectrum: bool,
                   has_flag_row: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Per chunk of the `nrows` rows of `sub` (rows of spw `sid`): its first row, and per row the
    sum of weights of the unflagged parallel-hand visibilities (WEIGHT_SPECTRUM when filled, else
    WEIGHT per correlation times its unflagged channels) and the number of flagged visibilities
    (FLAG or FLAG_ROW)."""
    corr, nchan = spw["_corr"], spw["nchan"]
    parallel = np.array([c in _PARALLEL for c in corr])
    step = max(1, CHUNK_ELEMENTS // max(1, nchan * len(corr)))
    use_spectrum = has_spectrum and _spectrum_filled(sub)
    for start in range(0, nrows, step):
        n = min(step, nrows - start)
        # a failed read is a TableAccessError naming the column (engine.ms.tables)
        flag = sub.getcol("FLAG", start, n)  # (n, nchan, ncorr)
        weight = sub.getcol("WEIGHT", start, n)  # (n, ncorr)
        wspec = sub.getcol("WEIGHT_SPECTRUM", start, n) if use_spectrum else None
        frow = sub.getcol("FLAG_ROW", start, n) if has_flag_row else None
        if flag.shape[1:] != (nchan, len(corr)):
            raise MSError(f"{tabs.path}: main table column FLAG has cells of shape {flag.shape[1:]}, "
                          f"but spw {sid} has {nchan} channels and {len(corr)} correlations")
        if frow is not None:
            flag = flag | frow[:, None, None]
        good = ~flag
        if wspec is not None:
            w = np.where(good[:, :, parallel], wspec[:, :, parallel], 0.0).sum(axis=(1, 2))
        else:
            w = (good[:, :, parallel].sum(axis=1) * weight[:, parallel]).sum(axis=1)
        yield start, w, flag.reshape(n, -1).sum(axis=1)


def _accumulate(acc: dict[tuple[str, int], dict], field_names: list[str], sid: int, fids: np.ndarray,
                w: np.ndarray, nflag: np.ndarray, per_row: int) -> None:
    """Adds one chunk's weights, flagged and total visibilities and rows to its (field, spw) sums;
    `fids`, `w`, `nflag`: FIELD_ID, weight sum and flagged visibilities per row."""
    for fid in np.unique(fids):
        sel = fids == fid
        key = (field_names[fid], sid)
        a = acc.setdefault(key, {"w": 0.0, "flagged": 0, "total": 0, "rows": 0, "interval": 0.0})
        a["w"] += float(w[sel].sum())
        a["flagged"] += int(nflag[sel].sum())
        a["total"] += int(sel.sum()) * per_row
        a["rows"] += int(sel.sum())


def _add_time_on_source(acc: dict[tuple[str, int], dict], field_names: list[str], sid: int, idx: MainIndex,
                        rows_idx: np.ndarray) -> None:
    """Time on source (s) of spw `sid` per field: the INTERVAL of its distinct integrations (TIME)."""
    times = idx.time[rows_idx]
    ints = idx.interval[rows_idx]
    fids = idx.fld[rows_idx]
    for fid in np.unique(fids):
        sel = fids == fid
        uniq, first = np.unique(times[sel], return_index=True)
        acc[(field_names[fid], sid)]["interval"] += float(ints[sel][first].sum())


def _spectrum_filled(sub: Any) -> bool:
    """WEIGHT_SPECTRUM holds values (its first cell is defined)."""
    return bool(sub.nrows()) and bool(sub.iscelldefined("WEIGHT_SPECTRUM", 0))


# ---------------------------------------------------------------- observation (FITS headers)
@dataclass(frozen=True)
class ObservationInfo:
    """What an image's FITS header says of the observation, from one MS: the earliest TIME of the
    rows of the fields and spws imaged (MJD seconds, UTC; the integration's centre, as CASA's
    DATE-OBS), OBSERVATION.OBSERVER and TELESCOPE_NAME of its first row, and the mean
    ANTENNA.POSITION (ITRF X, Y, Z in metres)."""

    first_time_utc: Optional[float]
    observer: Optional[str]
    telescope: Optional[str]
    antenna_centre_m: Optional[tuple[float, float, float]]


def observation_info(path: str | Path, field_ids: Iterable[int], spws: Iterable[int]) -> ObservationInfo:
    """The `ObservationInfo` of the MS at `path` for these FIELD ids and spw ids; MSError naming
    the table and column when it cannot be read."""
    tabs = MSTables(Path(path))
    try:
        return _observation_info(tabs, sorted({int(f) for f in field_ids}), {int(s) for s in spws})
    except TableAccessError as exc:
        raise MSError(str(exc)) from None
    finally:
        tabs.close()


def _observation_info(tabs: MSTables, field_ids: list[int], spws: set[int]) -> ObservationInfo:
    dd = tabs.sub("DATA_DESCRIPTION")
    dds = [i for i, s in enumerate(dd.getcol("SPECTRAL_WINDOW_ID")) if int(s) in spws]
    first = None
    if dds and field_ids:
        main = tabs.main
        rows = np.flatnonzero(np.isin(main.getcol("FIELD_ID"), field_ids) & np.isin(main.getcol("DATA_DESC_ID"), dds))
        if rows.size:
            ref = str(measure_ref(main, "TIME", "UTC"))
            first = float(mjd_utc(float(main.getcol("TIME")[rows].min()), ref))
    obs = tabs.sub("OBSERVATION", optional=True)

    def cell(column: str) -> Optional[str]:
        if obs is None or obs.nrows() == 0 or column not in obs.colnames():
            return None
        return str(obs.getcell(column, 0)).strip() or None

    ant = tabs.sub("ANTENNA")
    centre = None
    if ant.nrows():
        xyz = np.asarray(ant.getcol("POSITION"), dtype=np.float64)
        xyz = xyz[np.all(np.isfinite(xyz), axis=1)].mean(axis=0) if np.isfinite(xyz).all(axis=1).any() else None
        centre = None if xyz is None else (float(xyz[0]), float(xyz[1]), float(xyz[2]))
    return ObservationInfo(first, cell("OBSERVER"), cell("TELESCOPE_NAME"), centre)


# ---------------------------------------------------------------- several EBs
def read_ms(paths: Iterable[str | Path], intents: Optional[dict[str, list[str]]] = None,
            progress: Optional[Callable[[str, int, int], None]] = None) -> Dataset:
    """Facts of one dataset from one or several MSs (its execution blocks)."""
    if intents:
        unknown = sorted({i for v in intents.values() for i in v} - set(INTENTS))
        if unknown:
            raise MSError(f"--intents: unknown intent {unknown[0]!r} (known: {', '.join(INTENTS)})")
    parts = []
    paths = [Path(p) for p in paths]
    for path in paths:
        cb = (lambda done, total, name=path.name: progress(name, done, total)) if progress else None
        parts.append(read_one(path, intents, cb))
    return _merge(parts, ", ".join(str(p) for p in paths))


def _merge(parts: list[_EB], source: str) -> Dataset:
    """One Dataset of the EBs' facts; facts the schema refuses are a one-line FactsError naming `source`."""
    antennas: dict[str, dict] = {}
    spws: dict[int, dict] = {}
    fields: dict[str, dict] = {}
    scans, weights, ebs = [], [], []
    diameters: list[float] = []
    for part in parts:
        ebs.append(part.eb)
        for a in part.antennas:
            antennas.setdefault(a["name"], a)
        for sid, s in part.spws.items():
            if sid in spws:
                spws[sid]["rows"] += s["rows"]
                spws[sid]["baselines"] = max(spws[sid]["baselines"], s["baselines"])
                spws[sid]["intents"] = _union_intents(spws[sid]["intents"], s["intents"])
            else:
                spws[sid] = dict(s)
        for name, f in part.fields.items():
            if name in fields:
                fields[name]["intents"] = _union_intents(fields[name]["intents"], f["intents"])
            else:
                fields[name] = dict(f)
        scans.extend(part.scans)
        weights.extend(part.weights)
        diameters.extend(part.dish_diameters)
    telescope = parts[0].telescope
    data = {
        "project": parts[0].project, "telescope": telescope, "array": _array_kind(telescope, diameters),
        "ebs": ebs, "antennas": list(antennas.values()), "spws": [spws[k] for k in sorted(spws)],
        "fields": sorted(fields.values(), key=lambda f: f["id"]), "scans": scans, "weights": weights,
    }
    from almarules.engine.facts.summary import parse_summary

    return parse_summary(data, source)


def _union_intents(a: Optional[list[str]], b: Optional[list[str]]) -> Optional[list[str]]:
    """Intents of two execution blocks together; unknown in either is unknown."""
    return None if a is None or b is None else sorted(set(a) | set(b))


def _array_kind(telescope: Optional[str], diameters: list[float]) -> Optional[str]:
    t = (telescope or "").upper()
    if t in ("VLA", "EVLA", "JVLA"):
        return "VLA"
    sizes = {round(d) for d in diameters if d > 0}
    if t.startswith("ALMA") or t.startswith("ACA"):
        if sizes == {12}:
            return "12m"
        if sizes == {7}:
            return "7m"
        if len(sizes) > 1:
            return "mixed"
    return None
