"""Restoring against an analytic Gaussian.

Truth: a point of S Jy/pixel at pixel (ix0, iy0) restored with beam (bmaj, bmin, bpa) is
S exp(-4 ln 2 [(x_maj/bmaj)^2 + (x_min/bmin)^2]) with offsets from (ix0, iy0) in the gridding
convention (l = -(ix - ix0) cell east, m = (iy - iy0) cell north, bpa east of north) -- written
out here independently of kernels.beam. Its integral over the sky, sum(pixels) x cell^2, is
S pi bmaj bmin / (4 ln 2) (Jy/beam x beam area), so sum / beam area in pixels = S. Tolerances:
the pointwise shape to 1e-9 of the peak (FFT rounding), the integrated flux to 0.5 % (the
requirement; the sampling error at >= 4 pixels per FWHM is < 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels.beam import Beam
from almarules.kernels.restore import restore

CELL = 0.1
BEAM = Beam(0.6, 0.4, 30.0)


def _analytic(n, ix0, iy0, beam, s):
    ix = np.arange(n)
    l = -(ix - ix0)[:, None] * CELL + 0 * ix[None, :]
    m = (ix - iy0)[None, :] * CELL + 0 * ix[:, None]
    pa = math.radians(beam.bpa_deg)
    xmaj = l * math.sin(pa) + m * math.cos(pa)
    xmin = l * math.cos(pa) - m * math.sin(pa)
    return s * np.exp(-4 * math.log(2) * ((xmaj / beam.bmaj_arcsec) ** 2 + (xmin / beam.bmin_arcsec) ** 2))


def test_point_model_restores_to_beam_with_peak_flux():
    n, s = 128, 2.5
    model = np.zeros((n, n))
    model[70, 50] = s
    out = restore(model, np.zeros((n, n)), BEAM, CELL)
    assert np.unravel_index(np.argmax(out), out.shape) == (70, 50)
    assert out[70, 50] == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(out, _analytic(n, 70, 50, BEAM, s), rtol=0, atol=1e-9 * s)
    area_pix = math.pi * BEAM.bmaj_arcsec * BEAM.bmin_arcsec / (4 * math.log(2)) / CELL ** 2
    assert abs(out.sum() / area_pix / s - 1) < 0.005


def test_residual_added_and_linear():
    n = 64
    rng = np.random.default_rng(3)
    res = rng.normal(0, 1e-3, (n, n))
    model = np.zeros((n, n))
    np.testing.assert_array_equal(restore(model, res, BEAM, CELL), res)
    model[20, 30], model[40, 41] = 1.0, 0.5
    out = restore(model, res, BEAM, CELL)
    np.testing.assert_allclose(out - res, _analytic(n, 20, 30, BEAM, 1.0) + _analytic(n, 40, 41, BEAM, 0.5),
                               atol=1e-9)


def test_cube_plane_by_plane():
    n = 48
    model = np.zeros((n, n, 2))
    model[24, 24, 1] = 3.0
    out = restore(model, np.zeros_like(model), BEAM, CELL)
    assert not out[..., 0].any()
    np.testing.assert_allclose(out[..., 1], _analytic(n, 24, 24, BEAM, 3.0), atol=1e-9)
    with pytest.raises(ValueError):
        restore(model, np.zeros((n, n)), BEAM, CELL)
