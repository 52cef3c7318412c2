"""Time stamps: UTC date-times <-> MJD seconds (the MS's ``TIME`` is MJD seconds, UTC)."""

from __future__ import annotations

import datetime as _dt

_MJD0 = _dt.datetime(1858, 11, 17, tzinfo=_dt.timezone.utc)


def parse_utc(text: str) -> _dt.datetime:
    t = text.strip().replace("Z", "")
    if " " in t and "T" not in t:
        t = t.replace(" ", "T", 1)
    d = _dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc)


def mjd_seconds(d: _dt.datetime) -> float:
    return (d - _MJD0).total_seconds()


def utc_text(mjd_s: float) -> str:
    d = _MJD0 + _dt.timedelta(seconds=float(mjd_s))
    return d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
