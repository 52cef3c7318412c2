"""Channel regridding of execution blocks onto one LSRK axis (`kernels.regrid`) against independent truth.

- a Gaussian line sampled on two EBs' channel grids 0.37 channel apart: after regridding both onto
  the common axis its first moment is the true centre. Linear interpolation at a constant fraction
  t convolves the spectrum with two spikes (1 - t at -t, t at 1 - t channels), whose centroid is 0
  and whose variance is t (1 - t); binning nbin channels adds (nbin^2 - 1) / 12 channel^2. The
  moments of samples of a Gaussian of rms r (in output channels) on a uniform grid differ from
  those of the continuous one by aliasing only (Poisson summation): the m = +-1 terms are
  ~exp(-2 pi^2 r^2), times (4 pi r^2 + 2) for the first moment (about the truth, components within
  one channel of it) and ~(2 pi r^2 + 1)^2 for the second. FWHM 4 channels (r = 1.70): 7e-24
  channel, so float rounding (1e-15) is the bound; binned by 2 (r = 0.85): <= 4e-5. 'nearest' on
  the offset EB shifts the line by the 0.37 channel it offsets, which the same check sees;
- a spectrum linear in frequency, reproduced exactly (analytic values) by 'linear', binned or not;
- seeded Monte-Carlo noise of known per-channel sigma: the empirical variance of the output over
  20000 rows against 1 / weight_out (sample-variance scatter 0.7 %, pooled real and imaginary);
- flags written out from the frequencies: an output channel is flagged exactly when an input
  channel within one channel spacing of it (nonzero coefficient) is flagged, or it lies beyond the
  outermost input centres;
- descending axes against ascending ones; common_axis on axes drawn by hand (edges in MHz).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from almarules.kernels import regrid as rg

DNU = 488_281.25                     # Hz: an ALMA FDM channel (1875 MHz / 3840)
F0 = 230.5e9                         # Hz, LSRK
FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


def _grid(n: int, offset: float = 0.0) -> np.ndarray:
    return F0 + DNU * (np.arange(n) + offset)


def _moments(centres: np.ndarray, width: float, spectrum: np.ndarray, flags: np.ndarray,
             truth: float) -> tuple[float, float]:
    """First and second moments (output channels) about `truth` over the unflagged channels."""
    y = (centres - truth) / abs(width)
    keep = ~flags
    s = spectrum[keep]
    return float((y[keep] * s).sum() / s.sum()), float((y[keep] ** 2 * s).sum() / s.sum())


def _alias_bound(r: float) -> float:
    """Bound on the aliasing error of the first and second moments (output channels, channels^2) of
    a Gaussian of rms r output channels sampled on the output grid (module doc)."""
    return 2.0 * (2 * np.pi * r * r + 1.0) ** 2 * np.exp(-2 * np.pi ** 2 * r * r) + 1e-12


@pytest.mark.parametrize("nbin", [1, 2])
def test_a_gaussian_line_sampled_by_two_offset_ebs_has_the_true_centre_after_regridding(nbin):
    n, t = 96, 0.63                                         # EB 2's grid 0.37 channel up: EB 1's centres at t = 0.63
    grids = [_grid(n), _grid(n, 0.37)]
    line, sigma = F0 + 41.23 * DNU, 4.0 * DNU * FWHM_TO_SIGMA   # FWHM 4 channels, between channels on both grids
    axis = rg.common_axis([(g, np.full(n, DNU)) for g in grids], nbin=nbin)
    r2 = (sigma / DNU) ** 2                                 # in input channels^2
    bound = _alias_bound(np.sqrt(r2) / nbin)
    binning = (nbin * nbin - 1) / 12.0
    first = {}
    for eb, (g, interp_var) in enumerate(zip(grids, [0.0, t * (1 - t)])):
        vis = np.exp(-0.5 * ((g - line) / sigma) ** 2)[None, :] * np.array([[1.0], [2.0 - 1.0j]])
        out, weight, flags = rg.regrid(vis, 1.0, False, g, axis.centres_hz, axis.width_hz)
        assert not flags[:, 5:-5].any()
        m1, m2 = _moments(axis.centres_hz, axis.width_hz, out[0].real, flags[0], line)
        assert abs(m1) <= bound
        assert m2 == pytest.approx((r2 + binning + interp_var) / nbin ** 2, abs=bound)
        np.testing.assert_allclose(out[1], (2.0 - 1.0j) * out[0], rtol=1e-14)
        first[eb] = m1
        near, _, nflags = rg.regrid(vis, 1.0, False, g, axis.centres_hz, axis.width_hz, method="nearest")
        n1, _ = _moments(axis.centres_hz, axis.width_hz, near[0].real, nflags[0], line)
        # nearest takes EB 2's channel 0.37 channel above each centre: the line moves down by that much
        assert n1 == pytest.approx(-0.37 / nbin if eb == 1 else 0.0, abs=bound)
    assert abs(first[0] - first[1]) <= 2 * bound


@pytest.mark.parametrize("descending", [False, True])
def test_a_spectrum_linear_in_frequency_is_reproduced_exactly(descending):
    x = _grid(40, 0.1)
    alpha, beta = 0.7 - 2.0j, (1.5 + 0.25j) / DNU         # Jy, Jy / Hz
    vis = alpha + beta * (x - F0)[None, :] * np.array([[1.0], [-3.0]])
    rng = np.random.default_rng(3)
    out_c = np.sort(F0 + DNU * rng.uniform(0.1, 39.1, 25))  # anywhere within the input centres
    out_c = np.concatenate([out_c, x[[0, 17, 39]]])         # and exactly on some of them
    if descending:
        x, vis, out_c = x[::-1], vis[:, ::-1], out_c[::-1]
    out, weight, flags = rg.regrid(vis, 2.0, False, x, out_c, DNU)
    expect = alpha + beta * (out_c - F0)[None, :] * np.array([[1.0], [-3.0]])
    assert not flags.any() and (weight >= 2.0).all()
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    # binned by 3: the mean of a straight line over sub-channels symmetric about the centre
    centres = F0 + DNU * np.array([1.45, 10.0, 30.9])
    out3, _, flags3 = rg.regrid(vis, 2.0, False, x, centres, 3 * DNU)
    assert not flags3.any()
    np.testing.assert_allclose(out3, alpha + beta * (centres - F0)[None, :] * np.array([[1.0], [-3.0]]),
                               rtol=1e-12, atol=1e-12)


def _noise(rng: np.random.Generator, nrow: int, sigma: np.ndarray) -> np.ndarray:
    return sigma * (rng.standard_normal((nrow, sigma.size)) + 1j * rng.standard_normal((nrow, sigma.size)))


@pytest.mark.parametrize("per_row", [False, True])
def test_output_weight_is_the_inverse_variance_of_the_interpolated_noise(per_row):
    """Weights per channel (nchan,), or one per row (nrow, 1) as the WEIGHT column gives them."""
    rng = np.random.default_rng(20240611)
    nrow, n = 20_000, 24
    sigma = np.full(n, 1.3) if per_row else rng.uniform(0.5, 2.0, n)   # per real / imaginary part
    weight_in = np.full((nrow, 1), 1.3 ** -2) if per_row else 1.0 / sigma ** 2
    x = _grid(n)
    out_c = F0 + DNU * (-0.6 + 1.03 * np.arange(24))        # fractions t 0 .. 0.97 (0 at 20), 2 beyond the span
    out, weight, flags = rg.regrid(_noise(rng, nrow, sigma), weight_in, False, x, out_c, DNU)
    inside = (out_c >= x[0]) & (out_c <= x[-1])
    assert (flags[:, ~inside]).all() and not flags[:, inside].any()
    emp = 0.5 * (out.real[:, inside].var(axis=0) + out.imag[:, inside].var(axis=0))
    np.testing.assert_allclose(emp * weight[0, inside], 1.0, rtol=0.04)
    assert (weight == weight[0]).all()


def test_binned_output_weight_counts_the_channels_its_sub_samples_share():
    """nbin = 2 on a grid 0.37 channel off: neighbouring sub-samples share an input channel, so the
    variance of their mean is sum_c (coefficient_c)^2 sigma_c^2, not 1 / (sum of their weights)."""
    rng = np.random.default_rng(7)
    nrow, n = 20_000, 20
    sigma = rng.uniform(0.5, 2.0, n)
    x = _grid(n, 0.37)
    axis = rg.common_axis([(_grid(n), np.full(n, DNU)), (x, np.full(n, DNU))], nbin=2)
    out, weight, flags = rg.regrid(_noise(rng, nrow, sigma), 1.0 / sigma ** 2, False, x, axis.centres_hz,
                                   axis.width_hz)
    assert not flags.any()
    emp = 0.5 * (out.real.var(axis=0) + out.imag.var(axis=0))
    np.testing.assert_allclose(emp * weight[0], 1.0, rtol=0.04)
    # the sum of the two sub-samples' weights would understate the variance by a third here (1.56x)
    k = np.searchsorted(x, axis.centres_hz[0] - DNU / 2) - 1   # sub-samples at t = 0.63 between k, k+1 and k+1, k+2
    s2 = sigma[k:k + 3] ** 2
    naive = sum(1.0 / (0.37 ** 2 * a + 0.63 ** 2 * b) for a, b in [(s2[0], s2[1]), (s2[1], s2[2])])
    assert emp[0] * naive > 1.15


def test_a_flagged_channel_flags_exactly_the_outputs_that_use_it():
    n = 16
    x = _grid(n)
    rng = np.random.default_rng(1)
    vis = rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n))
    flags = np.zeros((3, n), bool)
    flags[:, [6, 11]] = True
    vis[:, 6] = np.nan                                      # flagged data may be anything (11 is finite)
    weight = np.ones((3, n))
    weight[1, 9] = 0.0                                      # weight 0 counts as flagged (row 1 only)
    out_c = np.concatenate([[F0 - 0.2 * DNU], F0 + DNU * (np.arange(15) + 0.37), [F0 + 15.2 * DNU]])
    out, w_out, f_out = rg.regrid(vis, weight, flags, x, out_c, DNU)
    uses = lambda c: np.abs(out_c - x[c]) < DNU                               # noqa: E731
    beyond = (out_c < x[0]) | (out_c > x[-1])
    np.testing.assert_array_equal(f_out[0], uses(6) | uses(11) | beyond)
    np.testing.assert_array_equal(f_out[1], uses(6) | uses(9) | uses(11) | beyond)
    assert (w_out[f_out] == 0).all() and (out[f_out] == 0).all() and np.isfinite(out).all()
    assert (w_out[~f_out] > 0).all()
    # on the input's own centres a neighbour enters with coefficient 0: only channel 6 itself is flagged
    own, w_own, f_own = rg.regrid(vis, weight, flags, x, x, DNU)
    np.testing.assert_array_equal(f_own[0], np.isin(np.arange(n), [6, 11]))
    np.testing.assert_array_equal(own[~f_own], vis[~f_own])
    np.testing.assert_array_equal(w_own[~f_own], weight[~f_own])
    # nearest: beyond the outermost centres is flagged too, no extrapolation
    _, w_near, f_near = rg.regrid(vis, weight, flags, x, out_c, DNU, method="nearest")
    assert f_near[:, beyond].all() and (w_near[:, beyond] == 0).all()


def test_a_binned_output_is_flagged_only_when_all_its_sub_channels_are():
    n = 8
    x = _grid(n)
    vis = (np.arange(n) + 1.0j)[None, :].repeat(2, axis=0)
    weight = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    flags = np.zeros((2, n), bool)
    flags[:, 4] = True                                      # bin 2 = channels 4, 5: half flagged
    flags[1, 2:4] = True                                    # bin 1 of row 1: all flagged
    axis = rg.common_axis([(x, np.full(n, DNU))], nbin=2)
    out, w_out, f_out = rg.regrid(vis, weight, flags, x, axis.centres_hz, axis.width_hz)
    np.testing.assert_array_equal(f_out, [[False, False, False, False], [False, True, False, False]])
    assert out[0, 2] == 5 + 1j and w_out[0, 2] == 6.0       # channel 5 alone
    assert out[0, 0] == pytest.approx((1 * 0 + 2 * 1) / 3 + 1j) and w_out[0, 0] == pytest.approx(3.0)
    assert out[1, 1] == 0 and w_out[1, 1] == 0


@pytest.mark.parametrize("method", ["linear", "nearest"])
@pytest.mark.parametrize("nbin", [1, 2])
def test_descending_axes_give_the_ascending_result_reversed(method, nbin):
    rng = np.random.default_rng(11)
    n = 30
    x = _grid(n, 0.21)
    vis = rng.standard_normal((4, n, 2)) + 1j * rng.standard_normal((4, n, 2))
    weight = rng.uniform(0.5, 2.0, (4, n, 2))
    flags = rng.uniform(size=(4, n, 2)) < 0.1
    out_c = F0 + nbin * DNU * (np.arange(n // nbin) + 0.5)  # some beyond the input's span
    up = rg.regrid(vis, weight, flags, x, out_c, nbin * DNU, method)
    for rev_in in (False, True):
        for rev_out in (False, True):
            si = slice(None, None, -1) if rev_in else slice(None)
            so = slice(None, None, -1) if rev_out else slice(None)
            got = rg.regrid(vis[:, si], weight[:, si], flags[:, si], x[si], out_c[so], -nbin * DNU, method)
            for a, b in zip(got, up):
                np.testing.assert_allclose(a[:, so], b, rtol=1e-13, atol=0)
    # a trailing correlation axis is the same as one call per correlation
    for p in range(2):
        one = rg.regrid(vis[..., p], weight[..., p], flags[..., p], x, out_c, nbin * DNU, method)
        for a, b in zip(one, up):
            np.testing.assert_array_equal(a, b[..., p])


MHZ = 1e6


def _mhz_axis(centres_mhz, width_mhz=1.0):
    c = 230e9 + MHZ * np.asarray(centres_mhz, float)
    return c, np.full(c.size, width_mhz * MHZ)


def test_common_axis_keeps_the_first_ebs_channels_inside_every_eb():
    eb1 = _mhz_axis(np.arange(10))                          # edges -0.5 .. 9.5 MHz
    eb2 = _mhz_axis(np.arange(10) + 2.3)                    # edges 1.8 .. 11.8
    eb3 = _mhz_axis(8.1 - np.arange(12), -1.0)              # descending, edges -3.4 .. 8.6
    axis = rg.common_axis([eb1, eb2, eb3])                  # common edges 1.8 .. 8.6: channels 3..8
    np.testing.assert_allclose(axis.centres_hz, 230e9 + MHZ * np.arange(3, 9), rtol=0, atol=1e-3)
    assert (axis.width_hz, axis.dropped_low, axis.dropped_high, axis.start, axis.nchan) == (MHZ, 3, 1, 3, 6)
    assert axis.first_eb_channels() == slice(3, 9)
    # the first EB descending: its order, its sign; the low end is now at its end
    down = rg.common_axis([(eb1[0][::-1], -eb1[1]), eb2, eb3])
    np.testing.assert_allclose(down.centres_hz, 230e9 + MHZ * np.arange(8, 2, -1), rtol=0, atol=1e-3)
    assert (down.width_hz, down.dropped_low, down.dropped_high, down.start) == (-MHZ, 3, 1, 1)
    assert down.first_eb_channels() == slice(1, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        axis.start = 0                                      # type: ignore[misc]


def test_common_axis_bins_the_first_eb():
    eb1, eb2, eb3 = _mhz_axis(np.arange(10)), _mhz_axis(np.arange(10) + 2.3), _mhz_axis(8.1 - np.arange(12), -1.0)
    two = rg.common_axis([eb1, eb2, eb3], nbin=2)           # bins [2b - 0.5, 2b + 1.5]: b = 2, 3 inside 1.8 .. 8.6
    np.testing.assert_allclose(two.centres_hz, 230e9 + MHZ * np.array([4.5, 6.5]), rtol=0, atol=1e-3)
    assert (two.width_hz, two.dropped_low, two.dropped_high, two.start, two.nbin) == (2 * MHZ, 2, 1, 2, 2)
    assert two.first_eb_channels() == slice(4, 8)
    three = rg.common_axis([eb1, eb2, eb3], nbin=3)         # bins 0-2, 3-5, 6-8 (channel 9 in none)
    np.testing.assert_allclose(three.centres_hz, 230e9 + MHZ * np.array([4.0, 7.0]), rtol=0, atol=1e-3)
    assert (three.width_hz, three.dropped_low, three.dropped_high, three.start) == (3 * MHZ, 1, 0, 1)


def test_common_axis_of_identical_ebs_keeps_everything_and_regrid_returns_them_unchanged():
    x = _grid(12, 0.3)
    axis = rg.common_axis([(x, np.full(12, DNU)), (x.copy(), np.full(12, DNU))])
    np.testing.assert_array_equal(axis.centres_hz, x)
    assert (axis.dropped_low, axis.dropped_high) == (0, 0)
    rng = np.random.default_rng(5)
    vis = (rng.standard_normal((3, 12)) + 1j * rng.standard_normal((3, 12))).astype(np.complex64)
    weight = rng.uniform(1, 2, (3, 12))
    out, w_out, f_out = rg.regrid(vis, weight, False, x, axis.centres_hz, axis.width_hz)
    assert out.dtype == np.complex64 and not f_out.any()
    np.testing.assert_array_equal(out, vis)
    np.testing.assert_array_equal(w_out, weight)


def test_common_axis_rejects_disjoint_or_too_narrow_overlaps():
    eb1 = _mhz_axis(np.arange(10))
    with pytest.raises(ValueError, match="do not overlap"):
        rg.common_axis([eb1, _mhz_axis(np.arange(10) + 20.0)])
    with pytest.raises(ValueError, match="do not overlap"):
        rg.common_axis([eb1, _mhz_axis(np.arange(10) + 10.0)])   # edges touch at 9.5 MHz
    with pytest.raises(ValueError, match="no whole output channel"):
        rg.common_axis([eb1, _mhz_axis(np.arange(10) + 9.3)])    # overlap 8.8 .. 9.5 MHz
    with pytest.raises(ValueError, match="uniform"):
        rg.common_axis([(eb1[0], eb1[1] * np.linspace(1, 1.01, 10))])


def test_infer_nbin_allows_for_doppler_but_not_another_channelisation():
    x = _grid(10) * (1 + 1e-4)                              # another EB's LSRK spacing, 30 km/s apart
    assert rg.infer_nbin(x, 2 * DNU) == 2 and rg.infer_nbin(x, -4 * DNU) == 4
    assert rg.infer_nbin(x, DNU) == 1 and rg.infer_nbin(x, 1.5 * DNU) == 1


@pytest.mark.parametrize("doppler", [1.0, 1 + 1.23456e-5, 1 - 7.654321e-5, 1 + 3.1e-6])
def test_an_eb_binned_onto_its_own_axis_is_the_plain_bin_average(doppler):
    """LSRK centres nu_TOPO x doppler carry rounding (~1e-5 Hz): the sub-channel centres of the edge
    bins fall on the outermost input centres only to rounding, which must not flag them."""
    n = 24
    x, width = (F0 + DNU * np.arange(n)) * doppler, DNU * doppler
    for c in (x, x[::-1]):
        rng = np.random.default_rng(2)
        vis = rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))
        weight = rng.uniform(0.5, 2.0, (2, n))
        axis = rg.common_axis([(c, np.full(n, width * np.sign(c[1] - c[0])))], nbin=2)
        out, w_out, f_out = rg.regrid(vis, weight, False, c, axis.centres_hz, axis.width_hz)
        assert axis.nchan == n // 2 and not f_out.any()
        wsum = weight[:, 0::2] + weight[:, 1::2]
        np.testing.assert_allclose(w_out, wsum, rtol=1e-12)
        np.testing.assert_allclose(out, (weight[:, 0::2] * vis[:, 0::2] + weight[:, 1::2] * vis[:, 1::2]) / wsum,
                                   rtol=1e-12)


def test_nearest_takes_the_higher_frequency_channel_at_a_tie():
    x = _grid(6)
    vis = (np.arange(6) + 0j)[None, :]
    mid = F0 + DNU * np.array([0.5, 2.5, 3.49, 3.51])
    out, _, _ = rg.regrid(vis, 1.0, False, x, mid, DNU, method="nearest")
    np.testing.assert_array_equal(out[0], [1, 3, 3, 4])
    down, _, _ = rg.regrid(vis[:, ::-1], 1.0, False, x[::-1], mid, DNU, method="nearest")
    np.testing.assert_array_equal(down[0], [1, 3, 3, 4])   # each value still sits at its frequency
