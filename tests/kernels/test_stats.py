"""Image statistics against known noise and hand-computed toy images.

Truth: white Gaussian noise of known sigma (rms over ~60k pixels has a statistical error of
sigma / sqrt(2N) ~ 0.3 %; tolerance 3 %), sources confined to the clean mask (must not affect the
rms outside it), an annulus filled with noise of a different sigma, and a 4x4 toy image whose
dirty dynamic range is worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import primary_beam as pbm
from almarules.kernels.stats import channel_stats, dirty_dynamic_range, image_stats

N = 256
SIGMA = 2e-3


def test_rms_outside_mask_pure_noise():
    rng = np.random.default_rng(7)
    img = rng.normal(0, SIGMA, (N, N))
    mask = np.zeros((N, N), bool)
    mask[100:130, 100:130] = True
    img[110:120, 110:120] += 1.0  # bright source inside the mask
    s = image_stats(img, mask)
    assert abs(s.rms_outside_mask / SIGMA - 1) < 0.03
    assert s.n_outside == N * N - 900
    assert s.peak == pytest.approx(img.max()) and s.peak > 0.9
    assert 110 <= s.peak_pixel[0] < 120 and 110 <= s.peak_pixel[1] < 120
    assert s.min == img.min()
    assert math.isnan(s.rms_annulus)


def test_annulus_and_pblimit():
    cell = 0.15
    pb = pbm.pb_image(N, N, cell, 230e9, 12.0, model="gaussian")
    rng = np.random.default_rng(8)
    img = rng.normal(0, SIGMA, (N, N))
    ann = (pb >= 0.2) & (pb < 0.3)
    img[ann] *= 3.0
    img[pb < 0.2] = 100.0  # outside pblimit: must be ignored everywhere
    s = image_stats(img, None, pb, annulus=(0.2, 0.3), pblimit=0.2)
    assert s.n_annulus == int(ann.sum()) > 1000
    assert abs(s.rms_annulus / (3 * SIGMA) - 1) < 0.05
    assert s.peak < 1.0
    inner = pb >= 0.3
    expect = math.sqrt((inner.sum() * SIGMA ** 2 + ann.sum() * 9 * SIGMA ** 2) / (inner.sum() + ann.sum()))
    assert abs(s.rms_outside_mask / expect - 1) < 0.03


def test_dirty_dynamic_range_by_hand():
    dirty = np.array([[5.0, 0.1, 0.0, 0.0],
                      [0.2, 0.8, 0.3, 0.0],
                      [0.0, 0.4, -2.0, 0.0],
                      [0.9, 0.0, 0.0, 0.0]])
    pb = np.array([[0.1, 0.3, 0.3, 0.1],
                   [0.3, 0.9, 1.0, 0.3],
                   [0.3, 1.0, 0.9, 0.3],
                   [0.2, 0.3, 0.3, 0.1]])
    # 5.0 sits at pb 0.1 and 0.9 at pb exactly 0.2 (not > 0.2): the peak is 0.8
    assert dirty_dynamic_range(dirty, pb, 0.01) == pytest.approx(80.0, rel=1e-12)
    assert dirty_dynamic_range(dirty, pb, 0.01, pb_level=0.15) == pytest.approx(90.0, rel=1e-12)
    with pytest.raises(ValueError):
        dirty_dynamic_range(dirty, pb, 0.0)


def test_channel_stats_matches_per_plane():
    n, nchan = 64, 4
    rng = np.random.default_rng(9)
    sig = np.array([1.0, 2.0, 3.0, 4.0]) * 1e-3
    cube = rng.normal(0, 1, (n, n, nchan)) * sig
    mask = np.zeros((n, n), bool)
    mask[30:34, 30:34] = True
    cube[31, 31, 2] = 5.0
    cube[..., 3] = np.nan  # an empty channel
    cs = channel_stats(cube, mask)
    for k in range(3):
        s = image_stats(cube[..., k], mask)
        assert cs.peak[k] == s.peak and cs.rms_outside_mask[k] == s.rms_outside_mask
        assert abs(cs.rms_outside_mask[k] / sig[k] - 1) < 0.05
    assert cs.peak[2] == 5.0
    assert np.isnan(cs.peak[3]) and cs.nchan == 4
    cs0 = channel_stats(np.moveaxis(cube, -1, 0), mask, chan_axis=0)
    np.testing.assert_array_equal(cs0.rms_outside_mask, cs.rms_outside_mask)
