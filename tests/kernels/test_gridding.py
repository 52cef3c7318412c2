"""ducc0 gridding against independent truth: a numpy direct Fourier transform written from the
documented convention, `kernels.sky`'s direct sum, and the dot-product (adjointness) test.

Tolerances. ducc0's epsilon is the relative L2 error it aims at, sqrt(sum|a - exact|^2 /
sum|exact|^2); its kernel, oversampling and w-planes are chosen from an error *estimate*, not a
proven bound, so the tests allow 10 x epsilon -- still 1e3 or more below what a wrong sign, a
transposed axis, a one-pixel shift or a missing normalisation would give. A single pixel's error
is at most the L2 norm of the error, so pixel values are checked to 10 x epsilon x ||exact||_2.
Adjointness does not depend on epsilon (gridding and degridding apply the same kernel and FFT,
transposed), so the dot-product test is at rounding level.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import gridding, sky

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600


def _uvw(nrow: int, uv_m: float, w_m: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uvw = rng.uniform(-1.0, 1.0, size=(nrow, 3))
    uvw[:, :2] *= uv_m
    uvw[:, 2] *= w_m
    return uvw


def _lm_grid(nx: int, ny: int, cell_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """(l, m) of every pixel from the documented convention, written out independently."""
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    cell = cell_arcsec * ARCSEC
    return (nx // 2 - ix) * cell, (iy - ny // 2) * cell


def _dft_dirty(uvw, freq, vis, weight, nx, ny, cell_arcsec, wterm=True, flags=None) -> np.ndarray:
    """sum_k w_k Re[V_k exp(-2 pi i (u l + v m + w (n - 1)) nu / c)] / sum_k w_k, one exp per term."""
    l, m = _lm_grid(nx, ny, cell_arcsec)
    nm1 = np.sqrt(1.0 - l * l - m * m) - 1.0 if wterm else np.zeros_like(l)
    u, v, w = (np.multiply.outer(uvw[:, i], freq).ravel() / C for i in range(3))  # wavelengths
    wv = (weight * vis).ravel()
    keep = np.ones(wv.shape, bool) if flags is None else ~flags.ravel()
    u, v, w, wv = u[keep], v[keep], w[keep], wv[keep]
    out = np.empty(l.size)
    lf, mf, nf = l.ravel(), m.ravel(), nm1.ravel()
    for s in range(0, l.size, 256):
        ph = -2j * np.pi * (np.outer(lf[s:s + 256], u) + np.outer(mf[s:s + 256], v) + np.outer(nf[s:s + 256], w))
        out[s:s + 256] = (np.exp(ph) @ wv).real
    return out.reshape(nx, ny) / weight.ravel()[keep].sum()


def _l2err(a: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm((a - exact).ravel()) / np.linalg.norm(exact.ravel()))


# an ALMA-like narrow field: Band 6, 0.1" cells on a 64 x 48 image (non-square catches a transposition)
FREQ = 230e9 + 15.625e6 * np.arange(3)
NX, NY, CELL = 64, 48, 0.1


def _vis(uvw, freq, seed=1):
    rng = np.random.default_rng(seed)
    comps = [sky.Component("point", np.full(freq.size, 1.0), 0.0, 0.0),
             sky.Component("point", np.full(freq.size, 0.3), 1.3 * ARCSEC, -0.7 * ARCSEC)]
    vis = sky.predict(uvw, freq, comps)
    vis += 0.2 * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
    weight = rng.uniform(0.5, 2.0, vis.shape)
    return vis, weight


@pytest.mark.parametrize("epsilon", [1e-4, 1e-6, 1e-9])
@pytest.mark.parametrize("wgridding", [True, False], ids=["wgridding", "no-w"])
def test_dirty_image_matches_direct_fourier_transform(epsilon, wgridding):
    uvw = _uvw(400, 1000.0, 500.0)
    if not wgridding:
        uvw[:, 2] = 0.0  # the DFT with w-term is then the truth for both modes
    vis, weight = _vis(uvw, FREQ)
    flags = np.random.default_rng(5).uniform(size=vis.shape) < 0.1
    dirty = gridding.dirty_image(uvw, FREQ, vis, weight, NX, NY, CELL, epsilon=epsilon, wgridding=wgridding,
                                 nthreads=1, flags=flags)
    exact = _dft_dirty(uvw, FREQ, vis, weight, NX, NY, CELL, flags=flags)
    assert dirty.shape == (NX, NY) and dirty.dtype == np.float64
    assert _l2err(dirty, exact) <= 10 * epsilon


@pytest.mark.parametrize("offset_cells", [(0, 0), (5, 0), (0, 7), (-9, -3), (12, 10)],
                         ids=["centre", "east", "north", "west-south", "north-east"])
def test_point_source_lands_on_its_pixel_with_its_flux(offset_cells):
    # (l, m) = (east, north) offsets in whole cells; east must be towards smaller ix (RA axis)
    de, dn = offset_cells
    l, m = de * CELL * ARCSEC, dn * CELL * ARCSEC
    uvw = _uvw(2000, 1000.0, 300.0, seed=3)
    flux = 2.5
    vis = sky.predict(uvw, FREQ, [sky.Component("point", np.full(FREQ.size, flux), l, m)])
    weight = np.random.default_rng(4).uniform(0.5, 2.0, vis.shape)
    eps = 1e-6
    dirty = gridding.dirty_image(uvw, FREQ, vis, weight, NX, NY, CELL, epsilon=eps, nthreads=1)
    expect_pixel = (NX // 2 - de, NY // 2 + dn)
    assert np.unravel_index(np.argmax(dirty), dirty.shape) == expect_pixel
    assert gridding.lm_pixel(l, m, NX, NY, CELL) == pytest.approx(expect_pixel, abs=1e-9)
    assert gridding.pixel_lm(*expect_pixel, NX, NY, CELL) == pytest.approx((l, m), abs=1e-18)
    # the exact peak is the flux: every term is w * S * exp(0)
    assert abs(dirty[expect_pixel] - flux) <= 10 * eps * np.linalg.norm(dirty)


def test_psf_peaks_at_one_at_the_phase_centre_and_is_symmetric():
    uvw = _uvw(1000, 1000.0, 300.0, seed=6)
    weight = np.random.default_rng(7).uniform(0.5, 2.0, (uvw.shape[0], FREQ.size))
    eps = 1e-6
    beam = gridding.psf(uvw, FREQ, weight, NX, NY, CELL, epsilon=eps, nthreads=1)
    assert np.unravel_index(np.argmax(beam), beam.shape) == (NX // 2, NY // 2)
    assert abs(beam[NX // 2, NY // 2] - 1.0) <= 10 * eps * np.linalg.norm(beam)
    # point-symmetric about the centre: PSF(l, m) = PSF(-l, -m)
    inner = beam[1:, 1:]  # row/column 0 have no mirror partner on an even grid
    np.testing.assert_allclose(inner, inner[::-1, ::-1], rtol=0, atol=10 * eps * np.linalg.norm(beam))
    # and equal to the DFT of V = 1
    exact = _dft_dirty(uvw, FREQ, np.ones_like(weight, complex), weight, NX, NY, CELL)
    assert _l2err(beam, exact) <= 10 * eps


@pytest.mark.parametrize("epsilon", [1e-4, 1e-7])
def test_predict_matches_the_direct_sum_of_sky(epsilon):
    # a model image of a few point sources (Jy/pixel) = sky.Components at those pixels' (l, m)
    uvw = _uvw(500, 1000.0, 500.0, seed=8)
    model = np.zeros((NX, NY))
    comps = []
    for (ix, iy), s in {(32, 24): 1.0, (10, 40): 0.5, (60, 3): -0.2, (45, 17): 0.8}.items():
        model[ix, iy] = s
        l, m = gridding.pixel_lm(ix, iy, NX, NY, CELL)
        comps.append(sky.Component("point", np.full(FREQ.size, s), l, m))
    vis = gridding.predict(uvw, FREQ, model, CELL, epsilon=epsilon, nthreads=1)
    exact = sky.direct_sum(uvw, FREQ, comps)
    assert vis.shape == exact.shape and vis.dtype == np.complex128
    assert _l2err(vis, exact) <= 10 * epsilon


@pytest.mark.parametrize("wgridding", [True, False], ids=["wgridding", "no-w"])
@pytest.mark.parametrize("epsilon", [1e-3, 1e-6])
def test_predict_is_the_adjoint_of_dirty_image(wgridding, epsilon):
    rng = np.random.default_rng(9)
    uvw = _uvw(700, 1000.0, 500.0, seed=10)
    shape = (uvw.shape[0], FREQ.size)
    vis = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    weight = rng.uniform(0.1, 3.0, shape)
    flags = rng.uniform(size=shape) < 0.2
    model = rng.standard_normal((NX, NY))
    kw = dict(epsilon=epsilon, wgridding=wgridding, nthreads=1, flags=flags)
    dirty = gridding.dirty_image(uvw, FREQ, vis, weight, NX, NY, CELL, **kw)
    pred = gridding.predict(uvw, FREQ, model, CELL, **kw)
    assert np.all(pred[flags] == 0)
    wsum = weight[~flags].sum()
    lhs = np.vdot(pred, weight * vis).real  # Re sum conj(A M) W V
    rhs = wsum * np.vdot(model, dirty)  # <M, A^H W V>
    scale = np.linalg.norm(pred) * np.linalg.norm(weight * vis)  # Cauchy-Schwarz bound on either side
    assert abs(lhs - rhs) <= 1e-12 * scale


def test_w_term_matters_on_a_wide_field():
    # 1 arcmin cells over 64 x 64 (about 1 deg): 1 - n reaches 9e-5 at the corners, and
    # |w| up to 600 m (2900 wavelengths at 1.45 GHz) gives w-phases up to ~1.6 rad there
    freq = np.array([1.4e9, 1.45e9])
    nx = ny = 64
    cell = 60.0
    uvw = _uvw(600, 400.0, 600.0, seed=11)

    def vis_of(pixels):
        comps = [sky.Component("point", np.full(freq.size, 1.0), *gridding.pixel_lm(ix, iy, nx, ny, cell))
                 for ix, iy in pixels]
        return sky.predict(uvw, freq, comps)

    vis = vis_of([(4, 5), (60, 58), (32, 32), (6, 55)])
    weight = np.ones(vis.shape)
    exact = _dft_dirty(uvw, freq, vis, weight, nx, ny, cell, wterm=True)
    eps = 1e-6
    with_w = gridding.dirty_image(uvw, freq, vis, weight, nx, ny, cell, epsilon=eps, wgridding=True, nthreads=1)
    without_w = gridding.dirty_image(uvw, freq, vis, weight, nx, ny, cell, epsilon=eps, wgridding=False,
                                     nthreads=1)
    assert _l2err(with_w, exact) <= 10 * eps
    assert _l2err(without_w, exact) > 0.1  # the w-term is not a small correction here
    # a lone corner source keeps its flux only with the w-term (no 1/n: the peak is the flux)
    one = vis_of([(4, 5)])
    kw = dict(epsilon=eps, nthreads=1)
    d_w = gridding.dirty_image(uvw, freq, one, weight, nx, ny, cell, wgridding=True, **kw)
    d_no_w = gridding.dirty_image(uvw, freq, one, weight, nx, ny, cell, wgridding=False, **kw)
    assert d_w[4, 5] == pytest.approx(1.0, abs=10 * eps * np.linalg.norm(d_w))
    assert d_no_w[4, 5] < 0.9
    # without it, gridding is exactly the DFT that drops w (n - 1)
    exact_no_w = _dft_dirty(uvw, freq, vis, weight, nx, ny, cell, wterm=False)
    assert _l2err(without_w, exact_no_w) <= 10 * eps
    # and degridding: predict with w-gridding reproduces sky's visibilities, without it does not
    model = np.zeros((nx, ny))
    for ix, iy in [(4, 5), (60, 58), (32, 32), (6, 55)]:
        model[ix, iy] = 1.0
    assert _l2err(gridding.predict(uvw, freq, model, cell, epsilon=eps, wgridding=True, nthreads=1), vis) <= 10 * eps
    assert _l2err(gridding.predict(uvw, freq, model, cell, epsilon=eps, wgridding=False, nthreads=1), vis) > 0.1


def test_flagged_samples_do_not_enter_the_image_or_the_normalisation():
    uvw = _uvw(300, 1000.0, 300.0, seed=12)
    vis, weight = _vis(uvw, FREQ, seed=13)
    flags = np.zeros(vis.shape, bool)
    flags[:100] = True
    garbage = vis.copy()
    garbage[:100] = 1e6
    a = gridding.dirty_image(uvw, FREQ, garbage, weight, NX, NY, CELL, nthreads=1, flags=flags)
    b = gridding.dirty_image(uvw[100:], FREQ, vis[100:], weight[100:], NX, NY, CELL, nthreads=1)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


def test_single_precision_follows_the_visibility_dtype():
    uvw = _uvw(400, 1000.0, 500.0, seed=14)
    vis, weight = _vis(uvw, FREQ, seed=15)
    eps = 1e-4
    dirty = gridding.dirty_image(uvw, FREQ, vis.astype(np.complex64), weight, NX, NY, CELL, epsilon=eps, nthreads=1)
    assert dirty.dtype == np.float32
    assert _l2err(dirty.astype(np.float64), _dft_dirty(uvw, FREQ, vis, weight, NX, NY, CELL)) <= 10 * eps
    pred = gridding.predict(uvw, FREQ, np.ones((NX, NY), np.float32), CELL, epsilon=eps, nthreads=1)
    assert pred.dtype == np.complex64


def test_bad_arguments_are_clear_errors():
    uvw = _uvw(10, 100.0, 10.0)
    vis = np.ones((10, FREQ.size), complex)
    with pytest.raises(ValueError, match="even integer >= 32"):
        gridding.dirty_image(uvw, FREQ, vis, np.ones(vis.shape), 63, 64, CELL)
    with pytest.raises(ValueError, match="even integer >= 32"):
        gridding.predict(uvw, FREQ, np.zeros((16, 64)), CELL)
    with pytest.raises(ValueError, match="vis must have shape"):
        gridding.dirty_image(uvw, FREQ, vis[:, :2], np.ones(vis.shape), 64, 64, CELL)
    with pytest.raises(ValueError, match="sum of the weights"):
        gridding.dirty_image(uvw, FREQ, vis, np.ones(vis.shape), 64, 64, CELL, flags=np.ones(vis.shape, bool))


def test_max_w_phase_is_the_corner_phase_and_bounds_the_standard_gridders_error():
    """max_w_phase = 2 pi |w|max nu / c (1 - n) at the corner, computed here from the definition;
    the dirty image without the w-term differs from the exact one by no more than that phase
    allows (|1 - e^{i phi}| <= phi per sample)."""
    from almarules.kernels.gridding import max_w_phase

    rng = np.random.default_rng(11)
    uvw = rng.normal(scale=[300.0, 300.0, 150.0], size=(400, 3))
    freq = np.array([1.0e9, 1.4e9])
    n, cell = 64, 20.0  # a wide field: 64 x 20 arcsec
    l = m = n / 2 * cell * math.pi / 180 / 3600
    want = 2 * math.pi * np.abs(uvw[:, 2]).max() * 1.4e9 / 299_792_458.0 * (1 - math.sqrt(1 - l * l - m * m))
    got = max_w_phase(uvw, freq, n, n, cell)
    assert got == pytest.approx(want, rel=1e-9)
    vis = np.exp(2j * np.pi * rng.uniform(size=(400, 2)))
    exact = gridding.dirty_image(uvw, freq, vis, np.ones((400, 2)), n, n, cell, epsilon=1e-8, wgridding=True)
    flat = gridding.dirty_image(uvw, freq, vis, np.ones((400, 2)), n, n, cell, epsilon=1e-8, wgridding=False)
    assert 0 < np.abs(exact - flat).max() <= got + 1e-7
