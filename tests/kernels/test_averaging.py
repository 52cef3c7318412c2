"""kernels.averaging: the smearing bound against a fringe averaged numerically on a rotating
baseline, and the averaged rows against sums written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from almarules.kernels import averaging


@pytest.mark.parametrize("loss", [0.001, 0.01, 0.05, 0.2])
def test_phase_span_gives_the_loss_of_a_uniform_phase_ramp(loss):
    phi = averaging.phase_span(loss)
    theta = np.linspace(-phi / 2, phi / 2, 200_001)
    amplitude = abs(np.trapezoid(np.exp(1j * theta), theta) / phi)
    assert amplitude == pytest.approx(1 - loss, abs=1e-9)


def test_phase_span_rejects_losses_outside_0_1():
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError):
            averaging.phase_span(bad)


def test_interval_bounds_the_smearing_of_the_worst_placed_source():
    """A 1 km equatorial baseline seen from the pole: (u, v) turns on a circle of radius |B|/lambda at
    omega_E, the fastest a baseline of that length can move. A source at radius R in the worst
    direction, its fringe averaged over the interval the kernel gives, loses the stated amplitude."""
    freq, b_m, radius, loss = 230e9, 1000.0, np.radians(20 / 3600), 0.01
    uvw = np.array([[b_m, 0.0, 0.0]])
    dt = float(averaging.interval(uvw, freq, radius, loss)[0])
    lam = 299_792_458.0 / freq
    t = np.linspace(-dt / 2, dt / 2, 20_001)
    u = b_m / lam * np.cos(averaging.OMEGA_EARTH * t)
    v = b_m / lam * np.sin(averaging.OMEGA_EARTH * t)
    worst = 0.0
    for pa in np.linspace(0, np.pi, 181):  # source direction; at t = 0 the fringe moves along v
        fringe = np.exp(2j * np.pi * (u * radius * np.cos(pa) + v * radius * np.sin(pa)))
        worst = max(worst, 1 - abs(fringe.mean()))
    assert worst <= loss * 1.001
    assert worst >= loss * 0.95  # the bound is reached, not far from it


def test_interval_is_infinite_for_zero_length_rows_and_scales_inversely_with_baseline():
    uvw = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 300.0, 400.0]])
    dt = averaging.interval(uvw, 100e9, 1e-4, 0.01)
    assert np.isinf(dt[0])
    assert dt[1] / dt[2] == pytest.approx(5.0)


def test_bins_group_rows_of_one_baseline_and_field_within_their_window():
    time = np.array([0.0, 6, 12, 18, 24, 0, 6, 12, 0, 6])
    a1 = np.array([0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    a2 = np.array([1, 1, 1, 1, 1, 2, 2, 2, 1, 1])
    field = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    dt = np.array([13.0] * 5 + [100.0] * 3 + [13.0] * 2)
    label = averaging.bins(time, a1, a2, field, dt)
    groups = {tuple(np.flatnonzero(label == k)) for k in np.unique(label)}
    assert groups == {(0, 1, 2), (3, 4), (5, 6, 7), (8, 9)}


def test_bins_take_the_shortest_interval_of_a_baseline():
    time = np.arange(6) * 10.0
    dt = np.array([25.0, 25.0, 25.0, 25.0, 25.0, 15.0])  # the last row's baseline got longer in w
    label = averaging.bins(time, np.zeros(6, int), np.ones(6, int), np.zeros(6, int), dt)
    # windows of 15 s from t = 0: [0, 15) holds 0 and 10, [15, 30) holds 20, ...
    assert [int(np.count_nonzero(label == k)) for k in np.unique(label)] == [2, 1, 2, 1]


def test_average_is_the_weighted_mean_with_flags_and_propagated_variance():
    rng = np.random.default_rng(3)
    n, nchan = 7, 4
    uvw = rng.normal(size=(n, 3)) * 100
    vis = rng.normal(size=(n, nchan)) + 1j * rng.normal(size=(n, nchan))
    weight = rng.uniform(0.5, 2.0, size=(n, nchan))
    noise = weight * rng.uniform(0.6, 1.0, size=(n, nchan))
    flag = np.zeros((n, nchan), bool)
    flag[1, 2] = flag[2, :] = True
    flag[[4, 5], 3] = True  # channel 3 of the second bin wholly flagged
    label = np.array([0, 0, 0, 1, 1, 1, 2])
    av = averaging.average(label, uvw, vis, weight, noise, flag)
    for k, rows in enumerate(([0, 1, 2], [3, 4, 5], [6])):
        assert av.rows[k] == len(rows)
        assert av.first[k] == rows[0]
        for c in range(nchan):
            use = [r for r in rows if not flag[r, c]]
            if not use:
                assert av.flag[k, c] and av.weight[k, c] == 0 and av.vis[k, c] == 0
                continue
            w = weight[use, c]
            assert av.vis[k, c] == pytest.approx(np.sum(w * vis[use, c]) / w.sum(), rel=1e-12)
            assert av.weight[k, c] == pytest.approx(w.sum(), rel=1e-12)
            variance = np.sum(w ** 2 / noise[use, c]) / w.sum() ** 2  # of the weighted mean
            assert av.noise_weight[k, c] == pytest.approx(1 / variance, rel=1e-12)
        roww = np.array([np.where(flag[r], 0, weight[r]).sum() for r in rows])
        np.testing.assert_allclose(av.uvw[k], (uvw[rows] * roww[:, None]).sum(axis=0) / roww.sum(), rtol=1e-12)


def test_average_keeps_the_weighted_sum_so_the_dirty_image_at_the_centre_is_unchanged():
    rng = np.random.default_rng(5)
    n = 1000
    vis = rng.normal(size=(n, 3)) + 1j * rng.normal(size=(n, 3))
    w = rng.uniform(size=(n, 3))
    flag = rng.uniform(size=(n, 3)) < 0.1
    label = rng.integers(0, 90, size=n)
    av = averaging.average(label, rng.normal(size=(n, 3)), vis, w, w, flag)
    before = np.where(flag, 0, w * vis).sum(axis=0)
    np.testing.assert_allclose((av.weight * av.vis).sum(axis=0), before, rtol=1e-12)
    assert av.rows.sum() == n and len(av.rows) == np.unique(label).size


def test_average_of_no_rows():
    av = averaging.average(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 2), complex), np.zeros((0, 2)),
                           np.zeros((0, 2)), np.zeros((0, 2), bool))
    assert av.vis.shape == (0, 2) and av.rows.size == 0
