"""A cube of two execution blocks observed 20 days apart: their channels differ in LSRK by ~1.7
channels (the Earth's orbital motion towards the source changed), so matching channels by index
would put each EB's line at a different frequency. The imaging stage regrids the second EB onto
the first's LSRK channels (`kernels.regrid`, linear, as tclean): the line of known LSRK frequency
(simulator; no noise, no corruptions) lands where the truth puts it, and is not broadened beyond
what linear interpolation does: its t (1 - t) <= 1/4 channel^2 on the regridded EB's share of the
weight, at most 2/3 (an interpolated sample's variance is ((1 - t)^2 + t^2) sigma^2 >= sigma^2 / 2).""" 

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.optimize import curve_fit

from almarules.engine.evaluate.api import load_dataset
from almarules.engine.ms import visibilities as msdata
from almarules.engine.products.fits import read_image_wcs
from almarules.engine.simulate import parse_sim_config, simulate
from almarules.engine.stages.imaging import data as vdata
from almarules.engine.stages.imaging.stage import Stage, make_images
from imaging_checks import plane

REPO = Path(__file__).resolve().parents[4]
SMALL = REPO / "examples" / "sim" / "alma_12m_band6_small.yaml"
C_KMS = 299_792.458
REST, VELOCITY, FWHM_KMS = 230.538e9, 2000.0, 30.0  # the config's line
KEY = "SIMGAL_1.TARGET.1.cube"


@pytest.fixture(scope="module")
def two_ebs(tmp_path_factory):
    data = copy.deepcopy(yaml.safe_load(SMALL.read_text()))
    data["schedule"].update({"execution_blocks": 2, "eb_gap": "1723680 s"})  # 19.95 days: the same hour angle
    data["corruptions"] = {"enabled": False}
    data["noise"] = {"enabled": False}
    data["flags"] = {}
    target = next(f for f in data["fields"] if f["name"] == "SIMGAL_1")
    target["components"] = [{"shape": "point", "flux": "0 Jy", "lines": [
        {"peak": "1 Jy", "rest_frequency": f"{REST / 1e9} GHz", "velocity": f"{VELOCITY} km/s",
         "fwhm": f"{FWHM_KMS} km/s"}]}]
    root = tmp_path_factory.mktemp("cube_lsrk")
    out = simulate(parse_sim_config(data, "two"), root / "two.ms")
    return [Path(m) for m in out["ms"]], root


def _gauss(x, a, x0, s, c):
    return a * np.exp(-0.5 * ((x - x0) / s) ** 2) + c


def _line(ms: list[Path], root: Path, cycle4, name: str):
    """(fitted centre Hz, sigma Hz, channel width Hz, record) of the line at the phase centre."""
    stage = Stage(cycle4, load_dataset(ms), ms, root / name, sets=["tlimit=0.5"], extra_products=True,
                  data_calibrated=True)
    (rec,) = make_images(stage, [KEY])
    assert rec.status == "ok", rec.error
    (path,) = (root / name).glob("*.spw1.cube.I.image.fits")
    wcs, head = read_image_wcs(path)
    nchan = int(head["NAXIS3"])
    freq = head["CRVAL3"] + (np.arange(nchan) + 1 - head["CRPIX3"]) * head["CDELT3"]
    n = int(rec.parameters["imsize"].value) // 2
    spec = np.array([plane(path, k)[n, n] for k in range(nchan)])
    k0 = int(np.argmax(spec))
    p, _ = curve_fit(_gauss, freq, spec, p0=[spec[k0], freq[k0], 2.5 * abs(head["CDELT3"]), 0.0])
    return p[1], abs(p[2]), abs(head["CDELT3"]), rec


def test_two_ebs_20_days_apart_are_regridded_onto_one_lsrk_axis(two_ebs, cycle4):
    ms, root = two_ebs
    sel = vdata.select_channels(ms, "SIMGAL_1", [1], "cube", 1)
    width = abs(float(msdata.spw_axis(ms[0], 1).width[0]))
    shift = abs(sel.spws[0].doppler - sel.spws[1].doppler) * REST / width
    assert shift > 1.0  # the EBs' channels are more than a channel apart in LSRK: index matching would be wrong
    truth = REST * (1 - VELOCITY / C_KMS)  # radio velocity, LSRK
    centre, sigma, chan, rec = _line(ms, root, cycle4, "both")
    assert any("regridded onto the cube's LSRK channels" in w for w in rec.warnings)
    assert abs(centre - truth) < 0.05 * chan, (centre - truth) / chan
    alone = _line(ms[:1], root, cycle4, "first")
    assert abs(alone[0] - truth) < 0.05 * chan
    # the line is not broadened beyond linear interpolation's (module docstring)
    assert sigma ** 2 <= alone[1] ** 2 + 2 / 3 * 0.25 * chan ** 2
    # matched by index, EB 2's line would sit `shift` channels away: the combined line's centre by ~shift / 2
    assert shift / 2 * chan > 10 * abs(centre - truth)
    assert math.isfinite(sigma)
