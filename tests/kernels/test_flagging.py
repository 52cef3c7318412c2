"""Flagging kernels against independent truth: analytic shadow geometry and CASA 6.7 flagdata,
the pipeline's edge-channel counts worked by hand, radial bins built by construction, robust
statistics on normal samples, outliers injected at known places, constructed antenna gains."""

from __future__ import annotations

import numpy as np
import pytest

from almarules.kernels import flagging as F

# --- autocorrelations and shadowing ------------------------------------------------------------


def test_autocorrelations():
    assert F.autocorrelations(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])).tolist() == [True, False, True, False]


def _source(az_deg: float, el_deg: float) -> np.ndarray:
    """(u, v, w) unit vectors (rows) in the local east-north-up frame for a source at az/el."""
    az, el = np.radians(az_deg), np.radians(el_deg)
    w = np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])
    u = np.cross([0.0, 0.0, 1.0], w)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(w, u), w])


def _rows(enu: np.ndarray, az: float, el: float, pairs: list[tuple[int, int]]):
    """MS rows for antennas at local ENU positions (m): UVW = uvw(ANTENNA1) - uvw(ANTENNA2)."""
    ant_uvw = enu @ _source(az, el).T
    a1 = np.array([p[0] for p in pairs])
    a2 = np.array([p[1] for p in pairs])
    return np.zeros(len(pairs)), ant_uvw[a1] - ant_uvw[a2], a1, a2


ENU = np.array([[0.0, 0.0, 0.0], [15.0, 0.0, 0.0], [300.0, 150.0, 0.0]])  # A, B 15 m east of A, C far
PAIRS = [(0, 1), (0, 2), (1, 2), (1, 0), (0, 0), (1, 1), (2, 2)]


@pytest.mark.parametrize("az, el, tol, shadowed", [
    (90.0, 10.0, 0.0, {0}),      # low in the east: B (east) is in front, A behind; projected 15 sin 10 deg = 2.6 m
    (270.0, 10.0, 0.0, {1}),     # low in the west: A in front, B behind
    (90.0, 60.0, 0.0, set()),    # projected 15 sin 60 deg = 13.0 m > 12 m
    (90.0, 45.0, 0.0, {0}),      # 10.6 m < 12 m
    (90.0, 45.0, 2.0, set()),    # 10.6 m is not below 12 - 2 m
    (0.0, 5.0, 0.0, set()),      # source in the north: the east-west baseline is seen at its full 15 m
])
def test_shadow_geometry(az, el, tol, shadowed):
    time, uvw, a1, a2 = _rows(ENU, az, el, PAIRS)
    got = F.shadowed_rows(time, uvw, a1, a2, np.full(3, 12.0), tolerance=tol)
    expected = [a in shadowed or b in shadowed for a, b in PAIRS]  # every row of a shadowed antenna, autos too
    assert got.tolist() == expected


def test_shadow_is_per_timestamp():
    t0, uvw0, a1, a2 = _rows(ENU, 90.0, 10.0, PAIRS[:3])
    _, uvw1, _, _ = _rows(ENU, 90.0, 80.0, PAIRS[:3])
    got = F.shadowed_rows(np.r_[t0, t0 + 1.0], np.r_[uvw0, uvw1], np.r_[a1, a1], np.r_[a2, a2], [12.0] * 3)
    assert got.tolist() == [True, True, False, False, False, False]


#: CASA 6.7.0-31 (casatools 6.7.0-31), sm.setconfig of three 12-m antennas at ALMA, local ENU
#: (0, 0), (15, 0), (300, 150) m, source J2000 06h -23d, 600-s integrations from HA -6 h;
#: flagdata(mode='shadow', tolerance=0) flags per row. (time offset s, ant1, ant2, u, v, w [m], flagged)
CASA_SHADOW = [
    (0.0, 0, 1, -0.3338, -5.8604, -13.8038, True), (0.0, 0, 2, 51.8998, -244.8213, -223.3135, True),
    (0.0, 1, 2, 52.2336, -238.9609, -209.5098, False),
    (11400.0, 0, 1, -11.3043, -3.8722, -9.0674, True), (11400.0, 0, 2, -187.4859, -221.7607, -167.8428, True),
    (11400.0, 1, 2, -176.1816, -217.8885, -158.7754, False),
    (12000.0, 0, 1, -11.7248, -3.6760, -8.6033, False), (12000.0, 0, 2, -197.8539, -218.4796, -160.0640, False),
    (12000.0, 1, 2, -186.1292, -214.8036, -151.4606, False),
    (30600.0, 0, 1, -11.6367, 3.6784, 8.7210, False), (30600.0, 0, 2, -269.2826, -71.3832, 186.7922, False),
    (30600.0, 1, 2, -257.6459, -75.0617, 178.0711, False),
    (31200.0, 0, 1, -11.2116, 3.8745, 9.1809, True), (31200.0, 0, 2, -262.7242, -66.8190, 197.5126, False),
    (31200.0, 1, 2, -251.5126, -70.6936, 188.3317, True),
]


def test_shadow_matches_casa_flagdata():
    rows = np.array(CASA_SHADOW, dtype=float)
    got = F.shadowed_rows(rows[:, 0], rows[:, 3:6], rows[:, 1].astype(int), rows[:, 2].astype(int), [12.0] * 3)
    assert got.tolist() == [r[6] for r in CASA_SHADOW]


#: CASA 6.7.0-31 flagdata(mode='shadow') on the shared MSs (all flags cleared first): rows flagged with
#: tolerance 0 and -20 m, and for -20 m the sum of the flagged row numbers (a fingerprint of which rows)
CASA_SHADOW_MS = {"alma_sim.ms": (37440, 0, 18062, 337568018), "ngc5921.ms": (22653, 0, 9951, 112280932)}


@pytest.mark.parametrize("name", sorted(CASA_SHADOW_MS))
def test_shadow_on_shared_data_matches_casa(shared_ms, name):
    from casacore.tables import table

    ms = shared_ms(name)
    with table(str(ms), ack=False) as t:
        cols = [t.getcol(c) for c in ("TIME_CENTROID", "UVW", "ANTENNA1", "ANTENNA2")]
    with table(str(ms / "ANTENNA"), ack=False) as t:
        diam = t.getcol("DISH_DIAMETER")
    nrow, n0, n20, fingerprint = CASA_SHADOW_MS[name]
    assert cols[0].size == nrow
    assert F.shadowed_rows(*cols, diam).sum() == n0
    flagged = np.flatnonzero(F.shadowed_rows(*cols, diam, tolerance=-20.0))
    assert (flagged.size, int(flagged.sum())) == (n20, fingerprint)


# --- edge channels -----------------------------------------------------------------------------


@pytest.mark.parametrize("nchan, kwargs, n_edge", [
    (128, {}, 8),                          # 0.0625 * 128 = 8 per edge
    (128, {"fraction": 0.03125}, 4),       # hifa_flagdata since 2018
    (64, {}, 4),
    (40, {}, 3),                           # 2.5 rounds half up (Python 3's round would give 2)
    (124, {}, 6),                          # FPS window: 0.048387 * 124 = 5.99999
    (62, {}, 3), (248, {}, 12),
    (4, {"fraction": 0.25}, 1),
    (4, {"fraction": 0.5}, 0),             # would flag the whole window: skipped
    (8, {"fraction": 0.05}, 0),            # 0.4 rounds to 0
    (128, {"ncorr": 2}, 8),                # 2 x 128 = 256 products: TDM
    (256, {"ncorr": 2}, 0),                # 512 > 256: FDM, no fraction-based flags
])
def test_edge_channels(nchan, kwargs, n_edge):
    mask = F.edge_channel_mask(nchan, **kwargs)
    expected = np.zeros(nchan, dtype=bool)
    if n_edge:
        expected[:n_edge] = expected[-n_edge:] = True
    assert mask.tolist() == expected.tolist()


def test_wide_fdm_window_edges():
    width = 2000e6 / 2048  # a 2 GHz window: channels beyond +-937.5 MHz of the centre, 62.5 MHz = 64 channels a side
    freq = 100e9 - 1000e6 + width * (np.arange(2048) + 0.5)
    mask = F.wide_spw_edge_mask(freq, np.full(2048, width))
    assert mask.sum() == 128 and mask[:64].all() and mask[-64:].all() and not mask[64:-64].any()
    assert F.wide_spw_edge_mask(freq[::-1], -np.full(2048, width)).tolist() == mask[::-1].tolist()
    assert not F.wide_spw_edge_mask(freq[:1900], np.full(1900, width)).any()  # 1855 MHz wide: untouched


def test_aca_baseband_edges():
    width = 62.5e6 / 64
    bb = (90e9, 92e9)
    freq = bb[0] + 2e6 + width * (np.arange(64) + 0.5)  # 2 MHz above the baseband's low edge; threshold 5 MHz
    mask = F.baseband_edge_mask(freq, np.full(64, width), bb)
    assert np.flatnonzero(mask).tolist() == [0, 1, 2, 3]  # channel lows 2, 2.98, 3.95, 4.93 MHz <= 5 MHz
    assert not F.baseband_edge_mask(freq + 100e6, np.full(64, width), bb).any()
    high = bb[1] - 1e6 - width * (np.arange(64) + 0.5)
    assert np.flatnonzero(F.baseband_edge_mask(high, np.full(64, width), bb)).tolist() == [0, 1, 2, 3, 4]


# --- robust statistics and radial bins ---------------------------------------------------------


def test_robust_scales_on_normal_samples():
    x = np.random.default_rng(5).normal(2.0, 3.0, 100_000)
    centre, scale = F.quantile_centre_scale(x)
    assert centre == pytest.approx(2.0, abs=0.05)
    assert scale / F.NORMAL_MAD == pytest.approx(3.0, rel=0.02)  # the quantile sigma is the normal sigma
    assert scale == pytest.approx(0.6745 * 3.0, rel=0.02)        # the pipeline's scale is the MAD, not sigma
    med, sigma = F.median_mad_sigma(x)
    assert (med, sigma) == (pytest.approx(2.0, abs=0.05), pytest.approx(3.0, rel=0.02))


def test_quantile_scale_falls_back_to_interquartile_below_twenty_points():
    x = np.arange(10.0)  # midpoint quartiles 2 and 7 (numpy 'midpoint': (x[2] + x[2]) / 2, (x[6] + x[7]) / 2)
    q1, q3 = np.percentile(x, [25, 75], method="midpoint")
    assert F.quantile_centre_scale(x) == (0.5 * (q1 + q3), 0.5 * (q3 - q1))


def test_radial_bins_by_construction():
    # edges 10, 12, 14.4, 17.28, 20.736 (growth 1.2); 30 points in bin 0, 5 in bin 1, 30 in bin 2, 10 in bin 3
    uv = np.concatenate([np.linspace(10, 11.9, 30), np.linspace(12.1, 14.3, 5), np.linspace(14.5, 17.2, 30),
                         np.linspace(17.3, 20.0, 10)])
    bins = F.radial_bins(uv)
    got = [(b.lo, b.hi, b.n) for b in bins]
    # bin 1 is too small: merged into bin 2 (from 12); the final bin is too small: evaluated with the
    # last successful bin, from its start (12)
    assert got == [(10.0, pytest.approx(12.0), 30), (pytest.approx(12.0), pytest.approx(17.28), 35),
                   (pytest.approx(12.0), pytest.approx(20.736), 45)]
    shifted = F.radial_bins(uv, offset=True)
    assert shifted[0].lo == pytest.approx(11.0) and shifted[-1].hi == pytest.approx(20.736)
    assert not np.isin(np.flatnonzero(uv < 11.0), np.concatenate([b.index for b in shifted])).any()


def test_radial_bins_rules_on_random_data():
    uv = np.random.default_rng(2).lognormal(5.0, 1.0, 5000)
    for growth in (1.2, 1.5, None):
        bins = F.radial_bins(uv, growth=growth)
        assert all(b.n >= 22 for b in bins)
        covered = np.zeros(uv.size, dtype=bool)
        for b in bins:
            covered[b.index] = True
            inside = (uv[b.index] >= b.lo) & (uv[b.index] <= b.hi)
            upper = (uv < b.hi) | ((uv == b.hi) & (b.hi == uv.max()))  # the last bin includes the largest point
            assert inside.all() and b.n == int(((uv >= b.lo) & upper).sum())
        assert covered.all()
    ratios = [b.hi / b.lo for b in F.radial_bins(uv, growth=1.5)[:-1]]
    assert all(r == pytest.approx(1.5) or r == pytest.approx(1.5 ** 2) or r > 1.5 for r in ratios)
    assert F.radial_bins(uv[:21]) == []  # fewer points than one bin needs: nothing evaluated


def test_pipeline_growth_schedule():
    assert [F.pipeline_growth(u, 2000) for u in (10, 39.9, 40, 89, 90)] == [1.1, 1.1, 1.2, 1.2, 1.26]
    assert F.pipeline_growth(10, 800) == pytest.approx(np.sqrt(2)) and F.pipeline_growth(500, 400) == 1.6


# --- amplitude outliers: targets ---------------------------------------------------------------


def _array(nant: int, ntime: int, seed: int = 0):
    """Rows of ntime integrations of all baselines of nant antennas: (ant1, ant2, time s, uvdist m)."""
    rng = np.random.default_rng(seed)
    a1, a2 = np.triu_indices(nant, 1)
    base = rng.uniform(15.0, 1500.0, a1.size)
    uv = (base[None, :] * rng.uniform(0.95, 1.05, (ntime, a1.size))).ravel()
    return np.tile(a1, ntime), np.tile(a2, ntime), np.repeat(np.arange(ntime) * 6.048, a1.size), uv


def test_target_clean_normal_data_flags_nothing():
    a1, a2, _, uv = _array(40, 130)  # 101400 points
    m = np.random.default_rng(1).normal(0.0, 0.01, uv.size)
    flags, report = F.amplitude_outliers(m, uv, a1, a2, calibrator=False)
    assert uv.size > 100_000 and not flags.any() and report.points == []
    assert all(b.n >= 22 for b in report.bins)


def test_target_injected_outliers_are_all_found():
    a1, a2, _, uv = _array(40, 130, seed=3)
    rng = np.random.default_rng(4)
    m = rng.normal(0.0, 0.01, uv.size)
    bad = rng.choice(uv.size, 60, replace=False)
    m[bad[:30]] = 0.10     # +10 sigma: above 12 x 0.6745 sigma = 8.1 sigma
    m[bad[30:]] = -0.10    # -10 sigma: below -13 x 0.6745 sigma = -8.8 sigma
    flags, report = F.amplitude_outliers(m, uv, a1, a2, calibrator=False)
    assert set(np.flatnonzero(flags)) == set(bad.tolist())
    assert {p.index for p in report.points} == set(bad.tolist())
    assert all(p.deviation > 12 or p.deviation < -13 for p in report.points)
    m2 = m.copy()
    m2[bad] = np.sign(m[bad]) * 0.07  # 7 sigma: inside both thresholds
    assert not F.amplitude_outliers(m2, uv, a1, a2, calibrator=False)[0].any()


def test_target_small_sample_uses_twice_the_mad():
    a1, a2, _, uv = _array(12, 10, seed=5)  # 660 points: median and 2 x 1.4826 MAD
    m = np.random.default_rng(6).normal(0.0, 1.0, uv.size)
    m[[7, 300]] = [20.0, 30.0]              # thresholds +12 x 2 sigma = 24 sigma
    flags, report = F.amplitude_outliers(m, uv, a1, a2, calibrator=False)
    assert np.flatnonzero(flags).tolist() == [300]
    assert all(b.scale == pytest.approx(2 * b.sigma) for b in report.bins)
    prior = np.zeros(uv.size, dtype=bool)
    prior[300] = True  # already flagged points are not judged again
    assert not F.amplitude_outliers(m, uv, a1, a2, calibrator=False, flag=prior)[0].any()


def test_target_flags_need_both_bin_sets_except_in_the_first_half_bin():
    # main bins [10, 12) (sigma 1) and [12, 14.4] (sigma 10); shifted bins [11, 13.2), [13.2, 14.4]
    rng = np.random.default_rng(7)
    uv = np.concatenate([[10.0], rng.uniform(10.0, 12.0, 2000), rng.uniform(12.0, 14.39, 2000), [14.39]])
    m = np.concatenate([[0.0], rng.normal(0.0, 1.0, 2000), rng.normal(0.0, 10.0, 2000), [0.0]])
    uv = np.append(uv, [11.5, 10.5, 11.6])
    m = np.append(m, [12.0, 12.0, 50.0])  # 12 = 17.8 x the main bin's 0.6745-sigma scale
    a1, a2 = np.zeros(uv.size, dtype=int), np.ones(uv.size, dtype=int)
    flags, report = F.amplitude_outliers(m, uv, a1, a2, calibrator=False)
    n = uv.size
    # 11.5: an outlier of the main bin only (the shifted bin mixes in sigma 10: scale ~3); 10.5: in
    # the first half of the first bin, seen by the main set alone; 11.6: an outlier in both
    assert np.flatnonzero(flags).tolist() == [n - 2, n - 1]
    assert [(b.offset, round(b.lo, 6), round(b.hi, 6)) for b in report.bins] == [
        (0, 10.0, 12.0), (0, 12.0, 14.4), (1, 11.0, 13.2), (1, 13.2, 14.4)]


# --- amplitude outliers: calibrators -----------------------------------------------------------

NANT, NTIME = 20, 60


def _calibrator(seed: int):
    a1, a2, t, uv = _array(NANT, NTIME, seed)
    return a1, a2, t, uv, np.random.default_rng(seed + 100).normal(0.0, 1.0, a1.size)


def _cal(m, a1, a2, t, uv, **kw):
    return F.amplitude_outliers(m, uv, a1, a2, calibrator=True, time=t, nant=NANT, **kw)


def test_calibrator_clean_normal_data_flags_nothing():
    a1, a2, t, uv = _array(40, 130, seed=8)
    m = np.random.default_rng(9).normal(0.0, 1.0, a1.size)
    flags, report = F.amplitude_outliers(m, uv, a1, a2, calibrator=True, time=t, nant=40)
    assert not flags.any() and report.commands == [] and report.scale_factors == [1.0]


def test_calibrator_bad_antenna():
    a1, a2, t, uv, m = _calibrator(10)
    on5 = (a1 == 5) | (a2 == 5)
    m[on5] -= 20.0
    flags, report = _cal(m, a1, a2, t, uv)
    assert flags.tolist() == on5.tolist()
    # its 19 x 60 ultrahigh baseline-timestamp commands are covered by the antenna's: consolidated away
    assert [(c.reason, c.antennas, c.time) for c in report.commands] == [("bad antenna", (5,), None)]
    assert report.scale_factors == [2.0, 1.0]  # relaxed (one antenna explains the outliers); 2nd iteration clean
    assert {p.reason for p in report.points} == {"bad antenna"}


def test_calibrator_relaxation_depends_on_who_makes_the_outliers():
    a1, a2, t, uv, m = _calibrator(14)
    times = np.unique(t)[::6]  # 10 of the 60 timestamps: more than n_tmax = 0.063 x 60 = 3.8
    hit = np.isin(t, times) & ((a1 == 5) | (a2 == 5))
    m[hit] -= 8.0
    flags, report = _cal(m, a1, a2, t, uv)
    # one antenna explains all outliers beyond 6.5 sigma: k = 4, 10 <= 4 x 3.8 timestamps: not relaxed,
    # so 10 outlier timestamps of 60 exceed 0.085 x 60 = 5.1 on each of antenna 5's baselines
    assert report.scale_factors[0] == 1.0
    assert [(c.reason, c.antennas) for c in report.commands] == [("bad antenna", (5,))]
    assert flags.tolist() == ((a1 == 5) | (a2 == 5)).tolist()
    a1, a2, t, uv, m = _calibrator(15)
    rng = np.random.default_rng(16)
    for k in times:  # the same number of outlier timestamps, on random baselines: relaxed (x 2)
        rows = np.flatnonzero(t == k)
        m[rng.choice(rows, 3, replace=False)] -= 8.0
    assert _cal(m, a1, a2, t, uv)[1].scale_factors[0] == 2.0


def test_calibrator_bad_timestamp():
    a1, a2, t, uv, m = _calibrator(11)
    at = t == t[190 * 17]
    m[at] += 8.0
    flags, report = _cal(m, a1, a2, t, uv)
    assert flags.tolist() == at.tolist()
    assert [(c.reason, c.time) for c in report.commands] == [("bad timestamp", t[190 * 17])]


def test_calibrator_bad_antenna_at_one_timestamp():
    a1, a2, t, uv, m = _calibrator(12)
    hit = (t == t[190 * 30]) & ((a1 == 3) | (a2 == 3))
    m[hit] -= 8.0
    flags, report = _cal(m, a1, a2, t, uv)
    assert flags.tolist() == hit.tolist()
    assert [(c.reason, c.antennas) for c in report.commands] == [("bad antenna timestamp", (3,))]


CAI = [(0, 1), (0, 2), (0, 3), (4, 5), (6, 7), (8, 9), (10, 11)]


@pytest.mark.parametrize("baselines, niter, reason, antennas", [
    # 7 antennas (> 20 / 3) with outliers only among themselves (7 in all, not > 20 / 2)
    ([(i, j) for i in range(7) for j in range(i + 1, 7)], 2, "bad timestamp", ()),
    # 5 antennas (> 20 / 6) bad with everyone: with the 15 partly affected, more than 20 / 2
    ([(i, j) for i in range(5) for j in range(i + 1, NANT)], 2, "bad timestamp", ()),
    # antenna 0 in 3 of 7 outliers (< half), 11 antennas touched (> 6): one affected antenna
    (CAI, 1, "bad CAI-dependent data", (0,)),
    # ... then, without antenna 0, 8 antennas in one outlier each are all affected (> 20 / 3)
    (CAI, 2, "bad timestamp", ()),
])
def test_calibrator_timestamp_rules(baselines, niter, reason, antennas):
    a1, a2, t, uv, m = _calibrator(17)
    t0 = np.unique(t)[30]
    hit = (t == t0) & np.isin(a1 * NANT + a2, [i * NANT + j for i, j in baselines])
    m[hit] -= 8.0
    flags, report = _cal(m, a1, a2, t, uv, niter=niter)
    assert sorted((c.reason, c.antennas, c.time) for c in report.commands) == sorted(
        (reason, (a,) if antennas else (), t0) for a in (antennas or [None]))
    expected = (t == t0) & (np.isin(a1, antennas) | np.isin(a2, antennas) if antennas else True)
    assert flags.tolist() == expected.tolist()


def test_calibrator_single_ultrahigh_point_and_iterations():
    a1, a2, t, uv, m = _calibrator(13)
    m[1234] = 30.0
    flags, report = _cal(m, a1, a2, t, uv)
    assert np.flatnonzero(flags).tolist() == [1234]
    assert [(c.reason, c.antennas, c.iteration) for c in report.commands] == [
        ("ultrahigh baseline timestamp", (int(a1[1234]), int(a2[1234])), 1)]
    assert len(report.scale_factors) == 2  # a second iteration ran and found nothing more
    assert report.points[0].deviation == pytest.approx((30.0 - report.bins[0].centre) / report.bins[0].scale)
    m[1234] = 11.0  # beyond the antenna-based +4.6 but below +12: nothing
    assert not _cal(m, a1, a2, t, uv)[0].any()


def test_mean_parallel_hands():
    metric = np.array([[1.0, 2.0, 3.0], [3.0, np.nan, 5.0]])
    flag = np.array([[False, False, True], [False, True, True]])
    mean, f = F.mean_parallel_hands(metric, flag)
    assert mean[:2].tolist() == [2.0, 2.0] and f.tolist() == [False, False, True]


# --- low gains ---------------------------------------------------------------------------------


def _gains(nscan: int = 3, nant: int = 10, seed: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 0.02, (nscan, nant))


def test_low_gain_flags_outside_half_to_one_and_a_half_median():
    g = _gains()
    g[1, 2], g[:, 7], g[0, 4], g[2, 0] = 0.4, 1.6, 0.55, np.nan
    flags, report = F.low_gain_antennas(g)
    expected = np.zeros(g.shape, dtype=bool)
    expected[1, 2] = True
    expected[:, 7] = True
    assert flags.tolist() == expected.tolist()
    med = np.nanmedian(g)
    assert report.reasons(flags) == [(0, 7, pytest.approx(g[0, 7] / med)), (1, 2, pytest.approx(0.4 / med)),
                                     (1, 7, pytest.approx(g[1, 7] / med)), (2, 7, pytest.approx(g[2, 7] / med))]


def test_low_gain_polarisations_groups_and_minimum_antennas():
    g = np.stack([_gains(), _gains(seed=21)], axis=2)
    g[0, 3, :] = [0.3, 0.5]    # mean 0.4: low
    g[1, 6, :] = [0.3, np.nan]  # one polarisation missing: 0.3, low
    flags, _ = F.low_gain_antennas(g)
    assert np.argwhere(flags).tolist() == [[0, 3], [1, 6]]
    diam = np.array([12.0] * 6 + [7.0] * 4)  # the 7-m group has only 4 antennas: not judged
    flags, report = F.low_gain_antennas(g, diameters=diam)
    assert np.argwhere(flags).tolist() == [[0, 3]] and report.skipped == (7.0,)
    assert F.low_gain_antennas(g[:, :4])[0].sum() == 0


def test_low_gain_too_many_entirely_flagged_flags_the_view():
    g = _gains()
    g[:, :7] = np.nan  # 7 of 10 antennas without solutions >= 0.666
    flags, report = F.low_gain_antennas(g)
    assert flags[:, 7:].all() and not flags[:, :7].any() and report.whole_view == (0.0,)
    g = _gains()
    g[:, :6] = np.nan
    assert not F.low_gain_antennas(g)[0].any()
    flags, report = F.low_gain_antennas(np.full((3, 10), np.nan))  # no solution at all: the whole view
    assert flags.all() and report.whole_view == (0.0,)


# --- amplitude outliers on the CASA-simulated alma_sim (true gains divided out) ----------------


def _channel_averaged(ms, field: int, model_jy=None):
    """Rows of spw 0 of one field: (metric (2, n) = |mean corrected| - |mean model| per parallel
    hand, flag (2, n), ant1, ant2, time, uvdist); model_jy(freq Hz) the point-source model (0 if None)."""
    from casacore.tables import table, taql

    with table(str(ms), ack=False) as t:
        sub = taql(f"select from $t where FIELD_ID == {field} and DATA_DESC_ID == 0")
        vis, flag = sub.getcol("CORRECTED_DATA"), sub.getcol("FLAG")
        a1, a2, time, uvw = (sub.getcol(c) for c in ("ANTENNA1", "ANTENNA2", "TIME", "UVW"))
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    good = ~flag
    mean = np.where(good, vis, 0).sum(axis=1) / np.maximum(good.sum(axis=1), 1)  # (n, ncorr)
    model = 0.0 if model_jy is None else float(np.mean(model_jy(freq)))
    metric = (np.abs(mean) - model)[:, [0, -1]].T
    return metric, ~good.any(axis=1)[:, [0, -1]].T, a1, a2, time, np.hypot(uvw[:, 0], uvw[:, 1])


def test_alma_sim_phase_calibrator_and_target(alma_sim_calibrated):
    ms = alma_sim_calibrated
    metric, flag, a1, a2, time, uv = _channel_averaged(ms, 1, lambda f: 0.6 * (f / 230e9) ** -0.6)
    m, f = F.mean_parallel_hands(metric, flag)  # 5 scans: the pipeline examines the XX/YY mean
    kw = dict(calibrator=True, time=time, nant=40, nscans=5, flag=f)
    flags, report = F.amplitude_outliers(m, uv, a1, a2, **kw)
    assert not flags.any() and report.commands == []
    bad = (a1 == 7) | (a2 == 7)
    m_bad = np.where(bad, m - 0.3 * 0.6, m)  # antenna 7 at 70% gain: |V| 30% low on its baselines
    flags, report = F.amplitude_outliers(m_bad, uv, a1, a2, **kw)
    assert flags.tolist() == bad.tolist()
    assert [(c.reason, c.antennas) for c in report.commands] == [("bad antenna", (7,))]

    metric, flag, a1, a2, time, uv = _channel_averaged(ms, 3)  # the target, no model: metric = |V|
    for hand in range(2):
        assert not F.amplitude_outliers(metric[hand], uv, a1, a2, calibrator=False, flag=flag[hand])[0].any()
    spikes = np.array([5, 777, 4000, 11000])
    m = metric[0].copy()
    m[spikes] += 1.0  # 1 Jy spikes on a ~20 mJy target
    assert np.flatnonzero(F.amplitude_outliers(m, uv, a1, a2, calibrator=False)[0]).tolist() == spikes.tolist()
