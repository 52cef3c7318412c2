"""Beam fitting against independent truth: analytic elliptical Gaussians written out here from the
stated convention, and PSFs made by `kernels.gridding.psf` from uv coverages whose PSF is known in
closed form.

Truth PSFs. With V = 1, unit weights w(u, v) and w = 0 the PSF is sum w cos(2 pi (u l + v m)) /
sum w, (u, v) in wavelengths. On a regular uv grid of spacing du this is, by Poisson summation,
the continuous Fourier transform of w repeated with period 1 / du (radians) -- exact once the
period is far larger than the image and w has decayed at the grid's edge.
* Gaussian weights with standard deviations s1 along e1 = (sin phi, cos phi) and s2 along the
  perpendicular e2 of the (u, v) plane: PSF = exp(-2 pi^2 (s1^2 (e1.l)^2 + s2^2 (e2.l)^2)), a
  Gaussian whose FWHM along e_i is sqrt(2 ln 2) / (pi s_i) rad; for s1 < s2 the major axis is
  e1, i.e. bpa = phi east of north (u pairs with l = east, v with m = north).
* Uniform weights inside |u| <= R: PSF = 2 J1(x) / x with x = 2 pi R theta; half maximum at
  x = 2.2151, first sidelobe min -0.13228 at x = 5.1356 (tabulated values of the jinc function).

Tolerances. The analytic Gaussians are sampled at pixel centres, which is exactly the model fitted,
so the fit recovers them to ~1e-8; 1e-6 relative and 1e-4 degree are asserted (the brief's 1 % and
1 degree would hide a wrong sign convention only at 45 degrees, not a sloppy fit). The gridded
Gaussian PSF carries ducc0's epsilon (1e-7, relative L2) and the Poisson aliasing / truncation
(< 1e-12); the fit comes out within 1e-8: 1e-5 relative and 1e-3 degree are asserted (the brief
asked for a few %). The disc PSF's main lobe is not Gaussian, so the fitted FWHM differs from the
true FWHM by a threshold-dependent amount (0.3 % at threshold 0.35, -1.7 % at 0.2, +2.6 % at 0.5):
2 % is asserted. Its sidelobe level is a pixel maximum, with the ring's minimum sampled within a
fraction of a cell (measured 0.1 % off): 1 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import beam as beammod
from almarules.kernels import gridding

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
LN2 = math.log(2.0)


def _analytic(nx: int, ny: int, cell: float, bmaj: float, bmin: float, bpa_deg: float) -> np.ndarray:
    """exp(-4 ln2 [(x_maj/bmaj)^2 + (x_min/bmin)^2]) with the major axis pointing bpa east of north."""
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    east, north = (nx // 2 - ix) * cell, (iy - ny // 2) * cell
    pa = math.radians(bpa_deg)
    major_dir = (math.sin(pa), math.cos(pa))  # (east, north) components
    x_maj = east * major_dir[0] + north * major_dir[1]
    x_min = east * major_dir[1] - north * major_dir[0]
    return np.exp(-4 * LN2 * ((x_maj / bmaj) ** 2 + (x_min / bmin) ** 2))


def _same_pa(a: float, b: float) -> float:
    """Angular difference (degrees) of two position angles, modulo 180."""
    d = (a - b) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.parametrize("bpa", [0.0, 45.0, -45.0, 30.0, -72.5, 90.0, 89.0])
def test_fit_recovers_an_analytic_elliptical_gaussian(bpa):
    nx, ny, cell = 96, 80, 0.05  # non-square grid catches a transposition
    bmaj, bmin = 0.71, 0.33
    fit = beammod.fit_beam(_analytic(nx, ny, cell, bmaj, bmin, bpa), cell)
    assert fit.bmaj_arcsec == pytest.approx(bmaj, rel=1e-6)
    assert fit.bmin_arcsec == pytest.approx(bmin, rel=1e-6)
    assert -90.0 < fit.bpa_deg <= 90.0
    assert _same_pa(fit.bpa_deg, bpa) < 1e-4
    assert fit.bpa_deg == pytest.approx(bpa, abs=1e-4)  # all chosen angles are inside (-90, 90]


def test_fit_with_few_pixels_per_beam_and_peak_not_one():
    # ~3 pixels across the minor axis (the cascade's ppb = 3), amplitude 0.8
    cell, bmaj, bmin, bpa = 0.1, 0.5, 0.3, -45.0
    fit = beammod.fit_beam(0.8 * _analytic(64, 64, cell, bmaj, bmin, bpa), cell)
    assert (fit.bmaj_arcsec, fit.bmin_arcsec) == pytest.approx((bmaj, bmin), rel=1e-6)
    assert fit.bpa_deg == pytest.approx(bpa, abs=1e-4)


def test_position_angle_direction_on_the_sky():
    # bpa = +45: major axis to the north-east, i.e. towards smaller ix (east) and larger iy (north)
    nx = ny = 64
    c = nx // 2
    img = beammod.gaussian_image(beammod.Beam(1.0, 0.3, 45.0), nx, ny, 0.05)
    assert img[c - 6, c + 6] > 0.5 > img[c + 6, c + 6]
    # bpa = 90: east-west major axis, along ix
    img = beammod.gaussian_image(beammod.Beam(1.0, 0.3, 90.0), nx, ny, 0.05)
    assert img[c + 8, c] > 0.5 > img[c, c + 8]


def test_gaussian_image_matches_the_written_out_formula():
    nx, ny, cell = 70, 50, 0.04
    for bpa in (0.0, 45.0, -45.0, 12.0):
        img = beammod.gaussian_image(beammod.Beam(0.6, 0.4, bpa), nx, ny, cell)
        np.testing.assert_allclose(img, _analytic(nx, ny, cell, 0.6, 0.4, bpa), rtol=1e-12, atol=1e-300)
        assert img[nx // 2, ny // 2] == 1.0 and img.shape == (nx, ny)
    # half maximum at half the FWHM along the major axis (bpa = 0: north, +iy)
    img = beammod.gaussian_image(beammod.Beam(0.8, 0.4, 0.0), nx, ny, 0.04)
    assert img[nx // 2, ny // 2 + 10] == pytest.approx(0.5, rel=1e-12)


def _grid_uv(extent: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(-int(extent / spacing), int(extent / spacing) + 1) * spacing
    u, v = np.meshgrid(k, k, indexing="ij")
    return u.ravel(), v.ravel()


def _psf_from_weights(u: np.ndarray, v: np.ndarray, wt: np.ndarray, freq: float, nx: int, ny: int,
                      cell: float) -> np.ndarray:
    lam = C / freq
    keep = wt > 0
    uvw = np.stack([u[keep] * lam, v[keep] * lam, np.zeros(keep.sum())], axis=1)
    return gridding.psf(uvw, np.array([freq]), wt[keep][:, None], nx, ny, cell, epsilon=1e-7, nthreads=1)


@pytest.mark.parametrize("phi", [0.0, 35.0, -45.0])
def test_fit_of_a_gridded_psf_from_gaussian_tapered_weights(phi):
    freq, nx, ny, cell = 230e9, 64, 56, 0.08
    bmaj_true, bmin_true = 0.6, 0.4  # arcsec
    s1 = math.sqrt(2 * LN2) / (math.pi * bmaj_true * ARCSEC)  # uv std (wavelengths) along e1
    s2 = math.sqrt(2 * LN2) / (math.pi * bmin_true * ARCSEC)
    u, v = _grid_uv(7 * s2, 1.0 / (20.0 * ARCSEC))  # alias period 20" >> 5" field
    p = math.radians(phi)
    a1 = u * math.sin(p) + v * math.cos(p)
    a2 = u * math.cos(p) - v * math.sin(p)
    wt = np.exp(-0.5 * ((a1 / s1) ** 2 + (a2 / s2) ** 2))
    wt[wt < 1e-14] = 0.0
    psf = _psf_from_weights(u, v, wt, freq, nx, ny, cell)
    fit = beammod.fit_beam(psf, cell)
    assert fit.bmaj_arcsec == pytest.approx(bmaj_true, rel=1e-5)
    assert fit.bmin_arcsec == pytest.approx(bmin_true, rel=1e-5)
    assert _same_pa(fit.bpa_deg, phi) < 1e-3
    # a Gaussian PSF has no sidelobes: CASA's level (excess over the fitted Gaussian) is ~0
    assert beammod.sidelobe_level(psf, fit, cell) <= 1e-5
    # and the restoring beam reproduces the PSF
    np.testing.assert_allclose(beammod.gaussian_image(fit, nx, ny, cell), psf, rtol=0, atol=1e-6)


def test_fit_and_sidelobe_of_a_uniform_disc_psf():
    freq, nx, ny, cell = 230e9, 128, 128, 0.05
    fwhm_true = 0.5  # arcsec: 2 J1(x)/x = 1/2 at x = 2.2151 -> R = 2 x_half / (2 pi fwhm)
    x_half, x_side, side = 2.215167, 5.135622, 0.132279
    radius = 2 * x_half / (2 * math.pi * fwhm_true * ARCSEC)
    u, v = _grid_uv(radius * 1.02, 1.0 / (40.0 * ARCSEC))
    wt = (u * u + v * v <= radius * radius).astype(np.float64)
    psf = _psf_from_weights(u, v, wt, freq, nx, ny, cell)
    # the sampled disc's PSF itself: sanity check of the truth (first sidelobe ring radius)
    c = nx // 2
    r_side = x_side / (2 * math.pi * radius * ARCSEC)
    assert psf[c, c + round(r_side / cell)] == pytest.approx(-side, rel=0.02)
    fit = beammod.fit_beam(psf, cell)
    assert fit.bmaj_arcsec == pytest.approx(fwhm_true, rel=0.02)
    assert fit.bmin_arcsec == pytest.approx(fwhm_true, rel=0.02)
    assert fit.bmaj_arcsec / fit.bmin_arcsec < 1.01  # circular
    # CASA's level: the deepest negative sidelobe, -2 J1(x)/x at its first minimum, beats the
    # excess of the first positive ring over the Gaussian
    assert beammod.sidelobe_level(psf, fit, cell) == pytest.approx(side, rel=0.01)


def _ndimage_component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    from scipy import ndimage

    labels, _ = ndimage.label(mask)
    return (labels == labels[seed]) & mask


@pytest.mark.parametrize("shape,density,seed", [
    ((7, 9), 0.6, (3, 4)),          # smaller than the first window
    ((320, 320), 0.45, (160, 160)),  # sparse: small components
    ((320, 320), 0.62, (160, 160)),  # above percolation: one component across the image
    ((700, 650), 0.58, (350, 325)),  # beyond the largest window: scipy labels it
    ((200, 300), 0.5, (0, 299)),     # seed in a corner
])
def test_connected_component_is_scipys_4_connected_label(shape, density, seed):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        mask = rng.random(shape) < density
        mask[seed] = True
        got = beammod.connected_component(mask, seed)
        np.testing.assert_array_equal(got, _ndimage_component(mask, seed))


def test_connected_component_of_a_long_snake_and_an_unset_seed():
    mask = np.zeros((129, 129), dtype=bool)  # a serpentine path: many flooding steps per window
    mask[::2, 1:-1] = True
    mask[1::4, -2] = True
    mask[3::4, 1] = True
    seed = (64, 64)
    np.testing.assert_array_equal(beammod.connected_component(mask, seed), _ndimage_component(mask, seed))
    assert not beammod.connected_component(mask, (1, 5)).any()
