"""The flagging heuristics on simulated data that carries known faults (issue 14): the simulator's
example ``examples/sim/alma_12m_band6_flagging.yaml`` adds outlier visibilities and one low-gain
antenna (DV07 x 0.3), recorded in its truth file; ``almarules calibrate`` must find exactly them
(lowgainflag: DV07; correctedampflag: every outlier not on a baseline of the flagged antenna, and
nothing else), and nothing at all on the clean twin (the same config without the two sections)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from almarules.engine.pipeline.runner import run
from almarules.engine.pipeline.session import RunOptions
from almarules.engine.simulate.run import simulate

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "examples/sim/alma_12m_band6_flagging.yaml"


def _flux_csv(ms: Path, truth: dict, path: Path) -> Path:
    """The flux calibrator's catalogue flux at each spw centre (from the truth's sky), flux.csv format."""
    from casacore.tables import table

    cal = next(f for f in truth["config"]["fields"] if "AMPLITUDE" in f["intents"])
    comp = cal["components"][0]
    s0, ref_hz = float(comp["flux"]), float(truth["reference_frequency_hz"])  # Jy, Hz
    lines = ["ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment"]
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        for spw in range(t.nrows()):
            f = t.getcell("CHAN_FREQ", spw)
            c = 0.5 * (f.min() + f.max())
            alpha = comp.get("spectral_index", 0.0)
            lines.append(f"{ms.name},{cal['name']},{spw},{s0 * (c / ref_hz) ** alpha:.6f},0,0,0,{alpha},0,0,catalogue")
    path.write_text("\n".join(lines) + "\n")
    return path


def _calibrate(config: Path, out: Path) -> tuple[dict, dict, Path]:
    ms = out / "sim" / "flagging.ms"
    ms.parent.mkdir()
    simulate(config, ms)
    truth = json.loads(ms.with_name("flagging.truth.json").read_text())
    flux = _flux_csv(ms, truth, out / "flux.csv")
    opts = RunOptions(ms=[str(ms)], workdir=str(out / "work"), rules=[str(REPO / "rules/alma/cycle4")], workers=1,
                      weblog=False, quiet=True, fluxfile=str(flux), until_stage="calibration")
    state = run(opts, ["almarules", "calibrate"], stream=open("/dev/null", "w"))
    return json.loads(state.to_json()), truth, out / "work"


def _found(work: Path) -> set[tuple[str, str, str, str, str]]:
    found = set()
    for line in (work / "calibrated/outliers.flagtemplate.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = dict(re.findall(r"(\w+)='([^']*)'", line))
        found.add((m["field"], m["spw"], m["antenna"], m["scan"], m["correlation"]))
    return found


def _stage(state: dict, name: str) -> dict:
    return next(s for s in state["stages"] if s["name"] == name)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    return _calibrate(CONFIG, tmp_path_factory.mktemp("faulty"))


def test_lowgainflag_finds_the_low_gain_antenna(faulty):
    state, truth, _ = faulty
    (low,) = truth["corruptions"]["low_gain_antennas"]
    notes = " ".join(_stage(state, "lowgainflag")["notes"])
    flagged = set(re.findall(r"(D[AV]\d\d) outside", notes))
    assert flagged == {low["antenna"]}


def test_correctedampflag_finds_every_outlier_and_nothing_else(faulty):
    state, truth, work = faulty
    low = truth["corruptions"]["low_gain_antennas"][0]["antenna"]
    outliers = truth["corruptions"]["outliers"]["visibilities"]
    want = {(v["field"], str(v["spw"]), f"{v['antenna1_name']}&{v['antenna2_name']}", str(v["scan"]),
             ["XX", "YY"][v["correlation"]]) for v in outliers
            if low not in (v["antenna1_name"], v["antenna2_name"])}  # those are flagged with their antenna
    assert len(want) >= 40
    assert _found(work) == want
    assert _stage(state, "correctedampflag")["numbers"]["outliers"] == len(want)


def test_clean_twin_flags_nothing(tmp_path):
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["corruptions"].pop("outliers")
    cfg["corruptions"].pop("low_gain_antennas")
    clean = tmp_path / "clean.yaml"
    clean.write_text(yaml.safe_dump(cfg))
    state, _, work = _calibrate(clean, tmp_path)
    assert _found(work) == set()
    assert "no antenna outside" in " ".join(_stage(state, "lowgainflag")["notes"])
    assert np.isclose(_stage(state, "applycal")["score"]["value"], 1.0)
