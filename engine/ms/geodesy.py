"""Antenna positions: ITRF (m) to the local horizontal frame (east, north, up; m) about a centre.

The standard rotation about the geodetic (WGS84) longitude lon and latitude lat of the centre::

    E = -sin(lon) dX + cos(lon) dY
    N = -sin(lat) cos(lon) dX - sin(lat) sin(lon) dY + cos(lat) dZ
    U =  cos(lat) cos(lon) dX + cos(lat) sin(lon) dY + sin(lat) dZ
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["itrf_to_enu"]


def itrf_to_enu(xyz_m: np.ndarray, centre_m: Sequence[float] | None = None) -> np.ndarray:
    """Local (east, north, up) metres of ITRF positions `xyz_m` (n, 3) about `centre_m` (default:
    their mean), in the tangent frame at the centre's WGS84 geodetic longitude and latitude."""
    import erfa  # astropy's own ERFA (EarthLocation.to_geodetic calls it), without astropy.coordinates' import

    xyz = np.asarray(xyz_m, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(centre_m if centre_m is not None else xyz.mean(axis=0), dtype=np.float64)
    lon, lat, _ = (float(x) for x in erfa.gc2gd(1, c))  # 1: WGS84; radians
    sl, cl, sp, cp = math.sin(lon), math.cos(lon), math.sin(lat), math.cos(lat)
    rot = np.array([[-sl, cl, 0.0], [-sp * cl, -sp * sl, cp], [cp * cl, cp * sl, sp]])
    return (xyz - c) @ rot.T
