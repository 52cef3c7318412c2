"""ITRF -> local east/north/up about a centre, against astropy's geodetic coordinates."""

from __future__ import annotations

import math

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation

from almarules.engine.ms.geodesy import itrf_to_enu


def test_enu_axes_at_the_alma_site_follow_astropys_geodetic_frame():
    """Steps of 10 m along astropy's local east, north and up unit vectors (from the centre's
    WGS84 longitude and latitude) come out as (10, 0, 0), (0, 10, 0), (0, 0, 10)."""
    centre = EarthLocation.from_geodetic(lon=-67.7548 * u.deg, lat=-23.0229 * u.deg, height=5050 * u.m)
    c = np.array([centre.x.to_value(u.m), centre.y.to_value(u.m), centre.z.to_value(u.m)])
    lon, lat = centre.lon.rad, centre.lat.rad
    east = np.array([-math.sin(lon), math.cos(lon), 0.0])
    north = np.array([-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)])
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    enu = itrf_to_enu(np.stack([c + 10 * east, c + 10 * north, c + 10 * up]), c)
    np.testing.assert_allclose(enu, 10 * np.eye(3), atol=1e-6)
