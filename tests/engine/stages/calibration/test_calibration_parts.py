"""The calibration stages' own pieces against independent truth: the local horizontal distance
(refant geometry), the central channels, the spectral-index fit, the correction of every
correlation (cross hands included) and the visibility SNR estimate on synthetic data, and the
working copy (never the input)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.engine.stages.calibration.apply_stages import correct
from almarules.engine.stages.calibration.solve import channel_window, spectral_index, visibility_snr
from almarules.engine.stages.calibration.solve_stages import local_horizontal_distance
from almarules.engine.stages.calibration.visdata import CalData, SpwSetup, spw_setups
from almarules.engine.stages.calibration.workcopy import current_copy, make_copy
from almarules.kernels import gaincal

def test_local_horizontal_distance_is_the_distance_in_the_tangent_plane():
    """Pads at known (east, north, up) offsets about the ALMA site, in symmetric pairs about it, so
    that the median of the ITRF positions is the site itself: the distances are hypot(east, north)."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    site = EarthLocation.from_geodetic(-67.755 * u.deg, -23.029 * u.deg, 5050 * u.m)
    lon, lat = math.radians(-67.755), math.radians(-23.029)  # geodetic: the local vertical is the ellipsoid normal
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    e = np.array([-math.sin(lon), math.cos(lon), 0.0])
    n = np.cross(up, e)
    half = np.array([[30.0, 40.0, 1.5], [-40.0, 0.0, -2.0], [0.0, -120.0, 0.5], [300.0, 400.0, 3.0]])
    enu = np.vstack([[0.0, 0.0, 0.0], half, -half])
    centre = np.array([site.x.to_value(u.m), site.y.to_value(u.m), site.z.to_value(u.m)])
    pos = centre + enu[:, :1] * e + enu[:, 1:2] * n + enu[:, 2:] * up
    assert local_horizontal_distance(pos) == pytest.approx(np.hypot(enu[:, 0], enu[:, 1]), abs=1e-3)  # 1 mm


def test_channel_window_keeps_the_central_channels():
    assert channel_window(63, 51) == slice(6, 57)  # CASA tutorial: spw '0:6~56' (rules: solve_channels 51)
    assert channel_window(64, 64) == slice(0, 64)
    assert channel_window(3, 0) == slice(1, 2)  # at least one channel stays


def test_spectral_index_of_an_exact_power_law():
    f = np.array([100e9, 150e9, 230e9])
    s = 2.0 * (f / 150e9) ** -0.7
    alpha, err, nu0 = spectral_index(f, s, 0.01 * s)
    assert alpha == pytest.approx(-0.7, abs=1e-12)
    assert err > 0 and 100e9 < nu0 < 230e9
    assert math.isnan(spectral_index(f[:1], s[:1], s[:1])[0])


def _data(nant: int = 6, nchan: int = 8, corr=("XX", "XY", "YX", "YY"), seed: int = 3):
    rng = np.random.default_rng(seed)
    ant1, ant2 = np.triu_indices(nant, 1)
    ntime = 3
    ant1, ant2 = np.tile(ant1, ntime), np.tile(ant2, ntime)
    time = np.repeat(np.arange(ntime) * 10.0, ant1.size // ntime)
    rec = {"XX": (0, 0), "XY": (0, 1), "YX": (1, 0), "YY": (1, 1)}
    receptors = np.array([rec[c] for c in corr])
    setup = SpwSetup(0, 0, np.linspace(1e9, 1.1e9, nchan), list(corr), receptors,
                     [i for i, c in enumerate(corr) if c in ("XX", "YY")])
    g = (1 + 0.2 * rng.standard_normal((ntime, nant, 2))) * np.exp(1j * rng.uniform(-3, 3, (ntime, nant, 2)))
    b = (1 + 0.1 * rng.standard_normal((nant, nchan, 2))) * np.exp(1j * rng.uniform(-1, 1, (nant, nchan, 2)))
    model = rng.standard_normal((ant1.size, nchan, len(corr))) + 1j * rng.standard_normal((ant1.size, nchan, len(corr)))
    ti = (time / 10).astype(int)
    vis = np.empty_like(model)
    for c, (p, q) in enumerate(receptors):  # written out per correlation: the independent truth
        vis[:, :, c] = (g[ti, ant1, p] * np.conj(g[ti, ant2, q]))[:, None] * b[ant1, :, p] * np.conj(b[ant2, :, q]) * model[:, :, c]
    cd = CalData(setup, np.arange(ant1.size), time, np.zeros(ant1.size, int), np.zeros(ant1.size, int), ant1, ant2,
                 np.zeros((ant1.size, 3)), vis, np.ones(vis.shape), np.zeros(vis.shape, bool), "DATA")
    table = gaincal.GainTable(times=np.arange(ntime) * 10.0, gains=g, flags=np.zeros(g.shape, bool),
                              converged=np.ones((ntime, 2), bool), n_used=np.ones(g.shape, int),
                              refant=np.zeros((ntime, 2), int))
    return cd, table, b, model


def test_correct_every_correlation_with_its_receptors_gains():
    cd, table, b, model = _data()
    vis, weight, flag = correct(cd, table, b)
    assert vis == pytest.approx(model, rel=1e-9, abs=1e-12)
    assert not flag.any()
    # calwt: the weight of a corrected sample is the data's times |c|^2 (here the inverse of |model|^2 scale)
    c2 = np.abs(cd.vis / model) ** 2
    assert weight == pytest.approx(c2, rel=1e-9)


def test_correct_flags_samples_without_a_solution():
    cd, table, b, model = _data()
    b = b.copy()
    b[2, 3, 1] = np.nan  # antenna 2, channel 3, receptor Y
    vis, weight, flag = correct(cd, table, b)
    hit = ((cd.ant1 == 2)[:, None] & (cd.setup.receptors[:, 0] == 1)[None, :]) | \
          ((cd.ant2 == 2)[:, None] & (cd.setup.receptors[:, 1] == 1)[None, :])
    want = np.zeros(flag.shape, bool)
    want[:, 3, :] = hit
    assert (flag == want).all()
    assert (vis[flag] == 0).all() and (weight[flag] == 0).all()


def test_visibility_snr_of_a_point_source_in_noise():
    rng = np.random.default_rng(7)
    n, nchan, s, sigma = 4000, 64, 1.0, 0.5
    vis = s + sigma * (rng.standard_normal((n, nchan, 2)) + 1j * rng.standard_normal((n, nchan, 2)))
    setup = SpwSetup(0, 0, np.linspace(1e9, 2e9, nchan), ["XX", "YY"], np.array([[0, 0], [1, 1]]), [0, 1])
    z = np.zeros(n, int)
    cd = CalData(setup, np.arange(n), np.zeros(n), z, z, z, z + 1, np.zeros((n, 3)), vis, np.ones(vis.shape),
                 np.zeros(vis.shape, bool), "DATA")
    assert visibility_snr(cd) == pytest.approx(s / sigma, rel=0.03)


def test_spw_setups_of_the_shared_mss(shared_ms):
    ngc = spw_setups(shared_ms("ngc5921.ms"))
    assert list(ngc) == [0] and ngc[0].corr_names == ["RR", "LL"] and ngc[0].parallel == [0, 1]
    assert ngc[0].freq.size == 63
    day2 = spw_setups(shared_ms("day2_TDEM0003_10s_norx_1src_1spw.ms"))
    (setup,) = day2.values()
    assert setup.corr_names == ["RR", "RL", "LR", "LL"] and setup.parallel == [0, 3]
    assert setup.receptors.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_working_copy_leaves_the_input_alone_and_is_reused(tmp_path, shared_ms):
    src = shared_ms("ngc5921.ms")
    dest = tmp_path / "calibrated" / "ngc5921.ms"
    make_copy(src, dest, "id-1")
    assert current_copy(dest, src, "id-1") and not current_copy(dest, src, "id-2")
    (dest / "marker").write_text("x")
    make_copy(src, dest, "id-1")  # current: kept
    assert (dest / "marker").exists()
    make_copy(src, dest, "id-2")  # the input changed: copied again
    assert not (dest / "marker").exists()
    assert not list(tmp_path.glob("calibrated/.*tmp"))


def test_a_single_yy_hand_takes_gain_column_0_and_cross_hands_without_solutions_are_flagged():
    from almarules.engine.stages.calibration.apply_stages import gain_columns

    yy = SpwSetup(0, 0, np.ones(1), ["YY"], np.array([[1, 1]]), [0])
    assert gain_columns(yy).tolist() == [[0, 0]]
    xx_xy = SpwSetup(0, 0, np.ones(1), ["XX", "XY"], np.array([[0, 0], [0, 1]]), [0])
    assert gain_columns(xx_xy).tolist() == [[0, 0], [0, -1]]
    cd, table, b, model = _data(corr=("XX", "XY"))
    cd.setup = xx_xy
    gains = gaincal.GainTable(times=table.times, gains=table.gains[:, :, :1], flags=table.flags[:, :, :1],
                              converged=table.converged[:, :1], n_used=table.n_used[:, :, :1],
                              refant=table.refant[:, :1])
    vis, weight, flag = correct(cd, gains, b[:, :, :1])
    assert not flag[:, :, 0].any() and flag[:, :, 1].all()
    assert vis[:, :, 0] == pytest.approx(model[:, :, 0], rel=1e-9)
