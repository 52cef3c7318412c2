"""Thermal noise of an interferometer from the radiometer equation.

Units: Tsys in K, dish diameter in m, bandwidth in Hz, integration time in s, flux densities
and noise in Jy (1 Jy = 1e-26 W m^-2 Hz^-1).

    SEFD  = 2 k_B Tsys / (eta_a * pi D^2 / 4)                       [Jy]
    sigma = sqrt(SEFD_i SEFD_j) / (eta_c * sqrt(2 * dnu * t_int))   [Jy]

sigma is the standard deviation of the real part (and, independently, of the imaginary
part) of one visibility: one baseline, one correlation (XX or YY), one channel of
effective (noise-equivalent) bandwidth dnu, one integration of t_int seconds. eta_a is
the aperture efficiency (ALMA 12 m: ~0.7 at Band 6), eta_c the correlator (quantisation)
efficiency (1 by default; ALMA's is ~0.88-0.96 depending on mode). The Measurement Set
then carries SIGMA = sigma and WEIGHT = 1 / sigma^2 per correlation.

Example: Tsys = 100 K, D = 12 m, eta_a = 0.7 -> SEFD = 3487 Jy; with dnu = 15.625 MHz and
t_int = 6.048 s, sigma = 3487 / sqrt(2 * 15.625e6 * 6.048) = 0.253 Jy.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np

K_B = 1.380649e-23  # Boltzmann constant (J/K)
JY = 1e-26  # W m^-2 Hz^-1


def sefd(tsys, diameter: float, eta_a: float):
    """System equivalent flux density (Jy): 2 k Tsys / (eta_a * pi D^2 / 4)."""
    area = math.pi * float(diameter) ** 2 / 4.0
    return 2.0 * K_B * np.asarray(tsys, dtype=np.float64) / (float(eta_a) * area) / JY


def sigma_visibility(sefd_i, bandwidth, t_int, sefd_j=None, eta_c: float = 1.0):
    """Noise (Jy) per real/imaginary part of one visibility: sqrt(SEFD_i SEFD_j) / (eta_c sqrt(2 dnu t)).

    bandwidth: the channel's effective (noise) bandwidth in Hz; t_int in s. Arguments may
    be arrays (they broadcast).
    """
    s_i = np.asarray(sefd_i, dtype=np.float64)
    s = s_i if sefd_j is None else np.sqrt(s_i * np.asarray(sefd_j, dtype=np.float64))
    return s / (float(eta_c) * np.sqrt(2.0 * np.asarray(bandwidth, dtype=np.float64) * np.asarray(t_int)))


def tsys_airmass(trx: float, tatm: float, tau_zenith: float, elevation, tcmb: float = 2.73):
    """Tsys (K, referred to outside the atmosphere) at `elevation` (radians).

    A single-layer atmosphere of opacity tau = tau_zenith / sin(el):
    Tsys = exp(tau) * (trx + tatm * (1 - exp(-tau)) + tcmb * exp(-tau)).
    """
    airmass = 1.0 / np.sin(np.clip(np.asarray(elevation, dtype=np.float64), math.radians(3.0), None))
    tau = tau_zenith * airmass
    return np.exp(tau) * (trx + tatm * (1.0 - np.exp(-tau)) + tcmb * np.exp(-tau))


def weight_from_sigma(sigma):
    """WEIGHT = 1 / sigma^2 (Jy^-2)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    return 1.0 / (sigma * sigma)


_POOL: Optional[ThreadPoolExecutor] = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="almarules-noise")
    return _POOL


def fill_standard_complex(tasks: Sequence[tuple[np.random.Generator, np.ndarray]]) -> None:
    """Fill each complex array with unit complex Gaussian noise from its own generator.

    Real and imaginary parts are independent N(0, 1). The tasks run on two threads (numpy
    releases the GIL while filling); each array is drawn from its own generator, so the
    result does not depend on the threading or on how work is grouped.
    """
    def fill(task) -> None:
        gen, arr = task
        if arr.dtype == np.complex64:
            gen.standard_normal(out=arr.view(np.float32), dtype=np.float32)
        elif arr.dtype == np.complex128:
            gen.standard_normal(out=arr.view(np.float64))
        else:
            raise TypeError(f"expected a complex array, got {arr.dtype}")

    if len(tasks) <= 1:
        for t in tasks:
            fill(t)
    else:
        list(_pool().map(fill, tasks))


def complex_noise(generator: np.random.Generator, shape: tuple[int, ...], sigma=1.0,
                  dtype=np.complex64) -> np.ndarray:
    """Complex Gaussian noise with standard deviation `sigma` (Jy) per real and imaginary part."""
    out = np.empty(shape, dtype=dtype)
    fill_standard_complex([(generator, out)])
    out *= np.asarray(sigma, dtype=np.float32 if out.dtype == np.complex64 else np.float64)
    return out
