"""Mosaics and multi-term images against the simulator's truth (issue 16).

The sky: `examples/sim/aca_7m_band3_mosaic_wideband.yaml` -- the 7-m array, a 7-pointing
hexagonal mosaic (50 arcsec spacing, about half the ACA beam's FWHP at 97 GHz) observed in two
execution blocks, two 2-GHz spws 14 GHz apart (16 % fractional bandwidth), five point sources of
known flux (at 97 GHz) and spectral index: one on the central pointing, three between pointings
(mosaic response 0.8-0.9) and one beyond the outer pointings (response ~0.35). Thermal noise, no
corruptions (DATA is calibrated). The simulator attenuates each pointing's sky with the beam the
imager corrects with (ACA), at each channel's frequency.

Images: the spw 0 mfs image (Hogbom on the joint mosaic) and the spw 0+1 continuum image, which
the current rules clean with mtmfs, nterms 2 (fractional bandwidth > 10 %). The shipped
threshold is shallow here (2 sigma x the 7-m DR correction ~ 110): the tests clean to ~2 sigma
with --set tlimit, as in the single-field truth tests, so that the kernels' accuracy is measured.

Tolerances (the issue's): positions within 0.1 pixel (fitted on the non-pbcor image: dividing by
the mosaic pb shifts an off-centre source outwards); pbcor fluxes within 2 % where the mosaic
response is >= 0.5 and 5 % down to 0.2 (fitted peak / pb there); the mtmfs tt0 flux at the
reference frequency within 1 % for the bright sources; alpha within 0.05 where that is a fair test,
i.e. where its noise (alpha.error, ~ 1 / (SNR x 0.078) for this band) is below 0.015 -- elsewhere
within 0.05 + 3 x alpha.error: at SNR 100-300 the noise alone is 0.03-0.1.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from almarules.engine.evaluate.api import load_dataset, load_program
from almarules.engine.simulate import parse_sim_config, simulate
from almarules.engine.stages.imaging.stage import Stage, make_images
from imaging_checks import expected_pixel, fit_peak, plane

REPO = Path(__file__).resolve().parents[4]
CONFIG = REPO / "examples" / "sim" / "aca_7m_band3_mosaic_wideband.yaml"
MFS, CONT = "M_WIDE.TARGET.0.mfs", "M_WIDE.TARGET.0_1.cont"
REF_HZ = 97e9  # the config's reference frequency: component fluxes are given there


def _sources() -> list[tuple[float, float, float, float]]:
    """(flux Jy at REF_HZ, east arcsec, north arcsec, spectral index) of the mosaic's components."""
    target = next(f for f in yaml.safe_load(CONFIG.read_text())["fields"] if f["name"] == "M_WIDE")
    out = []
    for c in target["components"]:
        east, north = (float(str(v).split()[0]) for v in c.get("offset", ["0 arcsec", "0 arcsec"]))
        out.append((float(str(c["flux"]).split()[0]), east, north, float(c.get("spectral_index", 0.0))))
    return out


SOURCES = _sources()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    data = copy.deepcopy(yaml.safe_load(CONFIG.read_text()))
    data["corruptions"] = {"enabled": False}
    root = tmp_path_factory.mktemp("mosaic_truth")
    out = simulate(parse_sim_config(data, "wide"), root / "wide.ms")
    ms = [Path(m) for m in out["ms"]]
    assert len(ms) == 2
    program = load_program([REPO / "rules" / "alma" / "current"])
    stage = Stage(program, load_dataset(ms), ms, root / "out", sets=["tlimit=0.02"], extra_products=True,
                  data_calibrated=True)
    recs = {r.key: r for r in make_images(stage, [MFS, CONT])}
    for r in recs.values():
        assert r.status == "ok", r.error
    return recs, root / "out"


def _product(out: Path, key: str, kind: str) -> Path:
    stem = {MFS: "spw0.mfs", CONT: "spw0_1.cont"}[key]
    (p,) = out.glob(f"*.M_WIDE_sci.{stem}.I.{kind}.fits")
    return p


def _bilinear(img: np.ndarray, x: float, y: float) -> float:
    i, j = int(math.floor(x)), int(math.floor(y))
    fx, fy = x - i, y - j
    return float(img[i, j] * (1 - fx) * (1 - fy) + img[i + 1, j] * fx * (1 - fy) + img[i, j + 1] * (1 - fx) * fy
                 + img[i + 1, j + 1] * fx * fy)


def _measure(rec, out: Path, image_kind: str, pb_kind: str):
    """Per source: (flux, alpha, true flux at the image's centre frequency, pb, fitted flux / pb,
    pixel offset from the truth)."""
    n, cell = int(rec.parameters["imsize"].value), float(rec.parameters["cell"].value)
    image, pb = plane(_product(out, rec.key, image_kind)), plane(_product(out, rec.key, pb_kind))
    nu = rec.weblog.centre_frequency.value * 1e9
    beam_px = rec.weblog.beam_minor.value / cell
    rows = []
    for flux, east, north, alpha in SOURCES:
        ex, ey = expected_pixel(east, north, n, cell)
        peak, x, y = fit_peak(image, (ex, ey), beam_px)
        response = _bilinear(pb, x, y)
        rows.append((flux, alpha, flux * (nu / REF_HZ) ** alpha, response, peak / response, math.hypot(x - ex, y - ey),
                     (x, y)))
    return rows


@pytest.mark.parametrize("key, image_kind, pb_kind", [(MFS, "image", "pb"), (CONT, "image.tt0", "pb.tt0")])
def test_positions_and_pbcor_fluxes_across_the_mosaic(made, key, image_kind, pb_kind):
    recs, out = made
    rows = _measure(recs[key], out, image_kind, pb_kind)
    assert min(r[3] for r in rows) < 0.5  # the edge source is tested at the lower tolerance
    for flux, alpha, true, response, got, offset, _ in rows:
        assert offset < 0.1, (flux, offset)
        assert response >= 0.2
        assert got == pytest.approx(true, rel=0.02 if response >= 0.5 else 0.05), (flux, response, got, true)


def test_mtmfs_flux_at_the_reference_frequency_and_spectral_index(made):
    recs, out = made
    rec = recs[CONT]
    assert rec.parameters["deconvolver"].value == "mtmfs" and rec.parameters["nterms"].value == 2
    alpha, error = plane(_product(out, CONT, "alpha")), plane(_product(out, CONT, "alpha.error"))
    tested_strictly = 0
    for flux, true_alpha, true, response, got, _, (x, y) in _measure(rec, out, "image.tt0", "pb.tt0"):
        if flux >= 0.3:  # SNR > 700 at the reference frequency
            assert got == pytest.approx(true, rel=0.01), (flux, got, true)
        a, e = alpha[int(round(x)), int(round(y))], error[int(round(x)), int(round(y))]
        assert np.isfinite(a) and np.isfinite(e) and e > 0
        if e < 0.015:
            tested_strictly += 1
            assert abs(a - true_alpha) <= 0.05, (flux, a, true_alpha, e)
        else:
            assert abs(a - true_alpha) <= 0.05 + 3 * e, (flux, a, true_alpha, e)
    assert tested_strictly >= 2
    # alpha is blank where the tt0 image is below the rules' cut-off (a tenth of the residual's maximum)
    assert np.isnan(alpha).sum() > 0.5 * alpha.size


def test_mosaic_products_and_record(made):
    recs, out = made
    for key in (MFS, CONT):
        rec = recs[key]
        assert rec.data.pointings == 7
        assert rec.data.phase_centre is not None and rec.data.phase_centre[2] == "J2000"
        assert rec.data.phase_centre[1] == pytest.approx(-22.0, abs=1e-6)  # the pointings are symmetric about it
        assert "rules/alma/cycle4/imaging.rules:" in rec.parameters["phasecenter"].source
        assert rec.parameters["phasecenter"].value == "pointings_centre"
        assert sorted(rec.data.measurement_sets) == sorted(rec.data.field_ids)
    kinds = {p.kind for p in recs[CONT].products}
    assert {"tt0.pbcor", "pb.tt0", "alpha", "alpha.error", "image.tt0", "image.tt1", "residual.tt1", "model.tt1",
            "psf.tt2", "weight"} <= kinds
    assert {"pbcor", "pb", "image", "weight"} <= {p.kind for p in recs[MFS].products}
    weight, pb = plane(_product(out, MFS, "weight")), plane(_product(out, MFS, "pb"))
    # pb = sqrt(weight / max weight): the mosaic response (kernels.mosaic)
    assert np.allclose(pb, np.sqrt(weight / weight.max()), atol=1e-6)


def test_the_phase_centre_is_the_centre_of_the_pointings_extent():
    """An L-shaped set of pointings: the centre is the midpoint of their extent in RA and Dec (not
    their mean, and not the first), computed in the SIN projection about the first pointing."""
    from almarules.engine.stages.imaging.data import PointingRows
    from almarules.engine.stages.imaging.joint import pointings_centre

    dec0 = -30.0
    step = 40.0 / 3600  # deg
    ra_step = step / math.cos(math.radians(dec0))
    rows = [PointingRows(150.0 + i * ra_step, dec0, "J2000", []) for i in range(3)]
    rows.append(PointingRows(150.0, dec0 + 2 * step, "J2000", []))
    ra, dec = pointings_centre(rows)
    assert (ra - 150.0) * 3600 * math.cos(math.radians(dec)) == pytest.approx(40.0, abs=0.01)
    assert (dec - dec0) * 3600 == pytest.approx(40.0, abs=0.01)
    mean_dec = sum(r.dec_deg for r in rows) / len(rows)
    assert abs(dec - mean_dec) * 3600 > 15  # not the mean


def test_a_pointing_without_data_is_left_out_and_reported(tmp_path):
    """Every row of one pointing flagged: the mosaic is made of the others, and the record names
    the pointing left out (not an error)."""
    from casacore.tables import table

    data = copy.deepcopy(yaml.safe_load(CONFIG.read_text()))
    data["corruptions"] = {"enabled": False}
    data["schedule"].update({"execution_blocks": 1, "duration": "15 min"})
    (tmp_path / "sim").mkdir()
    ms = Path(simulate(parse_sim_config(data, "one"), tmp_path / "sim" / "one.ms")["ms"][0])
    with table(str(ms), readonly=False, ack=False) as t:
        field = t.getcol("FIELD_ID")
        flag = t.getcol("FLAG")
        flag[field == 5] = True
        t.putcol("FLAG", flag)
    program = load_program([REPO / "rules" / "alma" / "current"])
    stage = Stage(program, load_dataset([ms]), [ms], tmp_path / "out", data_calibrated=True)
    (rec,) = make_images(stage, [MFS])
    assert rec.status == "ok", rec.error
    left = [w for w in rec.warnings if "left out of the mosaic" in w]
    assert len(left) == 1 and "field 5" in left[0], rec.warnings
    assert rec.data.pointings == 7
