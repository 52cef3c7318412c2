"""A shared test observation: an ALMA-like uv coverage from a random compact array."""

from __future__ import annotations

import math

import numpy as np

LAT, DEC = math.radians(-23.02), math.radians(-35.0)  # ALMA's latitude; a southern source


def alma_layout(nant: int = 40, ntime: int = 40, seed: int = 0):
    """(uvw (m), antenna1, antenna2, rng): a centrally condensed random layout of `nant` antennas
    at least 15 m apart (12 m dishes), tracking DEC for 2 h around transit; `rng` continues the
    random stream for whatever else the test draws."""
    rng = np.random.default_rng(seed)
    enu: list[np.ndarray] = []
    while len(enu) < nant:
        p = rng.normal(0.0, 110.0, 2)
        if all(np.hypot(*(p - q)) >= 15.0 for q in enu):
            enu.append(p)
    e, n = np.array(enu).T
    up = rng.normal(0.0, 2.0, nant)
    xyz = np.stack([-math.sin(LAT) * n + math.cos(LAT) * up, e, math.cos(LAT) * n + math.sin(LAT) * up], axis=1)
    a1, a2 = np.triu_indices(nant, 1)
    bx, by, bz = (xyz[a2] - xyz[a1]).T
    h = np.linspace(-1.0, 1.0, ntime)[:, None] * math.pi / 12  # hour angle (rad)
    sd, cd = math.sin(DEC), math.cos(DEC)
    u = np.sin(h) * bx + np.cos(h) * by
    v = -sd * np.cos(h) * bx + sd * np.sin(h) * by + cd * bz
    w = cd * np.cos(h) * bx - cd * np.sin(h) * by + sd * bz
    return np.stack([u.ravel(), v.ravel(), w.ravel()], axis=1), a1, a2, rng
