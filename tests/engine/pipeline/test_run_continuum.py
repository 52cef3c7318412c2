"""findcont in ``almarules run`` on the raw alma_sim.ms (issue 15): the cont.dat it writes against
the simulator's truth (the CO line of spw 1), its score, and how a cont.dat that is given or edited
stands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from almarules.engine.pipeline.runner import run
from almarules.engine.pipeline.session import RunOptions
from almarules.engine.products.contdat import channel_mask, lookup, read_contdat

REPO = Path(__file__).resolve().parents[3]


def _run(ms: Path, out: Path, **kw) -> dict:
    opts = RunOptions(ms=[str(ms)], workdir=str(out), rules=[str(REPO / "rules/alma/cycle4")], workers=1,
                      weblog=False, quiet=True, fluxfile=str(REPO / "examples/flux/alma_sim.flux.csv"), **kw)
    return json.loads(run(opts, ["almarules", "run"], stream=open("/dev/null", "w")).to_json())


def _stage(state: dict, name: str) -> dict:
    return next(s for s in state["stages"] if s["name"] == name)


@pytest.fixture(scope="module")
def found(shared_ms, tmp_path_factory):
    out = tmp_path_factory.mktemp("findcont")
    return _run(shared_ms("alma_sim.ms"), out, until_stage="findcont"), out, shared_ms("alma_sim.ms")


def _line(truth: dict) -> dict:
    return next(c for c in truth["sky_model"]["target"]["components"] if c["label"] == "line source")


def test_the_line_is_left_out_and_most_line_free_channels_kept(found, truth):
    """spw 1: no selected channel where the true line is above 1 % of its peak (LSRK channel
    centres of the stage's spectrum), at least 70 % of the channels where it is below kept
    (issue 15); spw 0 has no line: ALLCONT."""
    state, out, _ = found
    stage = _stage(state, "findcont")
    assert stage["status"] == "done" and stage["score"]["colour"] == "green"
    contdat = read_contdat(out / "cont.dat")
    spectrum = json.loads((out / "findcont" / "SIMGAL_1.spw1.json").read_text())
    freq = np.array(spectrum["freq_ghz"]) * 1e9
    line = _line(truth)
    profile = np.exp(-0.5 * ((freq - line["centre_freq_lsrk_hz"]) / line["sigma_hz"]) ** 2)
    chosen = channel_mask(freq, np.abs(np.gradient(freq)), lookup(contdat, "SIMGAL_1", 1))
    assert np.array_equal(chosen, np.array(spectrum["selected"], bool))  # the file selects what was found
    assert not chosen[profile > 0.01].any()
    free = profile <= 0.01
    assert chosen[free].mean() >= 0.7, chosen[free].mean()
    assert "ALLCONT" in lookup(contdat, "SIMGAL_1", 0).flags
    assert stage["numbers"]["pairs"] == {"searched": 2, "with_ranges": 2, "allcont": 1, "lowbandwidth": 0}


def test_an_edited_cont_dat_stands_and_a_given_one_is_used(found, tmp_path):
    """A re-run keeps WORKDIR/cont.dat as the user edited it (no search); --contfile's ranges
    take precedence and are written into the run's cont.dat."""
    state, out, ms = found
    text = (out / "cont.dat").read_text()
    lines = text.splitlines(keepends=True)
    spw1 = lines.index("SpectralWindow: 1\n")
    edited = "".join(lines[:spw1 + 1] + ["229.05~229.1GHz LSRK\n"] + [x for x in lines[spw1 + 1:] if "GHz" not in x])
    assert edited != text
    (out / "cont.dat").write_text(edited)
    again = _run(ms, out, from_stage="findcont", until_stage="findcont")
    assert (out / "cont.dat").read_text() == edited
    notes = _stage(again, "findcont")["notes"]
    assert notes[0] == "the working copies calibrated by an earlier run of this WORKDIR are used"  # run alone
    assert all("from cont.dat of an earlier run" in n for n in notes[1:3])
    given = tmp_path / "given.cont.dat"
    given.write_text("Field: SIMGAL_1\n\nSpectralWindow: 1\n228.9~228.95GHz LSRK\n\n")
    other = tmp_path / "wd"
    state2 = _run(ms, other, until_stage="findcont", contfile=str(given))
    sel = lookup(read_contdat(other / "cont.dat"), "SIMGAL_1", 1)
    assert [(r.low_hz, r.high_hz) for r in sel.ranges] == [(228.9e9, 228.95e9)]
    assert "from " + str(given) in _stage(state2, "findcont")["notes"][1]


def test_time_averaging_the_coarse_cube_smears_within_the_rules_bound_and_finds_the_same_ranges(found):
    """The coarse cube from rows averaged per baseline against the cube of every row: fewer rows,
    every pixel within the smearing bound of the peak, the same ranges. alma_sim's short
    observation halves its rows only at a 5 % bound (the rules' 1 % would merge a third of them,
    which the stage does not find worth doing: cube.MIN_REDUCTION)."""
    import dataclasses

    from almarules.engine.evaluate import api
    from almarules.engine.evaluate.decisions import decisions
    from almarules.engine.facts.model import Dataset
    from almarules.engine.pipeline.contsteps import findcont_setup
    from almarules.engine.stages.continuum.cube import coarse_cube
    from almarules.engine.stages.continuum.findcont import found_in

    _, out, _ = found
    ms = [out / "calibrated" / "alma_sim.ms"]
    dec = decisions(api.run(api.load_program([str(REPO / "rules/alma/cycle4")]),
                            Dataset.model_validate_json((out / "facts.json").read_bytes())))
    setup, params = findcont_setup(dec, "SIMGAL_1.TARGET.1.cube")
    assert setup.smearing == 0.01
    at_rules = coarse_cube(ms, "SIMGAL_1", 1, setup, nthreads=1)
    assert at_rules.rows_gridded == at_rules.rows_read
    setup = dataclasses.replace(setup, smearing=0.05)
    averaged = coarse_cube(ms, "SIMGAL_1", 1, setup, nthreads=1)
    every = coarse_cube(ms, "SIMGAL_1", 1, dataclasses.replace(setup, smearing=0.0), nthreads=1)
    assert every.rows_gridded == every.rows_read == averaged.rows_read
    assert averaged.rows_gridded < 0.7 * averaged.rows_read
    peak = np.nanmax(np.abs(every.cube))
    assert np.nanmax(np.abs(averaged.cube - every.cube)) <= 0.05 * peak
    assert (found_in(averaged, "SIMGAL_1", 1, params).result.ranges
            == found_in(every, "SIMGAL_1", 1, params).result.ranges)


@pytest.fixture(scope="module")
def full(shared_ms, tmp_path_factory):
    out = tmp_path_factory.mktemp("contsub")
    return _run(shared_ms("alma_sim.ms"), out), out


def test_the_line_cube_holds_the_line_at_its_true_peak_and_no_continuum(full, truth):
    """alma_sim raw -> calibrated -> findcont -> uvcontsub -> the spw 1 cube: at the source, the
    line's peak within 3 % (+ 5 sigma) of the truth, and the mean over the line-free planes
    (cont.dat's channels) zero within 3 sigma of that mean, where the continuum is 20 mJy."""
    from almarules.engine.products.fits import read_image

    state, out = full
    assert _stage(state, "uvcontsub")["status"] == "done"
    assert _stage(state, "uvcontfit")["status"] == "skipped"
    casa = [c["text"] for c in _stage(state, "uvcontsub")["commands"] if c["tool"] == "casa"]
    assert casa and "field='SIMGAL_1'" in casa[0] and "fitspec='0:" in casa[0] and ",1:" in casa[0]
    assert (out / "products" / "cont.dat").read_text() == (out / "cont.dat").read_text()  # delivered
    cube = next((out / "images").glob("*spw1.cube.I.image.fits"))
    record = json.loads(Path(str(cube).replace("image.fits", "record.json")).read_text())
    assert record["status"] == "ok" and all("/line/" in m for m in record["data"]["measurement_sets"])
    data, header, _ = read_image(cube)
    n = data.shape[1] // 2
    spectrum = data[:, n - 1:n + 2, n - 1:n + 2].max(axis=(1, 2))  # the source's pixel, whatever its rounding
    nchan = data.shape[0]
    freq = header["CRVAL3"] + (np.arange(nchan) + 1 - header["CRPIX3"]) * header["CDELT3"]
    line = _line(truth)
    profile = np.exp(-0.5 * ((freq - line["centre_freq_lsrk_hz"]) / line["sigma_hz"]) ** 2)
    free = channel_mask(freq, abs(header["CDELT3"]), lookup(read_contdat(out / "cont.dat"), "SIMGAL_1", 1))
    noise = float(np.std(data[free, n, n]))
    assert abs(spectrum.max() - line["peak_jy"]) <= 0.03 * line["peak_jy"] + 5 * noise
    centre = data[free, n, n]
    assert abs(centre.mean()) <= 3 * noise / np.sqrt(centre.size), (centre.mean(), noise)
    assert not (profile[free] > 0.01).any()


def test_the_kept_continuum_model_matches_the_truth_and_the_cont_image(full, truth):
    """The line copy keeps the subtracted continuum (CONTINUUM_MODEL.npz): on the shortest 10 % of
    baselines its vector mean equals the truth's continuum (the point at the centre, the Gaussian 2
    arcsec off) predicted at the same rows within 3 sigma + 1 %, in phase as well as amplitude; the
    cont image's check (makeimages after makeimlist(cont)) finds the clean components consistent
    with it at their brightest pixel."""
    from almarules.engine.stages.continuum.contsub import kept_model
    from almarules.kernels import sky

    state, out = full
    parts = kept_model(out / "line" / "alma_sim.ms", "SIMGAL_1")
    assert {p.spw for p in parts} == {0, 1}
    uvd = [np.hypot(p.uvw[:, 0], p.uvw[:, 1]) * p.freq for p in parts]
    limit = np.quantile(np.concatenate(uvd), 0.1)
    comps = {c["label"]: c for c in truth["sky_model"]["target"]["components"]}
    g = comps["continuum Gaussian"]
    arcsec = np.pi / 180 / 3600
    model = [sky.Component("point", np.array([comps["continuum point"]["flux_jy_at_ref"]])),
             sky.Component("gaussian", np.array([g["integrated_flux_jy_at_ref"]]), l=g["offset_east_arcsec"] * arcsec,
                           m=g["offset_north_arcsec"] * arcsec, major=g["major_fwhm_arcsec"] * arcsec,
                           minor=g["minor_fwhm_arcsec"] * arcsec, pa=np.radians(g["position_angle_deg"]))]
    short = [d <= limit for d in uvd]
    wsum = sum(p.weight[k].sum() for p, k in zip(parts, short, strict=True))
    kept = sum(np.sum(p.weight[k] * p.model[k]) for p, k in zip(parts, short, strict=True)) / wsum
    true = sum(np.sum(p.weight[k] * sky.direct_sum(p.uvw[k], np.array([p.freq]), model)[:, 0])
               for p, k in zip(parts, short, strict=True)) / wsum
    assert abs(kept - true) <= 0.01 * abs(true) + 3 / np.sqrt(wsum), (kept, true)
    assert abs(np.angle(true)) > 0.02  # the offset Gaussian turns the mean's phase: a sign error would show
    check = next(s for s in state["stages"] if s["name"] == "makeimages" and "continuum_model" in (s["numbers"] or {}))
    (key, numbers), = check["numbers"]["continuum_model"].items()
    assert key == "SIMGAL_1.TARGET.0_1.cont" and numbers["agree"]
    assert numbers["subtracted_jy_per_beam"] == pytest.approx(numbers["cont_image_jy_per_beam"], rel=0.1)
    assert any(n.startswith(key) and "consistent" in n for n in check["notes"])
    # the equivalent commands name the data the images read and the cont.dat the run used
    cont = [c["text"] for c in check["commands"]]
    assert f"{out}/calibrated/alma_sim.ms" in cont[0] and f"--contfile {out}/cont.dat" in cont[0]
    assert "vis=['" + f"{out}/calibrated/alma_sim.ms" in cont[1]
    cubes = next(s for s in state["stages"] if s["name"] == "makeimages" and any(".cube" in i for i in s["items"]))
    assert all(f"{out}/line/alma_sim.ms" in c["text"] for c in cubes["commands"])


def test_a_cont_dat_edit_redoes_uvcontsub_and_only_the_images_of_that_field_spw(full, shared_ms):
    """Editing spw 1's ranges in WORKDIR/cont.dat and running again: uvcontsub makes the line copy
    again; the spw 1 cube and the cont image (spws 0 and 1) are made again, saying why; the spw 0
    cube and the mfs images are kept."""
    state, out = full
    text = (out / "cont.dat").read_text()
    lines = text.splitlines(keepends=True)
    spw1 = lines.index("SpectralWindow: 1\n")
    kept_spw0 = "".join(lines[:spw1 + 1])
    (out / "cont.dat").write_text(kept_spw0 + "228.89~228.95GHz LSRK\n229.05~229.11GHz LSRK\n\n")
    again = _run(shared_ms("alma_sim.ms"), out)
    assert not any("already up to date" in n for n in _stage(again, "uvcontsub")["notes"])
    redone = {k: why for s in again["stages"] if s["name"] == "makeimages" for k, why in s["redone"].items()}
    kept = {k for s in again["stages"] if s["name"] == "makeimages" for k in s["kept"]}
    assert set(redone) == {"SIMGAL_1.TARGET.1.cube", "SIMGAL_1.TARGET.0_1.cont"}, redone
    assert any("cont.dat ranges of field SIMGAL_1, spw 1" in w for w in redone["SIMGAL_1.TARGET.1.cube"])
    assert {"SIMGAL_1.TARGET.0.cube", "SIMGAL_1.TARGET.0.mfs", "SIMGAL_1.TARGET.1.mfs"} <= kept


def test_ngc5921_ranges_exclude_the_hi_emission(shared_ms, tmp_path):
    """NGC 5921 raw (intents file) calibrated, then findcont: the HI emission of the galaxy, which
    moves across the field with its rotation, fills channels 7-49 (the NGC 5921 CASA tutorial
    takes 4-6 and 50-59 as line-free); no selected channel lies there, and both sides keep some."""
    opts = RunOptions(ms=[str(shared_ms("ngc5921.ms"))], workdir=str(tmp_path / "wd"),
                      rules=[str(REPO / "rules/alma/cycle4")], workers=1, weblog=False, quiet=True,
                      intents=str(REPO / "examples/intents/ngc5921.yaml"), until_stage="findcont")
    run(opts, ["almarules", "run"], stream=open("/dev/null", "w"))
    spectrum = json.loads((tmp_path / "wd" / "findcont" / "N5921_2.spw0.json").read_text())
    chosen = np.array(spectrum["selected"], bool)
    assert not chosen[7:50].any()
    assert chosen[:7].sum() >= 2 and chosen[50:].sum() >= 8


def test_a_target_spw_without_ranges_keeps_its_continuum_and_scores_yellow(shared_ms, tmp_path):
    """A cont.dat whose spw 1 block says NONE: uvcontsub leaves spw 1's data as they are (its cube
    holds the continuum), says so on the attention list, and scores yellow with the reason."""
    given = tmp_path / "none.cont.dat"
    given.write_text("Field: SIMGAL_1\n\nSpectralWindow: 0\n230.2~231.8GHz LSRK\n\nSpectralWindow: 1\nNONE\n\n")
    state = _run(shared_ms("alma_sim.ms"), tmp_path / "wd", contfile=str(given), until_stage="uvcontsub")
    stage = _stage(state, "uvcontsub")
    assert stage["numbers"]["unsubtracted"] == ["SIMGAL_1 spw 1"]
    assert stage["score"]["colour"] == "yellow"
    assert any("keeps its continuum" in r["text"] for r in stage["score"]["reasons"])
    assert any("SIMGAL_1 spw 1: no cont.dat ranges" in a["text"] for a in state["attention"])
