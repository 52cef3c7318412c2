"""Sky-model kernels against independent truth: per-visibility loops, a numerical Fourier
integral of the Gaussian image, closed-form spectra and beams."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from almarules.kernels import sky

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600


def _uvw(n=40, seed=0, scale=800.0):
    rng = np.random.default_rng(seed)
    uvw = rng.uniform(-scale, scale, size=(n, 3))
    uvw[:, 2] *= 0.2
    return uvw


FREQ = 230e9 + 15.625e6 * np.arange(37)  # uniform, a prime number of channels: the generic path
FREQ48 = 229e9 + 3.90625e6 * np.arange(48)  # uniform with a divisor near sqrt(48): the fused numexpr path


def test_point_at_phase_centre_is_its_flux_everywhere():
    uvw = _uvw()
    flux = sky.power_law(2.5, FREQ, 230e9, -0.3)
    v = sky.predict(uvw, FREQ, [sky.Component("point", flux)])
    assert v.shape == (40, FREQ.size)
    np.testing.assert_array_equal(v.imag, 0.0)
    np.testing.assert_allclose(v.real, np.broadcast_to(flux, v.shape), rtol=0, atol=0)


@pytest.mark.parametrize("freq", [FREQ, FREQ48, np.array([84e9, 90e9, 100.5e9, 116e9])],
                         ids=["uniform-prime", "uniform-blocked", "irregular"])
def test_offset_point_matches_a_per_visibility_loop(freq):
    uvw = _uvw()
    l, m = 3.0 * ARCSEC, -7.5 * ARCSEC
    n = math.sqrt(1 - l * l - m * m)
    v = sky.predict(uvw, freq, [sky.Component("point", np.full(freq.size, 0.7), l, m)])
    for r in range(uvw.shape[0]):
        u_, v_, w_ = uvw[r]
        for k, nu in enumerate(freq):
            expect = 0.7 * cmath.exp(2j * math.pi * (u_ * l + v_ * m + w_ * (n - 1)) * nu / C)
            assert abs(v[r, k] - expect) < 1e-12


def test_block_factorisation_is_exact_for_large_phases():
    # 16 km baselines, a source 2 arcmin away: phases of ~1e4 rad at 345 GHz
    uvw = _uvw(n=50, scale=16000.0)
    freq = 345e9 + 0.24414e6 * np.arange(961)
    l, m = 120 * ARCSEC, 45 * ARCSEC
    fast = sky.phase_factor(uvw, freq, l, m)
    slow = sky.phase_factor(uvw, freq, l, m, block=1)
    n = math.sqrt(1 - l * l - m * m)
    phase = (uvw[:, 0:1] * l + uvw[:, 1:2] * m + uvw[:, 2:3] * (n - 1)) * 2 * math.pi * freq / C
    big = np.abs(phase).max()
    assert big > 1e4
    # both ways carry the rounding of the phase argument itself, ~1e-16 x |phase|
    assert np.abs(fast - slow).max() < 1e-15 * big
    assert np.abs(fast - np.exp(1j * phase)).max() < 1e-15 * big


def test_sign_convention_source_east_advances_phase_for_positive_u():
    # CASA convention with the stored UVW (= uvw(ANTENNA1) - uvw(ANTENNA2)): exp(+2 pi i u l / lambda)
    uvw = np.array([[100.0, 0.0, 0.0]])
    l = 1 * ARCSEC
    v = sky.phase_factor(uvw, np.array([230e9]), l, 0.0)
    expected = 2 * math.pi * 100.0 * l * 230e9 / C
    assert cmath.phase(v[0, 0]) == pytest.approx(expected, rel=1e-12)


def test_gaussian_matches_numerical_fourier_integral_of_its_image():
    # the image: an elliptical Gaussian, major axis along PA (north through east), l east, m north
    major, minor, pa = 0.8 * ARCSEC, 0.5 * ARCSEC, math.radians(30.0)
    flux = 0.01
    npix, cell = 257, 0.02 * ARCSEC
    ax = (np.arange(npix) - npix // 2) * cell
    L, M = np.meshgrid(ax, ax, indexing="ij")
    along = L * math.sin(pa) + M * math.cos(pa)  # coordinate along the major axis
    across = L * math.cos(pa) - M * math.sin(pa)
    s_maj, s_min = major * sky.FWHM_TO_SIGMA, minor * sky.FWHM_TO_SIGMA
    img = np.exp(-0.5 * ((along / s_maj) ** 2 + (across / s_min) ** 2))
    img *= flux / img.sum()
    freq = np.array([230e9, 231e9])
    rng = np.random.default_rng(3)
    uvw = np.column_stack([rng.uniform(-400, 400, 12), rng.uniform(-400, 400, 12), np.zeros(12)])
    model = sky.predict(uvw, freq, [sky.Component("gaussian", np.full(2, flux), 0.0, 0.0, major, minor, pa)])
    for r in range(12):
        for k, nu in enumerate(freq):
            uu, vv = uvw[r, 0] * nu / C, uvw[r, 1] * nu / C
            direct = np.sum(img * np.exp(2j * math.pi * (uu * L + vv * M)))
            assert abs(model[r, k] - direct) < 2e-6 * flux


@pytest.mark.parametrize("freq", [FREQ, FREQ48], ids=["generic", "blocked"])
def test_offset_gaussian_is_taper_times_shifted_point(freq):
    uvw = _uvw(n=10)
    l, m = -2 * ARCSEC, 1 * ARCSEC
    g = sky.Component("gaussian", np.full(freq.size, 1.0), l, m, 1.2 * ARCSEC, 0.6 * ARCSEC, math.radians(60))
    v = sky.predict(uvw, freq, [g])
    n = math.sqrt(1 - l * l - m * m)
    k = math.pi ** 2 / (4 * math.log(2))
    for r in range(10):
        for c, nu in enumerate(freq):
            u_, v_, w_ = uvw[r] * nu / C
            ua = u_ * math.sin(math.radians(60)) + v_ * math.cos(math.radians(60))
            ub = u_ * math.cos(math.radians(60)) - v_ * math.sin(math.radians(60))
            taper = math.exp(-k * ((1.2 * ARCSEC * ua) ** 2 + (0.6 * ARCSEC * ub) ** 2))
            expect = taper * cmath.exp(2j * math.pi * (u_ * l + v_ * m + w_ * (n - 1)))
            assert abs(v[r, c] - expect) < 1e-12
    np.testing.assert_allclose(v, sky.direct_sum(uvw, freq, [g]), atol=1e-12)


def test_time_dependent_spectrum_and_accumulation_into_out():
    # (ntime, nbl) rows with a spectrum per time (a Doppler-shifted line), added to `out`
    rng = np.random.default_rng(5)
    uvw = rng.uniform(-300, 300, size=(4, 6, 3))
    spec = rng.uniform(0.1, 1.0, size=(4, 1, FREQ48.size))
    comps = [sky.Component("point", spec, 1.5 * ARCSEC, -0.5 * ARCSEC),
             sky.Component("gaussian", spec * 0.5, 0.0, 0.0, 0.9 * ARCSEC, 0.3 * ARCSEC, 0.2),
             sky.Component("point", np.full(FREQ48.size, 0.02))]
    out = np.full((4, 6, FREQ48.size), 1.0 + 0j)
    got = sky.predict(uvw, FREQ48, comps, out=out)
    assert got is out
    np.testing.assert_allclose(out - 1.0, sky.direct_sum(uvw, FREQ48, comps), atol=1e-12)
    with pytest.raises(ValueError, match="C-contiguous complex128"):
        sky.predict(uvw, FREQ48, comps, out=np.zeros((4, 6, FREQ48.size), np.complex64))


def test_spectral_index_scaling():
    freq = np.array([115e9, 230e9, 345e9])
    s = sky.power_law(2.0, freq, 230e9, -0.7)
    assert s[1] == 2.0
    assert s[0] == pytest.approx(2.0 * 0.5 ** -0.7, rel=1e-14)
    assert s[2] == pytest.approx(2.0 * 1.5 ** -0.7, rel=1e-14)
    v = sky.predict(np.zeros((1, 3)), freq, [sky.Component("point", s)])
    assert v[0, 2].real / v[0, 0].real == pytest.approx(3.0 ** -0.7, rel=1e-14)


def test_direction_cosines_round_trip_and_known_offset():
    ra0, dec0 = math.radians(240.0), math.radians(-30.0)
    l, m = 1.2 * ARCSEC, 1.6 * ARCSEC
    ra, dec = sky.radec_from_lm(l, m, ra0, dec0)
    l2, m2, n2 = sky.lmn(ra, dec, ra0, dec0)
    assert (l2, m2) == pytest.approx((l, m), abs=1e-15)
    assert n2 == pytest.approx(math.sqrt(1 - l * l - m * m), abs=1e-15)
    # east is increasing RA: a small RA offset gives l = cos(dec) sin(dRA) > 0
    l3, m3, _ = sky.lmn(ra0 + 1e-5, dec0, ra0, dec0)
    assert l3 == pytest.approx(math.cos(dec0) * math.sin(1e-5), rel=1e-12) and l3 > 0
    # the SIMGAL_1 Gaussian of the shared alma_sim truth: 16:00:00.09238 -29:59:58.4
    ra_t, dec_t = math.radians(240.00038489845565), math.radians(-29.999555554995744)
    lt, mt, _ = sky.lmn(ra_t, dec_t, ra0, dec0)
    assert (lt / ARCSEC, mt / ARCSEC) == pytest.approx((1.2, 1.6), abs=1e-6)


def test_primary_beam_half_power_and_gaussian_line():
    freq = np.array([230e9])
    fwhm = 1.12 * C / (230e9 * 12.0)  # heuristics.md section 3
    assert sky.primary_beam_fwhm(freq, 12.0)[0] == pytest.approx(fwhm)
    assert sky.primary_beam_gaussian(fwhm / 2, freq, 12.0)[0] == pytest.approx(0.5, rel=1e-12)
    assert sky.primary_beam_gaussian(0.0, freq, 12.0)[0] == 1.0
    nu = np.array([229e9 - 5e6, 229e9, 229e9 + 5e6])
    line = sky.gaussian_line(nu, 0.08, 229e9, 10e6)
    assert line == pytest.approx([0.04, 0.08, 0.04], rel=1e-12)
