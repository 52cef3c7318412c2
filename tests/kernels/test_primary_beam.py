"""Primary-beam models against tabulated truth of the Airy pattern, the Gaussian's definition, and
the image / correction conventions.

Truth. Unblocked uniformly illuminated aperture, power (2 J1(x)/x)^2 with x = pi D theta / lambda:
first zero of J1 at x = 3.8317059702 (Abramowitz & Stegun table 9.5) -> null at 1.2197 lambda/D;
half power (2 J1(x)/x = 1/sqrt 2) at x = 1.6163 -> FWHP 1.0290 lambda/D; first sidelobe 0.0175
(-17.57 dB) at x = 5.1356. A central blockage subtracts the small aperture's broad pattern, which
narrows the main lobe (null moves in) and puts power into the sidelobes (first sidelobe rises).

Tolerances: roots and maxima are found numerically (brentq / bounded minimisation, xtol 1e-12), so
the tabulated values are checked to their quoted digits (1e-6 relative); the Gaussian's half power
is exact to rounding (1e-14); pb_image symmetry and pbcor are exact arithmetic up to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from almarules.kernels import primary_beam as pb

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
FREQ = 230e9
LAM = C / FREQ


def _ld(dish: float) -> float:
    """lambda / D in arcsec."""
    return LAM / dish / ARCSEC


def _field(r: float, dish: float, block: float) -> float:
    """The aperture's field pattern (signed), written out: the power pattern's null is its sign change.
    Uniform annulus of radii D/2 and d/2: E = [A(D) jinc(pi D theta / lambda) - A(d) jinc(pi d theta /
    lambda)] / (A(D) - A(d)), A the disc areas, jinc(x) = 2 J1(x) / x."""
    from scipy.special import j1

    def disc(diam: float) -> float:
        x = math.pi * diam * r * ARCSEC / LAM
        return diam ** 2 * (2 * j1(x) / x if x > 0 else 1.0)

    return (disc(dish) - (disc(block) if block > 0 else 0.0)) / (dish ** 2 - block ** 2)


def _first_null(dish: float, block: float) -> float:
    """First null (arcsec): the field's sign change between 0.9 and 1.4 lambda / D."""
    return optimize.brentq(_field, 0.9 * _ld(dish), 1.4 * _ld(dish), args=(dish, block), xtol=1e-12)


def _first_sidelobe(dish: float, block: float) -> tuple[float, float]:
    null = _first_null(dish, block)
    res = optimize.minimize_scalar(lambda r: -float(pb.airy(r, FREQ, dish, block)),
                                   bounds=(null, null + _ld(dish)), method="bounded", options={"xatol": 1e-10})
    return float(res.x), float(-res.fun)


def test_airy_unblocked_null_half_power_and_sidelobe():
    dish = 12.0
    assert float(pb.airy(0.0, FREQ, dish, 0.0)) == 1.0
    null = 3.8317059702 / math.pi * _ld(dish)
    assert float(pb.airy(null, FREQ, dish, 0.0)) < 1e-20
    assert null / _ld(dish) == pytest.approx(1.2197, abs=1e-4)  # the "1.22 lambda / D"
    # the power pattern's own minimum is there (no sign of the field needed)
    res = optimize.minimize_scalar(lambda r: float(pb.airy(r, FREQ, dish, 0.0)),
                                   bounds=(1.1 * _ld(dish), 1.3 * _ld(dish)), method="bounded",
                                   options={"xatol": 1e-10})
    assert res.x == pytest.approx(null, rel=1e-6)
    half = optimize.brentq(lambda r: float(pb.airy(r, FREQ, dish, 0.0)) - 0.5, 0.1 * _ld(dish), _ld(dish), xtol=1e-12)
    assert 2 * half / _ld(dish) == pytest.approx(2 * 1.6163399 / math.pi, rel=1e-6)
    assert 2 * half / _ld(dish) == pytest.approx(1.02, abs=0.01)
    r_side, p_side = _first_sidelobe(dish, 0.0)
    assert r_side / _ld(dish) == pytest.approx(5.1356223 / math.pi, rel=1e-5)
    assert 10 * math.log10(p_side) == pytest.approx(-17.57, abs=0.01)


@pytest.mark.parametrize("dish,block", [(12.0, 0.75), (7.0, 0.375), (12.0, 2.4)])
def test_blockage_pulls_the_null_in_and_raises_the_first_sidelobe(dish, block):
    null0, null_b = _first_null(dish, 0.0), _first_null(dish, block)
    r = np.linspace(0.01, 2.0, 50) * _ld(dish)
    np.testing.assert_allclose(pb.airy(r, FREQ, dish, block), [_field(x, dish, block) ** 2 for x in r],
                               rtol=1e-12, atol=1e-18)
    assert null0 == pytest.approx(3.8317059702 / math.pi * _ld(dish), rel=1e-9)  # root-finder check
    assert float(pb.airy(null_b, FREQ, dish, block)) < 1e-20
    assert null_b < null0
    _, side0 = _first_sidelobe(dish, 0.0)
    _, side_b = _first_sidelobe(dish, block)
    assert side_b > side0
    # the main lobe narrows too, and the pattern stays normalised on axis
    half0 = optimize.brentq(lambda r: float(pb.airy(r, FREQ, dish, 0.0)) - 0.5, 0.1 * _ld(dish), _ld(dish))
    half_b = optimize.brentq(lambda r: float(pb.airy(r, FREQ, dish, block)) - 0.5, 0.1 * _ld(dish), _ld(dish))
    assert half_b < half0
    assert float(pb.airy(0.0, FREQ, dish, block)) == pytest.approx(1.0, abs=1e-15)


def test_alma_12m_blockage_values_quoted_in_the_docstring():
    assert _first_null(12.0, 0.75) / _ld(12.0) == pytest.approx(1.2138, abs=1e-4)
    assert _first_sidelobe(12.0, 0.75)[1] == pytest.approx(0.0187, abs=1e-4)
    assert _first_null(12.0, 2.4) / _ld(12.0) == pytest.approx(1.1665, abs=1e-4)


def test_gaussian_half_power_at_fwhp_over_two():
    for dish in (12.0, 7.0):
        fwhp = 1.12 * LAM / dish / ARCSEC
        assert pb.fwhp_arcsec(FREQ, dish) == pytest.approx(fwhp, rel=1e-14)
        assert float(pb.gaussian(fwhp / 2, FREQ, dish)) == pytest.approx(0.5, rel=1e-14)
        assert float(pb.gaussian(0.0, FREQ, dish)) == 1.0
        assert float(pb.gaussian(fwhp, FREQ, dish)) == pytest.approx(1 / 16, rel=1e-14)
    # Band 6, 12 m: FWHP = 1.12 * 1.3034 mm / 12 m = 25.1"
    assert pb.fwhp_arcsec(230e9, 12.0) == pytest.approx(25.09, abs=0.01)


@pytest.mark.parametrize("model", ["airy", "gaussian"])
def test_pb_image_peak_symmetry_and_radial_values(model):
    nx, ny, cell = 64, 48, 0.6
    img = pb.pb_image(nx, ny, cell, FREQ, 12.0, model=model)
    assert img.shape == (nx, ny)
    assert img[nx // 2, ny // 2] == 1.0
    assert np.unravel_index(np.argmax(img), img.shape) == (nx // 2, ny // 2)
    inner = img[1:, 1:]  # row / column 0 have no mirror partner on an even grid
    np.testing.assert_allclose(inner, inner[::-1, ::-1], rtol=0, atol=1e-15)  # point symmetric
    np.testing.assert_allclose(inner, inner[::-1, :], rtol=0, atol=1e-15)  # east-west mirror
    np.testing.assert_allclose(img[nx // 2 - 10, ny // 2], img[nx // 2, ny // 2 + 10], rtol=1e-15)  # circular
    # the value 10 cells east is the 1-D model at 6" (asin correction ~1e-10 relative)
    one_d = pb.airy(6.0, FREQ, 12.0, 0.75) if model == "airy" else pb.gaussian(6.0, FREQ, 12.0)
    assert img[nx // 2 - 10, ny // 2] == pytest.approx(float(one_d), rel=1e-9)


def test_pb_image_default_blockage_follows_the_dish():
    a7 = pb.pb_image(40, 40, 1.0, FREQ, 7.0)
    np.testing.assert_array_equal(a7, pb.pb_image(40, 40, 1.0, FREQ, 7.0, blockage_m=0.375))
    assert not np.array_equal(a7, pb.pb_image(40, 40, 1.0, FREQ, 7.0, blockage_m=0.0))
    with pytest.raises(ValueError):
        pb.pb_image(40, 40, 1.0, FREQ, 7.0, model="cosine")


def test_pbcor_of_a_flat_image_and_the_mask():
    nx, ny, cell = 64, 64, 0.8
    beam = pb.pb_image(nx, ny, cell, FREQ, 12.0, model="gaussian")
    flat = np.full((nx, ny), 2.0)
    cor = pb.pbcor(flat, beam, 0.2)
    keep = beam >= 0.2
    assert keep.any() and (~keep).any()
    np.testing.assert_allclose(cor[keep], 2.0 / beam[keep], rtol=1e-15)
    assert np.all(np.isnan(cor[~keep]))
    assert cor[nx // 2, ny // 2] == 2.0
    # a flat sky seen through the beam comes back flat inside the limit
    np.testing.assert_allclose(pb.pbcor(flat * beam, beam, 0.2)[keep], 2.0, rtol=1e-15)
    np.testing.assert_array_equal(pb.pb_mask(beam, 0.3), beam >= 0.3)
    # the Gaussian model's 0.5 contour is a disc of radius FWHP / 2
    r = np.hypot(*np.meshgrid((nx // 2 - np.arange(nx)) * cell, (np.arange(ny) - ny // 2) * cell, indexing="ij"))
    half = pb.fwhp_arcsec(FREQ, 12.0) / 2
    mask = pb.pb_mask(beam, 0.5)
    assert np.all(mask[r < half - 1e-6]) and not np.any(mask[r > half + 1e-6])
