"""Joint mosaic imaging (kernels.mosaic) against independent truth.

The observation: a 7-pointing hexagonal mosaic with the ALMA 7-m array (CASA's "ACA" beam, FWHP
~29.5" at 345 GHz; pointings 15" apart, about half the FWHP), 12 antennas at random (seeded) within
a 50 m circle, a 1 h track around transit at dec -30 deg from ALMA's latitude, the pointings
observed in turn (interleaved, 36 visits each), 4 channels of 100 MHz about 345 GHz, per-row
weights 0.5-1.5. Every pointing's UVW are computed for its own direction from the baselines'
equatorial components and the hour angle (textbook formula, written here), and the visibilities
of point sources by `kernels.sky`'s direct Fourier sum: with phase centre "pointing" at the
source's direction cosines about the pointing (`sky.lmn`), with "common" about the image centre;
each source attenuated by the ACA beam at its angular distance from the pointing and at each
channel's own frequency (what pointing p sees). None of this uses the kernel's geometry.

Tolerances.
* Weight image: the kernel's sum_p A_p^2 w_p against one written from `primary_beam.beam_profile`
  at the pixel's distance from the pointing: same beam table, so agreement to rounding (1e-9 of
  the peak); a one-pixel or sign error in a pointing's centre moves A_p by ~3 % there.
* Prediction: ducc0 at epsilon 1e-7 against the direct sum over the model's pixels: 1e-5 relative
  (L2 and peak), 100 x epsilon (achieved 3e-8); ignoring the rotation of north between a pointing
  and the image centre (dec0 = 0 instead of -30 deg) costs 3e-4, checked to fail it.
* Sky flux of the dirty mosaic at an isolated source's pixel: exactly S for a flux-correct mosaic
  (the PSF is 1 at its centre), up to epsilon and the channel-to-channel change of the beam across
  the 0.3 GHz band: 1e-5 with a Gaussian beam (second order, 3e-7), 5e-4 with CASA's tabulated
  ACA beam (its lookup steps; test docstring).
* Deconvolution (the brief's check): Cotton-Schwab with Hogbom on the mosaic's flat-noise residual
  (CASA's default normtype, module docstring) and `mosaic_residual` as the major cycle, to 1 mJy
  on sources of 0.5-1 Jy; recovered flux (components within 4 pixels, ~1 beam) within 2 % where the
  mosaic pb >= 0.5 and 5 % down to 0.2 (achieved: <= 0.4 %, the most at pb 0.29), position
  (flux-weighted centroid of those components) within 0.1 pixel (achieved: <= 0.01). Both phase-centre
  conventions give the same numbers: rotated into the image centre's frame, the "pointing" data are
  the "common" data to rounding.
* Noise: 16 realisations of Gaussian noise with one pointing 3 x noisier, natural weights: the
  mean of D^2 x weight is 1 (Var D = 1 / weight) over the mosaic within 8 % and around each
  pointing within 25 % (statistical spread ~3 % and ~8 %); equal pointing weights would give 3-6 x
  around the noisy one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from almarules.kernels import deconvolve, mosaic, primary_beam, sky

ARCSEC = math.pi / 180 / 3600
LAT = math.radians(-23.0229)  # ALMA
RA0, DEC0 = 1.2, math.radians(-30.0)  # image centre
FREQ = 345e9 + 0.1e9 * np.array([-1.5, -0.5, 0.5, 1.5])
PB_FREQ = float(FREQ.mean())
NPIX, CELL = 160, 0.75  # beam ~3.7" x 3.3" = 4.5-5 pixels
SPACING = 15.0  # arcsec, ~ half the ACA FWHP at 345 GHz
POINTINGS = [(0.0, 0.0)] + [(SPACING * math.cos(math.radians(a)) * ARCSEC,
                             SPACING * math.sin(math.radians(a)) * ARCSEC) for a in range(0, 360, 60)]
NVISIT = 36  # visits per pointing, interleaved over 1 h
# (flux Jy, east pixels, north pixels): centre; between the centre and two outer pointings (pb ~0.96);
# between two outer pointings, 20" out (pb ~0.7); near the mosaic edge (pb ~0.29 and ~0.25)
SOURCES = [(1.0, 0, 0), (0.5, 10, 6), (0.7, -23, 13), (0.8, 0, -40), (0.6, 43, 0)]


def _layout(nant: int = 12, radius: float = 25.0, seed: int = 3) -> np.ndarray:
    """Baselines (m, equatorial X towards H = 0, Y east, Z the pole) of `nant` antennas at random
    within `radius` m, at least 8.5 m apart (7-m dishes)."""
    rng = np.random.default_rng(seed)
    enu: list[np.ndarray] = []
    while len(enu) < nant:
        p = rng.uniform(-radius, radius, 2)
        if np.hypot(*p) <= radius and all(np.hypot(*(p - q)) >= 8.5 for q in enu):
            enu.append(p)
    e, n = np.array(enu).T
    up = rng.normal(0.0, 0.3, nant)
    xyz = np.stack([-math.sin(LAT) * n + math.cos(LAT) * up, e, math.cos(LAT) * n + math.sin(LAT) * up], axis=1)
    a1, a2 = np.triu_indices(nant, 1)
    return xyz[a2] - xyz[a1]


BASELINES = _layout()


def _uvw(hour_angle: np.ndarray, dec: float) -> np.ndarray:
    """(u east, v north, w towards (H, dec)) of every baseline at every hour angle, (ntime x nbl, 3)."""
    bx, by, bz = BASELINES.T
    h = np.asarray(hour_angle)[:, None]
    sd, cd = math.sin(dec), math.cos(dec)
    u = np.sin(h) * bx + np.cos(h) * by
    v = -sd * np.cos(h) * bx + sd * np.sin(h) * by + cd * bz
    w = cd * np.cos(h) * bx - cd * np.sin(h) * by + sd * bz
    return np.stack([u.ravel(), v.ravel(), w.ravel()], axis=1)


def _lm(de: float, dn: float) -> tuple[float, float]:
    """Direction cosines of the pixel `de` east and `dn` north of the centre pixel."""
    return de * CELL * ARCSEC, dn * CELL * ARCSEC


def _pixel(de: int, dn: int) -> tuple[int, int]:
    return NPIX // 2 - de, NPIX // 2 + dn  # east = smaller ix, north = larger iy


def _grid(convention: str, **kw) -> mosaic.MosaicGrid:
    return mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model="ACA", phase_centre=convention, dec0_rad=DEC0, **kw)


def _observe(convention: str, sources=SOURCES, seed: int = 11, model: str = "ACA",
             dish_m=None) -> list[mosaic.Pointing]:
    """The mosaic's pointings, each with direct-sum visibilities of `sources` as it sees them
    through the beam `model` at each channel's frequency."""
    rng = np.random.default_rng(seed)
    nslot = len(POINTINGS) * NVISIT
    h0 = np.linspace(-math.pi / 24, math.pi / 24, nslot)  # image centre's hour angle, +-0.5 h
    out = []
    for p, (lp, mp) in enumerate(POINTINGS):
        ra_p, dec_p = sky.radec_from_lm(lp, mp, RA0, DEC0)
        h = h0[p::len(POINTINGS)]
        uvw = _uvw(h + RA0 - ra_p, dec_p) if convention == "pointing" else _uvw(h, DEC0)
        comps = []
        for flux, de, dn in sources:
            ls, ms = _lm(de, dn)
            ra_s, dec_s = sky.radec_from_lm(ls, ms, RA0, DEC0)
            lq, mq, _ = sky.lmn(ra_s, dec_s, ra_p, dec_p)
            theta_arcsec = math.asin(math.hypot(lq, mq)) / ARCSEC  # angle from the pointing centre
            atten = np.array([float(primary_beam.beam_profile(model, theta_arcsec, f, dish_m)) for f in FREQ])
            at = (lq, mq) if convention == "pointing" else (ls, ms)
            comps.append(sky.Component("point", flux * atten, *at))
        vis = sky.direct_sum(uvw, FREQ, comps) if comps else None
        weight = np.repeat(rng.uniform(0.5, 1.5, (uvw.shape[0], 1)), FREQ.size, axis=1)
        out.append(mosaic.Pointing(uvw, FREQ, weight, lp, mp, vis=vis, name=f"P{p}"))
    return out


def _beam(lp: float, mp: float, model: str = "ACA", dish_m=None) -> np.ndarray:
    """A_p on the grid, written independently: the model at each pixel's distance from (lp, mp)."""
    ix, iy = np.meshgrid(np.arange(NPIX), np.arange(NPIX), indexing="ij")
    l, m = (NPIX // 2 - ix) * CELL * ARCSEC, (iy - NPIX // 2) * CELL * ARCSEC
    return primary_beam.beam_profile(model, np.hypot(l - lp, m - mp) / ARCSEC, PB_FREQ, dish_m)


@pytest.fixture(scope="module", params=["pointing", "common"])
def observation(request):
    return request.param, _observe(request.param)


# ---------------------------------------------------------------- weight image

@pytest.mark.parametrize("model, dish", [("ACA", None), ("gaussian", 7.0)])
def test_weight_image_is_sum_of_squared_beams(model, dish):
    pts = _observe("pointing", sources=[])
    rng = np.random.default_rng(5)
    flagged = []
    for i, p in enumerate(pts):  # unequal pointing weights; some samples flagged (excluded from w_p)
        flags = rng.random(p.weight.shape) < 0.1
        w = p.weight * (1.0 + i)
        flagged.append(mosaic.Pointing(p.uvw_m, p.freq_hz, w, p.l, p.m, flags=flags, name=p.name))
    grid = mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model=model, dish_m=dish, phase_centre="pointing",
                             dec0_rad=DEC0)
    got = mosaic.mosaic_weight(flagged, grid)
    wp = [float(p.weight[~p.flags].sum()) for p in flagged]
    truth = sum(_beam(p.l, p.m, model, dish) ** 2 * w for p, w in zip(flagged, wp, strict=True))
    assert got.sumwt == pytest.approx(wp, rel=1e-12)
    assert np.max(np.abs(got.weight - truth)) <= 1e-9 * truth.max()
    assert np.allclose(got.pb, np.sqrt(truth / truth.max()), rtol=0, atol=1e-9)
    assert np.array_equal(got.mask, got.pb > grid.pblimit)
    assert got.pb.max() == 1.0 and got.skipped == ()
    assert not got.image.any()


# ---------------------------------------------------------------- prediction

def _direct_prediction(model: np.ndarray, p: mosaic.Pointing, convention: str, dec0: float) -> np.ndarray:
    """sum over the model's pixels of A_p M exp(+2 pi i b.(s - s_c) nu / c), one exponential each."""
    atten = _beam(p.l, p.m) * model
    ra_p, dec_p = sky.radec_from_lm(p.l, p.m, RA0, dec0)
    comps = []
    for ix, iy in zip(*np.nonzero(model), strict=True):
        l, m = (NPIX // 2 - ix) * CELL * ARCSEC, (iy - NPIX // 2) * CELL * ARCSEC
        if convention == "pointing":
            ra, dec = sky.radec_from_lm(l, m, RA0, dec0)
            l, m, _ = sky.lmn(ra, dec, ra_p, dec_p)
        comps.append(sky.Component("point", np.full(FREQ.size, atten[ix, iy]), l, m))
    return sky.direct_sum(p.uvw_m, p.freq_hz, comps)


def _relerr(got: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return (float(np.linalg.norm(got - truth) / np.linalg.norm(truth)),
            float(np.max(np.abs(got - truth)) / np.max(np.abs(truth))))


@pytest.mark.parametrize("convention", ["pointing", "common"])
def test_predict_matches_direct_sum_of_attenuated_model(convention):
    pts = _observe(convention, sources=[])
    grid = _grid(convention, epsilon=1e-7)
    rng = np.random.default_rng(9)
    inside = np.argwhere(mosaic.mosaic_weight(pts, grid).mask)
    model = np.zeros((NPIX, NPIX))
    for ix, iy in inside[rng.choice(len(inside), 40, replace=False)]:
        model[ix, iy] = rng.uniform(-0.2, 1.0)
    predicted = mosaic.mosaic_predict(model, pts, grid)
    for p, got in zip(pts, predicted, strict=True):
        truth = _direct_prediction(model, p, convention, DEC0)
        assert got.shape == truth.shape
        l2, peak = _relerr(got, truth)
        assert l2 <= 1e-5 and peak <= 1e-5, (p.name, l2, peak)
    if convention == "pointing":  # the test sees the rotation of north between pointing and centre
        wrong = _direct_prediction(model, pts[1], convention, 0.0)
        assert _relerr(predicted[1], wrong)[0] > 1e-4


# ---------------------------------------------------------------- PSF

def test_psf_is_the_weighted_average_of_the_pointings_psfs():
    """Direct Fourier transform of each pointing's PSF (V = 1), averaged with w_p or A_p(at)^2 w_p."""
    npix = 64
    full = _observe("common", sources=[])
    pts = [mosaic.Pointing(p.uvw_m[::10], FREQ, p.weight[::10] * (1 + i), p.l, p.m, name=p.name)
           for i, p in enumerate(full)]
    grid = mosaic.MosaicGrid(npix, npix, CELL, PB_FREQ, model="ACA", phase_centre="common", epsilon=1e-8)
    ix, iy = np.meshgrid(np.arange(npix), np.arange(npix), indexing="ij")
    l, m = ((npix // 2 - ix) * CELL * ARCSEC).ravel(), ((iy - npix // 2) * CELL * ARCSEC).ravel()
    nm1 = np.sqrt(1.0 - l * l - m * m) - 1.0
    psfs, wps = [], []
    for p in pts:
        u, v, w = (np.multiply.outer(p.uvw_m[:, k], FREQ).ravel() / 299_792_458.0 for k in range(3))
        wt = p.weight.ravel()
        phase = 2 * np.pi * (np.outer(l, u) + np.outer(m, v) + np.outer(nm1, w))
        psfs.append((np.cos(phase) @ wt).reshape(npix, npix) / wt.sum())
        wps.append(wt.sum())
    at = _lm(-12, 9)
    a_at = [float(primary_beam.beam_profile("ACA", math.hypot(at[0] - p.l, at[1] - p.m) / ARCSEC, PB_FREQ))
            for p in pts]
    for coeff, kw in ((wps, {}), ([a * a * w for a, w in zip(a_at, wps, strict=True)], {"at": at})):
        truth = sum(c * q for c, q in zip(coeff, psfs, strict=True)) / sum(coeff)
        got = mosaic.mosaic_psf(pts, grid, **kw)
        assert got[npix // 2, npix // 2] == pytest.approx(1.0, abs=1e-6)
        assert np.max(np.abs(got - truth)) <= 1e-6
    assert np.max(np.abs(mosaic.mosaic_psf(pts, grid) - mosaic.mosaic_psf(pts, grid, at=at))) > 1e-3


# ---------------------------------------------------------------- sky-flux normalisation

@pytest.mark.parametrize("model, dish, rel", [("gaussian", 7.0, 1e-5), ("ACA", None, 5e-4)])
@pytest.mark.parametrize("convention", ["pointing", "common"])
def test_dirty_mosaic_reads_the_sky_flux_at_an_isolated_source(convention, model, dish, rel):
    """D(x0) = S. With the smooth Gaussian beam the data's per-channel attenuation averages to the
    kernel's A_p(pb_freq_hz) to second order (3e-7 here); CASA's tabulated ACA beam is looked up with
    u floored to its 10000-point grid (kernels.primary_beam), steps of up to 1.3e-4 in A that the
    per-channel lookups of the data and the kernel's single lookup do not share: 5e-4 relative at
    A ~0.3 (observed 1.2e-4)."""
    grid = mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model=model, dish_m=dish, phase_centre=convention,
                             dec0_rad=DEC0, epsilon=1e-7)
    for flux, de, dn in SOURCES[1:]:
        res = mosaic.mosaic_image(_observe(convention, sources=[(flux, de, dn)], model=model, dish_m=dish), grid)
        ix, iy = _pixel(de, dn)
        assert res.image[ix, iy] == pytest.approx(flux, rel=rel), (de, dn, res.pb[ix, iy])
        assert res.flat_noise[ix, iy] == pytest.approx(flux * res.pb[ix, iy], rel=rel)
        assert np.unravel_index(np.argmax(res.flat_noise), res.image.shape) == (ix, iy)


# ---------------------------------------------------------------- deconvolution

def _clean(pts, grid, threshold=1e-3, max_major=12, cycle_fraction=0.3):
    """Cotton-Schwab: Hogbom on the flat-noise residual inside the pb mask, components to the sky
    model by 1 / pb, `mosaic_residual` as the major cycle."""
    res = mosaic.mosaic_image(pts, grid)
    psf = mosaic.mosaic_psf(pts, grid)
    model = np.zeros((NPIX, NPIX))
    for _ in range(max_major):
        peak = float(np.abs(res.flat_noise[res.mask]).max())
        if peak <= threshold:
            break
        minor = deconvolve.hogbom(res.flat_noise, psf, mask=res.mask, gain=0.1, niter=5000, threshold=threshold,
                                  cycle_threshold=cycle_fraction * peak, full_residual=False)
        model += res.to_sky(minor.model)
        res = mosaic.mosaic_residual(model, pts, grid)
    return model, res


def test_deconvolution_recovers_fluxes_and_positions(observation):
    convention, pts = observation
    grid = _grid(convention)
    model, res = _clean(pts, grid)
    assert float(np.abs(res.flat_noise[res.mask]).max()) <= 1e-3
    ix, iy = np.meshgrid(np.arange(NPIX), np.arange(NPIX), indexing="ij")
    levels = []
    for flux, de, dn in SOURCES:
        px, py = _pixel(de, dn)
        near = (ix - px) ** 2 + (iy - py) ** 2 <= 16
        got = float(model[near].sum())
        cx = float((model[near] * ix[near]).sum()) / got - px
        cy = float((model[near] * iy[near]).sum()) / got - py
        pb = float(res.pb[px, py])
        levels.append(pb)
        assert pb >= 0.2
        tol = 0.02 if pb >= 0.5 else 0.05
        assert got == pytest.approx(flux, rel=tol), (de, dn, pb, got)
        assert math.hypot(cx, cy) <= 0.1, (de, dn, cx, cy)
    assert min(levels) < 0.3 and max(levels) > 0.95  # both regimes are exercised
    assert float(np.abs(model).sum()) == pytest.approx(sum(f for f, _, _ in SOURCES), rel=0.02)  # no spurious flux


# ---------------------------------------------------------------- noise

def test_noise_follows_the_weight_image():
    pts0 = _observe("pointing", sources=[])
    grid = _grid("pointing")
    sigma = np.ones(len(pts0))
    sigma[4] = 3.0  # one pointing 3 x noisier: natural weights 1 / 9
    rng = np.random.default_rng(17)
    acc = []
    for _ in range(16):
        pts = []
        for p, s in zip(pts0, sigma, strict=True):
            shape = p.weight.shape
            vis = s * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
            pts.append(mosaic.Pointing(p.uvw_m, FREQ, np.full(shape, 1.0 / s ** 2), p.l, p.m, vis=vis))
        res = mosaic.mosaic_image(pts, grid)
        acc.append(res.image ** 2 * res.weight)
    z = np.mean(acc, axis=0)  # E[D^2] / (1 / weight)
    assert np.mean(z[res.mask]) == pytest.approx(1.0, abs=0.08)
    ix, iy = np.meshgrid(np.arange(NPIX), np.arange(NPIX), indexing="ij")
    for p in pts0:
        px, py = NPIX // 2 - p.l / ARCSEC / CELL, NPIX // 2 + p.m / ARCSEC / CELL
        near = ((ix - px) ** 2 + (iy - py) ** 2 <= (10 / CELL) ** 2) & res.mask
        assert np.mean(z[near]) == pytest.approx(1.0, abs=0.25), p.name
    assert np.allclose(res.noise[res.mask], 1 / np.sqrt(res.weight[res.mask]))
    assert np.all(np.isinf(res.noise[~res.mask]))


# ---------------------------------------------------------------- pointings without data

def test_pointing_without_data_is_skipped_and_reported():
    pts = _observe("pointing", sources=SOURCES[:2])
    grid = _grid("pointing", nthreads=1)  # multi-threaded ducc0 sums in varying order (1e-17 differences)
    empty = mosaic.Pointing(np.zeros((0, 3)), FREQ, np.zeros((0, FREQ.size)), *_lm(30, 30),
                            vis=np.zeros((0, FREQ.size), complex), name="empty")
    p = pts[2]
    flagged = mosaic.Pointing(p.uvw_m, FREQ, p.weight, p.l, p.m, vis=p.vis, flags=np.ones(p.vis.shape, bool),
                              name="all flagged")
    zero = mosaic.Pointing(p.uvw_m, FREQ, np.zeros(p.weight.shape), p.l, p.m, vis=p.vis, name="zero weight")
    extended = pts[:3] + [empty] + pts[3:] + [flagged, zero]
    ref = mosaic.mosaic_image(pts, grid)
    got = mosaic.mosaic_image(extended, grid)
    assert [(s.index, s.name) for s in got.skipped] == [(3, "empty"), (8, "all flagged"), (9, "zero weight")]
    assert got.skipped[0].reason == "no visibilities"
    assert "no unflagged" in got.skipped[1].reason and "no unflagged" in got.skipped[2].reason
    assert np.array_equal(got.image, ref.image) and np.array_equal(got.weight, ref.weight)
    assert got.sumwt[3] == got.sumwt[8] == got.sumwt[9] == 0.0 and got.sumwt[:3] == ref.sumwt[:3]
    assert np.array_equal(mosaic.mosaic_psf(extended, grid), mosaic.mosaic_psf(pts, grid))
    model = np.zeros((NPIX, NPIX))
    model[_pixel(0, 0)] = 1.0
    predicted = mosaic.mosaic_predict(model, extended, grid)
    assert predicted[3].shape == (0, FREQ.size)
    assert not predicted[8].any()  # flagged samples predict as 0
    assert np.array_equal(mosaic.mosaic_residual(model, extended, grid).image,
                          mosaic.mosaic_residual(model, pts, grid).image)
    with pytest.raises(ValueError, match="no pointing has visibilities"):
        mosaic.mosaic_image([empty, flagged], grid)


def test_grid_validation():
    with pytest.raises(ValueError, match="dec0_rad"):
        mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model="ACA", phase_centre="pointing")
    with pytest.raises(ValueError, match="phase_centre"):
        mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model="ACA", phase_centre="field", dec0_rad=DEC0)
    with pytest.raises(ValueError, match="even"):
        mosaic.MosaicGrid(100 + 1, NPIX, CELL, PB_FREQ, model="ACA", phase_centre="common")
    with pytest.raises(ValueError, match="dish_m"):
        mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model="gaussian", phase_centre="common")


# ---------------------------------------------------------------- wide band: Taylor PSFs, the beams' spectral index

def test_taylor_psf_terms_are_the_direct_sums_of_w_x_t_times_the_beams():
    """`beam_weighted_psf` with `spectral` = x^t: the t = 1 and t = 2 terms equal the direct Fourier
    sums of w_k x_k^t times each pointing's beam (CASA's psf.ttN before normalisation: every term
    later divided by the t = 0 term's value at the centre)."""
    npix = 64
    full = _observe("common", sources=[])
    pts = [mosaic.Pointing(p.uvw_m[::10], FREQ, p.weight[::10] * (1 + i), p.l, p.m, name=p.name)
           for i, p in enumerate(full)]
    grid = mosaic.MosaicGrid(npix, npix, CELL, PB_FREQ, model="ACA", phase_centre="common", epsilon=1e-8)
    x = (FREQ - PB_FREQ) / PB_FREQ
    ix, iy = np.meshgrid(np.arange(npix), np.arange(npix), indexing="ij")
    l, m = ((npix // 2 - ix) * CELL * ARCSEC).ravel(), ((iy - npix // 2) * CELL * ARCSEC).ravel()
    nm1 = np.sqrt(1.0 - l * l - m * m) - 1.0
    for t in (1, 2):
        truth = np.zeros((npix, npix))
        for p in pts:
            u, v, w = (np.multiply.outer(p.uvw_m[:, k], FREQ).ravel() / 299_792_458.0 for k in range(3))
            wt = p.weight.ravel()
            xt = np.broadcast_to(x ** t, p.weight.shape).ravel()
            phase = 2 * np.pi * (np.outer(l, u) + np.outer(m, v) + np.outer(nm1, w))
            beam = primary_beam.beam_profile("ACA", np.hypot(l - p.l, m - p.m) / ARCSEC, PB_FREQ).reshape(npix, npix)
            truth += beam * (np.cos(phase) @ (wt * xt)).reshape(npix, npix)
        got = mosaic.beam_weighted_psf(pts, grid, [PB_FREQ] * len(pts),
                                       spectral=[np.broadcast_to(x ** t, p.weight.shape) for p in pts])
        assert np.max(np.abs(got - truth)) <= 1e-7 * np.max(np.abs(truth))
    with pytest.raises(ValueError, match="one factor per pointing"):
        mosaic.beam_weighted_psf(pts, grid, [PB_FREQ] * len(pts), spectral=[x])


def test_beam_taylor_coefficients_of_a_gaussian_beam_are_analytic():
    """For a Gaussian beam whose FWHM scales as 1 / nu, A(x) = exp(ln A0 (1 + x)^2) with
    x = (nu - nu0) / nu0, so dA/dx = 2 A0 ln A0 and (1/2) d2A/dx2 = A0 (2 ln^2 A0 + ln A0) at
    x = 0 -- from the formula, at the pixels' distances; the kernel differentiates the beam model
    numerically (central differences over +-2 %: error ~ step^2 of the next derivative)."""
    grid = mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model="gaussian", dish_m=7.0, phase_centre="common")
    lp, mp = POINTINGS[2]
    a0, a1, a2 = mosaic.beam_taylor(grid, lp, mp)
    truth0 = _beam(lp, mp, model="gaussian", dish_m=7.0)
    inside = truth0 > 0.05
    ln = np.log(truth0[inside])
    assert np.max(np.abs(a0 - truth0)) <= 1e-12
    assert np.max(np.abs(a1[inside] - 2 * truth0[inside] * ln)) <= 2e-3
    assert np.max(np.abs(a2[inside] - truth0[inside] * (2 * ln ** 2 + ln))) <= 5e-3


@pytest.mark.parametrize("model, dish, rel", [("gaussian", 7.0, 2e-5), ("ACA", None, 3e-3)])
def test_wideband_prediction_sees_each_pointings_beam_at_each_frequency(model, dish, rel):
    """mosaic_predict with `spectral`: the visibilities of a flat-spectrum point source (M_0 only)
    off the pointing centres equal the direct sum of the source attenuated by each pointing's beam
    at each channel's own frequency (what the simulator does): to the beam expansion's x^3 term for
    a Gaussian beam (x = +-0.4 %: 1e-7 of the pointing's largest visibility near its centre, 8e-6
    where the source is at A ~ 0.05 and ln A is large), to the lookup steps of CASA's tabulated ACA
    beam (2e-3 at A ~ 0.05). Predicting with the beams at nu0 alone is > 3 x worse in rms."""
    grid = mosaic.MosaicGrid(NPIX, NPIX, CELL, PB_FREQ, model=model, dish_m=dish, phase_centre="common",
                             epsilon=1e-8)
    flux, de, dn = 0.7, -23, 13
    sky_model = np.zeros((2, NPIX, NPIX))
    sky_model[(0, *_pixel(de, dn))] = flux
    pts = _observe("common", sources=[(flux, de, dn)], model=model, dish_m=dish)
    x = [np.broadcast_to((FREQ - PB_FREQ) / PB_FREQ, p.weight.shape) for p in pts]
    got = mosaic.mosaic_predict(sky_model, pts, grid, spectral=x)
    fixed = mosaic.mosaic_predict(sky_model[0], pts, grid)
    err_wide = err_fixed = 0.0
    for p, v, f in zip(pts, got, fixed, strict=True):
        scale = float(np.max(np.abs(p.vis)))
        assert np.max(np.abs(v - p.vis)) <= rel * scale
        err_wide += float(np.sum(np.abs(v - p.vis) ** 2))
        err_fixed += float(np.sum(np.abs(f - p.vis) ** 2))
    assert err_fixed > 9 * err_wide  # 3 x in rms


def test_prepared_geometry_gives_the_same_images_and_is_checked(observation):
    convention, pts = observation
    grid = _grid(convention)
    prep = mosaic.prepare(pts, grid)
    a, b = mosaic.mosaic_image(pts, grid), mosaic.mosaic_image(pts, grid, prepared=prep)
    assert np.array_equal(a.weight, b.weight)  # gridding on threads: equal to rounding, not bitwise
    assert np.max(np.abs(a.image - b.image)) <= 1e-12 * np.max(np.abs(a.image))
    model = np.zeros((NPIX, NPIX))
    model[NPIX // 2 + 3, NPIX // 2 - 5] = 0.2
    for p, q in zip(mosaic.mosaic_predict(model, pts, grid), mosaic.mosaic_predict(model, pts, grid, prep),
                    strict=True):
        assert np.max(np.abs(p - q)) <= 1e-12 * max(1e-30, float(np.max(np.abs(p))))
    with pytest.raises(ValueError, match="another grid"):
        mosaic.mosaic_image(pts, _grid(convention, pblimit=0.3), prepared=prep)


def test_beam_weighted_psf_is_the_sum_of_the_pointings_psfs_times_their_beams():
    """CASA's mosaic PSF before normalisation: sum_p w_p A_p(x) P_p(x), A_p centred on the pointing
    at its beam frequency -- against direct Fourier sums of each pointing's weights and the beam
    written from `primary_beam.beam_profile` at the pixels' distances (`_beam`)."""
    npix = 64
    full = _observe("common", sources=[])
    pts = [mosaic.Pointing(p.uvw_m[::10], FREQ, p.weight[::10] * (1 + i), p.l, p.m, name=p.name)
           for i, p in enumerate(full)][:3]
    grid = mosaic.MosaicGrid(npix, npix, CELL, PB_FREQ, model="ACA", phase_centre="common", epsilon=1e-8)
    ix, iy = np.meshgrid(np.arange(npix), np.arange(npix), indexing="ij")
    l, m = ((npix // 2 - ix) * CELL * ARCSEC).ravel(), ((iy - npix // 2) * CELL * ARCSEC).ravel()
    nm1 = np.sqrt(1.0 - l * l - m * m) - 1.0
    truth = np.zeros((npix, npix))
    for p in pts:
        u, v, w = (np.multiply.outer(p.uvw_m[:, k], FREQ).ravel() / 299_792_458.0 for k in range(3))
        wt = p.weight.ravel()
        phase = 2 * np.pi * (np.outer(l, u) + np.outer(m, v) + np.outer(nm1, w))
        beam = primary_beam.beam_profile("ACA", np.hypot(l - p.l, m - p.m) / ARCSEC, PB_FREQ).reshape(npix, npix)
        truth += beam * (np.cos(phase) @ wt).reshape(npix, npix)  # w_p x (its PSF: the sum / w_p)
    got = mosaic.beam_weighted_psf(pts, grid, [PB_FREQ] * len(pts))
    assert np.max(np.abs(got - truth)) <= 1e-7 * np.max(np.abs(truth))
    with pytest.raises(ValueError, match="one frequency per pointing"):
        mosaic.beam_weighted_psf(pts, grid, [PB_FREQ])
