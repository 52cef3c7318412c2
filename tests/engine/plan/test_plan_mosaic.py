"""The plan's estimates for a mosaic imaged with mtmfs (the wide-band 7-m Band 3 mosaic of
examples/sim): the sensitivity of its pointings combined, the run time of every pointing's
gridder calls and of the Taylor terms, the products it writes; and residual probes that take
the values already known (a mosaic's overlap) instead of deriving them again."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from almarules.engine.evaluate.api import load_dataset
from almarules.engine.plan import build
from almarules.engine.plan.build import build_plan
from almarules.engine.simulate import parse_sim_config, simulate
from conftest import REPO

WIDE = REPO / "examples" / "sim" / "aca_7m_band3_mosaic_wideband.yaml"
C = 299_792_458.0
ARCSEC = math.pi / 180 / 3600


@pytest.fixture(scope="module")
def current():
    from almarules.engine.evaluate.api import load_program

    return load_program([REPO / "rules" / "alma" / "current"])


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """The wide-band mosaic, one short execution block (7 pointings, spws at 89 and 103 GHz)."""
    data = copy.deepcopy(yaml.safe_load(WIDE.read_text()))
    data["schedule"].update({"duration": "12 min", "bandpass_scan": "60 s", "target_scan": "3 min",
                             "execution_blocks": 1})
    data["corruptions"] = {"enabled": False}
    out = tmp_path_factory.mktemp("wide") / "wide.ms"
    ms = Path(simulate(parse_sim_config(data, "wide"), out)["ms"][0])
    return load_dataset([ms])


def _value(plan, path: str, unit: str | None = None) -> float:
    """The plan's value (in the unit its rule shows it in, checked)."""
    v = plan.decisions.value(path)
    assert v.status == "known", (path, v.text)
    assert v.unit == unit, (path, v.unit)
    return v.value


def _overlap(facts, frequency_hz: float) -> float:
    """F at the central pointing, computed here from the facts: sum of exp(-8 ln2 r^2 / fwhp^2)
    over the pointings within one fwhp = 1.12 lambda / D of it."""
    field = next(f for f in facts.fields if f.name == "M_WIDE")
    fwhp = 1.12 * C / frequency_hz / 7.0 / ARCSEC
    offsets = [(p.ra_offset, p.dec_offset) for p in field.pointings]
    centre = min(offsets, key=lambda o: (math.hypot(*o), o))  # the pattern is centred on (0, 0)
    r = [math.hypot(x - centre[0], y - centre[1]) for x, y in offsets]
    return sum(math.exp(-8 * math.log(2) * (d / fwhp) ** 2) for d in r if d < fwhp)


def test_mosaic_and_mtmfs_estimates(current, wide):
    plan = build_plan(current, wide, "wide.ms")
    field = next(f for f in wide.fields if f.name == "M_WIDE")
    assert len(field.pointings) == 7
    cont = "image[M_WIDE.TARGET.0_1.cont]"
    assert plan.decisions.value(f"{cont}.deconvolver").value == "mtmfs"
    for key in ("M_WIDE.TARGET.0.mfs", "M_WIDE.TARGET.1.mfs", "M_WIDE.TARGET.0_1.cont", "M_WIDE.TARGET.0.cube"):
        ref = f"image[{key}]"
        spws = [int(s) for s in key.split(".")[2].split("_")]
        weights = sum(w.sum_weight for w in wide.weights if w.field == "M_WIDE" and w.spw in spws)
        single = 1 / math.sqrt(weights)  # Jy/beam: TDM channels are independent (factor 1)
        if key.endswith("cube"):
            single *= math.sqrt(64)
        f = _overlap(wide, _value(plan, f"{ref}.frequency", "GHz") * 1e9)
        assert 2.3 < f < 3.0  # six neighbours at ~0.5 fwhp
        assert _value(plan, f"{ref}.mosaic_overlap") == pytest.approx(f, rel=1e-9)
        assert _value(plan, f"{ref}.sensitivity", "mJy/beam") == pytest.approx(1e3 * single * math.sqrt(7 / f), rel=1e-9)
    size = _value(plan, f"{cont}.size", "GB")
    assert _value(plan, f"{cont}.product_size", "GB") == pytest.approx(16 * size)  # 15 mtmfs files and the weight
    assert _value(plan, "image[M_WIDE.TARGET.0.mfs].product_size", "GB") == pytest.approx(
        8 * _value(plan, "image[M_WIDE.TARGET.0.mfs].size", "GB"))
    assert _value(plan, "image[J1924-2914.BANDPASS.0.mfs].product_size", "GB") == pytest.approx(
        7 * _value(plan, "image[J1924-2914.BANDPASS.0.mfs].size", "GB"))
    assert _value(plan, f"{cont}.grid_passes") == 17 and _value(plan, f"{cont}.npointings") == 7
    keys = plan.decisions.entities["image"]
    disk = sum(_value(plan, f"image[{k}].product_size", "GB") for k in keys)
    assert _value(plan, "dataset.disk_size", "GB") == pytest.approx(disk)
    totals = {t.label: t.cell for t in plan.totals}
    assert totals["Products on disk"].ref == "dataset.disk_size"
    assert totals["Product size"].ref == "dataset.product_size"  # the cascade's (checkproductsize)
    # the run time: the FFTs of every pass once per pointing; the minor cycle 4 times Hogbom's
    n = _value(plan, f"{cont}.imsize")
    fft = 17 * 7 * (1.76 * n) ** 2 * math.log2(1.76 * n) * 2 * 2.37e-9
    assert _value(plan, f"{cont}.fft_time", "h") * 3600 == pytest.approx(fft, rel=1e-9)
    assert _value(plan, f"{cont}.minor_time", "h") * 3600 == pytest.approx(3 * 200 * 4 * n ** 2 * 1.54e-9, rel=1e-9)


def test_residual_probes_take_known_values_as_they_are(current, wide, monkeypatch):
    """The thresholds wait for the dirty DR and are probed by evaluating again with it pinned; the
    sensitivity they need is known, so no probe derives the mosaic's overlap again, and the plan
    is the same as when every probe derives everything."""
    derive = current.derive_fns["image"]["mosaic_overlap"]
    counts = {"n": 0}

    def counting(ev, ent, name):
        value = derive(ev, ent, name)
        if dict.get(ent.prov, name).__class__ is list:  # its own frame: computed (not reused: evaluate/sharing.py)
            counts["n"] += 1
        return value

    monkeypatch.setitem(current.getters["image"], "mosaic_overlap", counting)
    monkeypatch.setitem(current.names.ns, current.names.functions[("image", "mosaic_overlap")], counting)
    pinned = build_plan(current, wide, "wide.ms")
    once = counts["n"]
    assert 0 < once <= len(pinned.decisions.entities["image"])  # the base evaluation's, at most one per image
    assert any(r.ref.startswith("image[M_WIDE.") and r.cases for r in pinned.residuals)
    monkeypatch.setattr(build, "PIN_KNOWN", False)
    counts["n"] = 0
    again = build_plan(current, wide, "wide.ms")
    assert counts["n"] > once
    assert again.to_json() == pinned.to_json()
