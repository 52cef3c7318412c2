"""A hand-built, realistic `Plan`: a 12-m Band 6 dataset with 2 calibrator and 3 science images.

The numbers follow the Cycle 4 heuristics (heuristics.md sections 3, 5 and 7) for L80 = 1539 m
and `--set imaging.max_cube_size=10GB`: the cube (1920 channels) needs two cascade steps
(bin channels, image to PB 0.5). One cube's threshold waits for its dirty dynamic range (a
residual with cases), importdata scores 0.9 (blue, one reason), one image scores red, and the
imaging does not fit in a day. Every cell's ref names a Value (or a param) in the decisions;
inputs chain down to facts.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from almarules.dsl.functions import fft_size
from almarules.dsl.units import format_number
from almarules.engine.evaluate.decisions import Cascade, Decisions, Param, Reason, Stage, Step, Value
from almarules.engine.plan.model import (
    CascadePlan, CascadeStepPlan, Case, Cell, Column, ImageRow, Labelled, Plan, PlanWarning, Residual,
    RunTime, ScorePlan, StagePlan)

R = "rules/alma/cycle4/"
SHA = "3f2a9c0d5e8b7a61c4d2f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9"
CUBE = "Elias_29.TARGET.19.cube"
MFS = "Elias_29.TARGET.17.mfs"
CONT = "Elias_29.TARGET.17_19_21_23.cont"
# key, intent, specmode, spws, frequency GHz, channels, sensitivity mJy/beam, dirty DR (None: not measured yet)
IMAGES = [
    ("J1517-2422.BANDPASS.17.mfs", "BANDPASS", "mfs", "17", 224.0, 128, 0.31, 1650.0),
    ("J1625-2527.PHASE.17.mfs", "PHASE", "mfs", "17", 224.0, 128, 0.45, 400.0),
    (MFS, "TARGET", "mfs", "17", 224.0, 128, 0.1, 80.0),
    (CONT, "TARGET", "cont", "17,19,21,23", 231.5, 512, 0.05, 12.0),
    (CUBE, "TARGET", "cube", "19", 230.538, 1920, 0.21, None),
]
L80 = 1539.0  # m
ARCSEC = 180 * 3600 / math.pi
PPB, TLIMIT, CAL_MAX, COST, OVERHEAD, MAX_CUBE = 5, 4, 300, 3.5, 0.3, 10.0  # -, -, px, h/GB, h, GB


def q(x: float, unit: Optional[str] = None, digits: int = 4) -> str:
    """A number as reports show it: '0.103 arcsec'."""
    text = format_number(x, digits)
    return f"{text} {unit}" if unit else text


def imsize(freq: float, intent: str, pblimit: float) -> int:
    lam = 299792458.0 / (freq * 1e9)
    cell = 0.574 * lam / L80 * ARCSEC / PPB
    exact = 1.1 * (1.12 * lam / 12.0 * ARCSEC) * math.sqrt(-math.log(pblimit) / math.log(2)) / cell
    n = int(fft_size(exact))
    return min(n, CAL_MAX) if intent != "TARGET" else n


def size_gb(n: int, channels: int = 1, nbin: int = 1) -> float:
    return 4 * n * n * channels / nbin / 1e9


def dr_correction(dr: float, intent: str) -> tuple[float, str]:
    """(correction, the table row used): 12-m science and calibrator tables."""
    if intent != "TARGET":
        return max(1.0, min(dr / 1000, 2 + dr / 3000)), "table:dr_correction_cal_12m:0"
    for i, (top, corr) in enumerate(((20, 1.0), (50, 1.5), (100, 2.0), (150, 2.5))):
        if dr <= top:
            return corr, f"table:dr_correction_12m:{i}"
    return max(2.5, dr / 150), "table:dr_correction_12m:4"


class _Values(list):
    """The decisions' values, built in order; `add` returns the path (a cell's ref)."""

    def add(self, path: str, text: str, value: Any = None, unit: Optional[str] = None, *, rule: str, at: str,
            formula: Optional[str] = None, inputs: Optional[list[str]] = None, status: str = "known",
            waits: Optional[list[str]] = None, reasons: Optional[list[Reason]] = None, origin: str = "rule",
            doc: Optional[str] = None) -> str:
        self.append(Value(path=path, status=status, value=value, unit=unit, text=text, waits_for=waits or [],
                          errors=[], origin=origin, rule=rule, at=at, formula=formula, inputs=inputs or [],
                          reasons=reasons or [], doc=doc))
        return path


def _image(vals: _Values, key: str, intent: str, specmode: str, spws: str, freq: float, nchan: int, sens: float,
           dr: Optional[float]) -> tuple[dict[str, Cell], float, float]:
    """Values and cells of one image; also its size (GB) and imaging time (h)."""
    im, spw = f"image[{key}]", f"spw[{spws.split(',')[0]}]"
    lam_mm = 299792458.0 / (freq * 1e9) * 1e3
    beam = 0.574 * lam_mm / 1e3 / L80 * ARCSEC
    n = imsize(freq, intent, 0.5 if intent == "TARGET" else 0.2)
    nbin = 2 if nchan == 1920 else 1
    size = size_gb(n, nchan, nbin) if specmode == "cube" else size_gb(n)
    hours = size * COST + OVERHEAD
    cells: dict[str, Cell] = {"field": Cell(text=key.split(".")[0]), "intent": Cell(text=intent),
                              "specmode": Cell(text=specmode), "spws": Cell(text=spws)}

    def cell(name: str, text: str, value: float, unit: Optional[str], formula: str, inputs: list[str],
             rule_at: str) -> None:
        path = vals.add(f"{im}.{name}", text, value, unit, rule=f"derive image.{name}", at=R + rule_at,
                        formula=formula, inputs=inputs)
        cells[name] = Cell(text=text, ref=path)

    cell("frequency", q(freq, "GHz"), freq, "GHz", "mean(s.ref_frequency for s in image.spws)",
         [f"{im}.spws", f"{spw}.ref_frequency"], "imaging.rules:30:1")
    vals.add(f"{im}.wavelength", q(lam_mm, "mm"), lam_mm, "mm", rule="derive image.wavelength",
             at=R + "imaging.rules:34:1", formula="c / image.frequency", inputs=[f"{im}.frequency"])
    cell("beam", q(beam, "arcsec"), beam, "arcsec", "0.574 * image.wavelength / dataset.l80 * 1 rad",
         [f"{im}.wavelength", "dataset.l80"], "imaging.rules:38:1")
    cell("cell", q(beam / PPB, "arcsec"), beam / PPB, "arcsec", "image.beam / ppb", [f"{im}.beam", "param:ppb"],
         "imaging.rules:42:1")
    if intent == "TARGET":
        cell("imsize", str(n), n, None, "fft_size(image.imsize_exact)", [f"{im}.imsize_exact"], "imaging.rules:55:1")
    else:
        cell("imsize", str(n), n, None, "min(fft_size(image.imsize_exact), calibrator_max_imsize)",
             [f"{im}.imsize_exact", "param:calibrator_max_imsize"], "imaging.rules:51:1")
    if specmode == "cube":
        cell("size", q(size, "GB"), size, "GB", "4 byte * image.imsize ^ 2 * image.nchan / image.nbin",
             [f"{im}.imsize", f"{im}.nchan", f"{im}.nbin"], "productsize.rules:3:1")
    else:
        cell("size", q(size, "GB"), size, "GB", "4 byte * image.imsize ^ 2", [f"{im}.imsize"],
             "productsize.rules:8:1")
    cell("sensitivity", q(sens, "mJy/beam"), sens, "mJy/beam", "1 / sqrt(sum(1 / s.sigma ^ 2 for s in image.spws))",
         [f"{spw}.nchan", f"{spw}.sum_weight", f"measurement[{key}].sensitivity"], "threshold.rules:12:1")
    cell("time", q(hours, "h"), hours, "h", "image.size * gridding_cost + image_overhead",
         [f"{im}.size", "param:gridding_cost", "param:image_overhead"], "runtime.rules:8:1")

    thr = dict(rule="derive image.threshold", at=R + "threshold.rules:61:1",
               formula="tlimit * image.sensitivity * image.dr_correction",
               inputs=["param:tlimit", f"{im}.sensitivity", f"{im}.dr_correction"],
               doc="Cleaning threshold = tlimit x theoretical sensitivity x DR correction.")
    if dr is None:
        waits = [f"measurements[{key}]"]
        unknown = f"unknown (waits for {waits[0]})"
        vals.add(f"{im}.dirty_dr", unknown, status="unknown", waits=waits, rule="derive image.dirty_dr",
                 at=R + "threshold.rules:30:1", formula="image.measured.dirty_dr", inputs=[f"{im}.measured"])
        vals.add(f"{im}.dr_correction", unknown, status="unknown", waits=waits, rule="derive image.dr_correction",
                 at=R + "threshold.rules:40:1", formula="dr_correction_12m(image.dirty_dr)",
                 inputs=[f"{im}.dirty_dr"])
        path = vals.add(f"{im}.threshold", unknown, status="unknown", waits=waits, **thr)
        low, high = TLIMIT * sens, TLIMIT * sens * 2.5
        cells["threshold"] = Cell(text=f"{q(low, 'mJy/beam', 3)} to >= {q(high, 'mJy/beam', 3)}", ref=path,
                                  status="residual")
    else:
        corr, row = dr_correction(dr, intent)
        vals.add(f"{im}.dirty_dr", q(dr), dr, rule="derive image.dirty_dr", at=R + "threshold.rules:30:1",
                 formula="image.measured.dirty_dr", inputs=[f"{im}.measured", f"measurement[{key}].dirty_dr"])
        vals.add(f"{im}.dr_correction", q(corr), corr, rule="derive image.dr_correction", at=R + "threshold.rules:40:1",
                 formula="dr_correction_12m(image.dirty_dr)", inputs=[f"{im}.dirty_dr", row])
        value = TLIMIT * sens * corr
        path = vals.add(f"{im}.threshold", q(value, "mJy/beam", 3), value, "mJy/beam", **thr)
        cells["threshold"] = Cell(text=q(value, "mJy/beam", 3), ref=path)
    return cells, size, hours


def _cascade_sizes() -> list[dict[str, str]]:
    """Largest cube and product size before the cascade and after each of its two steps."""
    out = []
    for pblimit, nbin in ((0.2, 1), (0.2, 2), (0.5, 2)):
        cube = size_gb(imsize(230.538, "TARGET", pblimit), 1920, nbin)
        mfs = size_gb(imsize(224.0, "TARGET", pblimit))
        out.append({"dataset.largest_cube": q(cube, "GB"), "dataset.product_size": q(2 * (mfs + cube), "GB")})
    return out


def sample_plan() -> Plan:
    """The sample plan (a fresh object on each call)."""
    vals = _Values()
    params = [
        Param(name="calibrator_max_imsize", value=300.0, text="300", origin="default", at=R + "imaging.rules:13:1"),
        Param(name="gridding_cost", value=COST, unit="h/GB", text=q(COST, "h/GB"), origin="default",
              at=R + "runtime.rules:3:1"),
        Param(name="image_overhead", value=OVERHEAD, unit="h", text=q(OVERHEAD, "h"), origin="default",
              at=R + "runtime.rules:5:1"),
        Param(name="max_cube_size", value=MAX_CUBE, unit="GB", text=q(MAX_CUBE, "GB"),
              origin="--set imaging.max_cube_size=10GB", at=R + "imaging.rules:15:1"),
        Param(name="max_product_size", value=400.0, unit="GB", text="400 GB", origin="default",
              at=R + "imaging.rules:17:1"),
        Param(name="ppb", value=5.0, text="5", origin="default", at=R + "imaging.rules:19:1"),
        Param(name="tlimit", value=4.0, text="4", origin="default", at=R + "threshold.rules:5:1"),
    ]
    columns = [Column(key="field", label="field"), Column(key="intent", label="intent"),
               Column(key="specmode", label="mode"), Column(key="spws", label="spws"),
               Column(key="frequency", label="frequency", unit="GHz"), Column(key="beam", label="beam", unit="arcsec"),
               Column(key="cell", label="cell", unit="arcsec"), Column(key="imsize", label="imsize"),
               Column(key="size", label="size", unit="GB"),
               Column(key="sensitivity", label="sensitivity", unit="mJy/beam"),
               Column(key="threshold", label="threshold", unit="mJy/beam"), Column(key="time", label="time", unit="h")]
    rows, sizes, hours = [], {}, {}
    for key, *rest in IMAGES:
        cells, sizes[key], hours[key] = _image(vals, key, *rest)
        rows.append(ImageRow(key=key, ref=f"image[{key}]", cells=cells))
    total_h = sum(hours.values())
    cont_h = sum(h for k, h in hours.items() if k != CUBE)
    product = 2 * (sizes[MFS] + sizes[CUBE])
    before, after_bin, after_pb = _cascade_sizes()
    sens_cube = IMAGES[-1][6]

    vals.add("dataset.array", "12m", "12m", rule="derive dataset.array", at=R + "imaging.rules:22:1",
             formula="if dataset.dish_min >= 12 m then 12m else 7m", inputs=["dataset.dish_min"])
    vals.add("dataset.dish_min", "12 m", 12.0, "m", rule="derive dataset.dish_min", at=R + "imaging.rules:25:1",
             formula="min(a.dish_diameter for a in antennas)",
             inputs=["antenna[DA41].dish_diameter", "antenna[DV02].dish_diameter"])
    vals.add("dataset.l80", q(L80, "m"), L80, "m", rule="derive dataset.l80", at=R + "imaging.rules:27:1",
             formula="mean(e.l80 for e in ebs)",
             inputs=["eb[uid___A002_Xc0c1d2_X1a2].l80", "eb[uid___A002_Xc0c1d2_X2b3].l80"])
    vals.add("dataset.representative_spw_id", "19", 19, rule="derive dataset.representative_spw_id",
             at=R + "imaging.rules:9:1", formula="dataset.representative_spw.id", inputs=["dataset.representative_spw"])
    vals.add("dataset.has_tsys", "true", True, rule="derive dataset.has_tsys", at=R + "qa.rules:5:1",
             formula="any(ATMOSPHERE in s.intents for s in scans)",
             inputs=["scan[uid___A002_Xc0c1d2_X1a2.1].intents"])
    vals.add("dataset.has_wvr", "false", False, rule="derive dataset.has_wvr", at=R + "qa.rules:7:1",
             formula="any(WVR in s.intents for s in scans)", inputs=["scan[uid___A002_Xc0c1d2_X1a2.1].intents"])
    vals.add("dataset.largest_cube", q(sizes[CUBE], "GB"), sizes[CUBE], "GB", rule="derive dataset.largest_cube",
             at=R + "productsize.rules:13:1", formula="max(i.size for i in images where i.specmode == cube else 0 GB)",
             inputs=[f"image[{CUBE}].size"])
    vals.add("dataset.product_size", q(product, "GB"), product, "GB", rule="derive dataset.product_size",
             at=R + "productsize.rules:16:1",
             formula="2 * sum(i.size for i in images where i.intent == TARGET and i.specmode in {mfs, cube})",
             inputs=[f"image[{MFS}].size", f"image[{CUBE}].size"])
    vals.add("dataset.image_count", "5", 5, rule="derive dataset.image_count", at=R + "imaging.rules:70:1",
             formula="count(images)", inputs=["dataset.images"])
    vals.add("dataset.importdata_score", "0.9", 0.9, rule="score dataset.importdata_score", at=R + "qa.rules:16:1",
             origin="score", inputs=["dataset.fields", "field[J1517-2422].intents", "field[J1625-2527].intents",
                                     "field[Elias_29].intents", "dataset.has_tsys", "dataset.has_processing_history"],
             reasons=[Reason(sign="-", amount=0.1, reason="no flux calibrator", at=R + "qa.rules:19:5")],
             doc="Calibrator presence and processing history (Cycle 4 User's Guide, hifa_importdata).")
    vals.add(f"image[{MFS}].qa_score", "0.2", 0.2, rule="derive image.qa_score", at=R + "imageqa.rules:12:1",
             formula="linear_score(image.noise_ratio, 1, 5, 1, 0)", inputs=[f"image[{MFS}].noise_ratio"])
    vals.add(f"image[{MFS}].noise_ratio", "4.2", 4.2, rule="derive image.noise_ratio", at=R + "imageqa.rules:6:1",
             formula="image.rms / (image.sensitivity * image.dr_correction)",
             inputs=[f"image[{MFS}].rms", f"image[{MFS}].sensitivity", f"image[{MFS}].dr_correction"])
    vals.add("dataset.productsize_score", "0.85", 0.85, rule="derive dataset.productsize_score",
             at=R + "qa.rules:40:1", formula="if dataset.cascade_applied then 0.85 else 1.0",
             inputs=["dataset.cascade_applied"])
    vals.add("dataset.imaging_time", q(total_h, "h"), total_h, "h", rule="derive dataset.imaging_time",
             at=R + "runtime.rules:14:1", formula="sum(i.time for i in images)",
             inputs=[f"image[{k}].time" for k, *_ in IMAGES])
    vals.add("dataset.continuum_time", q(cont_h, "h"), cont_h, "h", rule="derive dataset.continuum_time",
             at=R + "runtime.rules:16:1", formula="sum(i.time for i in images where i.specmode != cube)",
             inputs=[f"image[{k}].time" for k, *_ in IMAGES if k != CUBE])

    steps = [("bin channels", "productsize.rules:23:5", ["spw[19].nbin: 1 -> 2"], after_bin),
             ("image to PB 0.5", "productsize.rules:26:5",
              [f"image[{k}].pblimit: 0.2 -> 0.5" for k in (MFS, CONT, CUBE)], after_pb)]
    return Plan(
        title="Dry-run plan: uid://A001/X2fa/X2dd (Elias_29, Band 6, 12-m)",
        source="examples/12m_single_field_tdm.yaml",
        rules=["rules/alma/cycle4"],
        rules_sha256=SHA,
        settings=["imaging.max_cube_size=10GB"],
        overview=[
            Labelled(label="project", cell=Cell(text="2016.1.00712.S")),
            Labelled(label="MOUS", cell=Cell(text="uid://A001/X2fa/X2dd")),
            Labelled(label="array", cell=Cell(text="12m", ref="dataset.array")),
            Labelled(label="smallest dish", cell=Cell(text="12 m", ref="dataset.dish_min")),
            Labelled(label="execution blocks", cell=Cell(text="2")),
            Labelled(label="L80", cell=Cell(text=q(L80, "m"), ref="dataset.l80")),
            Labelled(label="representative spw", cell=Cell(text="19", ref="dataset.representative_spw_id")),
        ],
        warnings=[  # deliberately not in level order: renderers order them
            PlanWarning(level="notice", message=f"1 threshold waits for the dirty image of {CUBE}",
                        ref=f"image[{CUBE}].threshold", at=R + "threshold.rules:61:1"),
            PlanWarning(level="warning", message=f"Imaging takes {q(total_h, 'h')}, more than the 1 day limit",
                        ref="dataset.imaging_time", at=R + "runtime.rules:14:1"),
            PlanWarning(level="error", message=f"{MFS}: QA score 0.2 (red): measured rms 4.2 x the expected noise",
                        ref=f"image[{MFS}].qa_score", at=R + "imageqa.rules:12:1"),
        ],
        recipe=[
            StagePlan(name="importdata", run=True, why="runs", at=R + "recipe.rules:4:5"),
            StagePlan(name="tsyscal", run=True, why="runs", at=R + "recipe.rules:9:5",
                      decisions=[Labelled(label="has Tsys", cell=Cell(text="true", ref="dataset.has_tsys"))]),
            StagePlan(name="wvrgcalflag", run=False, why="skipped: no WVR data (dataset.has_wvr = false)",
                      at=R + "recipe.rules:12:5",
                      decisions=[Labelled(label="has WVR", cell=Cell(text="false", ref="dataset.has_wvr"))]),
            StagePlan(name="findcont", run=None, why=f"waits for measurements[{CUBE}]", at=R + "recipe.rules:24:5"),
            StagePlan(name="makeimlist(cube)", run=True, why="runs", at=R + "recipe.rules:30:5",
                      decisions=[Labelled(label="largest cube",
                                          cell=Cell(text=q(sizes[CUBE], "GB"), ref="dataset.largest_cube")),
                                 Labelled(label="max cube size",
                                          cell=Cell(text=q(MAX_CUBE, "GB"), ref="param:max_cube_size"))]),
        ],
        columns=columns,
        images=rows,
        totals=[
            Labelled(label="images", cell=Cell(text="5", ref="dataset.image_count")),
            Labelled(label="largest cube", cell=Cell(text=q(sizes[CUBE], "GB"), ref="dataset.largest_cube")),
            Labelled(label="product size", cell=Cell(text=q(product, "GB"), ref="dataset.product_size")),
        ],
        cascades=[CascadePlan(
            name="productsize", at=R + "productsize.rules:20:1", outcome="mitigated", before=before,
            steps=[CascadeStepPlan(name=n, at=R + at, status="applied", changes=ch, after=af)
                   for n, at, ch, af in steps])],
        scores=[
            ScorePlan(label="importdata", cell=Cell(text="0.9", ref="dataset.importdata_score", colour="blue"),
                      reasons=["- 0.1 no flux calibrator (qa.rules:19:5)"]),
            ScorePlan(label=f"makeimages {MFS}", cell=Cell(text="0.2", ref=f"image[{MFS}].qa_score", colour="red"),
                      reasons=["rms 4.2 x expected: linear_score(4.2, 1, 5, 1, 0) (imageqa.rules:12:1)"]),
            ScorePlan(label="checkproductsize",
                      cell=Cell(text="0.85", ref="dataset.productsize_score", colour="blue"),
                      reasons=["mitigated by 2 steps (qa.rules:40:1)"]),
        ],
        residuals=[Residual(
            ref=f"image[{CUBE}].threshold",
            formula=f"4 x {q(sens_cube, 'mJy/beam')} x dr_correction_12m(dirty_dr)",
            unknowns=[f"image[{CUBE}].dirty_dr"],
            cases=[Case(condition="dirty_dr <= 20", text=q(4 * sens_cube, "mJy/beam", 3)),
                   Case(condition="20 < dirty_dr <= 50", text=q(4 * sens_cube * 1.5, "mJy/beam", 3)),
                   Case(condition="50 < dirty_dr <= 100", text=q(4 * sens_cube * 2, "mJy/beam", 3)),
                   Case(condition="100 < dirty_dr <= 150", text=q(4 * sens_cube * 2.5, "mJy/beam", 3)),
                   Case(condition="dirty_dr > 150",
                        text=f">= {q(4 * sens_cube * 2.5, 'mJy/beam', 3)}, rising as dirty_dr / 150")],
            summary=f"{q(4 * sens_cube, 'mJy/beam', 3)} if dirty_dr <= 20, up to "
                    f"{q(4 * sens_cube * 2.5, 'mJy/beam', 3)} at 150, then rising")],
        runtime=RunTime(
            total=Cell(text=q(total_h, "h"), ref="dataset.imaging_time"), fits=total_h <= 24, limit="1 day",
            terms=[Labelled(label=f"cube {CUBE}", cell=Cell(text=q(hours[CUBE], "h"), ref=f"image[{CUBE}].time")),
                   Labelled(label="continuum images", cell=Cell(text=q(cont_h, "h"), ref="dataset.continuum_time")),
                   Labelled(label="gridding cost", cell=Cell(text=q(COST, "h/GB"), ref="param:gridding_cost")),
                   Labelled(label="overhead per image", cell=Cell(text=q(OVERHEAD, "h"), ref="param:image_overhead"))],
            calibration="constants measured on one 16-core node, CASA 6.5 serial imaging, 2024-03-12"),
        decisions=Decisions(
            almarules="0.1.0", rules=["rules/alma/cycle4"], rules_sha256=SHA,
            facts="examples/12m_single_field_tdm.yaml", params=params,
            entities={"image": [k for k, *_ in IMAGES]},
            values=list(vals),
            cascades=[Cascade(name="productsize", at=R + "productsize.rules:20:1", status="mitigated", before=before,
                              steps=[Step(name=n, at=R + at, changes=ch, after=af) for n, at, ch, af in steps])],
            recipes={"cycle4": [Stage(name="importdata", args=[], run=True, at=R + "recipe.rules:4:5")]},
        ),
    )
