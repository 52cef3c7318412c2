"""engine.ms.visset.join: chunks of one frequency axis are stacked; different axes are flattened to
one channel with uvw scaled by nu / freq_ref, which leaves uvw in wavelengths, the weights and
hence the dirty image exactly as gridding each chunk on its own axis."""

from __future__ import annotations

import numpy as np
import pytest

from almarules.kernels import gridding
from almarules.engine.ms.visibilities import Chunk
from almarules.engine.ms.visset import join

C = 299_792_458.0


def _chunk(rng, nrow: int, freq: np.ndarray, notes=()) -> Chunk:
    shape = (nrow, freq.size)
    vis = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    flag = rng.random(shape) < 0.1
    weight = np.where(flag, 0.0, rng.uniform(0.5, 2.0, shape))
    z = np.zeros(nrow, np.int32)
    return Chunk(rng.normal(scale=200.0, size=(nrow, 3)), np.where(flag, 0, vis), weight, flag, np.zeros(nrow), z, z,
                 z, np.arange(nrow), freq, "TOPO", "DATA", tuple(notes))


def test_one_axis_is_stacked_without_flattening():
    rng = np.random.default_rng(1)
    f = np.linspace(230e9, 232e9, 4)
    a, b = _chunk(rng, 5, f, ["read DATA"]), _chunk(rng, 7, f, ["read DATA"])
    vs = join([a, b])
    assert not vs.flattened and vs.vis.shape == (12, 4) and vs.notes == ("read DATA",)
    assert np.array_equal(vs.uvw, np.concatenate([a.uvw, b.uvw]))
    assert vs.nvis == int((~a.flag).sum() + (~b.flag).sum())


def test_two_spws_flattened_image_equals_the_sum_of_their_grids():
    rng = np.random.default_rng(2)
    fa, fb = np.linspace(230e9, 232e9, 3), np.linspace(228.9e9, 229.1e9, 5)
    a, b = _chunk(rng, 40, fa), _chunk(rng, 30, fb)
    vs = join([a, b], freq_ref=230e9)
    assert vs.flattened and vs.vis.shape == (40 * 3 + 30 * 5, 1) and vs.freq.tolist() == [230e9]
    # uvw in wavelengths is unchanged, sample by sample
    lam = np.concatenate([(a.uvw[:, None, :] * fa[None, :, None] / C).reshape(-1, 3),
                          (b.uvw[:, None, :] * fb[None, :, None] / C).reshape(-1, 3)])
    assert np.allclose(vs.uvw * 230e9 / C, lam, rtol=1e-14)
    # the dirty image of the joined set is the weighted combination of each spw's unnormalised grid
    n, cell = 64, 0.05
    joined = gridding.dirty_image(vs.uvw, vs.freq, vs.vis, vs.weight, n, n, cell, flags=vs.flag, epsilon=1e-10)
    parts = [(gridding.dirty_image(c.uvw, c.freq, c.vis, c.weight, n, n, cell, flags=c.flag, epsilon=1e-10),
              c.weight[~c.flag].sum()) for c in (a, b)]
    combined = sum(img * w for img, w in parts) / sum(w for _, w in parts)
    assert np.allclose(joined, combined, atol=1e-9 * np.abs(combined).max())


def test_nothing_to_join_is_an_error():
    with pytest.raises(ValueError, match="no visibilities"):
        join([])


def test_each_sample_keeps_its_ms_lsrk_factor_stacked_or_flattened():
    rng = np.random.default_rng(3)
    f = np.linspace(230e9, 232e9, 3)
    a, b = _chunk(rng, 4, f), _chunk(rng, 6, f)
    a.lsrk_factor, b.lsrk_factor = 1 + 6e-6, 1 - 2e-5  # two EBs months apart
    stacked = join([a, b])
    assert stacked.lsrk_factor.tolist() == [1 + 6e-6] * 4 + [1 - 2e-5] * 6
    assert np.array_equal(stacked.weighting_uvw[:4], a.uvw * (1 + 6e-6))
    flat = join([a, _chunk(rng, 6, f + 1e6)])
    assert flat.lsrk_factor.tolist() == [1 + 6e-6] * 12 + [1.0] * 18
    plain = join([_chunk(rng, 3, f)])  # a factor of 1: the weights see the uvw themselves
    assert np.array_equal(plain.weighting_uvw, plain.uvw)
