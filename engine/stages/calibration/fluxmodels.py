"""Flux-density models as data: the Perley & Butler (2017) calibrator polynomials read from
``rules/fluxmodels/perley_butler_2017.csv``, the ALMA pipeline's ``flux.csv``, and the names of
Solar System bodies (whose models are not polynomials).

Perley-Butler 2017: log10(S / Jy) = sum_i a_i x^i with x = log10(nu / GHz), as CASA 6.7's
``setjy(standard='Perley-Butler 2017')`` evaluates it. For the variable sources (3C48, 3C138,
3C147) the CSV holds one coefficient set per epoch (decimal year), as CASA's
``PerleyButler2017Coeffs`` table does; like CASA's default ``interpolation='nearest'`` as measured
on CASA 6.7 (observations at 2009.46, 2009.99, 2013.57 and 2016.9 got the 2008.7, 2008.7, 2012.0
and 2012.0 sets), the set used is the *latest epoch at or before the observation*, the first one
before the first epoch. A date's decimal year is the Julian year 2000 + (MJD - 51544.5) / 365.25.
A field matches a source when one of the source's names (``3C286``, ``1331+305``, ``J1331+3030``,
...) occurs in the field name, case-insensitively and ignoring blanks, as CASA matches them
(``1331+30500002_0`` and ``3C 286`` are 3C286). Outside a source's valid range the polynomial is still evaluated (CASA warns and
extrapolates); `FluxModel.in_range` says so.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from pydantic import BaseModel

__all__ = ["FluxModel", "FluxEntry", "FluxCsvError", "PB2017_CSV", "model_for", "read_flux_csv",
           "SOLAR_SYSTEM", "is_solar_system"]

PB2017_CSV = "fluxmodels/perley_butler_2017.csv"  # under the shipped rules directory
_DISPLAY = "rules/" + PB2017_CSV


class FluxModel(BaseModel):
    """A calibrator's Stokes I flux density (Jy) and spectral index alpha = dlog S / dlog nu at
    each requested frequency (Hz), with the coefficient row it came from (``file:line``)."""

    name: str
    field_name: str
    freq_hz: list[float]
    flux_jy: list[float]
    spix: list[float]
    epoch: Optional[float]  # decimal year of the coefficient set; None for a constant source
    valid_hz: tuple[float, float]
    in_range: bool
    source: str


class _Row(BaseModel):
    name: str
    aliases: list[str]
    epoch: Optional[float]
    valid_hz: tuple[float, float]
    coeffs: list[float]
    line: int


def _float(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text!r}") from None


@functools.lru_cache(maxsize=4)
def _pb2017(path: str) -> tuple[_Row, ...]:
    """The coefficient rows of the Perley-Butler CSV at `path`."""
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for rec in reader:
            where = f"{path}:{reader.line_num}"
            coeffs = [_float(rec[f"a{i}"], where) for i in range(6) if rec.get(f"a{i}", "").strip()]
            rows.append(_Row(name=rec["source"], aliases=rec["aliases"].upper().split(),
                             epoch=_float(rec["epoch"], where) if rec["epoch"].strip() else None,
                             valid_hz=(_float(rec["nu_min_ghz"], where) * 1e9, _float(rec["nu_max_ghz"], where) * 1e9),
                             coeffs=coeffs, line=reader.line_num))
    return tuple(rows)


def _default_csv() -> str:
    from almarules.rules import path

    return str(path(PB2017_CSV))


def decimal_year(mjd: float) -> float:
    """The Julian decimal year of a date (MJD, days)."""
    return 2000.0 + (mjd - 51544.5) / 365.25


def _match(field_name: str, rows: Sequence[_Row]) -> Optional[str]:
    """The source whose name occurs in `field_name` (case-insensitive, blanks ignored: CASA 6.7 takes
    '3C 286' for 3C286; the first source of the file wins)."""
    upper = re.sub(r"\s+", "", field_name.upper())
    for row in rows:
        if any(alias in upper for alias in row.aliases):
            return row.name
    return None


def _pick_epoch(rows: list[_Row], year: float) -> _Row:
    """The latest coefficient set at or before `year`, else the earliest (a constant source has one)."""
    dated = sorted((r for r in rows if r.epoch is not None), key=lambda r: r.epoch)
    if not dated:
        return rows[0]
    before = [r for r in dated if r.epoch <= year]
    return before[-1] if before else dated[0]


def model_for(field_name: str, freq_hz: float | Sequence[float] | np.ndarray, epoch_mjd: float,
              table: Optional[str | Path] = None) -> Optional[FluxModel]:
    """The Perley-Butler 2017 model of the calibrator `field_name` at `freq_hz` (Hz) for an
    observation at `epoch_mjd` (MJD, days), or None if the field is none of the CSV's sources.
    `table` replaces the shipped CSV (tests)."""
    path = str(table) if table is not None else _default_csv()
    rows = _pb2017(path)
    name = _match(field_name, rows)
    if name is None:
        return None
    row = _pick_epoch([r for r in rows if r.name == name], decimal_year(epoch_mjd))
    freqs = np.atleast_1d(np.asarray(freq_hz, dtype=float))
    x = np.log10(freqs / 1e9)
    a = np.asarray(row.coeffs)
    log_s = np.polynomial.polynomial.polyval(x, a)
    spix = np.polynomial.polynomial.polyval(x, np.polynomial.polynomial.polyder(a))
    lo, hi = row.valid_hz
    shown = _DISPLAY if table is None else path
    return FluxModel(name=name, field_name=field_name, freq_hz=freqs.tolist(), flux_jy=(10.0 ** log_s).tolist(),
                     spix=spix.tolist(), epoch=row.epoch, valid_hz=row.valid_hz,
                     in_range=bool(np.all((freqs >= lo) & (freqs <= hi))), source=f"{shown}:{row.line}")


# --------------------------------------------------------------------------- the pipeline's flux.csv

FLUX_COLUMNS = ("ms", "field", "spw", "I", "Q", "U", "V", "spix", "uvmin", "uvmax", "comment")
_OLD_COLUMNS = ("ms", "field", "spw", "I", "Q", "U", "V", "spix", "comment")  # before uvmin/uvmax


class FluxCsvError(ValueError):
    """A flux.csv that cannot be read: ``file:line:column: column: what was expected``."""


class FluxEntry(BaseModel):
    """One flux.csv row: Stokes I, Q, U, V (Jy) of a field in an spw at the spw's centre
    frequency, spectral index, uv limits as written (the pipeline's are metres; 0 = none), the
    comment and what it says of the origin and age (days), and ``file:line``."""

    ms: str
    field: str
    field_id: Optional[int]
    spw: int
    I: float  # noqa: E741 - the column's name
    Q: float = 0.0
    U: float = 0.0
    V: float = 0.0
    spix: float = 0.0
    uvmin: float = 0.0
    uvmax: float = 0.0
    comment: str = ""
    origin: Optional[str] = None
    age: Optional[float] = None
    source: str


def _cell(value: str, column: str, where: str, col: int, required: bool) -> float:
    text = value.strip()
    if not text or text.upper() == "N/A":
        if required:
            raise FluxCsvError(f"{where}:{col}: {column}: expected a number, the cell is empty")
        return 0.0
    try:
        out = float(text)
    except ValueError:
        raise FluxCsvError(f"{where}:{col}: {column}: expected a number, got {text!r}") from None
    if not np.isfinite(out):
        raise FluxCsvError(f"{where}:{col}: {column}: expected a finite number, got {text!r}")
    return out


def _comment_info(comment: str) -> tuple[Optional[str], Optional[float]]:
    """(origin, age in days) from a pipeline comment ``# field=... origin=DB age=12.0 ...``."""
    m = re.search(r"origin=(\S+)", comment)
    origin = None if not m or m.group(1) == "N/A" else m.group(1)
    if "Jy, freq=" in comment:
        origin = "analysisUtils"
    m = re.search(r"(?:^|\s)age=(\S+)", comment) or re.search(r"Band3age=(\S+)", comment)
    try:
        age = float(m.group(1)) if m else None
    except ValueError:
        age = None
    return origin, age


def _entry(cells: list[str], columns: tuple[str, ...], where: str) -> FluxEntry:
    rec = dict(zip(columns, cells, strict=True))
    col = {c: i + 1 for i, c in enumerate(columns)}
    spw_text = rec["spw"].strip()
    if not re.fullmatch(r"\d+", spw_text):
        raise FluxCsvError(f"{where}:{col['spw']}: spw: expected an spw id (a whole number), got {spw_text!r}")
    field = rec["field"].strip().strip("'\"")
    if not field:
        raise FluxCsvError(f"{where}:{col['field']}: field: expected a field id or name, the cell is empty")
    if not rec["ms"].strip():
        raise FluxCsvError(f"{where}:{col['ms']}: ms: expected the MS name, the cell is empty")
    nums = {c: _cell(rec[c], c, where, col[c], c == "I") for c in ("I", "Q", "U", "V", "spix", "uvmin", "uvmax") if c in rec}
    origin, age = _comment_info(rec.get("comment", ""))
    return FluxEntry(ms=rec["ms"].strip(), field=field, field_id=int(field) if field.isdigit() else None,
                     spw=int(spw_text), comment=rec.get("comment", "").strip(), origin=origin, age=age,
                     source=where, **nums)


def read_flux_csv(path: str | Path) -> list[FluxEntry]:
    """The rows of an ALMA pipeline ``flux.csv`` (header ``ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment``
    or the older one without uvmin/uvmax; repeated header lines, blank lines and lines starting
    with ``#`` are skipped; a comment holding commas is quoted, as the pipeline's csv writer does)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    lines = _physical_lines(text)
    columns: Optional[tuple[str, ...]] = None
    out = []
    for n, cells in enumerate(rows):
        line = lines[n]
        where = f"{path}:{line}"
        if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
            continue
        stripped = tuple(c.strip() for c in cells)
        if stripped in (FLUX_COLUMNS, _OLD_COLUMNS):
            columns = stripped
            continue
        if columns is None:
            raise FluxCsvError(f"{where}:1: expected the header {','.join(FLUX_COLUMNS)} (or without uvmin,uvmax), "
                               f"got {','.join(stripped)!r}")
        if len(cells) != len(columns):
            raise FluxCsvError(f"{where}:1: expected {len(columns)} columns ({','.join(columns)}), got {len(cells)}")
        out.append(_entry(cells, columns, where))
    return out


def _physical_lines(text: str) -> list[int]:
    """The 1-based line on which each CSV record starts (a quoted cell may span lines)."""
    reader = csv.reader(io.StringIO(text))
    starts, prev = [], 0
    for _ in reader:
        starts.append(prev + 1)
        prev = reader.line_num
    return starts


# --------------------------------------------------------------------------- Solar System bodies

#: bodies with flux models in CASA's Butler-JPL-Horizons 2012 standard (planets, moons, asteroids)
SOLAR_SYSTEM = frozenset({
    "Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto", "Sun", "Moon",
    "Io", "Europa", "Ganymede", "Callisto", "Titan", "Triton",
    "Ceres", "Pallas", "Vesta", "Juno", "Hygiea", "Lutetia"})
_SOLAR = re.compile(r"^(" + "|".join(sorted(SOLAR_SYSTEM)) + r")(?![A-Za-z])", re.IGNORECASE)


def is_solar_system(name: str) -> bool:
    """Whether a field name is a Solar System body (case-insensitive; a suffix such as ``_1`` is allowed)."""
    return bool(_SOLAR.match(name.strip()))
