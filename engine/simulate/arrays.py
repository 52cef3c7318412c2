"""Antennas: array configuration files and the ITRF positions of their pads.

Configurations are CASA ``simobserve`` files, shipped in ``engine/simulate/array_configs/`` (`ARRAY_DIR`,
short names in `ARRAY_ALIASES`) or given by path. Pad positions are turned into ITRF exactly
as CASA's simulator does (``simutil.locxyz2itrf`` about the observatory position, taken from
CASA's Observatories table in python-casacore's measures data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .errors import SimConfigError

# the configuration files: engine/simulate/array_configs (package data of almarules.engine.simulate)
ARRAY_DIR = Path(__file__).resolve().parent / "array_configs"
ARRAY_ALIASES = {
    "c-1": "alma.cycle12.1", "c-4": "alma.cycle12.4", "c-7": "alma.cycle12.7", "c40-3": "alma.cycle4.3",
    "7m": "aca.cycle12.named", "aca": "aca.cycle12.named", "aca.cycle12": "aca.cycle12.named",
}
# WGS84 (longitude, latitude [rad], height [m]) of CASA's Observatories table (python-casacore
# measures data); used when the measures data cannot be read.
_OBSERVATORIES = {
    "ALMA": (-1.1825465955049892, -0.4018251640113072, 5056.8),
    "ACA": (-1.1825456819705693, -0.40191120447707007, 5056.8),
}


@dataclass
class ArrayLayout:
    """Antennas of an array configuration: ITRF positions (m), names, pads, diameters (m)."""

    names: list[str]
    stations: list[str]
    positions: np.ndarray  # (nant, 3) ITRF, m
    diameters: np.ndarray  # (nant,)
    observatory: str
    source: str


def observatory_of(name: str) -> tuple[float, float, float]:
    """WGS84 (lon, lat, height) of an observatory of CASA's Observatories table."""
    from almarules.engine.ms.measures import setup_measures

    setup_measures()
    try:
        from casacore.measures import measures

        dm = measures()
        pos = dm.measure(dm.observatory(name), "WGS84")
        return (float(pos["m0"]["value"]), float(pos["m1"]["value"]), float(pos["m2"]["value"]))
    except Exception:  # noqa: BLE001 - unknown name or no measures data
        if name.upper() in _OBSERVATORIES:
            return _OBSERVATORIES[name.upper()]
        raise SimConfigError(f"unknown observatory {name!r} (not in casacore's Observatories table)") from None


def _loc_to_itrf(lon: float, lat: float, alt: float, loc: np.ndarray) -> np.ndarray:
    """CASA simutil.locxyz2itrf: local tangent-plane (east, north, up) metres -> ITRF metres."""
    a, b = 6378137.0, 6356752.3142  # WGS84 semi-axes
    ae = math.acos(b / a)
    sphi = math.sin(lat)
    n = a / math.sqrt(1.0 - (math.sin(ae) * sphi) ** 2)
    x, y, z = loc[:, 0], loc[:, 1], loc[:, 2]
    t = (n + z + alt) * math.cos(lat) - y * sphi
    return np.stack([t * math.cos(lon) - x * math.sin(lon),
                     t * math.sin(lon) + x * math.cos(lon),
                     (n * (b / a) ** 2 + z + alt) * sphi + y * math.cos(lat)], axis=1)


def geodetic_to_itrf(lon: float, lat: float, h: float) -> np.ndarray:
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    n = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    return np.array([(n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
                     (n * (1 - e2) + h) * math.sin(lat)])


def _twelve_metre_names(n: int) -> list[str]:
    names = [f"DA{i}" for i in range(41, 66)] + [f"DV{i:02d}" for i in range(1, 26)] + [f"PM{i:02d}" for i in range(1, 5)]
    names += [f"SIM{i:03d}" for i in range(1, max(0, n - len(names)) + 1)]
    return names[:n]


def array_file(spec: str) -> Path:
    """The configuration file for a name (``C-4``, ``alma.cycle12.4``) or a path."""
    key = spec.strip()
    alias = ARRAY_ALIASES.get(key.lower(), key)
    for cand in (ARRAY_DIR / alias, ARRAY_DIR / f"{alias}.cfg"):
        if cand.is_file() and cand.parent == ARRAY_DIR:
            return cand
    p = Path(key)
    if p.is_file():
        return p
    shipped = sorted(ARRAY_ALIASES) + sorted(f.stem for f in ARRAY_DIR.glob("*.cfg"))
    raise SimConfigError(f"array: no configuration {spec!r} (shipped: {', '.join(shipped)}; or give a file path)")


def load_array(spec: str, select: Optional[Union[int, list[str]]] = None) -> ArrayLayout:
    """Read a CASA simobserve configuration file (``# observatory=``, ``# coordsys=LOC|XYZ``,
    then ``x y z diameter pad [antenna]`` per line) into ITRF positions."""
    path = array_file(spec)
    observatory, coordsys = "ALMA", "LOC"
    rows = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            if body.lower().startswith("observatory="):
                observatory = body.split("=", 1)[1].strip()
            elif body.lower().startswith("coordsys="):
                coordsys = body.split("=", 1)[1].strip().split()[0].upper()
            continue
        parts = line.split("#", 1)[0].split()
        try:
            xyz = [float(v) for v in parts[:3]]
            diam = float(parts[3])
        except (ValueError, IndexError):
            raise SimConfigError(f"array: {path}:{lineno}: expected 'x y z diameter pad [name]'") from None
        pad = parts[4] if len(parts) > 4 else f"P{len(rows) + 1:03d}"
        name = parts[5] if len(parts) > 5 else None
        rows.append((xyz, diam, pad, name))
    if len(rows) < 2:
        raise SimConfigError(f"array: {path}: fewer than 2 antennas")
    xyz = np.array([r[0] for r in rows], dtype=np.float64)
    if coordsys == "LOC":
        lon, lat, h = observatory_of(observatory)
        itrf = _loc_to_itrf(lon, lat, h, xyz)
    elif coordsys in ("XYZ", "ITRF", "GLOBAL"):
        itrf = xyz
    else:
        raise SimConfigError(f"array: {path}: coordsys {coordsys!r} is not supported (LOC or XYZ)")
    diam = np.array([r[1] for r in rows])
    pads = [r[2] for r in rows]
    if all(r[3] for r in rows):
        names = [r[3] for r in rows]
    elif np.all(np.round(diam) == 7):
        names = [f"CM{i:02d}" for i in range(1, len(rows) + 1)]
    else:
        names = _twelve_metre_names(len(rows))
    idx = list(range(len(rows)))
    if isinstance(select, int):
        if select > len(rows):
            raise SimConfigError(f"antennas: {select} asked, the configuration has {len(rows)} pads")
        idx = sorted(set(np.round(np.linspace(0, len(rows) - 1, select)).astype(int).tolist()))
    elif isinstance(select, list):
        idx = []
        for s in select:
            if s in names:
                idx.append(names.index(s))
            elif s in pads:
                idx.append(pads.index(s))
            else:
                raise SimConfigError(f"antennas: no antenna or pad {s!r} in {path.name}")
        if len(set(idx)) != len(idx):
            raise SimConfigError("antennas: an antenna is listed twice")
        if len(idx) < 2:
            raise SimConfigError("antennas: an interferometer needs at least 2 antennas")
    return ArrayLayout([names[i] for i in idx], [pads[i] for i in idx], itrf[idx], diam[idx], observatory, str(path))
