"""``almarules image``: choosing images, the products on disk, clear errors with exit code 2,
failed images recorded, auto-multithresh from the current rules, bounded memory for cubes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from almarules.engine.products.fits import read_image
from small_sim import run_cli, small_ms as make_small_ms

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory) -> Path:
    return make_small_ms(tmp_path_factory.mktemp("image_cli"))


def _run(argv, capsys):
    return run_cli(argv, capsys)


def test_one_image_by_field_spw_and_specmode(small_ms, tmp_path, capsys):
    # an uncorrupted simulation holds DATA only: calibrated visibilities, as --data-calibrated says
    rc, out, err = _run(["image", str(small_ms), "--field", "SIMGAL_1", "--spw", "0", "--specmode", "mfs",
                         "--data-calibrated", "-o", str(tmp_path / "out")], capsys)
    assert rc == 0, err
    assert "WARNING" not in out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["2099.1.00001.S.SIMGAL_1_sci.spw0.mfs.I.pb.fits", "2099.1.00001.S.SIMGAL_1_sci.spw0.mfs.I.pbcor.fits",
                     "2099.1.00001.S.SIMGAL_1_sci.spw0.mfs.I.record.json"]
    assert "SIMGAL_1.TARGET.0.mfs" in out and "1 of 1 images made" in out
    assert "[1/1] SIMGAL_1.TARGET.0.mfs" in err
    rec = json.loads((tmp_path / "out" / names[2]).read_text())
    assert rec["status"] == "ok" and rec["parameters"]["mask_method"]["value"] == "pb"
    assert re.search(r"rules/alma/cycle4/threshold\.rules:\d+:1$", rec["weblog"]["threshold"]["source"])


@pytest.mark.parametrize("argv, message", [
    (["--image", "NOPE.TARGET.0.mfs"], "no image 'NOPE.TARGET.0.mfs' in the imaging list; it has: J1520-2500"),
    ([], "say which images: --all, --image KEY, or --field/--intent/--spw/--specmode"),
    (["--spw", "a"], "--spw takes spw ids separated by commas, got 'a'"),
    (["--field", "SIMGAL_1", "--spw", "7"], "no image of the imaging list matches"),
    (["--all", "--rules", "nowhere"], "no such rule file or directory: nowhere"),
    (["--all", "--set", "niter=lots"], "--set niter=lots"),
])
def test_user_errors_are_one_line_with_exit_code_2(small_ms, tmp_path, capsys, argv, message):
    rc, out, err = _run(["image", str(small_ms), "-o", str(tmp_path / "o")] + argv, capsys)
    assert rc == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_summary_is_not_imaged_and_a_file_is_not_a_directory(tmp_path, capsys):
    summary = REPO / "examples" / "12m_single_field_tdm.yaml"
    rc, _, err = _run(["image", str(summary), "--all", "-o", str(tmp_path)], capsys)
    assert rc == 2 and "not a Measurement Set; imaging needs the visibilities" in err
    rc, _, err = _run(["image", str(tmp_path / "missing.ms"), "--all", "-o", str(tmp_path)], capsys)
    assert rc == 2 and "no such dataset" in err


def test_bad_cont_dat_names_file_line_and_column(small_ms, tmp_path, capsys):
    bad = tmp_path / "cont.dat"
    bad.write_text("Field: SIMGAL_1\n\nSpectralWindow: 0\n230.5~230.1GHz LSRK\n")
    rc, _, err = _run(["image", str(small_ms), "--specmode", "cont", "--contfile", str(bad), "-o",
                       str(tmp_path / "o")], capsys)
    assert rc == 2 and f"{bad}:4:" in err


def test_an_image_that_cannot_be_made_is_recorded_as_failed(shared_ms, tmp_path, capsys):
    ms = shared_ms("X5707_1spw_1scan_10chan_1time_1bl_noatm.ms")  # one baseline, one integration
    rc, out, err = _run(["image", str(ms), "--specmode", "mfs", "-o", str(tmp_path)], capsys)
    assert rc == 2
    (record,) = tmp_path.glob("*.record.json")
    rec = json.loads(record.read_text())
    assert rec["status"] == "failed" and "the PSF main lobe cannot be fitted" in rec["error"]
    assert "0 of 1 images made" in out and "1 failed" in out
    assert not list(tmp_path.glob("*.fits"))


def test_current_rules_clean_with_auto_multithresh(alma_sim_calibrated, tmp_path, capsys):
    """On the 40-antenna simulated EB (a 12-antenna snapshot's PSF sidelobes of ~0.6 put the
    sidelobe threshold above every source: auto-multithresh would rightly mask nothing)."""
    rc, _, err = _run(["image", str(alma_sim_calibrated), "--rules", str(REPO / "rules" / "alma" / "current"),
                       "--image", "SIMGAL_1.TARGET.0.mfs", "--extra-products", "-o", str(tmp_path)], capsys)
    assert rc == 0, err
    rec = json.loads(next(tmp_path.glob("*.record.json")).read_text())
    assert rec["parameters"]["mask_method"]["value"] == "auto-multithresh"
    source = rec["parameters"]["sidelobethreshold"]["source"]
    line = int(re.search(r"rules/alma/current/clean\.rules:(\d+):1$", source).group(1))
    rule = (REPO / "rules" / "alma" / "current" / "clean.rules").read_text().splitlines()[line - 1]
    assert rule.startswith("derive image.sidelobethreshold = sidelobethreshold_12m(")  # 12-m
    mask, _, _ = read_image(next(tmp_path.glob("*.mask.fits")))
    n = mask.shape[1]
    assert mask[0, n // 2, n // 2] == 1.0  # the 20 mJy point at the phase centre is masked
    assert rec["clean"]["stopped_by"] == "threshold"
    assert 0 < rec["clean"]["mask_pixels"] < 0.05 * n * n
    assert any("auto-multithresh mask" in w for w in rec["warnings"])


def test_cube_streams_with_bounded_memory_and_the_same_result(small_ms, tmp_path, capsys):
    key = "SIMGAL_1.TARGET.1.cube"
    rc, _, err = _run(["image", str(small_ms), "--image", key, "-o", str(tmp_path / "big")], capsys)
    assert rc == 0, err
    rc, _, err = _run(["image", str(small_ms), "--image", key, "--memory", "1e-6", "-o", str(tmp_path / "small")],
                      capsys)
    assert rc == 0, err
    (a,) = (tmp_path / "big").glob("*.pbcor.fits")
    (b,) = (tmp_path / "small").glob("*.pbcor.fits")
    da, ha, ba = read_image(a)
    db, hb, bb = read_image(b)
    # the same images: pass 2 reuses pass 1's planes in one run and grids again in the other, and
    # ducc0's threaded sums round differently (1e-9 of a 1 Jy/beam image, below float32's 6e-8)
    assert da.shape[0] == 8 and np.array_equal(np.isnan(da), np.isnan(db))
    assert np.allclose(da, db, rtol=0, atol=1e-6 * np.nanmax(np.abs(da)), equal_nan=True)
    for x, y in zip(ba, bb, strict=True):  # fitted from the same PSF, up to rounding
        assert (x.bmaj_arcsec, x.bmin_arcsec, x.bpa_deg) == pytest.approx((y.bmaj_arcsec, y.bmin_arcsec, y.bpa_deg),
                                                                          rel=1e-9)
    rec = json.loads(next((tmp_path / "small").glob("*.record.json")).read_text())
    assert [c["channel"] for c in rec["channels"]] == list(range(8))
