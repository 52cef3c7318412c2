"""MT-MFS (kernels.mtmfs) against independent truth.

Observation: 30 antennas at random positions within 500 m (fixed seed), a 40-minute track around
transit of a source at declination -30 deg from latitude -23 deg (uvw from plain ENU -> equatorial
geometry), 16 channels over 84-116 GHz (32 % fractional bandwidth, nu0 = 100 GHz), natural
weights; 256^2 images of 0.1" (beam ~0.67" x 0.61", PSF sidelobe level ~0.2). Visibilities of point
sources on pixel centres, S(nu) = S0 (nu / nu0)^alpha, come from a direct Fourier sum written here
(the gridder's documented convention), not from the gridder. The Taylor PSFs are made on 512^2
so that the image-domain subtraction is exact over the whole image (no major cycle needed).

What nterms = 2 can recover. At a source pixel the converged MT-MFS solution is the weighted
least-squares fit of I0 + I1 x (x = (nu - nu0) / nu0) to the channel fluxes (here equal channel
weights), not S0 and alpha themselves: the x^2 term of (1 + x)^alpha raises I0 by
alpha (alpha - 1) / 2 <x^2> = +0.58 % (alpha = -0.7), 0 (alpha = 0) and +0.97 % (alpha = +2) of S0.
Each source is therefore checked twice: against S0 (1 %) and alpha (0.05), as asked, and against
that fit (0.3 % of S0: the clean threshold is 0.1-0.2 % of the fluxes; alpha 0.005), which a
wrong Hessian, a wrong PSF index or a missing principal solution fail by far.

Noise. At SNR = I0 / sigma(tt0) the 1-sigma error of alpha is sqrt((H^-1)_11) / SNR ~ 10.2 / SNR
for this band (<x^2> = 0.0097): 0.05 at SNR 200. So the noisy case checks what is deterministic
for a given noise draw -- the clean result against the fit plus the principal solution H^-1 n of
the noise images n at the source pixel (noise imaged alone; the same linear algebra, independent
of CLEAN) -- and against the truth only within 4 sigma, except for a 5 Jy source (SNR ~1000,
sigma_alpha ~0.01) for which the literal alpha +- 0.05 is a 5-sigma test.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.signal import fftconvolve

from almarules.kernels import beam as beammod
from almarules.kernels import deconvolve, gridding, mtmfs

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
LAT, DEC = math.radians(-23.02), math.radians(-30.0)
FREQ = np.linspace(84e9, 116e9, 16)
NU0 = 100e9
X = (FREQ - NU0) / NU0
NPIX, CELL = 256, 0.1
PSF_NPIX = (2 * NPIX, 2 * NPIX)
THRESH = 1e-3
#: (S0 Jy at nu0, alpha, east cells, north cells)
SOURCES = [(1.0, -0.7, 0, 0), (0.5, 0.0, 25, -14), (0.8, 2.0, -31, 22)]


def _uvw(nant: int = 30, ntime: int = 16, seed: int = 1, radius_m: float = 500.0,
         minutes: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = radius_m * np.sqrt(rng.uniform(0.0, 1.0, nant))
    th = rng.uniform(0.0, 2 * np.pi, nant)
    e, n, up = r * np.cos(th), r * np.sin(th), np.zeros(nant)
    xyz = np.stack([-math.sin(LAT) * n + math.cos(LAT) * up, e, math.cos(LAT) * n + math.sin(LAT) * up], axis=1)
    a1, a2 = np.triu_indices(nant, 1)
    bx, by, bz = (xyz[a2] - xyz[a1]).T
    h = np.linspace(-0.5, 0.5, ntime)[:, None] * minutes / 60.0 * math.pi / 12.0  # hour angle (rad)
    sd, cd = math.sin(DEC), math.cos(DEC)
    u = np.sin(h) * bx + np.cos(h) * by
    v = -sd * np.cos(h) * bx + sd * np.sin(h) * by + cd * bz
    w = cd * np.cos(h) * bx - cd * np.sin(h) * by + sd * bz
    return np.stack([u.ravel(), v.ravel(), w.ravel()], axis=1)


def _vis(uvw: np.ndarray, sources) -> np.ndarray:
    """Direct Fourier sum: V = sum S(nu) exp(+2 pi i (u l + v m + w (n - 1)) nu / c)."""
    vis = np.zeros((uvw.shape[0], FREQ.size), dtype=np.complex128)
    for s0, alpha, de, dn in sources:
        l, m = de * CELL * ARCSEC, dn * CELL * ARCSEC
        phase = 2 * np.pi * (uvw[:, 0:1] * l + uvw[:, 1:2] * m
                             + uvw[:, 2:3] * (math.sqrt(1 - l * l - m * m) - 1)) * FREQ[None, :] / C
        vis += s0 * (FREQ / NU0)[None, :] ** alpha * np.exp(1j * phase)
    return vis


def _pixel(de: int, dn: int) -> tuple[int, int]:
    return NPIX // 2 - de, NPIX // 2 + dn  # east = smaller ix, north = larger iy


def _fit(s0: float, alpha: float) -> tuple[float, float]:
    """Least-squares I0 + I1 x through the channel fluxes (equal channel weights)."""
    i1, i0 = np.polyfit(X, s0 * (FREQ / NU0) ** alpha, 1)
    return float(i0), float(i1)


def _hessian_by_hand(psfs: np.ndarray) -> np.ndarray:
    c = psfs[:, psfs.shape[1] // 2, psfs.shape[2] // 2]
    return np.array([[c[0], c[1]], [c[1], c[2]]])


@pytest.fixture(scope="module")
def uvw():
    return _uvw()


@pytest.fixture(scope="module")
def clean_free(uvw):
    """Noise-free data: Taylor images, the clean, the beam and the restored images."""
    wt = np.ones((uvw.shape[0], FREQ.size))
    res, psfs = mtmfs.taylor_images(uvw, FREQ, _vis(uvw, SOURCES), wt, NPIX, NPIX, CELL, NU0, 2,
                                    psf_npix=PSF_NPIX)
    t = time.perf_counter()
    r = mtmfs.multiterm_clean(res, psfs, gain=0.1, niter=3000, threshold=THRESH)
    elapsed = time.perf_counter() - t
    bm = beammod.fit_beam(psfs[0], CELL)
    restored = mtmfs.restore_taylor(r.models, r.residuals, bm, CELL, psfs=psfs)
    return dict(res=res, psfs=psfs, r=r, beam=bm, restored=restored, elapsed=elapsed)


# ---------------------------------------------------------------- small analytic cases

def test_taylor_weights():
    w = mtmfs.taylor_weights(np.array([90e9, 100e9, 120e9]), 100e9, 3)
    assert w.shape == (3, 3)
    np.testing.assert_allclose(w, [[1, 1, 1], [-0.1, 0, 0.2], [0.01, 0, 0.04]], rtol=0, atol=1e-15)


def _toy(h: tuple[float, float, float], pixels: dict, n: int = 16):
    """Delta-function PSFs P_t = h_t at the centre and Taylor residuals given at a few pixels."""
    psfs = np.zeros((3, n, n))
    psfs[:, n // 2, n // 2] = h
    res = np.zeros((2, n, n))
    for (ix, iy), r in pixels.items():
        res[:, ix, iy] = r
    return res, psfs


# H = [[1, 0.1], [0.1, 0.05]], det 0.04, H^-1 = [[1.25, -2.5], [-2.5, 25]]
H_TOY = (1.0, 0.1, 0.05)
A_PIX, B_PIX = (3, 4), (11, 9)
R_A, R_B = (0.8, 0.1), (0.78, -0.2)
COEF_A = (0.75, 0.5)        # H^-1 r_A, a . r_A = 0.65
COEF_B = (1.475, -6.95)     # H^-1 r_B, a . r_B = 2.5405


def test_principal_solution_single_pixel_analytic():
    res, psfs = _toy(H_TOY, {A_PIX: R_A, B_PIX: R_B})
    np.testing.assert_allclose(mtmfs.hessian(psfs), [[1.0, 0.1], [0.1, 0.05]], rtol=0, atol=0)
    ps = mtmfs.principal_solution(res, psfs)
    np.testing.assert_allclose(ps[:, A_PIX[0], A_PIX[1]], COEF_A, rtol=1e-12)
    np.testing.assert_allclose(ps[:, B_PIX[0], B_PIX[1]], COEF_B, rtol=1e-12)


def test_criterion_is_the_principal_solution_not_the_tt0_peak():
    """B has the smaller R_0 (0.78 < 0.8) but the larger chi^2 reduction a . r: it goes first; with
    gain 1 each pick removes its pixel's residual exactly and leaves the other untouched."""
    res, psfs = _toy(H_TOY, {A_PIX: R_A, B_PIX: R_B})
    one = mtmfs.multiterm_clean(res, psfs, gain=1.0, niter=1)
    assert one.iterations == 1 and one.stopped_by == "niter"
    np.testing.assert_allclose(one.models[:, B_PIX[0], B_PIX[1]], COEF_B, rtol=1e-12)
    assert np.count_nonzero(one.models) == 2
    np.testing.assert_allclose(one.residuals[:, B_PIX[0], B_PIX[1]], 0.0, atol=1e-12)
    np.testing.assert_allclose(one.residuals[:, A_PIX[0], A_PIX[1]], R_A, rtol=1e-15)

    two = mtmfs.multiterm_clean(res, psfs, gain=1.0, niter=10, threshold=1e-9)
    assert two.iterations == 2 and two.stopped_by == "threshold"
    np.testing.assert_allclose(two.models[:, A_PIX[0], A_PIX[1]], COEF_A, rtol=1e-12)
    np.testing.assert_allclose(two.models[:, B_PIX[0], B_PIX[1]], COEF_B, rtol=1e-12)
    np.testing.assert_allclose(two.residuals, 0.0, atol=1e-12)
    np.testing.assert_allclose(two.peak_history, [0.8, 0.8, 0.0], atol=1e-12)

    half = mtmfs.multiterm_clean(res, psfs, gain=0.5, niter=1)
    np.testing.assert_allclose(half.models[:, B_PIX[0], B_PIX[1]], 0.5 * np.array(COEF_B), rtol=1e-12)
    np.testing.assert_allclose(half.residuals[:, B_PIX[0], B_PIX[1]], 0.5 * np.array(R_B), rtol=1e-12)


def test_ties_go_to_casas_scan_order():
    """Equal criteria: the first pixel in CASA's order (iy outer, ix inner) wins, as in hogbom."""
    res, psfs = _toy(H_TOY, {(9, 2): R_A, (2, 9): R_A, (5, 2): R_A})
    r = mtmfs.multiterm_clean(res, psfs, gain=1.0, niter=1)
    assert np.argwhere(r.models[0]).tolist() == [[5, 2]]


def test_mask_limits_the_picks():
    """B (the larger criterion) lies outside the mask, though inside its bounding box: only A is
    cleaned, B is left as it was."""
    res, psfs = _toy(H_TOY, {A_PIX: R_A, B_PIX: R_B})
    mask = np.zeros(res.shape[1:], dtype=bool)
    mask[A_PIX] = mask[B_PIX[0] + 1, B_PIX[1] + 1] = True
    r = mtmfs.multiterm_clean(res, psfs, mask=mask, gain=1.0, niter=10, threshold=1e-9)
    assert r.iterations == 1 and r.stopped_by == "threshold"
    np.testing.assert_allclose(r.models[:, A_PIX[0], A_PIX[1]], COEF_A, rtol=1e-12)
    assert np.count_nonzero(r.models) == 2
    np.testing.assert_allclose(r.residuals[:, B_PIX[0], B_PIX[1]], R_B, rtol=1e-15)
    empty = mtmfs.multiterm_clean(res, psfs, mask=np.zeros_like(mask))
    assert empty.stopped_by == "empty" and empty.iterations == 0 and not np.any(empty.models)


def test_singular_hessian_is_rejected():
    res, psfs = _toy((1.0, 0.1, 0.01), {A_PIX: R_A})  # det = 0.01 - 0.01 = 0
    with pytest.raises(ValueError, match="Hessian"):
        mtmfs.multiterm_clean(res, psfs)
    with pytest.raises(ValueError, match="2 nterms - 1"):
        mtmfs.multiterm_clean(res, psfs[:2])


def test_restore_taylor_adds_the_principal_solution():
    res, psfs = _toy(H_TOY, {A_PIX: R_A})
    models = np.zeros_like(res)
    bm = beammod.Beam(0.3, 0.3, 0.0)
    plain = mtmfs.restore_taylor(models, res, bm, CELL)
    casa = mtmfs.restore_taylor(models, res, bm, CELL, psfs=psfs)
    np.testing.assert_allclose(plain[:, A_PIX[0], A_PIX[1]], R_A, rtol=1e-12)
    np.testing.assert_allclose(casa[:, A_PIX[0], A_PIX[1]], COEF_A, rtol=1e-12)


def test_spectral_index_mask_and_casa_alpha_error():
    i0 = np.array([[2.0, 0.05], [1.0, 0.01]])
    i1 = np.array([[-1.0, 0.1], [0.0, 0.5]])
    i2 = np.array([[0.5, 0.0], [0.2, 0.0]])
    r0 = np.array([[0.1, 0.2], [-5.0, 0.0]])  # max 0.2 -> cutoff 0.02 (|max| would give 0.5)
    r1 = np.array([[0.05, 0.0], [0.03, 0.0]])
    si = mtmfs.spectral_index(np.stack([i0, i1]), np.stack([r0, r1]))
    assert si.cutoff == pytest.approx(0.02)
    np.testing.assert_array_equal(si.mask, [[True, True], [True, False]])
    np.testing.assert_allclose(si.alpha, [[-0.5, 2.0], [0.0, np.nan]], equal_nan=True)
    # CASA: |alpha| sqrt((R0/I0)^2 + (R1/I1)^2) = 0.5 sqrt(0.05^2 + 0.05^2) at [0, 0]; its limit
    # |R1 / I0| = 0.03 where I1 = 0
    np.testing.assert_allclose(si.alpha_error, [[0.5 * math.sqrt(0.005), 2 * 0.2 / 0.05], [0.03, np.nan]],
                               rtol=1e-12, equal_nan=True)
    assert si.beta is None
    s3 = mtmfs.spectral_index(np.stack([i0, i1, i2]), np.stack([r0, r1]), cutoff=0.5)
    np.testing.assert_array_equal(s3.mask, [[True, False], [True, False]])
    # beta = I2/I0 - alpha (alpha - 1) / 2: 0.25 - (-0.5)(-1.5)/2 = -0.125; 0.2 - 0 = 0.2
    np.testing.assert_allclose(s3.beta, [[-0.125, np.nan], [0.2, np.nan]], equal_nan=True)


# ---------------------------------------------------------------- Taylor images and normalisation

def test_taylor_psf_peaks_are_the_weighted_moments(clean_free):
    """P_t at the centre = sum(w x^t) / sum(w) = the channel mean of x^t (equal channel weights)."""
    moments = [np.mean(X ** t) for t in range(3)]
    np.testing.assert_allclose(mtmfs.hessian(clean_free["psfs"]),
                               [[moments[0], moments[1]], [moments[1], moments[2]]], rtol=0, atol=1e-6)
    assert moments[2] == pytest.approx(0.0096711, rel=1e-4)


def test_normalise_matches_gridding_each_term_with_its_own_weights(uvw):
    """Per-term self-normalised images (weights w x^t, reference at the band edge so the sums are
    positive) brought to CASA's convention equal the images of V x^t with weights w."""
    ref = FREQ[0]
    x = (FREQ - ref) / ref
    wt = np.ones((uvw.shape[0], FREQ.size))
    vis = _vis(uvw, [(1.0, -0.7, 5, 3)])
    own = np.stack([gridding.dirty_image(uvw, FREQ, vis, wt * x[None, :] ** t, 64, 64, CELL) for t in (1, 2)])
    sumwt = [wt.sum()] + [float((wt * x[None, :] ** t).sum()) for t in (1, 2)]
    cas, _ = mtmfs.taylor_images(uvw, FREQ, vis, wt, 64, 64, CELL, ref, 3)
    norm = mtmfs.normalise(np.concatenate([cas[:1], own]), np.array(sumwt))
    np.testing.assert_allclose(norm[1:], cas[1:], rtol=0, atol=1e-5 * np.abs(cas).max())
    assert np.abs(own - cas[1:]).max() > 0.1 * np.abs(cas[1:]).max()  # the rescaling matters


# ---------------------------------------------------------------- noise-free end to end

def test_noise_free_flux_and_spectral_index(clean_free):
    r, restored = clean_free["r"], clean_free["restored"]
    assert r.stopped_by == "threshold" and r.peak <= THRESH
    assert np.abs(r.residuals[0]).max() <= THRESH  # the PSFs are twice the image: exact everywhere
    ps = mtmfs.principal_solution(r.residuals, clean_free["psfs"])
    si = mtmfs.spectral_index(restored, ps)
    for s0, alpha, de, dn in SOURCES:
        px = _pixel(de, dn)
        fit0, fit1 = _fit(s0, alpha)
        assert abs(restored[0][px] / s0 - 1) < 0.01, (alpha, restored[0][px])
        assert abs(restored[0][px] - fit0) < 0.003 * s0, (alpha, restored[0][px], fit0)
        assert abs(si.alpha[px] - alpha) < 0.05, (alpha, si.alpha[px])
        assert abs(si.alpha[px] - fit1 / fit0) < 0.005, (alpha, si.alpha[px], fit1 / fit0)
        assert si.alpha_error[px] < 0.01
        # the components sit on the source pixel: the Taylor model's flux in a 5 x 5 box is there
        box = (slice(px[0] - 2, px[0] + 3), slice(px[1] - 2, px[1] + 3))
        assert r.models[0][px] > 0.98 * r.models[0][box].sum() > 0.98 * 0.99 * fit0
    # masked below the cutoff (CASA: max of the principal-solution residual tt0 / 10)
    assert si.cutoff == pytest.approx(0.1 * ps[0].max())
    assert np.all(np.isnan(si.alpha[restored[0] <= si.cutoff]))
    assert np.all(np.isfinite(si.alpha[restored[0] > si.cutoff]))
    assert 0 < si.mask.sum() < si.mask.size
    # an explicit cutoff of 0.1 Jy/beam keeps only the three sources' main lobes
    lobes = mtmfs.spectral_index(restored, ps, cutoff=0.1).mask
    near = np.zeros_like(lobes)
    for _, _, de, dn in SOURCES:
        px = _pixel(de, dn)
        near[px[0] - 10:px[0] + 11, px[1] - 10:px[1] + 11] = True
    assert lobes.sum() > 3 * 20 and not np.any(lobes & ~near)


def test_nterms_2_update_matches_independent_convolution(clean_free):
    """With a mask (loop on its bounding box, FFT update outside), R_i(final) = R_i(initial) -
    sum_j M_j (*) P_{i+j} everywhere (scipy's convolution, written here)."""
    res, psfs = clean_free["res"], clean_free["psfs"]
    mask = np.zeros((NPIX, NPIX), dtype=bool)
    for _, _, de, dn in SOURCES:
        px = _pixel(de, dn)
        mask[px[0] - 6:px[0] + 7, px[1] - 6:px[1] + 7] = True
    r = mtmfs.multiterm_clean(res, psfs, mask=mask, gain=0.1, niter=300, threshold=THRESH)
    assert r.iterations > 50 and not np.any(r.models[:, ~mask])
    c = NPIX  # PSF centre (512 // 2)
    for i in range(2):
        expect = res[i].copy()
        for j in range(2):
            full = fftconvolve(r.models[j], psfs[i + j])
            expect -= full[c:c + NPIX, c:c + NPIX]
        np.testing.assert_allclose(r.residuals[i], expect, rtol=0, atol=1e-9)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_nterms_1_is_hogbom(clean_free, masked):
    res0, psf0 = clean_free["res"][0], clean_free["psfs"][0]
    mask = None
    if masked:
        mask = np.zeros((NPIX, NPIX), dtype=bool)
        mask[90:170, 100:160] = True
    kw = dict(mask=mask, gain=0.1, threshold=THRESH, niter=400)
    mt = mtmfs.multiterm_clean(res0[None], psf0[None], **kw)
    hb = deconvolve.hogbom(res0, psf0, **kw)
    assert mt.iterations == hb.iterations > 100
    assert mt.stopped_by == hb.stopped_by and mt.peak == pytest.approx(hb.peak, rel=1e-12)
    np.testing.assert_array_equal(mt.models[0] != 0, hb.model != 0)
    np.testing.assert_allclose(mt.models[0], hb.model, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(mt.residuals[0], hb.residual, rtol=0, atol=1e-12)


def test_minor_cycle_speed():
    """256^2, nterms = 2, 500 iterations in well under a few seconds (measured ~0.2 s)."""
    rng = np.random.default_rng(3)
    psf0 = np.exp(-((np.arange(NPIX) - NPIX // 2)[:, None] ** 2 + (np.arange(NPIX) - NPIX // 2)[None, :] ** 2) / 20.0)
    psfs = np.stack([psf0, 0.01 * psf0, 0.02 * psf0])
    res = rng.normal(0.0, 1.0, (2, NPIX, NPIX))
    t = time.perf_counter()
    r = mtmfs.multiterm_clean(res, psfs, gain=0.1, niter=500)
    assert r.iterations == 500 and r.stopped_by == "niter"
    assert time.perf_counter() - t < 2.0


# ---------------------------------------------------------------- noise

SIGMA_IMG = 5e-3  # Jy/beam in tt0
NOISY = [(1.0, -0.7, 0, 0), (1.0, 2.0, -31, 22), (5.0, 0.0, 28, 30)]


def test_noisy_flux_and_spectral_index(uvw):
    wt = np.ones((uvw.shape[0], FREQ.size))
    rng = np.random.default_rng(7)
    sigma_vis = SIGMA_IMG * math.sqrt(wt.size)  # per real / imaginary part
    noise = sigma_vis * (rng.standard_normal(wt.shape) + 1j * rng.standard_normal(wt.shape))
    res, psfs = mtmfs.taylor_images(uvw, FREQ, _vis(uvw, NOISY) + noise, wt, NPIX, NPIX, CELL, NU0, 2,
                                    psf_npix=PSF_NPIX)
    nres, _ = mtmfs.taylor_images(uvw, FREQ, noise, wt, NPIX, NPIX, CELL, NU0, 2)
    hinv = np.linalg.inv(_hessian_by_hand(psfs))
    noise_ps = np.tensordot(hinv, nres, axes=(1, 0))  # H^-1 n at every pixel
    sig0, sig1 = float(noise_ps[0].std()), float(noise_ps[1].std())
    assert sig0 == pytest.approx(SIGMA_IMG, rel=0.1) and sig1 == pytest.approx(10.2 * SIGMA_IMG, rel=0.1)

    r = mtmfs.multiterm_clean(res, psfs, gain=0.1, niter=5000, threshold=3 * SIGMA_IMG)
    assert r.stopped_by == "threshold"
    restored = mtmfs.restore_taylor(r.models, r.residuals, beammod.fit_beam(psfs[0], CELL), CELL, psfs=psfs)
    si = mtmfs.spectral_index(restored, mtmfs.principal_solution(r.residuals, psfs))
    for s0, alpha, de, dn in NOISY:
        px = _pixel(de, dn)
        fit0, fit1 = _fit(s0, alpha)
        pred0, pred1 = fit0 + noise_ps[0][px], fit1 + noise_ps[1][px]
        assert abs(restored[0][px] - pred0) < 0.003 * s0, (s0, alpha, restored[0][px], pred0)
        assert abs(si.alpha[px] - pred1 / pred0) < 0.02, (s0, alpha, si.alpha[px], pred1 / pred0)
        assert abs(restored[0][px] - fit0) < 4 * sig0 + 0.003 * s0
        assert abs(si.alpha[px] - alpha) < 4 * sig1 / s0 + 0.02, (s0, alpha, si.alpha[px])
        if s0 / sig0 > 500:  # SNR ~1000: sigma_alpha ~ 0.01
            assert abs(si.alpha[px] - alpha) < 0.05, (s0, alpha, si.alpha[px])
            assert abs(restored[0][px] / s0 - 1) < 0.01
