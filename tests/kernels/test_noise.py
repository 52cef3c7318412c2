"""Radiometer equation and noise draws: closed-form values and sample statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import noise


def test_sefd_and_sigma_from_the_radiometer_equation():
    # 2 k Tsys / (eta pi D^2 / 4), by hand: k = 1.380649e-23 J/K, 1 Jy = 1e-26 W m^-2 Hz^-1
    area = math.pi * 12.0 ** 2 / 4
    expect = 2 * 1.380649e-23 * 100.0 / (0.7 * area) / 1e-26
    assert noise.sefd(100.0, 12.0, 0.7) == pytest.approx(expect, rel=1e-14)
    assert expect == pytest.approx(3487.89, abs=0.01)
    sigma = noise.sigma_visibility(expect, 15.625e6, 6.048)
    assert sigma == pytest.approx(expect / math.sqrt(2 * 15.625e6 * 6.048), rel=1e-14)
    assert sigma == pytest.approx(0.2537, abs=1e-4)
    # correlator efficiency and unequal SEFDs
    assert noise.sigma_visibility(4000.0, 1e6, 10.0, sefd_j=1000.0, eta_c=0.88) == pytest.approx(
        2000.0 / (0.88 * math.sqrt(2e7)), rel=1e-14)
    # the shared alma_sim: effective SEFD 3962.36 Jy, 31.25 MHz, 36.288 s -> 0.0832 Jy
    assert noise.sigma_visibility(3962.359562245805, 31.25e6, 36.288) == pytest.approx(0.0832017, rel=1e-5)
    assert noise.weight_from_sigma(0.5) == 4.0


def test_noise_sample_statistics_match_sigma():
    # 2 x 500k samples: the relative standard error of a sample std is 1/sqrt(2N) = 0.1%; allow 1%
    rng = np.random.default_rng(42)
    sigma = 0.2537
    x = noise.complex_noise(rng, (1000, 250, 2), sigma)
    assert x.dtype == np.complex64
    assert x.real.std() == pytest.approx(sigma, rel=0.01)
    assert x.imag.std() == pytest.approx(sigma, rel=0.01)
    assert abs(x.real.mean()) < 5 * sigma / math.sqrt(x.size)
    assert abs(np.corrcoef(x.real.ravel(), x.imag.ravel())[0, 1]) < 0.01


def test_fill_is_deterministic_whatever_the_threading():
    def run(threads: bool):
        arrs = [np.empty((300, 8), np.complex64) for _ in range(5)]
        gens = [np.random.default_rng(np.random.SeedSequence(7, spawn_key=(k,))) for k in range(5)]
        tasks = list(zip(gens, arrs, strict=True))
        if threads:
            noise.fill_standard_complex(tasks)
        else:
            for t in tasks:
                noise.fill_standard_complex([t])
        return np.stack(arrs)

    a, b = run(True), run(False)
    assert np.array_equal(a, b)
    assert a.std() > 0.5


def test_tsys_rises_with_airmass():
    t_zen = noise.tsys_airmass(50.0, 260.0, 0.08, math.pi / 2)
    expect = math.exp(0.08) * (50 + 260 * (1 - math.exp(-0.08)) + 2.73 * math.exp(-0.08))
    assert t_zen == pytest.approx(expect, rel=1e-12)
    assert noise.tsys_airmass(50.0, 260.0, 0.08, math.radians(30)) > t_zen
