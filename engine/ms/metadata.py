"""What an MS's subtables and main-table index columns say: intents, fields, spws, antennas, scans, the EB."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from almarules.engine.ms.msfile import MSError, MSTables, measure_ref

__all__ = ["STOKES_NAMES", "Subtables", "MainIndex", "RowIntents", "parse_obs_mode", "open_subtables", "read_main_index",
           "check_index", "read_row_intents", "intents_by_field", "field_entries", "observation_cell", "spw_entries",
           "add_spw_row_facts", "rest_frequencies", "antenna_entries", "baseline_stats", "execution_block_id",
           "scan_entries", "eb_entry"]

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
#: casacore Stokes codes of the POLARIZATION table's CORR_TYPE -> names (Stokes::StokesTypes)
STOKES_NAMES = {1: "I", 2: "Q", 3: "U", 4: "V", 5: "RR", 6: "RL", 7: "LR", 8: "LL",
                9: "XX", 10: "XY", 11: "YX", 12: "YY"}
# MEAS_FREQ_REF codes (casacore MFrequency)
_FRAMES = {0: "REST", 1: "LSRK", 2: "LSRD", 3: "BARY", 4: "GEO", 5: "TOPO", 6: "GALACTO", 7: "LGROUP", 8: "CMB"}
_HANNING = 2.667  # effective bandwidth / channel width with ALMA online Hanning smoothing


def parse_obs_mode(obs_mode: str) -> set[str]:
    """``CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE`` -> {BANDPASS, AMPLITUDE}."""
    out = set()
    for part in obs_mode.split(","):
        name = part.strip().split("#", 1)[0].strip()
        if name in _INTENT_OF:
            out.add(_INTENT_OF[name])
    return out


# ---------------------------------------------------------------- tables and index columns
@dataclass
class Subtables:
    """The subtables the facts read (casacore tables); the optional ones are None when absent."""

    antenna: Any
    spw: Any
    polarization: Any
    data_description: Any
    field: Any
    observation: Optional[Any]
    state: Optional[Any]
    history: Optional[Any]
    syscal: Optional[Any]
    source: Optional[Any]


def open_subtables(tabs: MSTables) -> Subtables:
    """Opens the subtables, in this order: the first missing required one is the MSError."""
    return Subtables(tabs.sub("ANTENNA"), tabs.sub("SPECTRAL_WINDOW"), tabs.sub("POLARIZATION"),
                     tabs.sub("DATA_DESCRIPTION"), tabs.sub("FIELD"), tabs.sub("OBSERVATION", optional=True),
                     tabs.sub("STATE", optional=True), tabs.sub("HISTORY", optional=True),
                     tabs.sub("SYSCAL", optional=True), tabs.sub("SOURCE", optional=True))


@dataclass
class MainIndex:
    """The main table's index columns, one value per row: TIME and INTERVAL (s, TIME's MJD
    seconds in scale `time_ref`), ANTENNA1/2, FIELD_ID, DATA_DESC_ID, SCAN_NUMBER, STATE_ID (-1
    for every row when the column is absent)."""

    time: np.ndarray
    interval: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    fld: np.ndarray
    ddid: np.ndarray
    scan: np.ndarray
    state: np.ndarray
    time_ref: Any


def read_main_index(main: Any) -> MainIndex:
    """The index columns of the main table (no visibilities)."""
    nrows = main.nrows()
    return MainIndex(
        time=main.getcol("TIME"), interval=main.getcol("INTERVAL"), a1=main.getcol("ANTENNA1"),
        a2=main.getcol("ANTENNA2"), fld=main.getcol("FIELD_ID"), ddid=main.getcol("DATA_DESC_ID"),
        scan=main.getcol("SCAN_NUMBER"),
        state=main.getcol("STATE_ID") if "STATE_ID" in main.colnames() else np.full(nrows, -1),
        time_ref=measure_ref(main, "TIME", "UTC"))


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def check_index(tabs: MSTables, subs: Subtables, idx: MainIndex) -> tuple[np.ndarray, np.ndarray]:
    """MSError when an index column points past its subtable (DATA_DESC_ID, then the data
    descriptions' SPECTRAL_WINDOW_ID and POLARIZATION_ID, FIELD_ID, ANTENNA1/2); else the
    DATA_DESCRIPTION columns SPECTRAL_WINDOW_ID and POLARIZATION_ID."""
    n_dd = subs.data_description.nrows()
    bad = idx.ddid[(idx.ddid < 0) | (idx.ddid >= n_dd)]
    if bad.size:
        raise MSError(f"{tabs.path}: main table column DATA_DESC_ID holds {int(bad[0])}, but DATA_DESCRIPTION "
                      f"has {_rows(n_dd)}")
    dd_spw = subs.data_description.getcol("SPECTRAL_WINDOW_ID")
    dd_pol = subs.data_description.getcol("POLARIZATION_ID")
    for d in np.unique(idx.ddid):
        if not 0 <= dd_spw[d] < subs.spw.nrows():
            raise MSError(f"{tabs.path}/DATA_DESCRIPTION: row {d} column SPECTRAL_WINDOW_ID is {dd_spw[d]}, "
                          f"but SPECTRAL_WINDOW has {subs.spw.nrows()} rows")
        if not 0 <= dd_pol[d] < subs.polarization.nrows():
            raise MSError(f"{tabs.path}/DATA_DESCRIPTION: row {d} column POLARIZATION_ID is {dd_pol[d]}, "
                          f"but POLARIZATION has {subs.polarization.nrows()} rows")
    n_fields = subs.field.nrows()
    bad = idx.fld[(idx.fld < 0) | (idx.fld >= n_fields)]
    if bad.size:
        raise MSError(f"{tabs.path}: main table column FIELD_ID holds {int(bad[0])}, but FIELD has {n_fields} rows")
    n_ant = subs.antenna.nrows()
    bad = np.concatenate([idx.a1[(idx.a1 < 0) | (idx.a1 >= n_ant)], idx.a2[(idx.a2 < 0) | (idx.a2 >= n_ant)]])
    if bad.size:
        raise MSError(f"{tabs.path}: main table column ANTENNA1/ANTENNA2 holds {int(bad[0])}, "
                      f"but ANTENNA has {n_ant} rows")
    return dd_spw, dd_pol


# ---------------------------------------------------------------- intents
@dataclass
class RowIntents:
    """Where the intents of main-table rows come from: STATE.OBS_MODE via STATE_ID when the MS
    has them (`from_state`), else the intents declared per field (`by_field`; a field missing
    there has unknown intents)."""

    idx: MainIndex
    state_intents: list[set[str]]  # per STATE row
    from_state: bool
    by_field: dict[int, set[str]]

    def of_rows(self, rows: np.ndarray) -> Optional[list[str]]:
        """The sorted intents of the rows selected by boolean mask `rows`: [] when none of them has
        a state, None when the MS has no intents and one of their fields has none declared."""
        state = self.idx.state
        if self.from_state:
            ids = np.unique(state[rows & (state >= 0)])
            return sorted(set().union(*[self.state_intents[i] for i in ids])) if ids.size else []
        fids = np.unique(self.idx.fld[rows])
        ok = all(int(f) in self.by_field for f in fids)
        return sorted(set().union(*[self.by_field[int(f)] for f in fids])) if ok else None


def read_row_intents(tabs: MSTables, state_t: Optional[Any], idx: MainIndex) -> RowIntents:
    """The rows' intents from STATE (MSError when STATE_ID points past it); `by_field` is left
    empty, for `intents_by_field`."""
    n_state = state_t.nrows() if state_t is not None else 0
    state_intents: list[set[str]] = []
    if n_state:
        state_intents = [parse_obs_mode(m) for m in state_t.getcol("OBS_MODE")]
    from_state = n_state > 0 and bool(np.any(idx.state >= 0))
    if from_state:
        bad = idx.state[(idx.state >= n_state)]
        if bad.size:
            raise MSError(f"{tabs.path}: main table column STATE_ID holds {int(bad[0])}, "
                          f"but STATE has {n_state} rows")
    return RowIntents(idx, state_intents, from_state, {})


def intents_by_field(intents: RowIntents, field_names: list[str],
                     intents_map: dict[str, list[str]]) -> dict[int, set[str]]:
    """FIELD id -> intents, for the fields with rows whose intents are known: from STATE, or
    declared in `intents_map` (field name or id -> intents) when the MS has none."""
    idx = intents.idx
    out: dict[int, set[str]] = {}
    for fid in sorted(int(f) for f in np.unique(idx.fld)):
        if intents.from_state:
            ids = np.unique(idx.state[(idx.fld == fid) & (idx.state >= 0)])
            out[fid] = set().union(*[intents.state_intents[i] for i in ids]) if ids.size else set()
            continue
        for key in (field_names[fid], str(fid)):  # declared for data without intents
            if key in intents_map:
                out[fid] = set(intents_map[key])
                break
    return out


# ---------------------------------------------------------------- fields
def field_entries(field_names: list[str], phase_dir: np.ndarray, idx: MainIndex,
                  by_field: dict[int, set[str]]) -> dict[str, dict]:
    """The fields with rows, grouped by name (ALMA mosaics: one entry, a pointing per FIELD row):
    first id, centre (deg), pointings' offsets from it (arcsec), intents (None: unknown).
    `phase_dir`: FIELD.PHASE_DIR, (nfield, npoly, 2) radians."""
    fields: dict[str, dict] = {}
    ids_of: dict[str, list[int]] = {}
    for fid in sorted(int(f) for f in np.unique(idx.fld)):
        name = field_names[fid]
        ra, dec = float(phase_dir[fid, 0, 0]), float(phase_dir[fid, 0, 1])
        if name not in fields:
            fields[name] = {"id": fid, "name": name, "ra": math.degrees(ra) % 360.0, "dec": math.degrees(dec),
                            "pointings": [], "_centre": (ra, dec)}
            ids_of[name] = []
        entry = fields[name]
        ids_of[name].append(fid)
        ra0, dec0 = entry["_centre"]
        entry["pointings"].append({
            "ra_offset": math.degrees((ra - ra0 + math.pi) % (2 * math.pi) - math.pi) * math.cos(dec0) * 3600.0,
            "dec_offset": math.degrees(dec - dec0) * 3600.0})
    for name, entry in fields.items():
        ids = ids_of[name]
        known = all(i in by_field for i in ids)
        entry["intents"] = sorted(set().union(*[by_field[i] for i in ids])) if known else None
        del entry["_centre"]
    return fields


def observation_cell(obs_t: Optional[Any], column: str) -> Optional[str]:
    """OBSERVATION `column` of the first row, stripped; None when empty or absent."""
    if obs_t is not None and obs_t.nrows():
        return str(obs_t.getcol(column)[0]).strip() or None
    return None


# ---------------------------------------------------------------- spectral windows
def spw_entries(tabs: MSTables, subs: Subtables, ddid: np.ndarray, dd_spw: np.ndarray, dd_pol: np.ndarray,
                telescope: Optional[str]) -> dict[int, dict]:
    """The spectral windows with rows, by id, in DATA_DESC_ID order; '_corr': CORR_TYPE codes."""
    alma = (telescope or "").upper().startswith("ALMA")
    spws: dict[int, dict] = {}
    for d in np.unique(ddid):
        sid = int(dd_spw[d])
        if sid not in spws:
            spws[sid] = _spw_entry(tabs, subs, sid, int(dd_pol[d]), alma)
    return spws


def _spw_entry(tabs: MSTables, subs: Subtables, sid: int, pol_id: int, alma: bool) -> dict:
    """SPECTRAL_WINDOW row `sid` (frequencies and widths in Hz) with POLARIZATION row `pol_id`."""
    spw_t = subs.spw
    freqs = spw_t.getcell("CHAN_FREQ", sid)
    widths = spw_t.getcell("CHAN_WIDTH", sid)
    ebw = spw_t.getcell("EFFECTIVE_BW", sid)
    nchan = int(spw_t.getcell("NUM_CHAN", sid))
    if len(freqs) != nchan:
        raise MSError(f"{tabs.path}/SPECTRAL_WINDOW: row {sid} column CHAN_FREQ has {len(freqs)} values "
                      f"but NUM_CHAN is {nchan}")
    width = float(widths[0])
    ratio = abs(float(ebw[0])) / abs(width) if width else float("nan")
    hanning = (True if abs(ratio - _HANNING) < 0.05 * _HANNING else
               False if abs(ratio - 1.0) < 0.02 else None)
    bandwidth = float(np.sum(np.abs(widths)))
    mode = None
    if alma:
        mode = "TDM" if (abs(width) >= 7.8e6 and bandwidth >= 1.5e9) else "FDM"
    name = str(spw_t.getcell("NAME", sid))
    ref = spw_t.getcell("MEAS_FREQ_REF", sid)
    return {
        "id": sid, "name": name, "nchan": nchan,
        "channel_frequencies": [float(f) for f in freqs], "start_frequency": float(freqs[0]),
        # SMA and others store descending channels: negative CHAN_WIDTH (kept: it gives the
        # order) and EFFECTIVE_BW (a bandwidth: its size)
        "channel_width": width, "effective_bw": abs(float(ebw[0])),
        "frame": _FRAMES.get(int(ref), str(ref)),
        "correlator_mode": mode, "online_hanning": hanning,
        "_corr": [int(c) for c in subs.polarization.getcell("CORR_TYPE", pol_id)],
    }


def add_spw_row_facts(spws: dict[int, dict], rest: dict[int, set[float]], spw_of_row: np.ndarray,
                      intents: RowIntents) -> None:
    """Adds to each spw its rest frequencies (Hz), rows, cross-correlation baselines and intents."""
    a1, a2 = intents.idx.a1, intents.idx.a2
    for sid, entry in spws.items():
        entry["rest_frequencies"] = sorted(rest.get(sid, set()) | rest.get(-1, set()))
        rows = spw_of_row == sid
        entry["rows"] = int(np.count_nonzero(rows))
        pairs = (a1[rows].astype(np.int64) * 100000 + a2[rows])[a1[rows] != a2[rows]]
        entry["baselines"] = int(np.unique(pairs).size)
        entry["intents"] = intents.of_rows(rows)


def rest_frequencies(source_t: Optional[Any]) -> dict[int, set[float]]:
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


# ---------------------------------------------------------------- antennas and baselines
def antenna_entries(tabs: MSTables, ant_t: Any, idx: MainIndex) -> tuple[list[dict], list[float]]:
    """The antennas with rows (name, station, ITRF position in m, dish diameter in m or None),
    and their DISH_DIAMETER values as stored (m); MSError when one has a non-finite position."""
    names = ant_t.getcol("NAME")
    stations = ant_t.getcol("STATION")
    positions = ant_t.getcol("POSITION")
    diameters = ant_t.getcol("DISH_DIAMETER")
    used = sorted(set(np.unique(idx.a1)) | set(np.unique(idx.a2)))
    _check_positions(tabs, positions, used)
    antennas = [{"name": str(names[i]), "station": str(stations[i]), "position": [float(x) for x in positions[i]],
                 "dish_diameter": _dish(diameters[i])} for i in used]
    return antennas, [float(diameters[i]) for i in used]


def _check_positions(tabs: MSTables, positions: np.ndarray, used: list[int]) -> None:
    """MSError naming the rows when an antenna that has data has a non-finite ANTENNA.POSITION:
    its baselines' geometry (and the array centre) are unknown, so the data cannot be trusted.
    Antennas without data are left out of the facts whatever their positions."""
    bad = [i for i in used if not np.all(np.isfinite(positions[i]))]
    if bad:
        rows = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise MSError(f"{tabs.path}/ANTENNA: column POSITION is not finite (NaN or inf) in row"
                      f"{'s' if len(bad) > 1 else ''} {rows}, antenna{'s' if len(bad) > 1 else ''} with data "
                      f"in the main table; fix the positions or remove those antennas' rows")


def _dish(d: float) -> Optional[float]:
    """DISH_DIAMETER (m), or None (unknown) where the MS holds 0, a negative or a non-finite size."""
    d = float(d)
    return d if math.isfinite(d) and d > 0 else None


def baseline_stats(main: Any, cross: np.ndarray) -> Optional[dict]:
    """Projected baseline lengths sqrt(u^2 + v^2) of the cross-correlation rows (`cross`): min,
    max, 75th and 80th percentiles (m); None without cross-correlations."""
    if not np.any(cross):
        return None
    uvw_len = _projected_lengths(main, cross)
    return {"min": float(uvw_len.min()), "max": float(uvw_len.max()),
            "l75": float(np.percentile(uvw_len, 75)), "l80": float(np.percentile(uvw_len, 80))}


def _projected_lengths(main: Any, cross: np.ndarray) -> np.ndarray:
    """sqrt(u^2 + v^2) of the cross-correlation rows (m), read in chunks."""
    out = []
    n = main.nrows()
    step = 1_000_000
    for start in range(0, n, step):
        uvw = main.getcol("UVW", start, min(step, n - start))
        sel = cross[start:start + len(uvw)]
        out.append(np.hypot(uvw[sel, 0], uvw[sel, 1]))
    return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------- scans and the execution block
def execution_block_id(tabs: MSTables, obs_t: Optional[Any]) -> str:
    """The execution block uid from OBSERVATION.SCHEDULE when ALMA wrote it, else the MS name."""
    if obs_t is not None and obs_t.nrows() and "SCHEDULE" in obs_t.colnames():
        if obs_t.iscelldefined("SCHEDULE", 0):
            for item in obs_t.getcell("SCHEDULE", 0):
                if str(item).startswith("ExecBlock "):
                    return str(item).split(" ", 1)[1].strip()
    return tabs.path.name


def scan_entries(eb_id: str, starts: np.ndarray, ends: np.ndarray, spw_of_row: np.ndarray,
                 intents: RowIntents) -> list[dict]:
    """One entry per SCAN_NUMBER: its fields, spws, start and end (MJD seconds UTC; `starts`,
    `ends`: per row, the integration's edges) and intents."""
    idx = intents.idx
    scans = []
    for s in np.unique(idx.scan):
        rows = idx.scan == s
        scans.append({"eb": eb_id, "number": int(s),
                      "field_ids": sorted(int(f) for f in np.unique(idx.fld[rows])),
                      "spw_ids": sorted(int(x) for x in np.unique(spw_of_row[rows])),
                      "start": float(np.min(starts[rows])), "end": float(np.max(ends[rows])),
                      "intents": intents.of_rows(rows)})
    return scans


def eb_entry(tabs: MSTables, subs: Subtables, eb_id: str, starts: np.ndarray, ends: np.ndarray,
             interval: np.ndarray, n_antennas: int, baselines: Optional[dict]) -> dict:
    """The execution block: its span (MJD seconds UTC), median integration (s), HISTORY origins
    and whether any is a processing step (not an importer), SYSCAL rows, MODEL_DATA, baselines."""
    hist_t, syscal_t = subs.history, subs.syscal
    origins = sorted(set(str(o) for o in hist_t.getcol("ORIGIN"))) if hist_t is not None and hist_t.nrows() else []
    processed = any(not any(o.startswith(imp) for imp in _IMPORTERS) for o in origins)
    return {
        "id": eb_id, "ms_name": tabs.path.name,
        "start": float(np.min(starts)), "end": float(np.max(ends)),
        "integration_time": float(np.median(interval)),
        "n_antennas": n_antennas,
        "syscal_rows": syscal_t.nrows() if syscal_t is not None else 0,
        "history_origins": origins, "processing_history": processed,
        "has_model_data": "MODEL_DATA" in tabs.main.colnames(),
        "baselines": baselines,
    }
