"""Dataset facts from Measurement Sets (python-casacore), read-only.

Metadata come from the subtables and from the main table's index columns (TIME,
ANTENNA1/2, FIELD_ID, DATA_DESC_ID, SCAN_NUMBER, STATE_ID, INTERVAL, UVW); the flag and
weight pass streams FLAG, FLAG_ROW, WEIGHT (and WEIGHT_SPECTRUM when filled) of the
cross-correlation rows (ANTENNA1 != ANTENNA2: what imaging uses) in chunks of at most
`CHUNK_ELEMENTS` visibilities, never DATA. Several MSs are the execution blocks of one
dataset. Every problem with the input is an `MSError`: one line naming the table and column,
casacore's read errors (a truncated or damaged data file) included.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from almarules.engine.facts.model import INTENTS, Dataset

from almarules.engine.ms.tables import TableAccessError, close_all, open_readonly

# visibilities (row x channel x correlation) read per chunk: bounds memory to ~ 9 B each
CHUNK_ELEMENTS = 4_000_000

# ALMA / VLA STATE.OBS_MODE intents -> the facts' intents
_INTENT_OF = {
    "CALIBRATE_BANDPASS": "BANDPASS", "CALIBRATE_FLUX": "AMPLITUDE", "CALIBRATE_AMPLI": "AMPLITUDE",
    "CALIBRATE_PHASE": "PHASE", "OBSERVE_CHECK_SOURCE": "CHECK", "OBSERVE_TARGET": "TARGET",
    "CALIBRATE_ATMOSPHERE": "ATMOSPHERE", "CALIBRATE_WVR": "WVR", "CALIBRATE_POINTING": "POINTING",
    "CALIBRATE_POLARIZATION": "POLARIZATION", "CALIBRATE_POL_ANGLE": "POLARIZATION",
    "CALIBRATE_POL_LEAKAGE": "POLARIZATION", "CALIBRATE_SIDEBAND_RATIO": "SIDEBAND",
    "CALIBRATE_FOCUS": "FOCUS", "CALIBRATE_DELAY": "DELAY", "UNSPECIFIED": "UNSPECIFIED",
}
# HISTORY origins written when the MS was created, not processed
_IMPORTERS = ("importasdm", "importuvfits", "importvla", "importevla", "MSFitsInput", "importfitsidi",
              "almarules simulate", "ASDM2MS", "asdm2MS", "importmiriad", "importatca", "importnro")
# MEAS_FREQ_REF codes (casacore MFrequency)
_FRAMES = {0: "REST", 1: "LSRK", 2: "LSRD", 3: "BARY", 4: "GEO", 5: "TOPO", 6: "GALACTO", 7: "LGROUP", 8: "CMB"}
_PARALLEL = {5, 8, 9, 12}  # RR, LL, XX, YY
_HANNING = 2.667  # effective bandwidth / channel width with ALMA online Hanning smoothing

_REQUIRED_MAIN = ("TIME", "ANTENNA1", "ANTENNA2", "FIELD_ID", "DATA_DESC_ID", "SCAN_NUMBER", "UVW",
                  "FLAG", "WEIGHT", "INTERVAL")
_REQUIRED = {
    "ANTENNA": ("NAME", "STATION", "POSITION", "DISH_DIAMETER"),
    "SPECTRAL_WINDOW": ("NUM_CHAN", "CHAN_FREQ", "CHAN_WIDTH", "EFFECTIVE_BW", "MEAS_FREQ_REF", "NAME"),
    "POLARIZATION": ("CORR_TYPE", "NUM_CORR"),
    "DATA_DESCRIPTION": ("SPECTRAL_WINDOW_ID", "POLARIZATION_ID"),
    "FIELD": ("NAME", "PHASE_DIR"),
    "OBSERVATION": ("TELESCOPE_NAME", "PROJECT"),
    "STATE": ("OBS_MODE",),
    "HISTORY": ("ORIGIN",),
}


class MSError(Exception):
    """A Measurement Set that cannot be read; the message names the table and column."""


def is_ms(path: str | Path) -> bool:
    """A directory holding a casacore table (table.dat)."""
    p = Path(path)
    return p.is_dir() and (p / "table.dat").exists()


def parse_obs_mode(obs_mode: str) -> set[str]:
    """``CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE`` -> {BANDPASS, AMPLITUDE}."""
    out = set()
    for part in obs_mode.split(","):
        name = part.strip().split("#", 1)[0].strip()
        if name in _INTENT_OF:
            out.add(_INTENT_OF[name])
    return out


# ---------------------------------------------------------------- table access
class _Tables:
    """Opens the main table and subtables read-only, with clear errors; closes them all."""

    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)
        self.opened: list[Any] = []
        if not path.exists():
            raise MSError(f"{path}: no such file or directory")
        if not path.is_dir():
            raise MSError(f"{path}: not a Measurement Set (not a directory)")
        if not (path / "table.dat").exists():
            raise MSError(f"{path}: not a Measurement Set (no table.dat: not a casacore table)")
        self.main = self._open(str(path), "main table")
        if "DATA_DESC_ID" not in self.main.colnames() and "SPECTRAL_WINDOW" not in self.main.getkeywords():
            raise MSError(f"{path}: not a Measurement Set (a casacore table without DATA_DESC_ID or "
                          f"SPECTRAL_WINDOW; columns: {', '.join(self.main.colnames()[:6])}...)")
        self.require(self.main, "main table", _REQUIRED_MAIN)

    def _open(self, name: str, what: str):
        try:
            t = open_readonly(name, what)
        except TableAccessError as exc:
            raise MSError(str(exc)) from None
        self.opened.append(t)
        return t

    def sub(self, name: str, optional: bool = False):
        if not (self.path / name / "table.dat").exists():
            if optional:
                return None
            raise MSError(f"{self.path}: missing subtable {name}")
        t = self._open(str(self.path / name), f"{name} subtable")
        self.require(t, name, _REQUIRED.get(name, ()))
        return t

    def require(self, t, what: str, columns: Iterable[str]) -> None:
        have = set(t.colnames())
        for col in columns:
            if col not in have:
                where = self.name if what == "main table" else f"{self.name}/{what}"
                raise MSError(f"{where}: missing column {col}")

    def close(self) -> None:
        close_all(self.opened)


def _mjd_utc(seconds: np.ndarray | float, ref: str) -> Any:
    """MJD seconds in the column's time scale -> MJD seconds UTC."""
    if ref.upper() == "UTC":
        return seconds
    from astropy.time import Time

    scale = {"TAI": "tai", "TT": "tt", "TDT": "tt", "TDB": "tdb", "UT1": "ut1", "GPS": "tai"}.get(ref.upper())
    if scale is None:
        return seconds
    arr = np.atleast_1d(np.asarray(seconds, dtype=float))
    t = Time(arr / 86400.0, format="mjd", scale=scale)
    if ref.upper() == "GPS":
        t = Time(arr / 86400.0 - 19.0 / 86400.0, format="mjd", scale="tai")
    out = t.utc.mjd * 86400.0
    return out if np.ndim(seconds) else float(out[0])


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
    tabs = _Tables(path)
    try:
        return _read(tabs, intents_map or {}, progress)
    except TableAccessError as exc:  # a read that failed (damaged file): names the table and column
        raise MSError(str(exc)) from None
    finally:
        tabs.close()


def _read(tabs: _Tables, intents_map: dict[str, list[str]], progress) -> _EB:
    main = tabs.main
    nrows = main.nrows()
    if nrows == 0:
        raise MSError(f"{tabs.path}: the main table has no rows")
    ant_t = tabs.sub("ANTENNA")
    spw_t = tabs.sub("SPECTRAL_WINDOW")
    pol_t = tabs.sub("POLARIZATION")
    dd_t = tabs.sub("DATA_DESCRIPTION")
    field_t = tabs.sub("FIELD")
    obs_t = tabs.sub("OBSERVATION", optional=True)
    state_t = tabs.sub("STATE", optional=True)
    hist_t = tabs.sub("HISTORY", optional=True)
    syscal_t = tabs.sub("SYSCAL", optional=True)
    source_t = tabs.sub("SOURCE", optional=True)

    # ------------------------------------------------ index columns (no visibilities)
    time = main.getcol("TIME")
    interval = main.getcol("INTERVAL")
    a1 = main.getcol("ANTENNA1")
    a2 = main.getcol("ANTENNA2")
    fld = main.getcol("FIELD_ID")
    ddid = main.getcol("DATA_DESC_ID")
    scan = main.getcol("SCAN_NUMBER")
    state = main.getcol("STATE_ID") if "STATE_ID" in main.colnames() else np.full(nrows, -1)
    time_ref = (main.getcolkeywords("TIME").get("MEASINFO", {}) or {}).get("Ref", "UTC")

    n_dd = dd_t.nrows()
    bad = ddid[(ddid < 0) | (ddid >= n_dd)]
    if bad.size:
        raise MSError(f"{tabs.path}: main table column DATA_DESC_ID holds {int(bad[0])}, but DATA_DESCRIPTION "
                      f"has {n_dd} row{'s' if n_dd != 1 else ''}")
    dd_spw = dd_t.getcol("SPECTRAL_WINDOW_ID")
    dd_pol = dd_t.getcol("POLARIZATION_ID")
    for d in np.unique(ddid):
        if not 0 <= dd_spw[d] < spw_t.nrows():
            raise MSError(f"{tabs.path}/DATA_DESCRIPTION: row {d} column SPECTRAL_WINDOW_ID is {dd_spw[d]}, "
                          f"but SPECTRAL_WINDOW has {spw_t.nrows()} rows")
        if not 0 <= dd_pol[d] < pol_t.nrows():
            raise MSError(f"{tabs.path}/DATA_DESCRIPTION: row {d} column POLARIZATION_ID is {dd_pol[d]}, "
                          f"but POLARIZATION has {pol_t.nrows()} rows")
    n_fields = field_t.nrows()
    bad = fld[(fld < 0) | (fld >= n_fields)]
    if bad.size:
        raise MSError(f"{tabs.path}: main table column FIELD_ID holds {int(bad[0])}, but FIELD has {n_fields} rows")
    n_ant = ant_t.nrows()
    bad = np.concatenate([a1[(a1 < 0) | (a1 >= n_ant)], a2[(a2 < 0) | (a2 >= n_ant)]])
    if bad.size:
        raise MSError(f"{tabs.path}: main table column ANTENNA1/ANTENNA2 holds {int(bad[0])}, "
                      f"but ANTENNA has {n_ant} rows")

    # ------------------------------------------------ intents per row (via STATE)
    n_state = state_t.nrows() if state_t is not None else 0
    state_intents: list[set[str]] = []
    if n_state:
        state_intents = [parse_obs_mode(m) for m in state_t.getcol("OBS_MODE")]
    has_intents = n_state > 0 and bool(np.any(state >= 0))
    if has_intents:
        bad = state[(state >= n_state)]
        if bad.size:
            raise MSError(f"{tabs.path}: main table column STATE_ID holds {int(bad[0])}, "
                          f"but STATE has {n_state} rows")

    field_names = list(field_t.getcol("NAME"))
    phase_dir = field_t.getcol("PHASE_DIR")  # (nfield, npoly, 2) radians
    dir_ref = (field_t.getcolkeywords("PHASE_DIR").get("MEASINFO", {}) or {}).get("Ref", "J2000")

    # declared intents for data without them (field name or id -> intents)
    def declared(fid: int) -> Optional[set[str]]:
        for key in (field_names[fid], str(fid)):
            if key in intents_map:
                return set(intents_map[key])
        return None

    # ------------------------------------------------ fields (grouped by name: ALMA mosaics)
    used_fields = sorted(int(f) for f in np.unique(fld))
    fields: dict[str, dict] = {}
    field_intents: dict[int, set[str]] = {}
    for fid in used_fields:
        if has_intents:
            ids = np.unique(state[(fld == fid) & (state >= 0)])
            field_intents[fid] = set().union(*[state_intents[i] for i in ids]) if ids.size else set()
        else:
            d = declared(fid)
            if d is not None:
                field_intents[fid] = d
    for fid in used_fields:
        name = field_names[fid]
        ra, dec = float(phase_dir[fid, 0, 0]), float(phase_dir[fid, 0, 1])
        entry = fields.setdefault(name, {"id": fid, "name": name, "ra": math.degrees(ra) % 360.0,
                                         "dec": math.degrees(dec), "pointings": [],
                                         "_centre": (ra, dec), "_ids": []})
        entry["_ids"].append(fid)
        ra0, dec0 = entry["_centre"]
        entry["pointings"].append({
            "ra_offset": math.degrees((ra - ra0 + math.pi) % (2 * math.pi) - math.pi) * math.cos(dec0) * 3600.0,
            "dec_offset": math.degrees(dec - dec0) * 3600.0})
    for entry in fields.values():
        ids = entry["_ids"]
        if all(i in field_intents for i in ids):
            entry["intents"] = sorted(set().union(*[field_intents[i] for i in ids]))
        else:
            entry["intents"] = None
        entry["frame"] = dir_ref

    # ------------------------------------------------ spectral windows with data
    chan_freq_rows = {}
    spws: dict[int, dict] = {}
    obs_telescope = None
    if obs_t is not None and obs_t.nrows():
        obs_telescope = str(obs_t.getcol("TELESCOPE_NAME")[0]).strip() or None
    alma = (obs_telescope or "").upper().startswith("ALMA")
    for d in np.unique(ddid):
        sid = int(dd_spw[d])
        if sid in spws:
            continue
        freqs = spw_t.getcell("CHAN_FREQ", sid)
        widths = spw_t.getcell("CHAN_WIDTH", sid)
        ebw = spw_t.getcell("EFFECTIVE_BW", sid)
        nchan = int(spw_t.getcell("NUM_CHAN", sid))
        if len(freqs) != nchan:
            raise MSError(f"{tabs.path}/SPECTRAL_WINDOW: row {sid} column CHAN_FREQ has {len(freqs)} values "
                          f"but NUM_CHAN is {nchan}")
        chan_freq_rows[sid] = freqs
        width = float(widths[0])
        ratio = abs(float(ebw[0])) / abs(width) if width else float("nan")
        hanning = (True if abs(ratio - _HANNING) < 0.05 * _HANNING else
                   False if abs(ratio - 1.0) < 0.02 else None)
        bandwidth = float(np.sum(np.abs(widths)))
        mode = None
        if alma:
            mode = "TDM" if (abs(width) >= 7.8e6 and bandwidth >= 1.5e9) else "FDM"
        spws[sid] = {
            "id": sid, "name": str(spw_t.getcell("NAME", sid)), "nchan": nchan,
            "channel_frequencies": [float(f) for f in freqs], "start_frequency": float(freqs[0]),
            # SMA and others store descending channels: negative CHAN_WIDTH (kept: it gives the
            # order) and EFFECTIVE_BW (a bandwidth: its size)
            "channel_width": width, "effective_bw": abs(float(ebw[0])),
            "frame": _FRAMES.get(int(spw_t.getcell("MEAS_FREQ_REF", sid)), str(spw_t.getcell("MEAS_FREQ_REF", sid))),
            "correlator_mode": mode, "online_hanning": hanning,
            "_corr": [int(c) for c in pol_t.getcell("CORR_TYPE", int(dd_pol[d]))],
        }
    rest = _rest_frequencies(source_t)
    spw_of_row = dd_spw[ddid]
    for sid, entry in spws.items():
        entry["rest_frequencies"] = sorted(rest.get(sid, set()) | rest.get(-1, set()))
        rows = spw_of_row == sid
        entry["rows"] = int(np.count_nonzero(rows))
        pairs = (a1[rows].astype(np.int64) * 100000 + a2[rows])[a1[rows] != a2[rows]]
        entry["baselines"] = int(np.unique(pairs).size)
        if has_intents:
            ids = np.unique(state[rows & (state >= 0)])
            entry["intents"] = sorted(set().union(*[state_intents[i] for i in ids])) if ids.size else []
        else:
            fids = np.unique(fld[rows])
            ok = all(int(f) in field_intents for f in fids)
            entry["intents"] = sorted(set().union(*[field_intents[int(f)] for f in fids])) if ok else None

    # ------------------------------------------------ antennas with data, baselines
    names = ant_t.getcol("NAME")
    stations = ant_t.getcol("STATION")
    positions = ant_t.getcol("POSITION")
    diameters = ant_t.getcol("DISH_DIAMETER")
    used_ants = sorted(set(np.unique(a1)) | set(np.unique(a2)))
    _check_positions(tabs, positions, used_ants)
    antennas = [{"name": str(names[i]), "station": str(stations[i]), "position": [float(x) for x in positions[i]],
                 "dish_diameter": _dish(diameters[i])} for i in used_ants]
    cross = a1 != a2
    baselines = None
    if np.any(cross):
        uvw_len = _projected_lengths(main, cross)
        baselines = {"min": float(uvw_len.min()), "max": float(uvw_len.max()),
                     "l75": float(np.percentile(uvw_len, 75)), "l80": float(np.percentile(uvw_len, 80))}

    # ------------------------------------------------ scans
    t_utc = _mjd_utc(time, time_ref)
    half = interval / 2.0
    eb_id = _eb_id(tabs, obs_t)
    scans = []
    for s in np.unique(scan):
        rows = scan == s
        entry = {"eb": eb_id, "number": int(s),
                 "field_ids": sorted(int(f) for f in np.unique(fld[rows])),
                 "spw_ids": sorted(int(x) for x in np.unique(spw_of_row[rows])),
                 "start": float(np.min(t_utc[rows] - half[rows])), "end": float(np.max(t_utc[rows] + half[rows]))}
        if has_intents:
            ids = np.unique(state[rows & (state >= 0)])
            entry["intents"] = sorted(set().union(*[state_intents[i] for i in ids])) if ids.size else []
        else:
            fids = entry["field_ids"]
            ok = all(f in field_intents for f in fids)
            entry["intents"] = sorted(set().union(*[field_intents[f] for f in fids])) if ok else None
        scans.append(entry)

    # ------------------------------------------------ history, Tsys, execution block
    origins = sorted(set(str(o) for o in hist_t.getcol("ORIGIN"))) if hist_t is not None and hist_t.nrows() else []
    processed = any(not any(o.startswith(imp) for imp in _IMPORTERS) for o in origins)
    eb = {
        "id": eb_id, "ms_name": tabs.path.name,
        "start": float(np.min(t_utc - half)), "end": float(np.max(t_utc + half)),
        "integration_time": float(np.median(interval)),
        "n_antennas": len(used_ants),
        "syscal_rows": syscal_t.nrows() if syscal_t is not None else 0,
        "history_origins": origins, "processing_history": processed,
        "has_model_data": "MODEL_DATA" in main.colnames(),
        "baselines": baselines,
    }

    # ------------------------------------------------ flags and weights (streamed)
    weights = _flag_weight_pass(tabs, main, ddid, dd_spw, fld, field_names, spws, interval, time, eb_id, cross,
                                progress)

    project = None
    if obs_t is not None and obs_t.nrows():
        project = str(obs_t.getcol("PROJECT")[0]).strip() or None
    for entry in spws.values():
        entry.pop("_corr", None)
    for entry in fields.values():
        entry.pop("_centre"), entry.pop("_ids"), entry.pop("frame")
    return _EB(eb, antennas, spws, fields, scans, weights, obs_telescope, project,
               [float(diameters[i]) for i in used_ants])


def _check_positions(tabs: _Tables, positions: np.ndarray, used: list[int]) -> None:
    """MSError naming the rows when an antenna that has data has a non-finite ANTENNA.POSITION:
    its baselines' geometry (and the array centre) are unknown, so the data cannot be trusted.
    Antennas without data are left out of the facts whatever their positions."""
    bad = [i for i in used if not np.all(np.isfinite(positions[i]))]
    if bad:
        rows = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise MSError(f"{tabs.path}/ANTENNA: column POSITION is not finite (NaN or inf) in row"
                      f"{'s' if len(bad) > 1 else ''} {rows}, antenna{'s' if len(bad) > 1 else ''} with data "
                      f"in the main table; fix the positions or remove those antennas' rows")


def _rest_frequencies(source_t) -> dict[int, set[float]]:
    """SOURCE.REST_FREQUENCY (Hz) by SPECTRAL_WINDOW_ID (-1: any spw); empty cells are skipped."""
    out: dict[int, set[float]] = defaultdict(set)
    if source_t is None or "REST_FREQUENCY" not in source_t.colnames():
        return out
    spw_ids = source_t.getcol("SPECTRAL_WINDOW_ID") if "SPECTRAL_WINDOW_ID" in source_t.colnames() else None
    for row in range(source_t.nrows()):
        if not source_t.iscelldefined("REST_FREQUENCY", row):
            continue
        values = source_t.getcell("REST_FREQUENCY", row)
        sid = int(spw_ids[row]) if spw_ids is not None else -1
        out[sid].update(float(v) for v in np.ravel(values) if v > 0)
    return out


def _projected_lengths(main, cross: np.ndarray) -> np.ndarray:
    """sqrt(u^2 + v^2) of the cross-correlation rows (m), read in chunks."""
    out = []
    n = main.nrows()
    step = 1_000_000
    for start in range(0, n, step):
        uvw = main.getcol("UVW", start, min(step, n - start))
        sel = cross[start:start + len(uvw)]
        out.append(np.hypot(uvw[sel, 0], uvw[sel, 1]))
    return np.concatenate(out) if out else np.zeros(0)


def _eb_id(tabs: _Tables, obs_t) -> str:
    """The execution block uid from OBSERVATION.SCHEDULE when ALMA wrote it, else the MS name."""
    if obs_t is not None and obs_t.nrows() and "SCHEDULE" in obs_t.colnames():
        if obs_t.iscelldefined("SCHEDULE", 0):
            for item in obs_t.getcell("SCHEDULE", 0):
                if str(item).startswith("ExecBlock "):
                    return str(item).split(" ", 1)[1].strip()
    return tabs.path.name


def _flag_weight_pass(tabs: _Tables, main, ddid, dd_spw, fld, field_names, spws, interval, time, eb_id,
                      cross: np.ndarray, progress) -> list[dict]:
    """Per field and spw, over the cross-correlation rows (ANTENNA1 != ANTENNA2: what imaging
    uses; autocorrelations carry weights too but are never imaged): flagged fraction, sum of
    weights of unflagged parallel-hand visibilities (Jy^-2), rows and time on source; streamed
    one data description at a time."""
    has_spectrum = "WEIGHT_SPECTRUM" in main.colnames()
    has_flag_row = "FLAG_ROW" in main.colnames()
    acc: dict[tuple[str, int], dict] = {}
    total_rows = main.nrows()
    done = 0
    for d in np.unique(ddid):
        sid = int(dd_spw[d])
        rows_idx = np.flatnonzero((ddid == d) & cross)
        done += int(np.count_nonzero(ddid == d)) - rows_idx.size  # autocorrelation rows: not read
        if rows_idx.size == 0:
            continue
        corr = spws[sid]["_corr"]
        parallel = np.array([c in _PARALLEL for c in corr])
        nchan = spws[sid]["nchan"]
        per_row = max(1, nchan * len(corr))
        step = max(1, CHUNK_ELEMENTS // per_row)
        sub = main.selectrows(rows_idx)
        use_spectrum = has_spectrum and _spectrum_filled(sub)
        for start in range(0, len(rows_idx), step):
            n = min(step, len(rows_idx) - start)
            # a failed read is a TableAccessError naming the column (kernels.casatables)
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
            nflag = flag.reshape(n, -1).sum(axis=1)
            fids = fld[rows_idx[start:start + n]]
            for fid in np.unique(fids):
                sel = fids == fid
                key = (field_names[fid], sid)
                a = acc.setdefault(key, {"w": 0.0, "flagged": 0, "total": 0, "rows": 0, "times": set(),
                                         "interval": 0.0})
                a["w"] += float(w[sel].sum())
                a["flagged"] += int(nflag[sel].sum())
                a["total"] += int(sel.sum()) * per_row
                a["rows"] += int(sel.sum())
            done += n
            if progress is not None:
                progress(done, total_rows)
        # time on source: distinct integrations per field in this spw
        times = time[rows_idx]
        ints = interval[rows_idx]
        fids = fld[rows_idx]
        for fid in np.unique(fids):
            sel = fids == fid
            uniq, first = np.unique(times[sel], return_index=True)
            acc[(field_names[fid], sid)]["interval"] += float(ints[sel][first].sum())
    out = []
    for (fname, sid), a in sorted(acc.items()):
        out.append({"field": fname, "spw": sid, "eb": eb_id, "sum_weight": a["w"],
                    "flagged_fraction": a["flagged"] / a["total"] if a["total"] else None,
                    "rows": a["rows"], "time_on_source": a["interval"]})
    return out


def _dish(d: float) -> Optional[float]:
    """DISH_DIAMETER (m), or None (unknown) where the MS holds 0, a negative or a non-finite size."""
    d = float(d)
    return d if math.isfinite(d) and d > 0 else None


def _spectrum_filled(sub) -> bool:
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
    tabs = _Tables(Path(path))
    try:
        return _observation_info(tabs, sorted({int(f) for f in field_ids}), {int(s) for s in spws})
    except TableAccessError as exc:
        raise MSError(str(exc)) from None
    finally:
        tabs.close()


def _observation_info(tabs: _Tables, field_ids: list[int], spws: set[int]) -> ObservationInfo:
    dd = tabs.sub("DATA_DESCRIPTION")
    dds = [i for i, s in enumerate(dd.getcol("SPECTRAL_WINDOW_ID")) if int(s) in spws]
    first = None
    if dds and field_ids:
        main = tabs.main
        rows = np.flatnonzero(np.isin(main.getcol("FIELD_ID"), field_ids) & np.isin(main.getcol("DATA_DESC_ID"), dds))
        if rows.size:
            ref = str((main.getcolkeywords("TIME").get("MEASINFO", {}) or {}).get("Ref", "UTC"))
            first = float(_mjd_utc(float(main.getcol("TIME")[rows].min()), ref))
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
