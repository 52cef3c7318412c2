"""The calibration pictures of the weblog (engine.pipeline.weblog.calpages, figures_cal) on a run of
alma_sim.ms calibrated by ``almarules run --until applycal``.

Expected values come from outside the code under test: the simulation's truth file (true fluxes,
true bandpasses), examples/flux/alma_sim.flux.csv (the catalogue values), the MS and the
calibration tables read directly with python-casacore, and analytic cases for the pure figure
functions.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from almarules.engine.pipeline.runner import run
from almarules.engine.pipeline.session import RunOptions
from almarules.engine.pipeline.state import RunState
from almarules.engine.pipeline.weblog import calpages
from almarules.engine.pipeline.weblog import figures_cal as fc
from almarules.engine.pipeline.weblog.render import write_weblog
from truthcal import truth_bandpass

import browser  # tests/browser.py

REPO = Path(__file__).resolve().parents[3]
FLUX_CSV = REPO / "examples/flux/alma_sim.flux.csv"
#: pictures of each calibration stage's page for one MS
PICTURES = {"flagdata": 1, "bandpass": 2, "gfluxscale": 1, "timegaincal": 3, "applycal": 2}


@pytest.fixture(scope="module")
def calrun(shared_ms, tmp_path_factory) -> Path:
    """WORKDIR of ``almarules run alma_sim.ms --until applycal`` with its weblog written."""
    ms = shared_ms("alma_sim.ms")
    out = tmp_path_factory.mktemp("weblog_cal")
    opts = RunOptions(ms=[str(ms)], workdir=str(out), rules=[str(REPO / "rules/alma/cycle4")], workers=1,
                      weblog=False, quiet=True, fluxfile=str(FLUX_CSV), until_stage="applycal")
    with open(os.devnull, "w") as devnull:
        run(opts, ["almarules", "run"], stream=devnull)
    write_weblog(out)
    return out


def _state(workdir: Path) -> RunState:
    return RunState.model_validate_json((workdir / "run.json").read_text())


def _stage(workdir: Path, name: str):
    return next(s for s in _state(workdir).stages if s.name == name)


def _page(workdir: Path, name: str) -> Path:
    stage = _stage(workdir, name)
    return workdir / "weblog" / "stages" / f"{stage.index:02d}_{name}.html"


def _catalogue() -> dict[tuple[str, int], float]:
    with FLUX_CSV.open() as fh:
        return {(r["field"], int(r["spw"])): float(r["I"]) for r in csv.DictReader(fh)}


def _true_flux(truth: dict, field: str, freq_hz: float) -> float:
    cal = next(c for c in truth["sky_model"]["calibrators"] if c["field"] == field)
    ref = truth["sky_model"]["reference_frequency_hz"]
    return cal["flux_jy_at_ref"] * (freq_hz / ref) ** cal["spectral_index"]


def _segments(ax, label: str) -> list[np.ndarray]:
    return [s for c in ax.collections if c.get_label() == label for s in c.get_segments()]


# ---------------------------------------------------------------- the pages
def test_each_calibration_page_shows_its_pictures(calrun):
    for name, count in PICTURES.items():
        html = _page(calrun, name).read_text()
        assert f'<h2 id="pictures">Pictures <span class="count">{count}</span></h2>' in html, name
        thumbs = re.findall(r'<img src="\.\./(thumbs/[^"]+\.png)" width="(\d+)" height="(\d+)"', html)
        fulls = re.findall(r'<a href="\.\./(thumbs/[^"]+\.png)">\(full size\)</a>', html)
        assert len(thumbs) == len(fulls) == count, name
        for (src, w, h), full in zip(thumbs, fulls, strict=True):
            assert (calrun / "weblog" / src).is_file() and (calrun / "weblog" / full).is_file()
            assert src != full and int(w) <= fc.THUMB_W
            assert (int(w), int(h)) == _png_size(calrun / "weblog" / src)
    for name in ("refant", "setjy", "spwphaseup", "importdata"):
        assert 'id="pictures"' not in _page(calrun, name).read_text(), name


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_a_stage_that_did_not_run_gets_no_pictures(calrun, tmp_path):
    state = _state(calrun)
    bp = next(s for s in state.stages if s.name == "bandpass")
    pics = _pictures(tmp_path)
    assert calpages.stage_figures(pics, bp, state, calrun)  # ran: pictures
    for status in ("pending", "failed", "skipped"):
        assert calpages.stage_figures(pics, bp.model_copy(update={"status": status}), state, calrun) == []


def _pictures(build: Path):
    from almarules.engine.pipeline.weblog.thumbs import Pictures

    return Pictures(build, None, lambda _t: None)


def test_unchanged_pictures_are_not_drawn_again_and_changed_tables_are(calrun, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(calrun, work, symlinks=True, ignore=shutil.ignore_patterns("calibrated"))
    os.symlink(calrun / "calibrated", work / "calibrated")
    lines: list[str] = []
    write_weblog(work, progress=lines.append)
    summary = next(x for x in lines if " pictures drawn, " in x)
    reused = int(re.search(r"0 pictures drawn, (\d+) reused", summary)[1])
    assert reused >= 18  # the 9 calibration pictures, each a PNG and a thumbnail, and the dataset's
    table_file = work / "caltables" / "alma_sim.ms.spw1.bandpass.tbl" / "table.f0"
    st = table_file.stat()
    os.utime(table_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    lines.clear()
    write_weblog(work, progress=lines.append)
    # the bandpass figure and its per-antenna grid, each a PNG and a thumbnail
    assert f"weblog: 4 pictures drawn, {reused - 4} reused; writing pages" in lines
    drawn = [x for x in lines if x.startswith("weblog: pictures of stage")]
    assert drawn == [f"weblog: pictures of stage {_stage(work, 'bandpass').index} bandpass"]


# ---------------------------------------------------------------- what the pictures show
def test_bandpass_figure_every_antenna_on_a_frequency_axis_without_flagged_channels(calrun, truth):
    tables = [calrun / "caltables" / f"alma_sim.ms.spw{s}.bandpass.tbl" for s in (0, 1)]
    panels = [calpages.load_bandpass(p) for p in tables]
    fig = fc.bandpass_figure(panels)
    axes = np.array(fig.axes).reshape(2, 2)
    with table(str(calrun / "calibrated/alma_sim.ms/ANTENNA"), ack=False) as t:
        names = list(t.getcol("NAME"))
    with table(str(calrun / "calibrated/alma_sim.ms/SPECTRAL_WINDOW"), ack=False) as t:
        ms_freq = [t.getcell("CHAN_FREQ", s) for s in (0, 1)]
    refant = _stage(calrun, "refant").numbers["refants"][0]
    for k, (path, panel) in enumerate(zip(tables, panels, strict=True)):
        with table(str(path), ack=False) as t:
            flag, ant = t.getcol("FLAG"), t.getcol("ANTENNA1")  # (nrow, nchan, npol)
        assert axes[1, k].get_xlabel() == "frequency (GHz)"
        assert axes[0, k].get_ylabel() == "amplitude" and axes[1, k].get_ylabel() == "phase (deg)"
        assert axes[1, k].get_ylim() == (-180, 180)
        assert f"refant {refant} black" in axes[0, k].get_title()
        np.testing.assert_allclose(panel.freq_ghz, ms_freq[k] / 1e9, rtol=0, atol=1e-9)
        for ax in axes[:, k]:
            others, ref = _segments(ax, "antennas"), _segments(ax, "refant")
            # an antenna-polarisation with channels flagged only at the band edges is one unbroken line
            assert len(others) == (len(names) - 1) * 2 and len(ref) == 2
            drawn_x = np.unique(np.concatenate([s[:, 0] for s in others + ref]))
            good = ~flag.all(axis=(0, 2))
            np.testing.assert_allclose(drawn_x, np.sort(ms_freq[k][good]) / 1e9, rtol=1e-12)
        with table(str(path), ack=False) as t:
            cparam = t.getcol("CPARAM").astype(np.complex128)[~flag]
        for ax, want in ((axes[0, k], np.abs(cparam)), (axes[1, k], fc.wrap_deg(np.degrees(np.angle(cparam))))):
            y = np.concatenate([sg[:, 1] for sg in _segments(ax, "antennas") + _segments(ax, "refant")])
            np.testing.assert_allclose(np.sort(y), np.sort(want), atol=1e-9)  # every unflagged solution, once
        np.testing.assert_allclose(np.concatenate([sg[:, 1] for sg in _segments(axes[1, k], "refant")]), 0.0,
                                   atol=1e-9)  # the reference antenna's phase
        if k == 0:  # 4 edge channels per side flagged in spw 0 (rules/alma/cycle4/calibration.rules)
            assert flag[:, :4].all() and flag[:, -4:].all() and not flag[:, 4:-4].any()
        # the refant's drawn line is its table row (pol X), and follows its true bandpass's shape
        row = int(np.flatnonzero(ant == names.index(refant))[0])
        drawn = _line_for(axes[0, k], "refant", np.where(flag[row, :, 0], np.nan, np.abs(_cparam(path, row)[:, 0])))
        true_ant = list(truth["corruptions"]["gains"]["antennas"]).index(refant)
        true = np.abs(truth_bandpass(truth, k, ms_freq[k])[true_ant, 0])
        assert np.corrcoef(drawn[:, 1], true[~flag[row, :, 0]])[0, 1] > 0.7  # 0.99, 0.83 here; another antenna < 0.45


def _cparam(path: Path, row: int) -> np.ndarray:
    with table(str(path), ack=False) as t:
        return t.getcell("CPARAM", row)


def _line_for(ax, label: str, expected_y: np.ndarray) -> np.ndarray:
    """The drawn segment of `label` whose y equals the unflagged values of `expected_y`."""
    want = expected_y[np.isfinite(expected_y)]
    for s in _segments(ax, label):
        if s.shape[0] == want.size and np.allclose(s[:, 1], want, rtol=1e-12):
            return s
    raise AssertionError(f"no {label} line with the table's values")


def test_gain_figures_a_panel_per_calibrator_and_spw(calrun):
    with table(str(calrun / "calibrated/alma_sim.ms/FIELD"), ack=False) as t:
        fields = list(t.getcol("NAME"))
    expected = {"phase_int": ["J1520-2500 spw 0", "J1520-2500 spw 1", "J1607-2730 spw 0", "J1607-2730 spw 1"],
                "phase_scan": ["J1607-2730 spw 0", "J1607-2730 spw 1"],
                "amp_scan": ["J1520-2500 spw 0", "J1520-2500 spw 1", "J1607-2730 spw 0", "J1607-2730 spw 1"]}
    assert {"J1520-2500", "J1607-2730"} <= set(fields)
    for kind, quantity, _label in calpages.GAIN_TABLES:
        path = calrun / "caltables" / f"alma_sim.ms.{kind}.tbl"
        panels = calpages.load_gains(path)
        assert [p.title for p in panels] == expected[kind]
        fig = fc.gain_time_figure(panels, quantity)
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in visible] == expected[kind]
        with table(str(path), ack=False) as t:
            nrow, cparam = t.nrows(), t.getcol("CPARAM").astype(np.complex128)
            fid, spw = t.getcol("FIELD_ID"), t.getcol("SPECTRAL_WINDOW_ID")
        n_points = sum(len(np.concatenate(_segments(ax, "antennas") + _segments(ax, "refant"))) for ax in visible)
        assert n_points == nrow * 2  # every solution (both polarisations) drawn once: none flagged here
        for ax, p in zip(visible, panels, strict=True):
            assert ax.get_ylabel() == ("gain phase (deg)" if quantity == "phase" else "gain amplitude")
            name, s = p.title.split(" spw ")
            sel = (fid == fields.index(name)) & (spw == int(s))
            y = np.concatenate([seg[:, 1] for seg in _segments(ax, "antennas") + _segments(ax, "refant")])
            want = (np.degrees(np.angle(cparam[sel])) if quantity == "phase" else np.abs(cparam[sel])).ravel()
            np.testing.assert_allclose(np.sort(y), np.sort(fc.wrap_deg(want) if quantity == "phase" else want),
                                       atol=1e-9)
            if quantity == "phase":
                assert ax.get_ylim() == (-180, 180)
                ref = np.concatenate([seg[:, 1] for seg in _segments(ax, "refant")])
                np.testing.assert_allclose(ref, 0.0, atol=1e-6)  # the reference antenna's phase is 0


def test_flux_figure_derived_fluxes_near_the_truth_with_the_catalogue(calrun, truth):
    stage = _stage(calrun, "gfluxscale")
    panels = calpages.load_flux(stage)
    assert [p.name for p in panels] == ["J1554-3140", "J1607-2730"]
    fig = fc.flux_figure(panels)
    cat = _catalogue()
    for ax, p in zip([a for a in fig.axes if a.get_visible()], panels, strict=True):
        assert ax.get_title() == p.name and ax.get_xlabel() == "frequency (GHz)"
        assert ax.get_ylabel() == "flux density (Jy)"
        x, y = ax.lines[0].get_data()  # the error-bar markers
        for xi, yi in zip(x, y, strict=True):
            true = _true_flux(truth, p.name, xi * 1e9)
            err = p.error[np.argmin(np.abs(p.freq_ghz - xi))]
            assert abs(yi - true) < max(4 * err, 0.02 * true), (p.name, xi, yi, true)
        crosses = [line for line in ax.lines if line.get_marker() == "x"]
        if p.name == "J1607-2730":  # in flux.csv; J1554-3140 is not
            cx, cy = crosses[0].get_data()
            np.testing.assert_allclose(sorted(cy), sorted(cat[(p.name, s)] for s in (0, 1)))
            np.testing.assert_allclose(sorted(cx), [229.0, 231.0])  # the spws' centres (truth file)
        else:
            assert crosses == []


def test_applycal_amplitudes_are_the_true_fluxes_and_phases_zero(calrun, truth):
    panels = calpages.load_vis(calrun / "calibrated/alma_sim.ms", calpages._intents(calrun))
    assert [(p.field, p.intent) for p in panels] == [
        ("J1520-2500", "AMPLITUDE,BANDPASS"), ("J1607-2730", "PHASE"), ("J1554-3140", "CHECK"),
        ("SIMGAL_1", "TARGET")]
    assert sum(p.amp.size for p in panels) <= calpages.MAX_POINTS
    with table(str(calrun / "calibrated/alma_sim.ms/ANTENNA"), ack=False) as t:
        pos = t.getcol("POSITION")
    longest = np.max(np.linalg.norm(pos[:, None] - pos[None], axis=-1))
    for p in panels:
        assert p.amp.size > 1000 and np.all(p.uvdist_m <= longest + 1e-6)
        if p.field in ("J1520-2500", "J1607-2730"):
            for s, centre in ((0, 231e9), (1, 229e9)):
                med = np.median(p.amp[p.spw == s])
                assert med == pytest.approx(_true_flux(truth, p.field, centre), rel=0.02), (p.field, s)
            assert abs(np.median(p.phase_deg)) < 2.0 and np.percentile(np.abs(p.phase_deg), 90) < 15
    fig = fc.amp_uvdist_figure(panels)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4 and all(ax.get_xlabel() == "uv distance (m)" for ax in axes)
    for ax, p in zip(axes, panels, strict=True):
        np.testing.assert_allclose(ax.collections[0].get_offsets(), np.column_stack([p.uvdist_m, p.amp]))
    ph = fc.phase_time_figure([p for p in panels if "TARGET" not in p.intent])
    assert [ax.get_title() for ax in ph.axes if ax.get_visible()] == [
        "J1520-2500 (AMPLITUDE,BANDPASS)", "J1607-2730 (PHASE)", "J1554-3140 (CHECK)"]


def test_applycal_points_are_the_channel_means_of_corrected_data(calrun):
    """One field's points against a direct TaQL read of CORRECTED_DATA (mean over unflagged
    channels and both correlations, per row)."""
    ms = calrun / "calibrated/alma_sim.ms"
    panel = calpages.load_vis(ms, {"J1607-2730": "PHASE"}, max_points=10**9)[0]
    with table(str(ms), ack=False) as t:
        sel = t.query("FIELD_ID == 1 && ANTENNA1 != ANTENNA2 && DATA_DESC_ID == 0 && !FLAG_ROW")
        data, flag, uvw = sel.getcol("CORRECTED_DATA"), sel.getcol("FLAG"), sel.getcol("UVW")
        sel.close()
    mean = np.array([d[~f].mean() for d, f in zip(data, flag, strict=True)])
    mine = panel.spw == 0
    assert panel.rows == 2 * len(mean) and mine.sum() == len(mean)
    np.testing.assert_allclose(panel.amp[mine], np.abs(mean), rtol=1e-5)
    np.testing.assert_allclose(panel.uvdist_m[mine], np.hypot(uvw[:, 0], uvw[:, 1]))


def test_flag_bars_are_the_counts_of_flagdata(calrun):
    numbers = _stage(calrun, "flagdata").numbers["alma_sim.ms"]
    fig = fc.flag_bars({k: float(v) for k, v in numbers.items()}, "alma_sim.ms")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(numbers)
    assert [b.get_width() for b in ax.patches] == [float(v) for v in numbers.values()]
    # edge channels: 4 a side of spw 0's 64, both correlations, every cross-correlation row of spw 0
    with table(str(calrun / "calibrated/alma_sim.ms"), ack=False) as t:
        rows0 = t.query("DATA_DESC_ID == 0 && ANTENNA1 != ANTENNA2").nrows()
    assert numbers["edge channels"] == rows0 * 8 * 2


# ---------------------------------------------------------------- pure figure functions
def test_wrap_deg_is_in_minus_180_to_180():
    np.testing.assert_allclose(fc.wrap_deg(np.array([0, 180, -180, 190, -190, 540, 359.5])),
                               [0, -180, -180, -170, 170, -180, -0.5])


def test_gain_lines_break_between_scans_and_at_flags():
    t = np.array([0.0, 10.0, 20.0, 600.0, 610.0]) + 5e9
    g = np.exp(1j * np.radians(np.array([10.0, 20.0, 30.0, 40.0, 50.0])))[None, :, None] * np.ones((2, 1, 1))
    g[1, 1, 0] = np.nan  # antenna 1 flagged at its second solution
    panel = fc.GainPanel(title="x", time=t, antennas=("A", "B"), gains=g, refant=0,
                         scan=np.array([1, 1, 1, 3, 3]))
    ax = fc.gain_time_figure([panel], "phase").axes[0]
    ref, other = _segments(ax, "refant"), _segments(ax, "antennas")
    assert [len(s) for s in ref] == [3, 2]  # two scans
    assert [len(s) for s in other] == [1, 1, 2]  # the flag splits the first scan
    np.testing.assert_allclose(ref[1][:, 0], [10.0, 10 + 10 / 60])
    np.testing.assert_allclose(ref[0][:, 1], [10.0, 20.0, 30.0])


def test_bandpass_grid_one_cell_per_antenna_and_none_for_too_many():
    g = np.ones((3, 5, 2), complex)
    p = fc.BandpassPanel(spw=0, freq_ghz=np.linspace(100, 101, 5), antennas=("A", "B", "C"), gains=g, refant=1)
    fig = fc.bandpass_grid([p], ncol=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["A", "B", "C"]
    assert len(_segments(ax, "antennas")) == 3 * 2
    many = replace(p, antennas=tuple(f"A{k}" for k in range(fc.MAX_GRID + 1)),
                   gains=np.ones((fc.MAX_GRID + 1, 5, 2), complex))
    assert fc.bandpass_grid([many]) is None


# ---------------------------------------------------------------- in a browser
@browser.requires_chromium
def test_calibration_pages_load_cleanly_in_chromium(calrun, tmp_path):
    for name in PICTURES:
        page = _page(calrun, name)
        assert browser.console_errors(page) == [], name
    shot = tmp_path / "bandpass.png"
    browser.screenshot(_page(calrun, "bandpass"), shot, width=1400, height=1400)
    assert not browser.is_blank(shot)
    dom = browser.dump_dom(_page(calrun, "bandpass"))
    assert dom.count('class="thumb cal-bandpass') == 2


def test_flux_catalogue_from_the_numbers_else_from_the_notes():
    from almarules.engine.pipeline.state import StageRun

    stage = StageRun(index=15, name="gfluxscale", at="recipe.rules:1:1", status="done",
                     notes=["A spw 0: 1.0000 ± 0.1000 Jy at 100.0000 GHz (SNR 10), catalogue 1.5000 Jy",
                            "B spw 0: 3.0000 ± 0.1000 Jy at 100.0000 GHz (SNR 30)"],
                     numbers={"derived": {
                         "A": {"1": {"frequency": 1.1e11, "flux": 1.0, "error": 0.1, "catalogue": 2.0},
                               "0": {"frequency": 1.0e11, "flux": 1.1, "error": 0.2}},
                         "B": {"0": {"frequency": 1.0e11, "flux": 3.0, "error": 0.1}}}})
    a, b = calpages.load_flux(stage)
    np.testing.assert_allclose(a.freq_ghz, [100.0, 110.0])  # in frequency order
    np.testing.assert_allclose(a.flux, [1.1, 1.0])
    np.testing.assert_allclose(a.catalogue, [1.5, 2.0])
    assert b.name == "B" and np.isnan(b.catalogue).all()


def test_an_unreadable_table_gives_a_placeholder_not_a_failed_weblog(calrun, tmp_path):
    work = tmp_path / "work"
    (work / "caltables" / "x.ms.spw0.bandpass.tbl").mkdir(parents=True)  # not a table
    state = _state(calrun).model_copy(update={"ms": ["/nowhere/x.ms"]})
    bp = next(s for s in state.stages if s.name == "bandpass")
    thumbs = calpages.stage_figures(_pictures(tmp_path / "build"), bp, state, work)
    assert [t.src for t in thumbs] == [None, None]
    assert all(t.missing.startswith("not drawn: ") for t in thumbs)
