"""Every image of the plan of the simulated ALMA dataset (../shared/data/alma_sim.ms), made by
the imaging stage with the shipped cycle4 rules, against the simulator's truth file.

The MS holds only DATA corrupted by antenna gains and bandpasses; the fixture
`alma_sim_calibrated` divides out the true corruptions (tests/truthcal.py) into CORRECTED_DATA,
which the stage reads. Tolerances: 1 % for calibrator fluxes (S/N > 3000, where the 0.3 %
spectral-index curvature over an spw is negligible); for fainter sources 1 % plus 5 sigma of
the image's own noise (its theoretical sensitivity) over the flux; positions of points within
0.1 pixel; the Gaussian's integrated flux within 2 % plus 3 x the noise of a sum over its disc.
"""

from __future__ import annotations

import math
from pathlib import Path

import astropy.units as u
import erfa
import numpy as np
import pytest

from almarules.engine.products.contdat import parse_contdat
from almarules.engine.evaluate.api import default_rules, load_dataset, load_program
from almarules.engine.stages.imaging.record import ImageRecord
from almarules.engine.stages.imaging.stage import Stage, make_images
from almarules.engine.products.fits import read_image, read_image_wcs, read_provenance
from almarules.kernels.beam import Beam
from almarules.kernels.masks import beam_area_pixels
from imaging_checks import ALMA_SIM_CONT_DAT, expected_pixel, fit_peak, integrated, plane

REPO = Path(__file__).resolve().parents[4]

MOUS = "almarules-sim-band6"
CONT_DAT = ALMA_SIM_CONT_DAT  # the MS has no MOUS id: names start with the project code


@pytest.fixture(scope="module")
def made(alma_sim_calibrated, tmp_path_factory):
    out = tmp_path_factory.mktemp("alma_sim_images")
    ms = alma_sim_calibrated
    stage = Stage(load_program(default_rules()), load_dataset([ms]), [ms], out, extra_products=True,
                  contdat=parse_contdat(CONT_DAT))
    records = {r.key: r for r in make_images(stage, stage.keys())}
    return records, out


def _file(out: Path, key: str, kind: str) -> Path:
    field, intent, spws, mode = key.rsplit(".", 3)
    abbrev = {"TARGET": "sci", "PHASE": "ph", "BANDPASS": "bp", "CHECK": "chk"}[intent]
    return out / f"{MOUS}.{field}_{abbrev}.spw{spws}.{mode}.I.{kind}.fits"


def _flux(sky: dict, nu: float) -> float:
    return sky["flux_jy_at_ref"] * (nu / 230e9) ** sky["spectral_index"]


def test_every_image_of_the_plan_is_made_with_its_products_and_record(made):
    records, out = made
    assert len(records) == 11
    for key, rec in records.items():
        assert rec.status == "ok", (key, rec.error)
        for kind in ("pbcor", "pb"):
            assert _file(out, key, kind).exists(), (key, kind)
        saved = ImageRecord.model_validate_json(_file(out, key, "record").with_suffix(".json").read_text())
        assert saved.weblog.threshold.value == pytest.approx(rec.weblog.threshold.value)
        assert rec.data.column == "CORRECTED_DATA"
        assert rec.weblog.qa_colour.value == "green", key
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("cal", [0, 1, 2])
def test_calibrators_at_the_phase_centre_with_their_flux(made, truth, cal):
    records, out = made
    sky = truth["sky_model"]["calibrators"][cal]
    intent = {0: "BANDPASS", 1: "PHASE", 2: "CHECK"}[cal]
    for spw in (0, 1):
        key = f"{sky['field']}.{intent}.{spw}.mfs"
        rec = records[key]
        n = int(rec.parameters["imsize"].value)
        peak, x, y = fit_peak(plane(_file(out, key, "image")), (n // 2, n // 2), 5)
        nu = rec.weblog.centre_frequency.value * 1e9
        want = _flux(sky, nu)
        sigma = rec.weblog.sensitivity.value * 1e-3
        assert peak == pytest.approx(want, rel=0.01 + 5 * sigma / want), key
        assert math.hypot(x - n // 2, y - n // 2) < 0.1, key


def test_target_continuum_point_and_gaussian(made, truth):
    records, out = made
    key = "SIMGAL_1.TARGET.0_1.cont"
    rec = records[key]
    assert rec.data.channel_selection == "cont.dat ranges"
    assert 64 < rec.data.channels < 64 + 120
    point, gauss, _ = truth["sky_model"]["target"]["components"]
    n, cell = int(rec.parameters["imsize"].value), float(rec.parameters["cell"].value)
    sigma = rec.weblog.sensitivity.value * 1e-3
    image = plane(_file(out, key, "image"))
    peak, x, y = fit_peak(image, (n // 2, n // 2), 3)
    assert peak == pytest.approx(point["flux_jy_at_ref"], rel=0.01 + 5 * sigma / point["flux_jy_at_ref"])
    assert math.hypot(x - n // 2, y - n // 2) < 0.1
    assert rec.stats.peak_pixel == (n // 2, n // 2)
    assert rec.stats.rms_outside_mask * 1e3 == pytest.approx(rec.weblog.rms.value, rel=1e-9)
    # the Gaussian: clean components and residual in a disc of 1.5 arcsec about its true position
    beam = Beam(rec.weblog.beam_major.value, rec.weblog.beam_minor.value, rec.weblog.beam_pa.value)
    centre = expected_pixel(gauss["offset_east_arcsec"], gauss["offset_north_arcsec"], n, cell)
    radius = 1.5 / cell
    model, residual = plane(_file(out, key, "model")), plane(_file(out, key, "residual"))
    pb = plane(_file(out, key, "pb"))[int(round(centre[0])), int(round(centre[1]))]
    flux = integrated(model, residual, centre, radius, beam, cell) / pb
    beams_in_disc = math.pi * radius ** 2 / beam_area_pixels(beam, cell)
    tol = 0.02 + 3 * sigma * math.sqrt(beams_in_disc) / gauss["integrated_flux_jy_at_ref"]
    assert flux == pytest.approx(gauss["integrated_flux_jy_at_ref"], rel=tol)
    ix, iy = np.indices(model.shape)
    disc = (ix - centre[0]) ** 2 + (iy - centre[1]) ** 2 <= radius ** 2
    w = np.where(disc, model, 0.0)
    cx, cy = (w * ix).sum() / w.sum(), (w * iy).sum() / w.sum()
    assert math.hypot(cx - centre[0], cy - centre[1]) < 0.5  # a resolved source at S/N ~ 50: half a pixel


def test_line_in_the_cube_at_its_lsrk_frequency(made, truth):
    records, out = made
    key = "SIMGAL_1.TARGET.1.cube"
    rec = records[key]
    line = truth["sky_model"]["target"]["components"][2]
    cube, head, beams = read_image(_file(out, key, "image"))
    n = cube.shape[1]
    centre = cube[:, n // 2, n // 2]
    k = int(np.argmax(centre))
    wcs, _ = read_image_wcs(_file(out, key, "image"))
    freq = wcs.spectral.pixel_to_world(k).to_value(u.Hz)
    width = abs(head["CDELT3"])
    assert head["SPECSYS"] == "LSRK"
    assert width == pytest.approx(1.953125e6, rel=1e-4)
    assert abs(freq - line["centre_freq_lsrk_hz"]) <= width
    sigma = rec.weblog.sensitivity.value * 1e-3
    want = line["peak_jy"] + truth["sky_model"]["target"]["components"][0]["flux_jy_at_ref"]
    assert centre[k] == pytest.approx(want, abs=5 * sigma + 0.01 * want)
    assert len(beams) == cube.shape[0] == len(rec.channels) == 120
    assert rec.stats.peak_channel == k and rec.stats.peak_offset_arcsec == (0.0, 0.0)
    assert head["CASAMBM"] is True


def test_wcs_beam_and_provenance_headers(made, truth):
    records, out = made
    key = "SIMGAL_1.TARGET.0.mfs"
    rec = records[key]
    data, head, beams = read_image(_file(out, key, "pbcor"))
    field = next(f for f in truth["fields"] if f["name"] == "SIMGAL_1")
    # the MS's J2000 is the dynamical one: ICRS by the IAU 2000 frame bias (erfa), as CASA converts
    a, d = np.radians(field["ra_deg"]), np.radians(field["dec_deg"])
    v = erfa.bp00(2451545.0, 0.0)[0].T @ np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    ra_icrs, dec_icrs = np.degrees(np.arctan2(v[1], v[0])) % 360.0, np.degrees(np.arcsin(v[2]))
    assert head["CTYPE1"] == "RA---SIN" and head["CTYPE2"] == "DEC--SIN" and head["RADESYS"] == "ICRS"
    assert head["CRVAL1"] == pytest.approx(ra_icrs, abs=1e-9)
    assert head["CRVAL2"] == pytest.approx(dec_icrs, abs=1e-9)
    assert head["CDELT2"] * 3600 == pytest.approx(rec.parameters["cell"].value)
    assert head["BUNIT"] == "Jy/beam" and head["CTYPE4"] == "STOKES" and head["CRVAL4"] == 1
    assert beams[0].bmaj_arcsec == pytest.approx(rec.weblog.beam_major.value, rel=1e-6)
    assert head["CRVAL3"] == pytest.approx(rec.weblog.centre_frequency.value * 1e9)
    prov = read_provenance(head)
    assert prov["rules_sha256"] == rec.rules_sha256
    assert "rules/alma/cycle4/imaging.rules:" in prov["param.cell.rule"]
    assert _rule_text(prov["param.cell.rule"]).startswith("derive image.cell = ")
    assert prov["threshold_mJy"] == pytest.approx(rec.weblog.threshold.value)
    pb, _, _ = read_image(_file(out, key, "pb"))
    assert pb[0, data.shape[1] // 2, data.shape[2] // 2] == pytest.approx(1.0)
    assert np.isnan(data[0, 0, 0])  # beyond the pblimit


def _rule_text(source: str) -> str:
    """The first line of the rule at ``.../FILE.rules:LINE:COL`` (sources name rules by line, which
    edits elsewhere in the file move)."""
    path, line, _ = source.rsplit(":", 2)
    full = Path(path) if Path(path).is_absolute() else REPO / path
    return full.read_text().splitlines()[int(line) - 1]
