"""The dataset overview page's tables: execution blocks, fields, spectral windows, antennas and
scans, from the dataset facts (times UTC from MJD seconds; frequencies GHz; angles deg)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from almarules.engine.facts.model import Dataset
from almarules.engine.pipeline.weblog import fmt

MJD0 = datetime(1858, 11, 17, tzinfo=timezone.utc)


def utc(mjd_s: Optional[float]) -> str:
    """MJD seconds as a UTC time, ISO 8601 to the second."""
    if mjd_s is None:
        return "–"
    return (MJD0 + timedelta(seconds=round(mjd_s))).strftime("%Y-%m-%d %H:%M:%S")


def sexagesimal(deg: Optional[float], hours: bool) -> str:
    """An angle in deg as h:m:s (RA, `hours`) or d:m:s (Dec), to 0.001 s or 0.01 arcsec."""
    if deg is None:
        return "–"
    sign = "-" if deg < 0 and not hours else ("+" if not hours else "")
    value = (deg % 360.0) / 15.0 if hours else abs(deg)
    places, unit = (3, 3600) if hours else (2, 3600)
    total = round(value * unit, places)
    d, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    width = 3 + places
    return f"{sign}{int(d):02d}:{int(m):02d}:{sec:0{width}.{places}f}"


def _ghz(hz: Optional[float]) -> str:
    return fmt.number(None if hz is None else hz / 1e9, "GHz", digits=7)


def _summary(ds: Dataset) -> list[tuple[str, str]]:
    ebs = ds.ebs or []
    return [("Project", ds.project or "–"), ("MOUS", ds.mous_id or "–"), ("Telescope", ds.telescope or "–"),
            ("Array", str(ds.array or "–")), ("Execution blocks", str(len(ebs))),
            ("Antennas", str(len(ds.antennas or []))), ("Spectral windows", str(len(ds.spws or []))),
            ("Fields", str(len(ds.fields or []))), ("Scans", str(len(ds.scans or [])))]


def _fields(ds: Dataset) -> list[dict[str, str]]:
    return [{"id": str(f.id), "name": f.name, "intents": ", ".join(f.intents or []),
             "ra": sexagesimal(f.ra, hours=True), "dec": sexagesimal(f.dec, hours=False),
             "pointings": str(len(f.pointings or []))} for f in ds.fields or []]


def _spws(ds: Dataset) -> list[dict[str, str]]:
    return [{"id": str(s.id), "name": s.name or "", "nchan": str(s.nchan or "–"),
             "range": f"{_ghz(s.min_frequency)} – {_ghz(s.max_frequency)}",
             "width": fmt.number(None if s.channel_width is None else s.channel_width / 1e6, "MHz"),
             "bandwidth": fmt.number(None if s.bandwidth is None else s.bandwidth / 1e6, "MHz"),
             "mode": s.correlator_mode or "–", "frame": s.frame or "–",
             "intents": ", ".join(s.intents or [])} for s in ds.spws or []]


def _scans(ds: Dataset) -> list[dict[str, str]]:
    names = {f.id: f.name for f in ds.fields or []}
    return [{"number": str(s.number), "eb": s.eb or "", "fields": ", ".join(names.get(i, str(i)) for i in s.field_ids or []),
             "intents": ", ".join(s.intents or []), "start": utc(s.start), "end": utc(s.end),
             "duration": fmt.duration(None if s.start is None or s.end is None else s.end - s.start)}
            for s in ds.scans or []]


def _ebs(ds: Dataset) -> list[dict[str, str]]:
    return [{"id": e.id, "ms": e.ms_name or "", "start": utc(e.start), "end": utc(e.end),
             "antennas": str(e.n_antennas or "–"), "integration": fmt.number(e.integration_time, "s")}
            for e in ds.ebs or []]


def overview(ds: Optional[Dataset]) -> dict[str, Any]:
    """The tables of the overview page (empty without facts)."""
    if ds is None:
        return {"summary": [], "ebs": [], "fields": [], "spws": [], "scans": [], "antennas": []}
    return {"summary": _summary(ds), "ebs": _ebs(ds), "fields": _fields(ds), "spws": _spws(ds),
            "scans": _scans(ds), "antennas": [a.name + (f" ({a.station})" if a.station else "")
                                             for a in ds.antennas or []]}
