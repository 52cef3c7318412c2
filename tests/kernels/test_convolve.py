"""kernels/convolve.py against a direct (loop) linear convolution and scipy.signal's crop."""

from __future__ import annotations

import numpy as np
import pytest

from almarules.kernels.convolve import convolve_full, convolve_same


def _direct_full(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + k.shape[0] - 1, a.shape[1] + k.shape[1] - 1))
    for p in range(a.shape[0]):
        for q in range(a.shape[1]):
            out[p:p + k.shape[0], q:q + k.shape[1]] += a[p, q] * k
    return out


@pytest.mark.parametrize("sa,sk", [((7, 5), (3, 3)), ((8, 9), (4, 6)), ((5, 5), (9, 7)), ((1, 1), (2, 3))])
def test_full_and_same_equal_direct_convolution(sa, sk):
    rng = np.random.default_rng(sum(sa) * 31 + sum(sk))
    a, k = rng.normal(size=sa), rng.normal(size=sk)
    want = _direct_full(a, k)
    np.testing.assert_allclose(convolve_full(a, k), want, rtol=0, atol=1e-12 * np.abs(want).max())
    s0, s1 = (sk[0] - 1) // 2, (sk[1] - 1) // 2
    np.testing.assert_allclose(convolve_same(a, k), want[s0:s0 + sa[0], s1:s1 + sa[1]], rtol=0,
                               atol=1e-12 * np.abs(want).max())


def test_same_matches_scipy_signal():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(3)
    a, k = rng.normal(size=(64, 50)), rng.normal(size=(11, 8))
    np.testing.assert_allclose(convolve_same(a, k), signal.fftconvolve(a, k, mode="same"), atol=1e-11)


def test_delta_moves_the_kernel():
    a = np.zeros((9, 9))
    a[2, 6] = 1.0
    k = np.arange(9.0).reshape(3, 3)
    out = convolve_same(a, k)
    np.testing.assert_allclose(out[1:4, 5:8], k, atol=1e-13)
    assert abs(out.sum() - k.sum()) < 1e-12
