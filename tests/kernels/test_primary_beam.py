"""Primary-beam models against CASA's tclean ``.pb`` images, the analytic Airy patterns, the
Gaussian's definition, and the image / correction conventions.

CASA truth. Measured with CASA 6.7.0-31 (casatools/casatasks, casadata 2025.9.22) by throwaway
scripts: tclean(niter=0, specmode="mfs", gridder="standard", default vptable, weighting
"natural", pblimit=1e-3) on the shared MSs (or on copies with the ANTENNA dish diameters, the
OBSERVATION telescope name or the SPECTRAL_WINDOW frequencies changed), the ``.pb`` exported with
exportfits. Each case lists the image's frequency (FITS CRVAL of the spectral axis), its cell
(|CDELT1| in arcsec) and CASA's PB (float32, 7 digits) at pixels k = 0, 1, ... from the phase
centre along the RA axis. Below CASA's pblimit the FITS holds NaN, written here as 0. The same
scripts compared whole images: max |ours - CASA| where CASA's PB >= 0.2 is 8.5e-8 for ALMA 12 m
(Bands 3 and 6), 7 m (telescope ALMA with 7-m dishes, and telescope ACA), VLA L band and EVLA Ka
band, and below 9e-8 in 347 images of the EVLA and VLA models from 74 MHz to 60 GHz; 1.6e-4 for
telescopes CASA does not know (its fallback interpolates a 19-point table).

Analytic truth. Unblocked uniformly illuminated aperture, power (2 J1(x)/x)^2, x = pi D theta /
lambda: first zero of J1 at x = 3.8317059702 (Abramowitz & Stegun table 9.5) -> null at 1.2197
lambda/D; half power at x = 1.6163 -> FWHP 1.0290 lambda/D; first sidelobe 0.0175 (-17.57 dB) at
x = 5.1356. CASA's blocked pattern (PBMath1DAiry), with rho = D / d and its argument scale
x = u 7.016 / (1.566 60) D / 24.5 (u = r[arcmin] nu[GHz]), written out below independently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy.special import j1

from almarules.engine.facts.model import Dataset
from almarules.engine.stages.imaging import plane
from almarules.engine.stages.imaging.stage import Stage
from almarules.kernels import primary_beam as pb

C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600
FREQ = 230e9
LAM = C / FREQ

# name: (model, physical dish m, freq Hz, cell arcsec, [(pixel k, CASA PB)], (r at PB 0.5, r at PB 0.2)
# in arcsec from CASA's pixels by linear interpolation, ((k, PB) last pixel inside the cut, (k, 0) next))
CASA_IMAGES = {
    # alma_sim.ms field SIMGAL_1 spw 0, telescope ALMA, 12-m dishes
    "ALMA 12 m Band 6": ("ALMA", 12.0, 231001521244.4, 0.24999999999998399,
                         [(0, 1.0), (9, 0.9903034), (18, 0.9314002), (26, 0.8534228), (35, 0.7408931),
                          (44, 0.6140931), (53, 0.4833545), (62, 0.3583564), (70, 0.2591487), (79, 0.1656968),
                          (88, 0.09431914)], (12.9612, 18.8607), ((111, 0.006910654), (112, 0.0))),
    # X5707 (real ALMA, Band 3), 12-m dishes
    "ALMA 12 m Band 3": ("ALMA", 12.0, 111449931162.1, 0.50000000000004,
                         [(0, 1.0), (9, 0.9914301), (18, 0.9367181), (27, 0.8527969), (36, 0.7443135),
                          (46, 0.6085788), (55, 0.4823965), (64, 0.3615942), (73, 0.2540352), (82, 0.164476),
                          (91, 0.09565956)], (26.8665, 39.0914), ((115, 0.006957025), (116, 0.0))),
    # X5707 with DISH_DIAMETER 7 m, telescope ALMA (telescope ACA gives the identical image)
    "ALMA 7 m Band 3": ("ACA", 7.0, 111449931162.1, 1.00000000000008,
                        [(0, 1.0), (8, 0.9958715), (16, 0.9530851), (23, 0.8709457), (31, 0.754833),
                         (39, 0.6275443), (47, 0.4926533), (55, 0.3653024), (62, 0.2657729), (70, 0.1694942),
                         (78, 0.09669193)], (46.5623, 67.2639), ((115, 0.002110839), (116, 0.0))),
    # ngc5921.ms field 2 (N5921_2) spw 0, telescope VLA
    "VLA L band": ("VLA", 25.0, 1413421909.706, 15.000000000001199,
                   [(0, 1.0), (10, 0.9948317), (20, 0.9484673), (31, 0.8522244), (41, 0.7452735),
                    (51, 0.6225367), (61, 0.4972596), (71, 0.3758842), (82, 0.2573448), (92, 0.1678188),
                    (102, 0.09858957)], (911.7097, 1322.3584), None),
    # day2_TDEM0003 spw 0, telescope EVLA, Ka band
    "EVLA Ka band": ("EVLA", 25.0, 36312532166.15, 0.50000000000004,
                     [(0, 1.0), (12, 0.9814063), (24, 0.927164), (36, 0.84177), (48, 0.7323232),
                      (60, 0.6079303), (72, 0.4788738), (84, 0.3555426), (96, 0.2471249), (108, 0.1600632),
                      (120, 0.09627181)], (35.0185, 51.0472), None),
}
# X5707 with telescope "FOO" and 12-m dishes: CASA's fallback for a telescope it does not know
CASA_UNKNOWN_12M = (111449931164.3, 1.00000000000008,
                    [(0, 1.0), (4, 0.9946404), (8, 0.9471822), (12, 0.8592499), (16, 0.75267), (20, 0.6292897),
                     (25, 0.4716699), (29, 0.3511493), (33, 0.2449671), (37, 0.1571079), (41, 0.09028231)],
                    (24.0915, 34.9382))
# Copies of day2_TDEM0003 (telescope EVLA) and ngc5921 (VLA) retuned to other frequencies:
# band clamps, gaps between bands, CASA's doubly-set 10052 MHz entry, the VLA's NVSS beam.
CASA_RETUNED = [
    ("EVLA", 600066971.3596, 129.16699999999202, [(12, 0.7839075), (21, 0.4793703)]),  # gap: 470 MHz fit
    ("EVLA", 2001223349.484, 38.7306, [(10, 0.7707167), (16, 0.4943915), (24, 0.169197)]),  # L, clamped 2000
    ("EVLA", 4000446475.73, 19.3749999999984, [(10, 0.7693632), (16, 0.4909477), (23, 0.1943523)]),  # S: 3948
    ("EVLA", 10053121993.51, 7.7099100000012, [(10, 0.7854302), (17, 0.4754387), (24, 0.1949646)]),
    ("EVLA", 18502064950.25, 4.1891900000004005, [(10, 0.7835495), (17, 0.4745216), (24, 0.1987759)]),
    ("EVLA", 39004353138.37, 1.98717999999984, [(10, 0.7845967), (17, 0.4757975), (24, 0.1996763)]),
    ("EVLA", 45005022851.96, 1.72221999999984, [(10, 0.7784048), (17, 0.4620748), (24, 0.1834695)]),
    ("EVLA", 100011161.8934, 775.00000000008, [(11, 0.7908462), (19, 0.4816574), (28, 0.1887862)]),
    ("VLA", 3000000000.0, 25.833300000001202, [(10, 0.7888704), (17, 0.4895441), (25, 0.1845239)]),  # NVSS
    ("VLA", 8400000000.0, 9.2261900000016, [(10, 0.7953265), (17, 0.4831718), (25, 0.1727323)]),  # X band
    ("VLA", 74000000.0, 1047.30000000012, [(10, 0.7953265), (17, 0.4831718), (25, 0.1727323)]),  # 4 band
    ("VLA", 1000000000.0, 77.500000000008, [(10, 0.7888704), (17, 0.4895441), (25, 0.1845239)]),  # edge: NVSS
    ("VLA", 60000000000.0, 1.29166999999992, [(10, 0.7888704), (17, 0.4895441), (25, 0.1845239)]),  # NVSS
]
CASA_FLOAT = 1e-6  # CASA stores the beam in float32 and we compare 7 printed digits


def _ld(dish: float) -> float:
    """lambda / D in arcsec at FREQ."""
    return LAM / dish / ARCSEC


def _jinc(x: float) -> float:
    return 2 * j1(x) / x if x > 0 else 1.0


# ---------------------------------------------------------------- agreement with CASA's .pb
@pytest.mark.parametrize("name", list(CASA_IMAGES))
def test_profiles_agree_with_casa_tclean_pb(name):
    model, dish, freq, cell, samples, _, _ = CASA_IMAGES[name]
    r = np.array([k * cell for k, _ in samples])
    casa = np.array([v for _, v in samples])
    np.testing.assert_allclose(pb.beam_profile(model, r, freq, dish), casa, rtol=0, atol=CASA_FLOAT)


@pytest.mark.parametrize("name", list(CASA_IMAGES))
def test_pb_images_agree_with_casa_along_both_axes(name):
    model, dish, freq, cell, samples, _, _ = CASA_IMAGES[name]
    n = 2 * samples[-1][0] + 2
    img = pb.pb_image(n, n, cell, freq, dish, model=model)
    c = n // 2
    for k, v in samples:
        assert img[c - k, c] == pytest.approx(v, abs=CASA_FLOAT)  # l = k cells (east)
        assert img[c, c + k] == pytest.approx(v, abs=CASA_FLOAT)  # m = k cells (north)
    # the 1 % of peak down to PB 0.2 that the issue asks for, on the whole image
    casa_half, casa_fifth = CASA_IMAGES[name][5]
    r = np.hypot(*np.meshgrid((c - np.arange(n)) * cell, (np.arange(n) - c) * cell, indexing="ij"))
    inside = r < casa_fifth
    assert img[inside].min() >= 0.2 - 0.01 and img[r > casa_fifth + 2 * cell].max() < 0.2 + 0.01


@pytest.mark.parametrize("name", list(CASA_IMAGES))
def test_half_power_and_pb_02_radii_match_casa(name):
    """CASA's radii come from linear interpolation between pixels (error < 1e-3 of the radius);
    ours from the model. Old model (Airy of the physical 12 m dish): 11.45" instead of 12.96"."""
    model, dish, freq, _, _, (r_half, r_fifth), _ = CASA_IMAGES[name]
    for level, want in ((0.5, r_half), (0.2, r_fifth)):
        got = optimize.brentq(lambda r: float(pb.beam_profile(model, r, freq, dish)) - level, 0.3 * want, 1.5 * want)
        assert got == pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("name", ["ALMA 12 m Band 6", "ALMA 12 m Band 3", "ALMA 7 m Band 3"])
def test_the_beam_is_cut_at_casas_maximum_radius(name):
    model, dish, freq, cell, _, _, ((k_in, v_in), (k_out, v_out)) = CASA_IMAGES[name]
    assert float(pb.beam_profile(model, k_in * cell, freq, dish)) == pytest.approx(v_in, abs=CASA_FLOAT)
    assert float(pb.beam_profile(model, k_out * cell, freq, dish)) == v_out == 0.0
    # 1.784 deg (ALMA) / 3.568 deg (ACA) at 1 GHz, scaled as 1 / nu
    cut = (1.784 if model == "ALMA" else 3.568) * 3600 / (freq / 1e9)
    assert k_in * cell < cut < k_out * cell


@pytest.mark.parametrize("model,freq,cell,samples", CASA_RETUNED)
def test_evla_and_vla_models_across_bands_gaps_and_clamps(model, freq, cell, samples):
    r = np.array([k * cell for k, _ in samples])
    np.testing.assert_allclose(pb.beam_profile(model, r, freq, 25.0), [v for _, v in samples], rtol=0,
                               atol=CASA_FLOAT)


def test_evla_fit_frequencies_that_reproduce_casa():
    """The tabulated frequencies whose coefficients match CASA's images above (the neighbours'
    coefficients miss them by 1e-2): nearest, clamped to the band, gaps to the nearest entry."""
    assert pb.evla_fit_frequency(36312532166.15) == 37152  # Ka band, day2_TDEM0003
    assert pb.evla_fit_frequency(2001223349.484) == 2000  # L band above 2000 MHz: clamped
    assert pb.evla_fit_frequency(4000446475.73) == 3948  # S band (first match) at 4.0 GHz: clamped
    assert pb.evla_fit_frequency(600066971.3596) == 470  # between P and L
    assert pb.evla_fit_frequency(100011161.8934) == 232  # below the table
    assert pb.evla_band(36.3e9) == "A" and pb.evla_band(27e9) is None
    assert pb.EVLA_COEFFICIENTS[10052] == (1.0, -1.401e-3, 7.12e-7, -1.31e-10)  # CASA's second assignment
    assert len(pb.EVLA_COEFFICIENTS[232]) == 5 and len(pb.EVLA_COEFFICIENTS[37152]) == 4


def test_unknown_telescope_fallback_is_casas_scaled_vla_beam():
    """CASA's fallback interpolates 19 samples of its VLA beam scaled to the dish: our analytic
    pattern differs from it by < 2e-4; the Airy of the unblocked physical dish by 2e-2."""
    freq, cell, samples, (r_half, r_fifth) = CASA_UNKNOWN_12M
    r = np.array([k * cell for k, _ in samples])
    casa = np.array([v for _, v in samples])
    np.testing.assert_allclose(pb.beam_profile("airy", r, freq, 12.0), casa, rtol=0, atol=2e-4)
    unblocked = pb.beam_profile("airy", r, freq, 12.0, blockage_m=0.0)
    assert np.abs(unblocked - casa).max() > 1e-2
    got = optimize.brentq(lambda x: float(pb.beam_profile("airy", x, freq, 12.0)) - 0.5, 10, 40)
    assert got == pytest.approx(r_half, rel=1e-3)


# ---------------------------------------------------------------- the analytic patterns
@pytest.mark.parametrize("model,dish,block", [("ALMA", 10.7, 0.75), ("ACA", 6.25, 0.75)])
def test_named_airy_models_are_casas_blocked_formula(model, dish, block):
    """PBMath1DAiry: E = (rho^2 jinc(x) - jinc(rho x)) / (rho^2 - 1), rho = D / d, with x on CASA's
    scale. CASA tabulates it at u_k = k max_u / 9999 (u = r[arcmin] nu[GHz]) and takes the sample
    at or below u: halfway between samples the model is the formula at u_k."""
    rho = dish / block
    max_u = pb.beam_model(model, FREQ).max_u
    k = np.arange(0, 9000, 93)
    u_k = k * max_u / 9999
    x = u_k * 7.016 / (1.566 * 60) * dish / 24.5
    want = np.array([((rho ** 2 * _jinc(v) - _jinc(rho * v)) / (rho ** 2 - 1)) ** 2 for v in x])
    got = pb.beam_profile(model, (k + 0.5) * max_u / 9999 / (FREQ / 1e9) * 60, FREQ)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    # the ALMA beam is broader than the physical 12 m dish's: FWHP 1.162 lambda / (12 m) (CASA: 2 x 12.9612" at 231 GHz)
    if model == "ALMA":
        half = optimize.brentq(lambda r: float(pb.beam_profile("ALMA", r, FREQ)) - 0.5, 5, 20)
        assert 2 * half / _ld(12.0) == pytest.approx(1.162, abs=1e-3)


def test_casa_scale_is_pi_d_theta_over_lambda_to_0_02_percent():
    assert pb.K_CASA == pytest.approx(math.pi * (math.pi / 180 / 60) * 1e9 / C, rel=2e-4)
    assert pb.K_CASA != pytest.approx(math.pi * (math.pi / 180 / 60) * 1e9 / C, rel=1e-4)


def _field(r: float, dish: float, block: float) -> float:
    """The physical aperture's field pattern (signed): uniform annulus of radii D/2 and d/2,
    E = [A(D) jinc(pi D theta / lambda) - A(d) jinc(pi d theta / lambda)] / (A(D) - A(d))."""

    def disc(diam: float) -> float:
        return diam ** 2 * _jinc(math.pi * diam * r * ARCSEC / LAM)

    return (disc(dish) - (disc(block) if block > 0 else 0.0)) / (dish ** 2 - block ** 2)


def _first_null(dish: float, block: float) -> float:
    """First null (arcsec): the field's sign change between 0.9 and 1.4 lambda / D."""
    return optimize.brentq(_field, 0.9 * _ld(dish), 1.4 * _ld(dish), args=(dish, block), xtol=1e-12)


def _first_sidelobe(dish: float, block: float) -> tuple[float, float]:
    null = _first_null(dish, block)
    res = optimize.minimize_scalar(lambda r: -float(pb.airy(r, FREQ, dish, block)),
                                   bounds=(null, null + _ld(dish)), method="bounded", options={"xatol": 1e-10})
    return float(res.x), float(-res.fun)


def test_physical_airy_unblocked_null_half_power_and_sidelobe():
    dish = 12.0
    assert float(pb.airy(0.0, FREQ, dish, 0.0)) == 1.0
    null = 3.8317059702 / math.pi * _ld(dish)
    assert float(pb.airy(null, FREQ, dish, 0.0)) < 1e-20
    assert null / _ld(dish) == pytest.approx(1.2197, abs=1e-4)
    half = optimize.brentq(lambda r: float(pb.airy(r, FREQ, dish, 0.0)) - 0.5, 0.1 * _ld(dish), _ld(dish), xtol=1e-12)
    assert 2 * half / _ld(dish) == pytest.approx(2 * 1.6163399 / math.pi, rel=1e-6)
    r_side, p_side = _first_sidelobe(dish, 0.0)
    assert r_side / _ld(dish) == pytest.approx(5.1356223 / math.pi, rel=1e-5)
    assert 10 * math.log10(p_side) == pytest.approx(-17.57, abs=0.01)
    # CASA's form without a blockage is this pattern
    x = np.linspace(0, 12, 50)
    np.testing.assert_allclose(pb.casa_airy_power(x, 0.0), [_jinc(v) ** 2 for v in x], rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("dish,block", [(12.0, 0.75), (7.0, 0.375), (12.0, 2.4)])
def test_physical_blockage_pulls_the_null_in_and_raises_the_first_sidelobe(dish, block):
    r = np.linspace(0.01, 2.0, 50) * _ld(dish)
    np.testing.assert_allclose(pb.airy(r, FREQ, dish, block), [_field(x, dish, block) ** 2 for x in r],
                               rtol=1e-12, atol=1e-18)
    null0, null_b = _first_null(dish, 0.0), _first_null(dish, block)
    assert float(pb.airy(null_b, FREQ, dish, block)) < 1e-20
    assert null_b < null0
    assert _first_sidelobe(dish, block)[1] > _first_sidelobe(dish, 0.0)[1]
    assert _first_null(12.0, 0.75) / _ld(12.0) == pytest.approx(1.2138, abs=1e-4)


def test_gaussian_half_power_at_fwhp_over_two():
    for dish in (12.0, 7.0):
        fwhp = 1.12 * LAM / dish / ARCSEC
        assert pb.fwhp_arcsec(FREQ, dish) == pytest.approx(fwhp, rel=1e-14)
        assert float(pb.gaussian(fwhp / 2, FREQ, dish)) == pytest.approx(0.5, rel=1e-14)
        assert float(pb.beam_profile("gaussian", fwhp, FREQ, dish)) == pytest.approx(1 / 16, rel=1e-12)
    assert pb.fwhp_arcsec(230e9, 12.0) == pytest.approx(25.09, abs=0.01)  # Band 6, 12 m


# ---------------------------------------------------------------- images and their use
@pytest.mark.parametrize("model", ["ALMA", "gaussian"])
def test_pb_image_peak_and_symmetry(model):
    nx, ny, cell = 64, 48, 0.6
    img = pb.pb_image(nx, ny, cell, FREQ, 12.0, model=model)
    assert img.shape == (nx, ny)
    assert img[nx // 2, ny // 2] == 1.0
    assert np.unravel_index(np.argmax(img), img.shape) == (nx // 2, ny // 2)
    inner = img[1:, 1:]  # row / column 0 have no mirror partner on an even grid
    np.testing.assert_array_equal(inner, inner[::-1, ::-1])
    np.testing.assert_array_equal(img[nx // 2 - 10, ny // 2], img[nx // 2, ny // 2 + 10])


def test_model_names_and_their_parameters():
    assert set(pb.MODEL_NAMES) == {"ALMA", "ACA", "VLA", "EVLA", "airy", "gaussian"}
    assert pb.beam_model("ALMA", FREQ) == pb.AiryModel(10.7, 0.75, 107.04)
    assert pb.beam_model("ACA", FREQ) == pb.AiryModel(6.25, 0.75, 214.08)
    assert pb.beam_model("VLA", 1.4e9) == pb.AiryModel(25.0, 2.36, 0.8564 * 60)
    assert pb.beam_model("VLA", 3.0e9) == pb.AiryModel(24.5, 0.0, 0.8564 * 60)
    assert pb.beam_model("airy", FREQ, 12.0) == pb.AiryModel(12.0, 12.0 * 2.36 / 25, 1.1998662 * 25 * 43 / 12)
    assert "10.7 m aperture" in pb.describe("ALMA", FREQ)
    with pytest.raises(ValueError, match="positive dish_m"):
        pb.beam_model("airy", FREQ)
    with pytest.raises(ValueError, match="model must be one of"):
        pb.pb_image(40, 40, 1.0, FREQ, 7.0, model="cosine")
    with pytest.raises(ValueError, match="generic 'airy'"):
        pb.beam_model("ALMA", FREQ, 12.0, blockage_m=0.75)


def test_pbcor_of_a_flat_image_and_the_mask():
    nx, ny, cell = 64, 64, 0.8
    beam = pb.pb_image(nx, ny, cell, FREQ, 12.0, model="gaussian")
    flat = np.full((nx, ny), 2.0)
    cor = pb.pbcor(flat, beam, 0.2)
    keep = beam >= 0.2
    assert keep.any() and (~keep).any()
    np.testing.assert_allclose(cor[keep], 2.0 / beam[keep], rtol=1e-15)
    assert np.all(np.isnan(cor[~keep]))
    np.testing.assert_allclose(pb.pbcor(flat * beam, beam, 0.2)[keep], 2.0, rtol=1e-15)
    np.testing.assert_array_equal(pb.pb_mask(beam, 0.3), beam >= 0.3)


# ---------------------------------------------------------------- the rules choose the model
def _dataset(telescope, dishes) -> Dataset:
    return Dataset.model_validate({
        "telescope": telescope, "array": "12m", "ebs": [{"id": "eb1", "baselines": {"l80": 300, "l75": 250}}],
        "antennas": [{"name": f"A{i}", "dish_diameter": d} for i, d in enumerate(dishes)],
        "spws": [{"id": 0, "nchan": 64, "start_frequency": "230.0 GHz", "channel_width": "31.25 MHz",
                  "intents": ["TARGET"]}],
        "fields": [{"id": 0, "name": "T", "intents": ["TARGET"], "pointings": [{}]}]})


@pytest.mark.parametrize("telescope,dishes,model", [("ALMA", [12, 12], "ALMA"), ("ALMA", [12, 7], "ACA"),
                                                    ("VLA", [25], "VLA"), ("EVLA", [25, 25], "EVLA"),
                                                    ("MeerKAT", [13.5], "airy"), (None, [12], "airy")])
def test_the_rules_choose_casas_model_for_the_imaging_stage(cycle4, tmp_path, telescope, dishes, model):
    stage = Stage(cycle4, _dataset(telescope, dishes), [], tmp_path)
    job = stage.job("T.TARGET.0.mfs")
    assert job.pb_model == model and job.settings["pb_model"].source.startswith("rules/alma/cycle4/clean.rules:")
    notes = plane.pb_notes(job, stage.dish())
    assert bool(notes) == (model == "airy") and all("generic model airy" in n for n in notes)


def test_the_imaging_stages_alma_pb_is_casas(cycle4, tmp_path):
    """Fails on the model as it was (Airy of the physical 12 m dish: PB 0.5 at 11.45")."""
    stage = Stage(cycle4, _dataset("ALMA", [12, 12]), [], tmp_path)
    job = stage.job("T.TARGET.0.mfs")
    _, dish, freq, _, _, (r_half, r_fifth), _ = CASA_IMAGES["ALMA 12 m Band 6"]
    beam = plane.pb_plane(job, freq, stage.dish())
    c, cell = job.imsize // 2, job.cell_arcsec
    prof = beam[c - np.arange(c), c]
    r = np.arange(c) * cell
    for level, want in ((0.5, r_half), (0.2, r_fifth)):
        k = int(np.argmax(prof < level))
        got = r[k - 1] + (prof[k - 1] - level) / (prof[k - 1] - prof[k]) * cell
        assert got == pytest.approx(want, abs=0.01)
    assert job.imsize * cell / 2 > r_fifth  # the image reaches CASA's PB 0.2


def test_the_stages_mfs_pb_is_at_tcleans_reference_frequency(cycle4, shared_ms, tmp_path):
    """alma_sim SIMGAL_1, spws 0 and 1 together (230.0-232.0 and 228.88-229.12 GHz; 64 + 120
    channels). CASA 6.7 tclean (mfs, same settings as above, cell 0.25") puts its .pb at 230.442924
    GHz LSRK, the mid point of the selected edges, with PB 0.5 at 12.9917" and 0.2 at 18.9068"
    (linear interpolation between its pixels). At the mean channel frequency (229.696 GHz, as the
    stage took it) these radii are 0.33 % larger: 0.04" and 0.06"."""
    from astropy.io import fits

    from almarules.engine.evaluate.api import load_dataset
    from almarules.engine.stages.imaging.stage import make_image

    ms = shared_ms("alma_sim.ms")
    stage = Stage(cycle4, load_dataset([ms]), [ms], tmp_path, sets=["niter=0"])
    rec = make_image(stage, "SIMGAL_1.TARGET.0_1.cont")
    assert rec.status == "uncalibrated", rec.error  # raw DATA: the PB does not depend on it
    assert rec.parameters["pb_model"].value == "ALMA" and not any("primary beam" in w for w in rec.warnings)
    beam = np.squeeze(fits.getdata(next(tmp_path.glob("*.pb.fits")))).T  # FITS (y, x) -> (x, y)
    n, cell = beam.shape[0], float(rec.parameters["cell"].value)
    prof = beam[n // 2 - np.arange(n // 2), n // 2].astype(np.float64)
    r = np.arange(n // 2) * cell
    for level, want in ((0.5, 12.9917), (0.2, 18.9068)):
        k = int(np.argmax(prof < level))
        got = r[k - 1] + (prof[k - 1] - level) / (prof[k - 1] - prof[k]) * cell
        assert got == pytest.approx(want, abs=0.01)
