"""``almarules image`` tells the truth on the terminal (issue 10): uncalibrated data and a diverged
clean are a status other than ok, a WARNING line and a capped QA score; missing intents are named
with the way to declare them; the rule-set hash does not depend on the working directory; Ctrl-C
leaves one line, exit code 130 and nothing half-written; the FITS headers carry the observation
keywords CASA's exportfits writes (compared with a CASA 6.7 export of the same data)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from almarules.engine.cli.app import main
from almarules.engine.cli.common import load_rules
from almarules.engine.products.fits import read_provenance

REPO = Path(__file__).resolve().parents[4]
CYCLE4 = REPO / "rules" / "alma" / "cycle4"
J1520 = ["--field", "J1520-2500", "--spw", "0", "--specmode", "mfs"]

# The header of a CASA export of the same data: CASA 6.7.0-31 (casatasks tclean, niter=0,
# field 0, spw 0 / spw 1, datacolumn='data', then exportfits) on the shared alma_sim.ms, read
# with astropy on 2026-12-06.
CASA_DATE_OBS = "2024-06-15T02:40:55.143999"
CASA_OBSGEO = (2.225142180269e06, -5.440307370349e06, -2.481029851874e06)  # m, ITRF (ALMA)
CASA_DATE_OBS_SIMGAL = "2024-06-15T02:44:20.296000"  # the same for field SIMGAL_1 (spw 0, mfs)
CASA_OBSERVER = "CASA simulator"
CASA_RESTFRQ_SPW0 = 2.305380000000e11  # Hz: the SOURCE table's rest frequency of spw 0
# spw 1 has no rest frequency: CASA used "the center of the selected spw(s)", 228.88671875 GHz
# for channels 0~3 of spw 1 (first channel 228.8837890625 GHz, width 1.953125 MHz): the mid
# point of the selected channels; for the whole spw 1 (120 channels) that is 229.0 GHz.
CASA_RESTFRQ_SPW1_ALL = 229.0e9
#: Keywords of that CASA export (BUNIT..., DATE-OBS, OBSGEO-X, ...); those CASA writes for its own
#: bookkeeping or as defaults (PC matrix = identity, PV2_1/2 = 0, BSCALE/BZERO = 1/0, ALTRVAL,
#: MPIPROCS, ...) are not required.
CASA_KEYWORDS = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4", "EXTEND", "BMAJ", "BMIN",
                 "BPA", "BTYPE", "OBJECT", "BUNIT", "EQUINOX", "RADESYS", "LONPOLE", "LATPOLE", "CTYPE1",
                 "CRVAL1", "CDELT1", "CRPIX1", "CUNIT1", "CTYPE2", "CRVAL2", "CDELT2", "CRPIX2", "CUNIT2",
                 "CTYPE3", "CRVAL3", "CDELT3", "CRPIX3", "CUNIT3", "CTYPE4", "CRVAL4", "CDELT4", "CRPIX4",
                 "CUNIT4", "RESTFRQ", "SPECSYS", "VELREF", "TELESCOP", "OBSERVER", "DATE-OBS", "TIMESYS",
                 "OBSRA", "OBSDEC", "OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z", "INSTRUME", "DATE", "ORIGIN"}


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _record(out_dir: Path) -> dict:
    (path,) = out_dir.glob("*.record.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def raw_mfs(shared_ms, tmp_path_factory):
    """J1520-2500 spw 0 mfs from the raw alma_sim.ms (DATA only): (rc, stdout, stderr, out dir)."""

    out = tmp_path_factory.mktemp("raw_mfs") / "out"
    ms = shared_ms("alma_sim.ms")
    proc = subprocess.run([sys.executable, "-c", "import sys; from almarules.engine.cli.app import main; "
                           "sys.exit(main(sys.argv[1:]))", "image", str(ms), *J1520, "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr, out


def test_uncalibrated_data_are_not_ok_on_the_terminal_and_in_the_score(raw_mfs):
    rc, out, err, out_dir = raw_mfs
    assert rc == 0, err
    rec = _record(out_dir)
    assert rec["status"] == "uncalibrated" and rec["data"]["column"] == "DATA"
    row = next(line for line in out.splitlines() if line.startswith("J1520-2500.BANDPASS.0.mfs"))
    assert " uncalibrated " in row and " ok " not in row
    assert "WARNING J1520-2500.BANDPASS.0.mfs: uncalibrated: the visibilities were read from the DATA column" in out
    assert "1 uncalibrated (see WARNING above)" in out
    assert "UNCALIBRATED" in err
    assert rec["weblog"]["qa_score"]["value"] <= 0.3 and rec["weblog"]["qa_colour"]["value"] == "red"
    assert any("uncalibrated data (DATA column read), score capped at 0.3" in r for r in rec["weblog"]["qa_reasons"])


def _with_corrected_data(src: Path, dst: Path) -> Path:
    """A copy of `src` whose CORRECTED_DATA is its (uncalibrated) DATA. Written in another process:
    casacore's per-process table cache, holding tables other tests opened, must not see it (a
    getcol there aborted the whole test process when test_casa_weight_sums ran first)."""
    shutil.copytree(src, dst)
    code = ("import sys\n"
            "from casacore.tables import makecoldesc, table\n"
            "with table(sys.argv[1], readonly=False, ack=False) as t:\n"
            "    desc = makecoldesc('CORRECTED_DATA', t.getcoldesc('DATA'))\n"
            "    desc['desc'].pop('dataManagerGroup', None)\n"
            "    desc['desc']['dataManagerType'] = 'StandardStMan'\n"
            "    t.addcols(desc)\n"
            "    t.putcol('CORRECTED_DATA', t.getcol('DATA'))\n")
    subprocess.run([sys.executable, "-c", code, str(dst)], check=True)
    return dst


def test_the_qa_rules_see_the_column_and_the_divergence(shared_ms, tmp_path, capsys):
    """A clean pushed to diverge (gain 1, cycle factor 0.1) on the gain-corrupted alma_sim visibilities,
    given as CORRECTED_DATA: status diverged, a WARNING, and the rules cap the score at 0.6 with
    the reason; the measurement carries data_column/calibrated/clean_diverged."""
    from almarules.engine.cli.common import read_dataset
    from almarules.engine.stages.imaging.stage import Stage, make_images

    ms = _with_corrected_data(shared_ms("alma_sim.ms"), tmp_path / "alma_sim.ms")
    stage = Stage(load_rules(None), read_dataset([str(ms)], None), [ms], tmp_path / "div",
                  ["clean_gain=1", "cycle_factor=0.1"])
    (rec,) = make_images(stage, ["J1520-2500.BANDPASS.0.mfs"])
    assert rec.clean.stopped_by == "divergence", rec.clean.stopped_by
    assert rec.status == "diverged" and rec.concerns[0].startswith("diverged: the clean stopped")
    (m,) = [m for m in stage.facts.measurements if m.key == "J1520-2500.BANDPASS.0.mfs"]
    assert (m.data_column, m.calibrated, m.clean_diverged) == ("CORRECTED_DATA", True, True)
    assert rec.weblog.qa_score.value <= 0.6 + 1e-12 and rec.weblog.qa_colour.value in ("yellow", "red")
    assert any(r.endswith("the clean diverged, score capped at 0.6") for r in rec.weblog.qa_reasons)


def test_a_diverged_image_is_a_warning_line_and_a_status(shared_ms, tmp_path, capsys):
    ms = _with_corrected_data(shared_ms("alma_sim.ms"), tmp_path / "alma_sim.ms")
    rc, out, err = _run(["image", str(ms), *J1520, "--set", "clean_gain=1", "--set", "cycle_factor=0.1",
                         "-o", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    row = next(line for line in out.splitlines() if line.startswith("J1520-2500.BANDPASS.0.mfs"))
    assert " diverged " in row and " ok " not in row
    assert "WARNING J1520-2500.BANDPASS.0.mfs: diverged: the clean stopped because the residual grew" in out
    assert "1 diverged (see WARNING above)" in out and "DIVERGED" in err


def test_missing_intents_say_how_to_declare_them(shared_ms, tmp_path, capsys):
    rc, _, err = _run(["image", str(shared_ms("ngc5921.ms")), "--all", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "the data declare no intents" in err and "--intents FILE" in err and "examples/intents/" in err
    assert "it has: \n" not in err + "\n"


# ---------------------------------------------------------------- the rule-set hash
def _digest(program) -> str:
    return program.rs.digest()  # what plans, eval --json, image records and FITS provenance carry


def test_rule_set_hash_depends_on_contents_not_on_cwd_or_location(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    here = _digest(load_rules(["rules/alma/cycle4"]))
    monkeypatch.chdir(tmp_path)
    assert _digest(load_rules([str(CYCLE4)])) == here
    copy = tmp_path / "elsewhere" / "cycle4"
    shutil.copytree(CYCLE4, copy)
    assert _digest(load_rules([str(copy)])) == here
    qa = copy / "imageqa.rules"
    qa.write_text(qa.read_text().replace("1 for r <= 1", "one for r <= 1"))
    assert _digest(load_rules([str(copy)])) != here


def test_fits_provenance_hash_is_the_same_from_two_working_directories(shared_ms, tmp_path, monkeypatch, capsys):
    ms = shared_ms("alma_sim.ms")
    hashes = []
    for cwd, rules in ((REPO, "rules/alma/cycle4"), (tmp_path, str(CYCLE4))):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"o{len(hashes)}"
        rc, _, err = _run(["image", str(ms), *J1520, "--rules", rules, "-o", str(out)], capsys)
        assert rc == 0, err
        (pbcor,) = out.glob("*.pbcor.fits")
        hashes.append(read_provenance(fits.getheader(pbcor))["rules_sha256"])
        assert _record(out)["rules_sha256"] == hashes[-1]
    assert hashes[0] == hashes[1]


# ---------------------------------------------------------------- Ctrl-C
def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing_half_written(shared_ms, tmp_path):
    ms = shared_ms("alma_sim.ms")
    out = tmp_path / "out"
    code = "import sys; from almarules.engine.cli.app import main; sys.exit(main(sys.argv[1:]))"
    # SIGINT's default disposition in the child: a test run started in the background (``pytest &``)
    # inherits an ignored SIGINT, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-c", code, "image", str(ms), "--image", "SIMGAL_1.TARGET.1.cube",
                             "--extra-products", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not (out.exists() and any(p.suffix == ".tmp" for p in out.iterdir())):
            assert proc.poll() is None, "finished before writing the cube"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    own = [line for line in err.splitlines() if not line.startswith("almarules image: ")]
    assert own == ["almarules: interrupted (nothing half-written is left; finished products are kept)"]
    assert sorted(p.name for p in out.iterdir()) == []


# ---------------------------------------------------------------- FITS keywords
def _wcs_without_fixes(header: fits.Header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FITSFixedWarning)
        return WCS(header)


def test_fits_headers_carry_the_observation_as_casa_exports_it(raw_mfs):
    from astropy.time import Time

    *_, out_dir = raw_mfs
    for path in sorted(out_dir.glob("*.fits")):
        h = fits.getheader(path)
        assert CASA_KEYWORDS - {"BMAJ", "BMIN", "BPA"} <= set(h), sorted(CASA_KEYWORDS - set(h))
        assert h["TELESCOP"] == "ALMA" and h["OBJECT"] == "J1520-2500" and h["OBSERVER"] == CASA_OBSERVER
        assert h["TIMESYS"] == "UTC" and h["SPECSYS"] == "LSRK" and h["VELREF"] == 257
        assert h["BTYPE"] == "Intensity"
        assert abs((Time(h["DATE-OBS"], scale="utc") - Time(CASA_DATE_OBS, scale="utc")).to_value("s")) < 1e-3
        assert abs(h["MJD-OBS"] - Time(CASA_DATE_OBS, scale="utc").mjd) * 86400 < 1e-3
        for axis, casa in zip("XYZ", CASA_OBSGEO, strict=True):
            assert h[f"OBSGEO-{axis}"] == pytest.approx(casa, abs=1e-3)
        assert h["RESTFRQ"] == pytest.approx(CASA_RESTFRQ_SPW0, rel=1e-12)
        assert (h["OBSRA"], h["OBSDEC"]) == (h["CRVAL1"], h["CRVAL2"])
        w = _wcs_without_fixes(h)
        assert w.wcs.specsys == "LSRK" and w.wcs.dateobs.startswith("2024-06-15T02:40:55")
        assert list(w.wcs.obsgeo[:3]) == pytest.approx(CASA_OBSGEO, abs=1e-3)
        # the geodetic position astropy derives is ALMA's (casacore observatory table: -67.7549 deg,
        # -23.0229 deg)
        loc = w.wcs.obsgeo[3:]
        assert loc[0] == pytest.approx(-67.754929, abs=1e-5) and loc[1] == pytest.approx(-23.022886, abs=1e-5)


def test_cube_header_has_restfrq_specsys_and_opens_cleanly(alma_sim_calibrated, tmp_path, capsys):
    """spw 1 has no rest frequency: RESTFRQ is the mid point of its channels, as CASA does."""
    out = tmp_path / "cube"
    rc, stdout, err = _run(["image", str(alma_sim_calibrated), "--image", "SIMGAL_1.TARGET.1.cube", "-o", str(out)],
                           capsys)
    assert rc == 0, err
    assert _record(out)["status"] == "ok" and "WARNING" not in stdout
    (pbcor,) = out.glob("*.pbcor.fits")
    h = fits.getheader(pbcor)
    assert h["RESTFRQ"] == pytest.approx(CASA_RESTFRQ_SPW1_ALL, rel=1e-12)
    assert h["SPECSYS"] == "LSRK" and h["DATE-OBS"] == CASA_DATE_OBS_SIMGAL and h["OBJECT"] == "SIMGAL_1"
    w = _wcs_without_fixes(h)
    assert w.wcs.restfrq == pytest.approx(CASA_RESTFRQ_SPW1_ALL) and w.wcs.specsys == "LSRK"
    assert list(w.wcs.obsgeo[:3]) == pytest.approx(CASA_OBSGEO, abs=1e-3)


def test_data_calibrated_flag_marks_data_as_calibrated(shared_ms, tmp_path, capsys):
    rc, out, err = _run(["image", str(shared_ms("alma_sim.ms")), *J1520, "--data-calibrated", "-o", str(tmp_path)],
                        capsys)
    assert rc == 0, err
    rec = _record(tmp_path)
    assert rec["status"] == "ok" and rec["data"]["column"] == "DATA" and "WARNING" not in out
    assert not any("uncalibrated" in r for r in rec["weblog"]["qa_reasons"])


def test_an_image_interrupted_between_its_products_leaves_none_of_them(shared_ms, tmp_path, monkeypatch):
    from almarules.engine.products import fits as fitsio
    from almarules.engine.cli.common import read_dataset
    from almarules.engine.stages.imaging.stage import Stage, make_image

    real, calls = fitsio.write_image, []

    def interrupted_second(path, *args, **kwargs):
        calls.append(Path(path).name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fitsio, "write_image", interrupted_second)
    ms = shared_ms("alma_sim.ms")
    stage = Stage(load_rules(None), read_dataset([str(ms)], None), [ms], tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        make_image(stage, "J1520-2500.BANDPASS.0.mfs")
    assert calls[0].endswith(".pbcor.fits") and sorted((tmp_path / "out").iterdir()) == []


# CASA 6.7.0-31 tclean (field N5921_2, spw 0, mfs, niter=0, datacolumn='data') + exportfits of the
# shared ngc5921.ms, read with astropy on 2026-12-06: CASA writes DATE-OBS in the MS's TIME scale,
# TAI here (TIMESYS = 'TAI'); almarules writes the same instant in UTC (29 s earlier in 1995).
CASA_N5921 = {"DATE-OBS": "1995-04-13T09:33:00.000687", "TIMESYS": "TAI", "OBSERVER": "TEST", "TELESCOP": "VLA",
              "RESTFRQ": 1420405752.0, "OBSGEO": (-1601185.365, -5041977.547, 3554875.87)}


def test_vla_header_matches_casa_and_date_obs_is_utc(shared_ms, tmp_path, capsys):
    from astropy.time import Time

    rc, _, err = _run(["image", str(shared_ms("ngc5921.ms")), "--intents", str(REPO / "examples" / "intents" /
                       "ngc5921.yaml"), "--image", "N5921_2.TARGET.0.mfs", "-o", str(tmp_path)], capsys)
    assert rc == 0, err
    (pbcor,) = tmp_path.glob("*.pbcor.fits")
    h = fits.getheader(pbcor)
    assert h["TIMESYS"] == "UTC"
    casa = Time(CASA_N5921["DATE-OBS"], scale=CASA_N5921["TIMESYS"].lower())
    assert abs((Time(h["DATE-OBS"], scale="utc") - casa).to_value("s")) < 1e-3
    assert h["DATE-OBS"].startswith("1995-04-13T09:32:31")
    assert (h["OBSERVER"], h["TELESCOP"], h["OBJECT"]) == (CASA_N5921["OBSERVER"], CASA_N5921["TELESCOP"], "N5921_2")
    assert h["RESTFRQ"] == CASA_N5921["RESTFRQ"] and h["VELREF"] == 257
    for axis, v in zip("XYZ", CASA_N5921["OBSGEO"], strict=True):
        assert h[f"OBSGEO-{axis}"] == pytest.approx(v, abs=1e-3)
    _wcs_without_fixes(h)
