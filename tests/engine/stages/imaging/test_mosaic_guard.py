"""A mosaic is not imaged as if it were one pointing: until joint mosaic imaging lands (issue 16)
the imaging stage refuses it with its reason, rather than gridding the pointings' visibilities,
each phased on its own centre, onto one grid (a superposition of shifted skies)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from almarules.engine.evaluate.api import load_dataset
from almarules.engine.simulate import parse_sim_config, simulate
from almarules.engine.stages.imaging.stage import Stage, make_images

REPO = Path(__file__).resolve().parents[4]
ACA = REPO / "examples" / "sim" / "aca_7m_band7_mosaic_2eb.yaml"


def test_a_mosaic_field_is_refused_with_its_reason_and_a_single_pointing_is_imaged(tmp_path, cycle4):
    data = copy.deepcopy(yaml.safe_load(ACA.read_text()))
    data["schedule"].update({"duration": "6 min", "bandpass_scan": "40 s", "target_scan": "2 min",
                             "execution_blocks": 1})
    data["spws"] = [{"mode": "TDM", "nchan": 8, "start_frequency": "333 GHz", "channel_width": "125 MHz"}]
    data["noise"] = {"enabled": False}
    data["corruptions"] = {"enabled": False}
    ms = Path(simulate(parse_sim_config(data, "aca"), tmp_path / "aca.ms")["ms"][0])
    stage = Stage(cycle4, load_dataset([ms]), [ms], tmp_path / "out", data_calibrated=True)
    mosaic, single = make_images(stage, ["M_SIM_MOSAIC.TARGET.0.mfs", "J1924-2914.BANDPASS.0.mfs"])
    assert mosaic.status == "failed"
    assert "is a mosaic" in mosaic.error and "7 FIELD rows" in mosaic.error and "issue 16" in mosaic.error
    assert not list((tmp_path / "out").glob("*M_SIM_MOSAIC*.image.fits"))
    assert single.status == "ok", single.error
