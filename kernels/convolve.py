"""Linear 2-D convolution by FFT (ducc0), the light replacement for ``scipy.signal.fftconvolve``.

``convolve_full(a, k)[i, j] = sum_{p, q} a[p, q] k[i - p, j - q]`` for 0 <= i < na + nk - 1 (per
axis), exactly the zero-padded linear convolution; ``convolve_same`` is its centred crop of
``a``'s shape (the crop ``scipy.signal.fftconvolve(mode="same")`` takes: it starts at
(nk - 1) // 2 per axis). Inputs are real; the work is in float64 on grids padded to ducc0's
good FFT sizes. Accuracy: relative ~1e-15 of sum |a| max |k| (FFT rounding), not exact zeros.

Importing scipy.signal costs about 0.9 s of process start; ducc0 is already loaded for gridding.
"""

from __future__ import annotations

import ducc0
import numpy as np


def _padded(shape_a: tuple[int, int], shape_k: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    full = (shape_a[0] + shape_k[0] - 1, shape_a[1] + shape_k[1] - 1)
    return full, (ducc0.fft.good_size(full[0], True), ducc0.fft.good_size(full[1], True))


def convolve_full(a: np.ndarray, k: np.ndarray, nthreads: int = 1) -> np.ndarray:
    """The full linear convolution of two real 2-D arrays, shape (na0 + nk0 - 1, na1 + nk1 - 1)."""
    a = np.asarray(a, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if a.ndim != 2 or k.ndim != 2:
        raise ValueError(f"convolve_full takes 2-D arrays, got {a.shape} and {k.shape}")
    full, pad = _padded(a.shape, k.shape)
    fa = np.zeros(pad)
    fa[:a.shape[0], :a.shape[1]] = a
    fk = np.zeros(pad)
    fk[:k.shape[0], :k.shape[1]] = k
    spec = ducc0.fft.r2c(fa, nthreads=nthreads)
    spec *= ducc0.fft.r2c(fk, nthreads=nthreads)
    out = ducc0.fft.c2r(spec, axes=(0, 1), lastsize=pad[1], forward=False, inorm=2, nthreads=nthreads)
    return np.ascontiguousarray(out[:full[0], :full[1]])


def convolve_same(a: np.ndarray, k: np.ndarray, nthreads: int = 1) -> np.ndarray:
    """The linear convolution cropped to ``a``'s shape, centred as scipy's ``mode="same"``."""
    a = np.asarray(a)
    full = convolve_full(a, k, nthreads)
    s0, s1 = (k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2
    return full[s0:s0 + a.shape[0], s1:s1 + a.shape[1]]
