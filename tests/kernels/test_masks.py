"""Clean masks: the Cycle 4 PB-level mask and auto-multithresh on synthetic residuals.

Truth. PB mask: the Gaussian PB exp(-4 ln 2 r^2 / FWHP^2) equals `level` at
r = FWHP / 2 sqrt(ln(1/level) / ln 2), so the mask is the disc of that radius (pixel radii from
the gridding convention). auto-multithresh: white Gaussian noise of known sigma (the MAD-based
noise must recover it within 5 %; its statistical error at 65k pixels is ~0.7 %), sources
built as beam-shaped Gaussians well above 5 sigma (must be masked), a single-pixel spike of
1 pixel < minbeamfrac x beam area = 8.5 pixels (must be pruned), and an extended 4-sigma
component below the 5-sigma threshold but above the 1.5-sigma low-noise threshold (must be
reached only by growth). Thresholds are checked against their formulas (1e-12 relative).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import masks
from almarules.kernels import primary_beam as pbm
from almarules.kernels.beam import Beam

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
N = 256
CELL = 0.1  # arcsec
BEAM = Beam(0.5, 0.5, 0.0)  # 5 pixels per FWHM; area 28.3 pixels
SIGMA = 1e-3  # Jy/beam


def _radius_pix(n: int) -> np.ndarray:
    ix = np.arange(n)
    l = (n // 2 - ix)[:, None]
    m = (ix - n // 2)[None, :]
    return np.hypot(l, m).astype(float)


def _blob(n, ix0, iy0, fwhm_arcsec, peak):
    ix = np.arange(n)
    r2 = ((ix - ix0)[:, None] ** 2 + (ix - iy0)[None, :] ** 2) * CELL ** 2
    return peak * np.exp(-4 * math.log(2) * r2 / fwhm_arcsec ** 2)


@pytest.fixture(scope="module")
def pb():
    return pbm.pb_image(N, N, CELL, 230e9, 12.0, model="gaussian")


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(42).normal(0.0, SIGMA, (N, N))


@pytest.mark.parametrize("level", [0.3, 0.5, 0.2])
def test_pb_level_mask_is_disc_of_right_radius(level):
    freq, dish, n, cell = 100e9, 12.0, 200, 0.5
    pb = pbm.pb_image(n, n, cell, freq, dish, model="gaussian")
    fwhp = 1.12 * C / freq / dish / ARCSEC
    radius = fwhp / 2 * math.sqrt(math.log(1 / level) / math.log(2)) / cell  # pixels
    r = _radius_pix(n)
    mask = masks.pb_level_mask(pb, level)
    assert mask.dtype == bool
    assert mask[r < radius - 1e-6].all()
    assert not mask[r > radius + 1e-6].any()
    assert abs(mask.sum() - math.pi * radius ** 2) < 2 * math.pi * radius  # area to a perimeter
    with pytest.raises(ValueError):
        masks.pb_level_mask(pb, 0.0)


def _scene(noise):
    res = noise.copy()
    res += _blob(N, 100, 150, BEAM.bmaj_arcsec, 20 * SIGMA)
    res += _blob(N, 170, 90, BEAM.bmaj_arcsec, 12 * SIGMA)
    res[60, 60] += 30 * SIGMA  # single-pixel spike
    return res


def test_auto_multithresh_masks_sources_prunes_spike(pb, noise):
    res = _scene(noise)
    out = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.05)
    assert abs(out.noise / SIGMA - 1) < 0.05
    # noise-limited: 3 x 0.05 x 30 sigma = 4.5 sigma < 5 sigma
    assert out.threshold_used == pytest.approx(5 * out.noise, rel=1e-12)
    assert out.sidelobe_threshold == pytest.approx(3 * 0.05 * res[pb >= 0.2].max(), rel=1e-12)
    assert out.low_threshold == pytest.approx(max(out.sidelobe_threshold, 1.5 * out.noise), rel=1e-12)
    m = out.mask
    for ix, iy, pk in ((100, 150, 20), (170, 90, 12)):
        assert m[ix, iy]
        # every pixel of the source above the threshold (noise-free model) is in the mask
        model = _blob(N, ix, iy, BEAM.bmaj_arcsec, pk * SIGMA)
        assert m[model > out.threshold_used].all()
    assert not m[55:66, 55:66].any()  # spike pruned, nothing left around it
    assert out.regions_pruned >= 1
    # the mask is the union of the two (smoothed) source regions only
    from scipy import ndimage
    _, nreg = ndimage.label(m, structure=np.ones((3, 3)))
    assert nreg == 2


def test_spike_kept_without_pruning(pb, noise):
    out = masks.auto_multithresh(_scene(noise), pb, BEAM, CELL, psf_sidelobe=0.05, minbeamfrac=0.0)
    assert out.mask[60, 60]
    assert out.regions_pruned == 0


def test_sidelobe_limited_threshold(pb, noise):
    res = noise + _blob(N, 100, 150, BEAM.bmaj_arcsec, 40 * SIGMA) + _blob(N, 170, 90, BEAM.bmaj_arcsec, 8 * SIGMA)
    out = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.1, noise=SIGMA)
    assert out.noise == SIGMA
    assert out.threshold_used == pytest.approx(3 * 0.1 * res[pb >= 0.2].max(), rel=1e-12)  # ~12 sigma
    assert out.mask[100, 150] and not out.mask[170, 90]  # the 8-sigma source is below it


def test_growth_extends_mask_into_low_noise_region(pb, noise):
    res = noise.copy()
    res += _blob(N, 128, 128, BEAM.bmaj_arcsec, 20 * SIGMA)  # compact core
    ext = _blob(N, 128, 128, 6.0, 4 * SIGMA)  # extended, below 5 sigma everywhere
    res += ext
    first = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.05)
    assert first.mask[128, 128]
    r = np.hypot(*np.meshgrid(np.arange(N) - 128, np.arange(N) - 128, indexing="ij")) * CELL
    inner = r < 1.6  # ext > 3 sigma (and > 1.5 sigma + 1.5 noise sigma) inside 1.6"
    ring = (r > 1.3) & (r < 1.6)
    assert not first.mask[ring].any()  # the core's mask (~1.2" radius) does not reach it
    second = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.05, prev_mask=first.mask)
    assert (second.mask >= first.mask).all()  # never removes
    assert second.mask.sum() > 1.5 * first.mask.sum()
    assert second.mask[inner].mean() > 0.98
    assert second.grown_pixels > 0
    # grown pixels stay near the extended component: none beyond where it is < 0.5 sigma
    assert not second.mask[ext < 0.5 * SIGMA].any()
    # no growth without iterations: the same mask as the first cycle (prev | threshold mask)
    nogrow = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.05, prev_mask=first.mask,
                                    growiterations=0)
    assert nogrow.mask.sum() < 1.2 * first.mask.sum()


def test_negative_mask_optional(pb, noise):
    res = noise + _blob(N, 90, 90, BEAM.bmaj_arcsec, -15 * SIGMA)
    off = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.01)
    assert not off.mask[90, 90]
    on = masks.auto_multithresh(res, pb, BEAM, CELL, psf_sidelobe=0.01, negativethreshold=7.0)
    assert on.mask[90, 90]
    assert on.negative_threshold == pytest.approx(7 * on.noise, rel=1e-12)


def test_mask_confined_to_pblimit():
    n = 128
    pb = pbm.pb_image(n, n, 0.5, 230e9, 12.0, model="gaussian")  # pb 0.2 at 19" = 38 pixels
    res = np.random.default_rng(1).normal(0, SIGMA, (n, n))
    res[5:12, 5:12] += 50 * SIGMA  # a corner, outside pb 0.2
    res[60:67, 60:67] += 50 * SIGMA
    out = masks.auto_multithresh(res, pb, Beam(2.0, 2.0, 0.0), 0.5, psf_sidelobe=0.01)
    assert not out.mask[pb < 0.2].any()
    assert out.mask[63, 63]
