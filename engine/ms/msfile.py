"""An MS opened read-only for its facts: MSError, the columns the facts need, the open tables, TIME in UTC."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from almarules.engine.ms.tables import TableAccessError, close_all, open_readonly

__all__ = ["MSError", "MSTables", "is_ms", "measure_ref", "mjd_utc"]

# columns the facts read, per table: a missing one is an MSError naming it
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
# the TIME column's MEASINFO Ref -> astropy time scale (GPS: TAI - 19 s)
_TIME_SCALES = {"TAI": "tai", "TT": "tt", "TDT": "tt", "TDB": "tdb", "UT1": "ut1", "GPS": "tai"}


class MSError(Exception):
    """A Measurement Set that cannot be read; the message names the table and column."""


def is_ms(path: str | Path) -> bool:
    """A directory holding a casacore table (table.dat)."""
    p = Path(path)
    return p.is_dir() and (p / "table.dat").exists()


class MSTables:
    """Opens the main table (`main`) and subtables (`sub`) read-only, with one-line MSErrors
    naming the table and column; `close` closes every table it opened."""

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

    def _open(self, name: str, what: str) -> Any:
        try:
            t = open_readonly(name, what)
        except TableAccessError as exc:
            raise MSError(str(exc)) from None
        self.opened.append(t)
        return t

    def sub(self, name: str, optional: bool = False) -> Any:
        """Subtable `name` with the columns the facts need; None if `optional` and absent."""
        if not (self.path / name / "table.dat").exists():
            if optional:
                return None
            raise MSError(f"{self.path}: missing subtable {name}")
        t = self._open(str(self.path / name), f"{name} subtable")
        self.require(t, name, _REQUIRED.get(name, ()))
        return t

    def require(self, t: Any, what: str, columns: Iterable[str]) -> None:
        """MSError naming the first of `columns` that table `t` (`what`) lacks."""
        have = set(t.colnames())
        for col in columns:
            if col not in have:
                where = self.name if what == "main table" else f"{self.name}/{what}"
                raise MSError(f"{where}: missing column {col}")

    def close(self) -> None:
        close_all(self.opened)


def measure_ref(table: Any, column: str, default: str) -> Any:
    """The reference frame (MEASINFO Ref keyword) of a measure column, `default` when absent."""
    return (table.getcolkeywords(column).get("MEASINFO", {}) or {}).get("Ref", default)


def _tai_minus_utc(seconds: np.ndarray | float) -> Optional[float]:
    """TAI - UTC (s) over the MJD seconds `seconds` from casacore's leap-second table (set up by
    `engine.ms.measures`), when it is one value over their span (no leap second inside); else
    None. Two conversions instead of astropy's per-sample ones (and its 0.3 s import)."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    from almarules.engine.ms.measures import setup_measures

    setup_measures()  # the current leap-second table (once per process)
    t = np.atleast_1d(np.asarray(seconds, dtype=float))
    if t.size == 0 or not np.isfinite(t).all():
        return None
    dm = measures()
    ends = [float(t.min()), float(t.max())]
    offsets = [x - dm.measure(dm.epoch("TAI", quantity(x, "s")), "UTC")["m0"]["value"] * 86400.0 for x in ends]
    return round(offsets[0], 6) if abs(offsets[0] - offsets[1]) < 1e-3 else None


def mjd_utc(seconds: np.ndarray | float, ref: str) -> Any:
    """MJD seconds in the column's time scale `ref` (UTC, TAI, TT, TDB, UT1, GPS) -> MJD seconds
    UTC; other scales are returned as they are."""
    if ref.upper() == "UTC":
        return seconds
    if ref.upper() == "TAI":
        offset = _tai_minus_utc(seconds)
        if offset is not None:
            return np.asarray(seconds, dtype=float) - offset if np.ndim(seconds) else float(seconds) - offset
    from astropy.time import Time

    scale: Optional[str] = _TIME_SCALES.get(ref.upper())
    if scale is None:
        return seconds
    arr = np.atleast_1d(np.asarray(seconds, dtype=float))
    t = Time(arr / 86400.0, format="mjd", scale=scale)
    if ref.upper() == "GPS":
        t = Time(arr / 86400.0 - 19.0 / 86400.0, format="mjd", scale="tai")
    out = t.utc.mjd * 86400.0
    return out if np.ndim(seconds) else float(out[0])
