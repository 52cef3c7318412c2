"""Continuum subtraction (`kernels.uvcontsub`) against independent truth.

- a brute-force reference: numpy.polynomial.polynomial.polyfit with w = sqrt(weight), one
  (row, correlation) at a time in a Python loop, real and imaginary parts fitted separately, on
  the unflagged fit channels only, with the abscissa written out from CASA's formula
  (GslPolynomialModel: (nu - mid) / (min - mid)). polyfit solves the least-squares problem by a
  scaled SVD (lstsq), the kernel by the normal equations, so agreement to 1e-10 of the data rms
  is a check of the arithmetic, not a copy of it;
- analytic continua: a complex polynomial in frequency plus a Gaussian line whose tails are below
  1e-14 of its peak in the fit channels: the subtraction must return the line alone (to
  rounding) and nothing in the line-free channels; a straight line's coefficients in CASA's
  abscissa are known in closed form;
- the documented behaviour of rows with too few usable fit channels (model 0, data unchanged,
  flagged by `output_flags`), NaN in flagged samples, all-flagged rows, per-row weights.

Tolerances: float64 normal equations of order <= 3 on x in [-1, 1] have condition numbers
< 1e4 here, so relative errors stay < 1e-12; 1e-10 leaves room and still catches any wrong weight,
abscissa or channel selection (those err at >= 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import polynomial as npoly

from almarules.kernels import uvcontsub as uc

# alma_sim spw 1: 120 channels of 1.953125 MHz from 228.8837890625 GHz
NU = 228_883_789_062.5 + 1_953_125.0 * np.arange(120)


def casa_x(nu: np.ndarray) -> np.ndarray:
    lo, hi = nu.min(), nu.max()
    mid = (lo + hi) / 2
    return (nu - mid) / (lo - mid)


def reference(vis, weight, flag, nu, fit, order):
    """Loop over rows and correlations: polyfit on the usable fit channels; (model, coef, ok)."""
    nrow, nchan, ncorr = vis.shape
    weight = np.broadcast_to(weight, vis.shape)
    x = casa_x(nu)
    model = np.zeros(vis.shape, complex)
    coef = np.zeros((nrow, ncorr, order + 1), complex)
    ok = np.zeros((nrow, ncorr), bool)
    for r in range(nrow):
        for p in range(ncorr):
            use = fit & ~flag[r, :, p] & (weight[r, :, p] > 0)
            if use.sum() <= order:
                continue
            sw = np.sqrt(weight[r, use, p])
            re = npoly.polyfit(x[use], vis[r, use, p].real, order, w=sw)
            im = npoly.polyfit(x[use], vis[r, use, p].imag, order, w=sw)
            coef[r, p] = re + 1j * im
            model[r, :, p] = npoly.polyval(x, re) + 1j * npoly.polyval(x, im)
            ok[r, p] = True
    return model, coef, ok


def random_case(seed: int, nrow: int = 60, ncorr: int = 2, flag_fraction: float = 0.2):
    rng = np.random.default_rng(seed)
    nchan = NU.size
    vis = (rng.normal(size=(nrow, nchan, ncorr)) + 1j * rng.normal(size=(nrow, nchan, ncorr))) * 0.5 + 0.02
    weight = rng.uniform(0.5, 20.0, size=(nrow, nchan, ncorr))
    flag = rng.random((nrow, nchan, ncorr)) < flag_fraction
    vis[flag & (rng.random(flag.shape) < 0.5)] = np.nan + 1j * np.nan   # NaN only where flagged
    fit = np.ones(nchan, bool)
    fit[40:78] = False
    fit[:3] = False
    return vis, weight, flag, fit


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("descending", [False, True])
def test_matches_polyfit_reference(order: int, descending: bool) -> None:
    vis, weight, flag, fit = random_case(100 + order)
    nu = NU[::-1].copy() if descending else NU
    got = uc.fit_continuum(vis, weight, flag, nu, fit, order)
    model, coef, ok = reference(vis, weight, flag, nu, fit, order)
    assert ok.all() and np.array_equal(got.ok, ok)
    scale = np.sqrt(np.nanmean(np.abs(vis) ** 2))
    assert np.max(np.abs(got.model - model)) / scale < 1e-10
    assert np.max(np.abs(got.coefficients - coef)) / scale < 1e-10
    expect_used = np.count_nonzero(fit[None, :, None] & ~flag, axis=1)
    assert np.array_equal(got.n_used, expect_used)
    sub = uc.subtract(vis, got)
    good = ~flag
    assert np.max(np.abs(sub[good] - (vis[good] - model[good]))) / scale < 1e-10


def test_weights_matter() -> None:
    """Changing one fit channel's weight moves the fit exactly as the reference says."""
    vis, weight, flag, fit = random_case(7, nrow=8, flag_fraction=0.0)
    weight[:, 10, :] *= 1000.0
    got = uc.fit_continuum(vis, weight, flag, NU, fit, 1)
    model, _, _ = reference(vis, weight, flag, NU, fit, 1)
    unweighted, _, _ = reference(vis, np.ones_like(weight), flag, NU, fit, 1)
    assert np.max(np.abs(got.model - model)) < 1e-10
    assert np.max(np.abs(got.model - unweighted)) > 1e-2


@pytest.mark.parametrize("order,degree", [(0, 0), (1, 1), (2, 2), (3, 2), (3, 3)])
def test_polynomial_continuum_and_line(order: int, degree: int) -> None:
    """Noiseless continuum (complex polynomial in GHz offsets) + Gaussian line outside the fit
    channels: subtraction leaves the line alone and zero in the line-free channels."""
    rng = np.random.default_rng(degree * 10 + order)
    nrow, ncorr = 25, 2
    t = (NU - 229.0e9) / 1e9                                                # GHz from 229 GHz
    a = (rng.normal(size=(nrow, ncorr, degree + 1)) + 1j * rng.normal(size=(nrow, ncorr, degree + 1)))
    a *= 0.02 * np.array([1.0, 0.5, 2.0, 5.0])[: degree + 1]
    cont = np.einsum("rpk,kc->rcp", a, t[None, :] ** np.arange(degree + 1)[:, None])
    centre, sigma, peak = 229.0e9 - 1.5e6, 9.8e6, 0.08                       # the alma_sim CO line
    line = peak * np.exp(-0.5 * ((NU - centre) / sigma) ** 2)
    phase = np.exp(1j * rng.uniform(-np.pi, np.pi, size=(nrow, 1, ncorr)))
    vis = cont + line[None, :, None] * phase
    fit = np.abs(NU - centre) > 8.0 * sigma                                 # line < 1.3e-14 of peak there
    assert fit.sum() > 30
    weight = rng.uniform(1.0, 10.0, size=(nrow, 1, ncorr))
    got = uc.fit_continuum(vis, weight, np.zeros(vis.shape, bool), NU, fit, order)
    sub = uc.subtract(vis, got)
    assert got.ok.all()
    assert np.max(np.abs(sub - line[None, :, None] * phase)) < 1e-12
    assert np.max(np.abs(sub[:, fit, :])) < 1e-12
    assert np.max(np.abs(got.model - cont)) < 1e-11
    peak_chan = np.argmax(line)
    assert np.allclose(np.abs(sub[:, peak_chan, :]), line[peak_chan], rtol=1e-12)


def test_straight_line_coefficients_in_casa_abscissa() -> None:
    """V = a + b (nu - nu0): in x = (mid - nu)/half (x = +1 at the lowest frequency)
    c0 = a + b (mid - nu0), c1 = -b half."""
    a, b, nu0 = 0.02 - 0.01j, (3e-3 + 1e-3j) / 1e9, 229.0e9
    vis = (a + b * (NU - nu0))[None, :, None] * np.ones((1, 1, 2))
    got = uc.fit_continuum(vis, np.ones((1, 1, 2)), np.zeros(vis.shape, bool), NU, NU < 229.0e9, 1)
    mid, half = (NU[0] + NU[-1]) / 2, (NU[-1] - NU[0]) / 2
    assert np.allclose(got.coefficients[0, :, 0], a + b * (mid - nu0), rtol=1e-12, atol=0)
    assert np.allclose(got.coefficients[0, :, 1], -b * half, rtol=1e-10, atol=0)
    assert uc.abscissa(NU)[0] == 1.0 and uc.abscissa(NU)[-1] == -1.0


@pytest.mark.parametrize("order", [0, 1, 3])
def test_too_few_fit_channels(order: int) -> None:
    """Exactly `order` usable fit channels in (row 1, corr 0), none in row 2 (all flagged, NaN):
    ok False, model and coefficients 0, data unchanged, every channel flagged by output_flags;
    the other rows/correlations are fitted as usual."""
    vis, weight, flag, fit = random_case(3, nrow=4, flag_fraction=0.0)
    fit_idx = np.flatnonzero(fit)
    flag[1, fit_idx[order:], 0] = True                      # leaves `order` usable channels
    flag[2] = True
    vis[2] = np.nan
    with np.errstate(all="raise"):
        got = uc.fit_continuum(vis, weight, flag, NU, fit, order)
    expect_ok = np.ones((4, 2), bool)
    expect_ok[1, 0] = expect_ok[2, :] = False
    assert np.array_equal(got.ok, expect_ok)
    assert got.n_failed == 3
    assert got.n_used[1, 0] == order and got.n_used[2, 0] == 0
    assert not np.any(got.model[~expect_ok[:, None, :].repeat(NU.size, 1)])
    assert not np.any(got.coefficients[~expect_ok])
    assert np.isfinite(got.model).all()
    sub = uc.subtract(vis, got)
    np.testing.assert_array_equal(sub[1, :, 0], vis[1, :, 0])
    out = uc.output_flags(flag, got)
    assert out[1, :, 0].all() and out[2].all()
    assert np.array_equal(out[0], flag[0]) and np.array_equal(out[1, :, 1], flag[1, :, 1])
    model, _, ok = reference(vis, weight, flag, NU, fit, order)
    assert np.array_equal(ok, expect_ok)
    assert np.max(np.abs(got.model[0] - model[0])) < 1e-10


def test_zero_weight_counts_as_unusable() -> None:
    vis, weight, flag, fit = random_case(4, nrow=3, flag_fraction=0.0)
    weight[0, fit, 1] = 0.0
    got = uc.fit_continuum(vis, weight, flag, NU, fit, 1)
    assert not got.ok[0, 1] and got.ok[0, 0] and got.ok[1:].all()


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_per_row_weights_broadcast(order: int) -> None:
    """WEIGHT-style (nrow, 1, ncorr) weights: the same as the reference with the weights spread
    over channels, and, being constant along the spectrum, the same as an unweighted fit. Rows
    10.. have no flag (the shared-projector path), rows ..9 have flags, NaN, a zero weight or too
    few channels (the per-row normal equations)."""
    vis, _, flag, fit = random_case(5 + order, nrow=30)
    flag[10:] = False
    vis[10:] = np.where(np.isfinite(vis[10:]), vis[10:], 0.3 - 0.1j)
    rng = np.random.default_rng(9)
    w_row = rng.uniform(1.0, 30.0, size=(30, 1, 2))
    w_row[3, 0, 1] = 0.0
    flag[4, fit, 0] = True
    got = uc.fit_continuum(vis, w_row, flag, NU, fit, order)
    model, coef, ok = reference(vis, np.repeat(w_row, NU.size, axis=1), flag, NU, fit, order)
    unweighted, _, _ = reference(vis, np.where(w_row > 0, 1.0, 0.0).repeat(NU.size, axis=1), flag, NU, fit, order)
    assert np.array_equal(got.ok, ok) and not ok[3, 1] and not ok[4, 0] and ok[10:].all()
    assert np.max(np.abs(got.model - model)) < 1e-10
    assert np.max(np.abs(got.coefficients - coef)) < 1e-10
    assert np.max(np.abs(got.model - unweighted)) < 1e-10
    expect_used = np.count_nonzero(fit[None, :, None] & ~flag, axis=1)
    expect_used[3, 1] = 0                                   # zero weight: no usable channel
    assert np.array_equal(got.n_used, expect_used)


def test_complex64_in_complex64_out() -> None:
    vis, weight, flag, fit = random_case(6, nrow=5, flag_fraction=0.0)
    v32 = vis.astype(np.complex64)
    got = uc.fit_continuum(v32, weight, flag, NU, fit, 1)
    assert uc.subtract(v32, got).dtype == np.complex64


def test_bad_arguments() -> None:
    vis = np.zeros((2, NU.size, 2), complex)
    w, f, fit = np.ones(vis.shape), np.zeros(vis.shape, bool), np.ones(NU.size, bool)
    with pytest.raises(ValueError, match="order"):
        uc.fit_continuum(vis, w, f, NU, fit, 4)
    with pytest.raises(ValueError, match="shape"):
        uc.fit_continuum(vis, w, f, NU[:-1], fit, 1)
    with pytest.raises(ValueError, match="distinct"):
        uc.fit_continuum(vis[:, :1], w[:, :1], f[:, :1], NU[:1], fit[:1], 1)
