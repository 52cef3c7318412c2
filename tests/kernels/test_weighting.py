"""Imaging weights against independent truth: cell densities counted by hand on a toy grid, the
Briggs formula evaluated by hand on it, 1/sqrt(sum w) for natural weighting, and the rms of
noise-only dirty images made with ducc0 (`kernels.gridding`).

Tolerances. The toy-grid values are exact rationals computed in float64, so they are checked to
1e-12 relative. The noise test compares sigma from the weights with the rms over all pixels of a
dirty image of pure noise: every pixel has exactly that standard deviation (for complex noise of
variance 1/w per real and imaginary part, Re[V e^{-i phi}] has variance 1/w for any phase), and
ducc0's gridding errors are ~epsilon = 1e-5, so the only error is statistical: the image pixels
are correlated over a beam, so a 256 x 256 image holds a few thousand independent samples and
its rms scatters (measured over 20 seeds: standard deviation 1.3 % natural, 1.1 % Briggs 0.5,
2.0 % uniform, whose noise is the most correlated); 8 realisations averaged in quadrature bring
that to <= 0.7 %, so 5 % is > 7 standard deviations, while a missing factor sqrt(2) (noise per
part vs |V|), a wrong normalisation or imaging with the wrong weights is off by far more
(uniform vs natural differ by a factor 2.3 here). The robust +-2 limits are properties of the
formula on this coverage: within 2 % of natural and 5 % of uniform.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import gridding, weighting
from uvsim import alma_layout

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600


# ---------------------------------------------------------------- toy grid, by hand
# freq = c makes u in wavelengths = u in metres. npix_x = 8, cell = 1/800 rad: du = 100 lambda;
# npix_y = 6: dv = 800/6 = 133.3 lambda.
TOY_CELL = 1.0 / 800.0 / ARCSEC
TOY_UVW = np.array([
    [99.5, 0.0, 5.0],      # A, w=1:  ch0 cell (1, 0);  ch1 (2 nu) cell (2, 0)  [0.995, 1.99]
    [110.0, 10.0, -3.0],   # B, w=2:  ch0 (1, 0);       ch1 (2, 0)   [220/100 = 2.2, 20/133 = 0.15]
    [-95.0, 5.0, 0.0],     # C, w=3:  ch0 (-1, 0) = mirror of (1, 0); ch1 (-2, 0) [-1.9]
    [0.0, 150.0, 1.0],     # D, w=4:  ch0 (0, 1) [1.125];  ch1 (0, 2) [2.25]
    [0.0, 0.0, 0.0],       # E, w=0.5: the origin cell (0, 0), its own mirror
    [101.0, 0.0, 2.0],     # F, w=10: flagged in ch0; ch1 cell (2, 0)  [2.02]
])
TOY_W = np.array([[1.0], [2.0], [3.0], [4.0], [0.5], [10.0]])
TOY_FREQ = np.array([C, 2 * C])
TOY_FLAGS = np.zeros((6, 2), bool)
TOY_FLAGS[5, 0] = True


# The TOY cells below are those of the cube convention (per_channel=True: cells centred on
# multiples of du, CASA's BriggsCubeWeightor); the mfs convention (cell edges on multiples of du,
# CASA's VisImagingWeight) is counted by hand further down.


def test_uniform_single_channel_counts_by_hand():
    # ch0 only: cell (1,0) holds A, B and C's conjugate: 1 + 2 + 3 = 6 (and (-1,0) the same);
    # D alone in (0,1) and (0,-1): 4; E in the origin cell counted twice (it and its conjugate): 1
    W = weighting.uniform(TOY_UVW, TOY_FREQ[:1], TOY_W, 8, 6, TOY_CELL, flags=TOY_FLAGS[:, :1], per_channel=True)
    expect = np.array([1 / 6, 2 / 6, 3 / 6, 4 / 4, 0.5 / 1.0, 0.0])
    np.testing.assert_allclose(W[:, 0], expect, rtol=1e-12, atol=0)


def test_uniform_mfs_and_per_channel_by_hand():
    # per channel (cube cells): (+-1,0): 6; (+-2,0): A+B+C+F = 16; (0,+-1), (0,+-2): 4; origin: E,
    # counted twice: 1
    Wc = weighting.uniform(TOY_UVW, TOY_FREQ, TOY_W, 8, 6, TOY_CELL, flags=TOY_FLAGS, per_channel=True)
    expect = np.array([[1 / 6, 1 / 16], [2 / 6, 2 / 16], [3 / 6, 3 / 16], [1, 1], [0.5, 0.5], [0, 10 / 16]])
    np.testing.assert_allclose(Wc, expect, rtol=1e-12, atol=0)
    # mfs (CASA's VisImagingWeight cells: ucell = floor(x) + 4, vcell = floor(y) + 3 with x = u/100,
    # y = v/133.3, conjugate at floor(-x) + 4, floor(-y) + 3; one grid for both channels):
    #   ch0: A (.995, 0) -> (4,3), conj (3,3); B (1.1, .075) -> (5,3), conj (2,2);
    #        C (-.95, .0375) -> (3,3), conj (4,2); D (0, 1.125) -> (4,4), conj (4,1); E -> (4,3) twice
    #   ch1: A (1.99, 0) -> (5,3), conj (2,3); B (2.2, .15) -> (6,3), conj (1,2); C (-1.9, .075) -> (2,3),
    #        conj (5,2); D (0, 2.25) -> (4,5), conj (4,0) = CASA's excluded row 0; E -> (4,3) twice;
    #        F (2.02, 0) -> (6,3), conj (1,3)
    # densities: (4,3) A0 + 4 x E = 1 + 2 = 3; (3,3) A0' + C0 = 4; (5,3) B0 + A1 = 3; (4,4) 4;
    # (2,3) A1' + C1 = 4; (6,3) B1 + F1 = 12; (4,5) 4
    W = weighting.uniform(TOY_UVW, TOY_FREQ, TOY_W, 8, 6, TOY_CELL, flags=TOY_FLAGS)
    expect = np.array([[1 / 3, 1 / 3], [2 / 3, 2 / 12], [3 / 4, 3 / 4], [1, 1], [0.5 / 3, 0.5 / 3], [0, 10 / 12]])
    np.testing.assert_allclose(W, expect, rtol=1e-12, atol=0)


@pytest.mark.parametrize("robust", [-2.0, -0.5, 0.0, 1.0, 2.0])
def test_briggs_formula_by_hand(robust):
    # cube cells, ch0 densities (6, 6, 4, 4, 1): sum D^2 = 105, sum D = 2 * (1+2+3+4+0.5) = 21, mean 5
    f2 = (5 * 10 ** -robust) ** 2 / (105 / 21)
    dens = np.array([6, 6, 6, 4, 1.0])
    W = weighting.briggs(TOY_UVW[:5], TOY_FREQ[:1], TOY_W[:5], 8, 6, TOY_CELL, robust, per_channel=True)
    np.testing.assert_allclose(W[:, 0], TOY_W[:5, 0] / (1 + dens * f2), rtol=1e-12, atol=0)


# ---------------------------------------------------------------- mfs cell edges, by hand
# 8 x 6 image, du = 100, dv = 133.3 lambda (freq = c): x = u / 100, y = v / 133.3, v = +-10 gives
# y = +-0.075. CASA's mfs cells (VisImagingWeight): ucell = floor(x) + 4, conjugate floor(-x) + 4;
# vcell = floor(y) + 3 (3 for v = 10, 2 for v = -10), conjugate floor(-y) + 3. Cells with ucell = 0
# or vcell = 0 do not count (CASA's `ucell > 0`).
EDGE_UVW = np.array([
    [99.0, 10, 0],     # P w1: x = 0.99 -> own (4,3), conj (3,2)
    [101.0, 10, 0],    # Q w2: x = 1.01 -> own (5,3), conj (2,2)   [the edge at x = 1 separates P, Q]
    [-99.0, 10, 0],    # R w3: x = -0.99 -> own (3,3), conj (4,2)  [floor, not truncation towards 0]
    [-101.0, 10, 0],   # S w4: x = -1.01 -> own (2,3), conj (5,2)
    [-99.0, -10, 0],   # T w5: = -P: own (3,2) = P's conj, conj (4,3) = P's own
    [150.0, 10, 0],    # U w6: x = 1.5 -> own (5,3) with Q (rounding would put it in cell 2, Q in 1)
    [-350.0, 10, 0],   # V w7: x = -3.5 -> own (0,3): excluded, weight 0; conj (7,2) counts
    [350.0, -10, 0],   # W w8: x = 3.5 -> own (7,2) with V's conj; conj (0,3) excluded
])
EDGE_W = np.arange(1.0, 9.0)[:, None]
# densities: (4,3),(3,2): P+T = 6; (5,3),(2,2): Q+U = 8; (3,3),(4,2): R = 3; (2,3),(5,2): S = 4;
# (7,2): V+W = 15. Gridded sum (sumwt) 2 (1+...+6) + 7 + 8 = 57; sum D^2 = 2 (36+64+9+16) + 225 = 475
EDGE_DENS = np.array([6.0, 8, 3, 4, 6, 8, 0, 15])


def test_mfs_cells_by_hand_either_side_of_edges():
    iu, iv, ju, jv = weighting.mfs_cells(EDGE_UVW, C, 8, 6, TOY_CELL * ARCSEC)
    np.testing.assert_array_equal(iu, [4, 5, 3, 2, 3, 5, 0, 7])
    np.testing.assert_array_equal(ju, [3, 2, 4, 5, 4, 2, 7, 0])
    np.testing.assert_array_equal(iv, [3, 3, 3, 3, 2, 3, 3, 2])
    np.testing.assert_array_equal(jv, [2, 2, 2, 2, 3, 2, 2, 3])


def test_uniform_mfs_edges_by_hand():
    W = weighting.uniform(EDGE_UVW, [C], EDGE_W, 8, 6, TOY_CELL)
    expect = np.divide(EDGE_W[:, 0], EDGE_DENS, out=np.zeros(8), where=EDGE_DENS > 0)
    np.testing.assert_allclose(W[:, 0], expect, rtol=1e-12, atol=0)
    assert W[6, 0] == 0.0 and W[7, 0] > 0


@pytest.mark.parametrize("robust", [-1.0, 0.5, 2.0])
def test_briggs_mfs_edges_by_hand(robust):
    f2 = (5 * 10 ** -robust) ** 2 / (475 / 57)
    W = weighting.briggs(EDGE_UVW, [C], EDGE_W, 8, 6, TOY_CELL, robust)
    expect = np.where(EDGE_DENS > 0, EDGE_W[:, 0] / (1 + EDGE_DENS * f2), 0.0)
    np.testing.assert_allclose(W[:, 0], expect, rtol=1e-12, atol=0)


def test_errors():
    with pytest.raises(ValueError, match="robust"):
        weighting.briggs(TOY_UVW, TOY_FREQ, TOY_W, 8, 6, TOY_CELL, 2.5)
    # 450 lambda is beyond the +-4 cells of du = 100 of an 8-pixel axis (either sign, either mode)
    for u in (450.0, -450.0):
        for per_channel in (False, True):
            with pytest.raises(ValueError, match="beyond the uv grid"):
                weighting.uniform(np.array([[u, 0, 0]]), [C], [[1.0]], 8, 6, TOY_CELL, per_channel=per_channel)
    # ... unless flagged
    W = weighting.uniform(np.array([[450.0, 0, 0], [100.0, 0, 0]]), [C], [[1.0], [2.0]], 8, 6, TOY_CELL,
                          flags=np.array([[True], [False]]))
    np.testing.assert_allclose(W[:, 0], [0.0, 1.0])
    with pytest.raises(ValueError, match="not positive"):
        weighting.sensitivity(np.ones((3, 1)), np.zeros((3, 1)))


# ---------------------------------------------------------------- an ALMA-like observation
FREQ = np.array([224e9, 226e9, 240e9, 242e9])  # Band 6 spw centres (mfs)
NPIX, CELL = 256, 0.1  # 25.6" field, beam ~0.5" (5 pixels)


def _alma_uvw(nant: int = 40, ntime: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uvw (m) of the shared ALMA-like coverage (tests/uvsim.py), and per-row weights
    w = 1/sigma^2 (Jy^-2) from random per-antenna SEFDs (sigma_ij ~ sqrt(S_i S_j))."""
    uvw, a1, a2, rng = alma_layout(nant, ntime, seed)
    sefd = rng.uniform(0.8, 1.3, nant)
    sigma = np.sqrt(sefd[a1] * sefd[a2]) * 0.25  # Jy per real/imag part
    weight = np.broadcast_to(1.0 / sigma**2, (ntime, a1.size)).reshape(-1, 1)
    return uvw, np.broadcast_to(weight, (uvw.shape[0], FREQ.size)).copy()


@pytest.fixture(scope="module")
def alma():
    uvw, w = _alma_uvw()
    flags = np.random.default_rng(1).uniform(size=w.shape) < 0.05
    kw = dict(npix_x=NPIX, npix_y=NPIX, cell_arcsec=CELL, flags=flags)
    W = {"natural": weighting.natural(w),
         "briggs0.5": weighting.briggs(uvw, FREQ, w, robust=0.5, **kw),
         "uniform": weighting.uniform(uvw, FREQ, w, **kw),
         "briggs-2": weighting.briggs(uvw, FREQ, w, robust=-2.0, **kw),
         "briggs+2": weighting.briggs(uvw, FREQ, w, robust=2.0, **kw)}
    sigma = {k: weighting.sensitivity(w, Wk, flags) for k, Wk in W.items()}
    return uvw, w, flags, W, sigma


def test_natural_sigma_is_one_over_root_sum_w(alma):
    _, w, flags, W, sigma = alma
    assert sigma["natural"] == pytest.approx(1.0 / math.sqrt(w[~flags].sum()), rel=1e-12)
    # flags drop samples; unflagged-only equals the sum over a compressed selection
    assert weighting.sensitivity(w[~flags], w[~flags]) == pytest.approx(sigma["natural"], rel=1e-12)


def test_sigma_ordering_and_robust_limits(alma):
    _, _, _, _, s = alma
    assert s["natural"] <= s["briggs0.5"] <= s["uniform"]
    assert s["uniform"] / s["natural"] > 1.5  # the coverage is far from uniform: the test has teeth
    assert s["briggs+2"] / s["natural"] == pytest.approx(1.0, abs=0.02)
    assert s["briggs-2"] / s["uniform"] == pytest.approx(1.0, abs=0.05)


def test_per_channel_differs_from_mfs_but_each_channel_is_its_own_grid(alma):
    uvw, w, flags, W, _ = alma
    kw = dict(npix_x=NPIX, npix_y=NPIX, cell_arcsec=CELL)
    per = weighting.uniform(uvw, FREQ, w, flags=flags, per_channel=True, **kw)
    for c in (0, 3):
        one = weighting.uniform(uvw, FREQ[c:c + 1], w[:, c:c + 1], flags=flags[:, c:c + 1], per_channel=True, **kw)
        np.testing.assert_allclose(per[:, c], one[:, 0], rtol=1e-12)
    assert not np.allclose(per, W["uniform"])


@pytest.mark.parametrize("kind", ["natural", "briggs0.5", "uniform"])
def test_sigma_matches_rms_of_noise_only_dirty_image(alma, kind):
    # noise of standard deviation sigma_vis = 1/sqrt(w) per real and per imaginary part (the MS
    # convention, kernels.noise): each image pixel then has variance sum W^2/w / (sum W)^2
    uvw, w, flags, W, sigma = alma
    rng = np.random.default_rng(7)
    ms = []
    for _ in range(8):
        vis = (rng.standard_normal(w.shape) + 1j * rng.standard_normal(w.shape)) / np.sqrt(w)
        img = gridding.dirty_image(uvw, FREQ, vis, W[kind], NPIX, NPIX, CELL, epsilon=1e-5, wgridding=False,
                                   flags=flags)
        ms.append(np.mean(img**2))
    rms = math.sqrt(np.mean(ms))
    assert rms / sigma[kind] == pytest.approx(1.0, abs=0.05)


def test_gaussian_taper_is_the_fourier_pair_of_an_image_gaussian_of_that_fwhm():
    """The taper sampled along u, Fourier transformed numerically, is a Gaussian of FWHM
    fwhm_arcsec in the image plane; 1 at the origin; no taper for fwhm <= 0."""
    from almarules.kernels.constants import ARCSEC, C
    from almarules.kernels.weighting import gaussian_taper

    fwhm = 2.0  # arcsec
    nu = 230e9
    du = 1000.0  # wavelengths (the taper's FWHM in uv is ~91000)
    n = 16384
    u_lambda = (np.arange(n) - n // 2) * du
    uvw = np.stack([u_lambda * C / nu, np.zeros(n), np.zeros(n)], axis=1)
    taper = gaussian_taper(uvw, np.array([nu]), fwhm)[:, 0]
    assert taper[n // 2] == 1.0
    image = np.abs(np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(taper))))
    x = (np.arange(n) - n // 2) / (n * du)  # rad
    sigma = np.sqrt(np.sum(x ** 2 * image) / np.sum(image))  # rad, second moment
    assert abs(2 * np.sqrt(2 * np.log(2)) * sigma / ARCSEC - fwhm) < 1e-3 * fwhm
    assert np.all(gaussian_taper(uvw, np.array([nu]), 0.0) == 1.0)
