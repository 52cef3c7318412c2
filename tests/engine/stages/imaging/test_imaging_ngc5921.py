"""The imaging stage on the real VLA NGC 5921 data (../shared/data/ngc5921.ms).

The MS holds raw, uncalibrated DATA. Imaged as it is, nothing may crash (real flags, relative
WEIGHT_SPECTRUM weights, autocorrelations, TAI times) and the records must say the data were not
calibrated. Calibrated by `tests/vlacal.py` (bandpass and per-integration gains on the
calibrators, 3C286 at 15.01 Jy from Perley & Butler 2017, 1445+099 bootstrapped to ~2.53 Jy),
the calibrator images are point sources at the phase centre (within 0.05 pixel: residual phase
errors of ~1 degree shift a point by far less), with the flux of their model within 1 % (the
mfs image averages the spectrum over 1.5 MHz), and a beam near the rules' planning estimate
0.574 lambda / L80 (within 30 %: L80 is a crude proxy for the natural-to-Briggs beam).
"""

from __future__ import annotations

import json
import math

import pytest

from almarules.engine.evaluate.api import default_rules, load_dataset, load_program
from almarules.engine.stages.imaging.stage import Stage, make_images
from imaging_checks import fit_peak, plane

INTENTS = "examples/intents/ngc5921.yaml"
CALIBRATORS = ("1331+30500002_0.BANDPASS.0.mfs", "1445+09900002_0.PHASE.0.mfs")


def _stage(ms, out, repo):
    facts = load_dataset([ms], repo / INTENTS)
    return Stage(load_program(default_rules()), facts, [ms], out)


def test_raw_data_image_without_crashing_and_say_so(shared_ms, tmp_path, repo):
    stage = _stage(shared_ms("ngc5921.ms"), tmp_path, repo)
    records = make_images(stage, stage.keys())
    assert [r.key for r in records] == list(CALIBRATORS) + ["N5921_2.TARGET.0.mfs", "N5921_2.TARGET.0.cont",
                                                             "N5921_2.TARGET.0.cube"]
    for r in records:
        assert r.status == "uncalibrated", r.error  # raw data: not "ok" (issue 10)
        assert r.concerns[0].startswith("uncalibrated: the visibilities were read from the DATA column")
        assert r.data.column == "DATA" and any("read DATA instead" in w for w in r.warnings)
        assert r.data.rows > 0 and 0 <= r.data.flagged_fraction < 1
    cube = records[-1]
    assert len(cube.channels) == 63 and cube.weblog.dr_correction.value == 1.0  # VLA: no DR correction


@pytest.fixture(scope="module")
def calibrated_images(ngc5921_calibrated, tmp_path_factory, repo):
    out = tmp_path_factory.mktemp("ngc5921_images")
    stage = _stage(ngc5921_calibrated, out, repo)
    records = {r.key: r for r in make_images(stage, list(CALIBRATORS))}
    summary = json.loads((ngc5921_calibrated.parent / f"{ngc5921_calibrated.name}.calibration.json").read_text())
    return records, out, summary, stage.dec


@pytest.mark.parametrize("key", CALIBRATORS)
def test_calibrators_are_points_at_the_phase_centre_with_a_sensible_beam(calibrated_images, key):
    records, out, summary, dec = calibrated_images
    rec = records[key]
    assert rec.status == "ok" and rec.data.column == "CORRECTED_DATA"
    field = key.split(".")[0]
    abbrev = {"BANDPASS": "bp", "PHASE": "ph"}[key.split(".")[1]]
    img = plane(out / f"ngc5921.{field}_{abbrev}.spw0.mfs.I.pbcor.fits")
    n = img.shape[0]
    peak, x, y = fit_peak(img, (n // 2, n // 2), 3)
    assert math.hypot(x - n // 2, y - n // 2) < 0.05
    want = summary["flux_3c286_jy"]["value"] if key.startswith("1331") else summary["flux_1445_jy"]
    assert peak == pytest.approx(want, rel=0.01)
    planned = dec.value(f"image[{key}].beam").value  # arcsec, 0.574 lambda / L80
    assert 0.7 * planned < rec.weblog.beam_minor.value <= rec.weblog.beam_major.value < 1.3 * planned
    assert rec.weblog.qa_colour.value == "green"
