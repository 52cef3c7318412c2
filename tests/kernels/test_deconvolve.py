"""CLEAN (kernels.deconvolve) against independent truth: point sources of known flux and position
whose visibilities come from `kernels.sky`'s direct Fourier sum (not from the gridder) on an
ALMA-like coverage (40 antennas, 2 h track, Band 6, 0.1" cells, beam ~0.65" = 6.5 pixels, PSF
sidelobe level ~0.13).

Tolerances. The data are noise-free and the sources sit on pixel centres, so a correct CLEAN puts
the flux on the source pixel and leaves a residual below the threshold (1 mJy/beam on 1 Jy): the
model flux then differs from the truth by at most ~threshold / (gain-weighted PSF area) -- well
under 1 % -- plus ducc0's epsilon (1e-6). 1 % on the flux (summed over a 5 x 5 box for the weaker
source, whose components can be nudged by the bright one's sidelobes) and the exact pixel are
checked; a wrong sign convention, a one-pixel shift or a missing 1/P0 fail them by far.

Scaling. Hogbom's iteration loop touches the PSF patch and the blocks under it, whatever the
image size (module docstring), so a fixed number of iterations costs the same on 256^2 and
1024^2 images (16 x the pixels); the timed loop is the difference of two runs (niter 2100 - 100, best of 3),
which cancels the O(image) setup. Loosely asserted < 4 (full-image work per iteration would give
~16); the deterministic pixel count (`work_pixels`) of the same picks is asserted equal.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from almarules.kernels import beam as beammod
from almarules.kernels import deconvolve, gridding, sky
from uvsim import alma_layout

ARCSEC = math.pi / 180 / 3600
FREQ = np.array([230e9, 230.5e9])
NPIX, CELL = 256, 0.1
THRESH = 1e-3


def _alma_uvw(nant: int = 40, ntime: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uvw (m) of the shared ALMA-like coverage (tests/uvsim.py); unit weights."""
    uvw, _, _, _ = alma_layout(nant, ntime, seed)
    return uvw, np.ones((uvw.shape[0], FREQ.size))


@pytest.fixture(scope="module")
def obs():
    uvw, w = _alma_uvw()
    psf = gridding.psf(uvw, FREQ, w, NPIX, NPIX, CELL)
    return uvw, w, psf


def _vis(uvw, sources):
    """Visibilities of point sources (flux Jy, east cells, north cells) by the direct sum."""
    return sky.predict(uvw, FREQ, [sky.Component("point", np.full(FREQ.size, f), de * CELL * ARCSEC,
                                                 dn * CELL * ARCSEC) for f, de, dn in sources])


def _pixel(de: int, dn: int) -> tuple[int, int]:
    return NPIX // 2 - de, NPIX // 2 + dn  # east = smaller ix, north = larger iy


def _box(img, px, r=2):
    return float(img[px[0] - r:px[0] + r + 1, px[1] - r:px[1] + r + 1].sum())


def _clean(obs, vis, **kw):
    uvw, w, psf = obs
    args = dict(psf=psf, mask=None, gain=0.1, threshold=THRESH, niter=5000, cycle_factor=1.0, epsilon=1e-6,
                max_major=20)
    args.update(kw)
    return deconvolve.cotton_schwab(uvw, FREQ, vis, w, w, NPIX, NPIX, CELL, **args)


@pytest.mark.parametrize("minor", ["hogbom", "clark"])
@pytest.mark.parametrize("offset", [(0, 0), (17, -9)], ids=["centre", "offset"])
def test_point_source_flux_and_position(obs, offset, minor):
    vis = _vis(obs[0], [(1.0, *offset)])
    r = _clean(obs, vis, minor=minor)
    px = _pixel(*offset)
    assert r.stopped_by == "threshold" and not r.warnings
    assert np.unravel_index(np.argmax(r.model), r.model.shape) == px
    assert r.model[px] == pytest.approx(1.0, rel=0.01)
    assert r.model.sum() == pytest.approx(1.0, rel=0.01)
    assert np.max(np.abs(r.residual)) <= THRESH
    # history: one entry per major cycle, residual peaks falling, model flux rising to the truth
    peaks = [h.residual_peak for h in r.history]
    assert peaks == sorted(peaks, reverse=True) and peaks[-1] <= THRESH
    assert r.history[-1].model_flux == pytest.approx(r.model.sum())
    assert sum(h.iterations for h in r.history) == r.iterations
    assert r.initial_peak == pytest.approx(1.0, rel=1e-4)  # a 1 Jy source reads 1 Jy/beam
    assert 0.05 < r.sidelobe < 0.8  # so the cycle threshold is sidelobe x peak (CASA's clamp inactive)
    assert r.history[0].cycle_threshold == pytest.approx(r.sidelobe * r.initial_peak)


def test_two_sources_of_different_flux(obs):
    srcs = [(1.0, -20, 15), (0.2, 25, 30)]
    r = _clean(obs, _vis(obs[0], srcs))
    assert r.stopped_by == "threshold"
    for f, de, dn in srcs:
        px = _pixel(de, dn)
        assert _box(r.model, px) == pytest.approx(f, rel=0.01)
        sub = r.model[px[0] - 2:px[0] + 3, px[1] - 2:px[1] + 3]
        assert np.unravel_index(np.argmax(sub), sub.shape) == (2, 2)
    assert r.model.sum() == pytest.approx(1.2, rel=0.01)
    assert np.max(np.abs(r.residual)) <= THRESH


def test_mask_excluding_a_source_leaves_it_in_the_residual(obs):
    srcs = [(1.0, -20, 15), (0.3, 25, 30)]
    ix, iy = np.meshgrid(np.arange(NPIX), np.arange(NPIX), indexing="ij")
    pa, pb = _pixel(-20, 15), _pixel(25, 30)
    mask = np.hypot(ix - pa[0], iy - pa[1]) <= 10
    r = _clean(obs, _vis(obs[0], srcs), mask=mask)
    assert r.stopped_by == "threshold"
    assert np.all(r.model[~mask] == 0.0)
    assert r.model.sum() == pytest.approx(1.0, rel=0.01)
    # the excluded source is still in the residual at its flux (plus the cleaned source's
    # residual sidelobes, < threshold x sidelobe-free PSF sum: well under 1 %)
    assert r.residual[pb] == pytest.approx(0.3, rel=0.01)
    assert np.unravel_index(np.argmax(r.residual), r.residual.shape) == pb
    assert np.max(np.abs(r.residual[mask])) <= THRESH


def test_divergence_with_a_wrong_psf_stops_with_a_warning(obs):
    # a PSF 0.4 x too faint: each minor cycle over-subtracts by 2.5 x, the true residual grows
    uvw, w, psf = obs
    vis = _vis(uvw, [(1.0, 5, 5)])
    with pytest.warns(RuntimeWarning, match="divergence"):
        r = _clean(obs, vis, psf=0.4 * psf)
    assert r.stopped_by == "divergence"
    assert any("divergence" in s for s in r.warnings)
    assert r.history[-1].residual_peak > 1.05 * (r.history[-2].residual_peak if len(r.history) > 1
                                                  else r.initial_peak)
    assert len(r.history) < 20


def test_divergence_with_gain_above_one(obs):
    uvw, w, psf = obs
    with pytest.warns(RuntimeWarning, match="divergence"):
        r = _clean(obs, _vis(uvw, [(1.0, 0, 0)]), gain=2.5)
    assert r.stopped_by == "divergence"
    assert r.history[0].minor_stopped_by == "diverging"  # the minor cycle guards itself too


def test_hogbom_alone_on_a_shifted_psf(obs):
    # a residual that is exactly S x PSF shifted: Hogbom stays on that pixel, geometric decay
    psf = obs[2]
    s, shift = 0.7, (10, -6)
    res = s * np.roll(psf, shift, axis=(0, 1))
    mr = deconvolve.hogbom(res, psf, None, gain=0.2, threshold=0.0, niter=8, cycle_threshold=0.0)
    px = (NPIX // 2 + shift[0], NPIX // 2 + shift[1])
    assert mr.stopped_by == "niter" and mr.iterations == 8
    assert np.count_nonzero(mr.model) == 1 and mr.model[px] == pytest.approx(s * (1 - 0.8 ** 8), rel=1e-9)
    assert mr.residual[px] == pytest.approx(s * 0.8 ** 8, rel=1e-6)
    # stopping by threshold vs cycle threshold, and the input is not modified
    before = res.copy()
    a = deconvolve.hogbom(res, psf, None, 0.2, threshold=0.1, niter=1000, cycle_threshold=0.01)
    b = deconvolve.hogbom(res, psf, None, 0.2, threshold=0.01, niter=1000, cycle_threshold=0.1)
    assert a.stopped_by == "threshold" and b.stopped_by == "cycle_threshold" and a.peak <= 0.1
    assert np.array_equal(res, before)


def _hogbom_loop_time(n: int, psf: np.ndarray) -> tuple[float, float]:
    """(seconds, pixels updated) per iteration of the loop alone: best-of-3 of 1100 minus 100
    iterations, so the O(image) setup cancels. The same 128 x 128 noise field and the same
    64 x 64 mask sit at the centre of both images, so both runs pick the same pixels."""
    res = np.zeros((n, n))
    res[n // 2 - 64:n // 2 + 64, n // 2 - 64:n // 2 + 64] = np.random.default_rng(1).standard_normal((128, 128))
    mask = np.zeros((n, n), bool)
    mask[n // 2 - 32:n // 2 + 32, n // 2 - 32:n // 2 + 32] = True

    def run(niter: int) -> tuple[float, int]:
        best, work = math.inf, 0
        for _ in range(3):
            t0 = time.perf_counter()
            mr = deconvolve.hogbom(res, psf, mask, 0.1, 0.0, niter, 0.0, full_residual=False)
            best, work = min(best, time.perf_counter() - t0), mr.work_pixels
        return best, work

    (ts, ws), (tb, wb) = run(100), run(1100)
    return (tb - ts) / 1000, (wb - ws) / 1000


def test_hogbom_iteration_cost_scales_with_the_mask_not_the_image(obs):
    psf = obs[2]
    t256, w256 = _hogbom_loop_time(256, psf)
    t1024, w1024 = _hogbom_loop_time(1024, psf)
    assert w1024 == w256 == 64 * 64  # the active set: the mask, whatever the image size
    assert t256 > 0 and t1024 > 0
    assert t1024 / t256 < 4.0  # (full-image work per iteration would give ~16)


# ---------------------------------------------------------------- the whole PSF, as CASA's hclean
def _far_sidelobe_psf(n: int = 128, fwhm: float = 5.0, far: int = 40, level: float = 0.15) -> np.ndarray:
    """A PSF (peak 1 at n // 2) with a Gaussian main lobe and two point-symmetric sidelobes of
    `level` at +-(far, far // 2) pixels -- beyond the +-3 beam patch a patch Hogbom subtracts."""
    ix, iy = np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    g = lambda x, y: np.exp(-4 * math.log(2) * (x * x + y * y) / fwhm**2)  # noqa: E731
    return g(ix, iy) + level * (g(ix - far, iy - far // 2) + g(ix + far, iy + far // 2))


def test_hogbom_subtracts_far_sidelobes_and_recovers_a_point_source_exactly():
    # residual = S x PSF centred on px: with the whole PSF subtracted each iteration removes the
    # fraction gain of everything, sidelobes included: one component, S (1 - (1 - g)^n) on px,
    # residual S (1 - g)^n PSF everywhere. A +-3 beam patch would leave 0.15 S sidelobes to
    # be cleaned as (spurious) sources.
    psf = _far_sidelobe_psf()
    s, px, gain, thr = 0.8, (70, 60), 0.2, 1e-4
    res = s * np.roll(psf, (px[0] - 64, px[1] - 64), axis=(0, 1))
    mr = deconvolve.hogbom(res, psf, None, gain=gain, threshold=thr, niter=1000)
    n = math.ceil(math.log(thr / s) / math.log(1 - gain))  # first n with S (1-g)^n <= thr
    assert mr.stopped_by == "threshold" and mr.iterations == n
    assert np.count_nonzero(mr.model) == 1 and mr.model[px] == pytest.approx(s * (1 - (1 - gain) ** n), rel=1e-12)
    np.testing.assert_allclose(mr.residual, s * (1 - gain) ** n * np.roll(psf, (px[0] - 64, px[1] - 64), axis=(0, 1)),
                               atol=1e-12)


def test_hogbom_with_a_mask_updates_the_whole_residual_at_the_end():
    # a mask around the source only: picks come from the mask, but the returned residual is the
    # exact whole-image one (the far sidelobes, outside the mask, are gone too); without
    # full_residual the outside is left as it was
    psf = _far_sidelobe_psf()
    s, px = 0.8, (70, 60)
    res = s * np.roll(psf, (px[0] - 64, px[1] - 64), axis=(0, 1))
    ix, iy = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    mask = np.hypot(ix - px[0], iy - px[1]) <= 6
    a = deconvolve.hogbom(res, psf, mask, gain=0.2, threshold=1e-4, niter=1000)
    assert np.count_nonzero(a.model) == 1 and np.max(np.abs(a.residual)) <= 1e-4
    b = deconvolve.hogbom(res, psf, mask, gain=0.2, threshold=1e-4, niter=1000, full_residual=False)
    assert np.array_equal(b.model, a.model) and b.iterations == a.iterations
    np.testing.assert_allclose(b.residual[mask], a.residual[mask], atol=1e-12)
    assert np.array_equal(b.residual[~mask], res[~mask])


def test_hogbom_psf_smaller_than_the_image_subtracts_only_where_it_overlaps():
    # a 5 x 5 PSF of ones: a component at px subtracts gain x r on px +- 2 only
    psf = np.ones((5, 5))
    res = np.zeros((16, 16))
    res[8, 8], res[8, 12] = 1.0, 0.5
    mr = deconvolve.hogbom(res, psf, None, gain=0.5, threshold=0.0, niter=1)
    expect = res.copy()
    expect[6:11, 6:11] -= 0.5
    np.testing.assert_allclose(mr.residual, expect, atol=1e-15)
    assert mr.model[8, 8] == 0.5 and np.count_nonzero(mr.model) == 1


def test_hogbom_ties_go_to_casa_scan_order():
    # hclean scans iy outer, ix inner and keeps the first strict maximum
    res = np.zeros((8, 8))
    res[5, 2] = res[2, 5] = res[6, 5] = 1.0
    mr = deconvolve.hogbom(res, np.pad(np.ones((1, 1)), 3), None, gain=0.5, threshold=0.0, niter=1)
    assert mr.model[5, 2] == 0.5 and np.count_nonzero(mr.model) == 1


# ---------------------------------------------------------------- CASA's cycle control
def test_psf_sidelobe_level_is_casas_measure():
    # a PSF = its Gaussian + a positive bump of 0.12 and a dip of -0.07 far out: CASA's level is
    # max(|min PSF|, max(PSF - Gaussian)) = 0.12; with a deeper dip, the dip
    b = beammod.Beam(0.6, 0.4, 30.0)
    g = beammod.gaussian_image(b, 64, 64, 0.1)
    psf = g.copy()
    psf[10, 50] += 0.12
    psf[50, 12] -= 0.07
    assert beammod.sidelobe_level(psf, b, 0.1) == pytest.approx(0.12, rel=1e-9)
    psf[50, 12] -= 0.2
    assert beammod.sidelobe_level(psf, b, 0.1) == pytest.approx(0.27, rel=1e-9)
    assert beammod.sidelobe_level(2.0 * psf, b, 0.1) == pytest.approx(0.27, rel=1e-9)


@pytest.mark.parametrize("cycle_factor, fraction", [(100.0, 0.8), (1e-3, 0.05)])
def test_cycle_threshold_fraction_is_clamped_as_in_casa(obs, cycle_factor, fraction):
    r = _clean(obs, _vis(obs[0], [(1.0, 0, 0)]), cycle_factor=cycle_factor, niter=3)
    assert r.history[0].cycle_threshold == pytest.approx(fraction * r.initial_peak, rel=1e-12)


def test_mask_update_is_called_every_major_cycle_and_its_mask_used(obs):
    """An automatic mask (auto-multithresh's interface): called before every stopping test with the
    residual, the previous mask and the cycle number; components only go inside it."""
    srcs = [(1.0, -20, 15), (0.3, 25, 30)]
    ix, iy = np.meshgrid(np.arange(NPIX), np.arange(NPIX), indexing="ij")
    pa = _pixel(-20, 15)
    calls = []

    def update(residual, previous, cycle):
        calls.append((cycle, None if previous is None else int(previous.sum())))
        return np.hypot(ix - pa[0], iy - pa[1]) <= 10

    r = _clean(obs, _vis(obs[0], srcs), mask_update=update)
    assert [c for c, _ in calls] == list(range(len(r.history) + 1))
    assert calls[0][1] is None and all(p == int(r.mask.sum()) for _, p in calls[1:])
    assert np.all(r.model[~r.mask] == 0.0) and r.model.sum() == pytest.approx(1.0, rel=0.01)


def test_an_empty_automatic_mask_stops_the_clean(obs):
    r = _clean(obs, _vis(obs[0], [(1.0, 0, 0)]), mask_update=lambda res, prev, k: np.zeros(res.shape, bool))
    assert r.stopped_by == "empty mask" and r.iterations == 0 and not r.model.any()


def test_given_dirty_image_and_beam_give_the_same_clean(obs):
    uvw, w, psf = obs
    vis = _vis(uvw, [(1.0, 3, -4)])
    dirty = gridding.dirty_image(uvw, FREQ, vis, w, NPIX, NPIX, CELL, epsilon=1e-6)
    a = _clean(obs, vis)
    b = _clean(obs, vis, dirty=dirty, beam=a.beam)
    assert b.iterations == a.iterations and np.allclose(a.model, b.model, atol=1e-9)
    with pytest.raises(ValueError, match="dirty must have shape"):
        _clean(obs, vis, dirty=dirty[:-1])


def test_hogbom_residual_outside_the_mask_is_the_pixel_by_pixel_subtraction_for_any_psf_peak():
    """With P0 != 1 (an unnormalised PSF), the residual outside the mask (one FFT convolution at
    the end) equals subtracting each component's PSF directly, as inside the mask."""
    rng = np.random.default_rng(5)
    n = 48
    psf = 0.8 * np.exp(-((np.arange(n)[:, None] - n // 2) ** 2 + (np.arange(n)[None, :] - n // 2) ** 2) / 18.0)
    psf += 0.02 * rng.normal(size=(n, n)) * (psf < 0.1)
    psf[n // 2, n // 2] = 0.8
    residual = rng.normal(size=(n, n))
    residual[20, 25] += 10.0
    mask = np.zeros((n, n), bool)
    mask[15:30, 18:32] = True
    r = deconvolve.hogbom(residual, psf, mask, gain=0.2, niter=30)
    want = residual.copy()
    c = n // 2
    for ix, iy in zip(*np.nonzero(r.model), strict=True):  # direct subtraction, component by component
        for px in range(n):
            for py in range(n):
                qx, qy = px - ix + c, py - iy + c
                if 0 <= qx < n and 0 <= qy < n:
                    want[px, py] -= r.model[ix, iy] * psf[qx, qy]
    np.testing.assert_allclose(r.residual, want, atol=1e-9)
