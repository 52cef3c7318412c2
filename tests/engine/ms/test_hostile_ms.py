"""Foreign and broken Measurement Sets (issue 11): one clear line with exit code 2, quickly, or
the right image. Each MS is the small simulated EB with one thing changed (tests/hostile_ms.py)."""

from __future__ import annotations

import os
import json
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import hostile_ms
from small_sim import run_cli, small_ms as make_small_ms



@pytest.fixture(scope="module")
def small_ms(tmp_path_factory) -> Path:
    return make_small_ms(tmp_path_factory.mktemp("hostile"))


def _run(argv, capsys):
    return run_cli(argv, capsys)


@pytest.mark.parametrize("command", ["facts", "plan", "image"])
def test_nan_antenna_positions_are_one_line_naming_table_column_and_rows(small_ms, tmp_path, command, capsys):
    ms = hostile_ms.nan_positions(small_ms, tmp_path / "nan.ms", [1, 2])
    argv = [command, str(ms)] + (["--all", "-o", str(tmp_path / "o")] if command == "image" else [])
    rc, out, err = _run(argv, capsys)
    assert rc == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "nan.ms/ANTENNA: column POSITION is not finite" in err and "rows 1, 2" in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.fits"))


def test_all_zero_weights_are_named_as_such_not_as_flags(small_ms, tmp_path, capsys):
    ms = hostile_ms.zero_weights(small_ms, tmp_path / "zero.ms")
    rc, out, err = _run(["image", str(ms), "--field", "SIMGAL_1", "--spw", "0", "--specmode", "mfs",
                         "--data-calibrated", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "every weight of field SIMGAL_1 is zero" in out and "column WEIGHT spw 0" in out
    assert "flagged" not in out.replace("not flagged", "")


def _images(ms: Path, out: Path, capsys) -> None:
    rc, _, err = _run(["image", str(ms), "--field", "SIMGAL_1", "--spw", "1", "--data-calibrated",
                       "--specmode", "mfs", "-o", str(out)], capsys)
    assert rc == 0, err
    rc, _, err = _run(["image", str(ms), "--field", "SIMGAL_1", "--spw", "1", "--data-calibrated",
                       "--specmode", "cube", "-o", str(out)], capsys)
    assert rc == 0, err


def test_descending_channels_image_as_the_ascending_ms(small_ms, tmp_path, capsys):
    ms = hostile_ms.descending_spw(small_ms, tmp_path / "sma.ms", 1)
    _images(small_ms, tmp_path / "asc", capsys)
    _images(ms, tmp_path / "desc", capsys)
    names = sorted(p.name for p in (tmp_path / "asc").glob("*.pbcor.fits"))
    assert len(names) == 2
    for name in names:
        a, ha = fits.getdata(tmp_path / "asc" / name), fits.getheader(tmp_path / "asc" / name)
        b, hb = fits.getdata(tmp_path / "desc" / name), fits.getheader(tmp_path / "desc" / name)
        if ".cube." in name:
            # planes in the MS's channel order: descending, with a negative CDELT3
            assert hb["CDELT3"] == -ha["CDELT3"] < 0
            assert hb["CRVAL3"] == pytest.approx(ha["CRVAL3"] + (a.shape[1] - 1) * ha["CDELT3"], rel=1e-12)
            b = b[:, ::-1]
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7 * np.nanmax(np.abs(a)))


def test_descending_channels_facts_keep_the_sign_of_the_width_only(small_ms, tmp_path, capsys):
    ms = hostile_ms.descending_spw(small_ms, tmp_path / "sma.ms", 1)
    rc, out, err = _run(["facts", str(ms), "--json"], capsys)
    assert rc == 0, err
    spw = [s for s in json.loads(out)["spws"] if s["id"] == 1][0]
    assert spw["channel_width"] == -31.25e6 and spw["effective_bw"] == 31.25e6
    assert spw["channel_frequencies"] == sorted(spw["channel_frequencies"], reverse=True)


def test_a_field_of_view_beyond_the_horizon_is_refused_before_imaging(small_ms, tmp_path, capsys):
    ms = hostile_ms.low_frequency(small_ms, tmp_path / "lwa.ms", 50e6, 3.0, "LWA")
    rc, out, err = _run(["image", str(ms), "--field", "SIMGAL_1", "--spw", "0", "--specmode", "mfs",
                         "--data-calibrated", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "internal error" not in err and "Traceback" not in err
    assert "reaches beyond the horizon" in out + err and "imaging.rules" in out + err


def test_an_image_over_the_pixel_limit_is_refused_up_front(small_ms, tmp_path, capsys):
    from almarules.engine.stages.imaging.job import MAX_IMSIZE

    ms = hostile_ms.long_baselines(small_ms, tmp_path / "wide.ms", 400.0)
    t0 = time.perf_counter()
    rc, out, err = _run(["image", str(ms), "--field", "SIMGAL_1", "--spw", "0", "--specmode", "mfs",
                         "--data-calibrated", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2, out + err
    assert time.perf_counter() - t0 < 30  # refused before gridding tens of thousands of pixels squared
    assert f"more than the imaging stage's limit of {MAX_IMSIZE}x{MAX_IMSIZE}" in out
    assert "imaging.rules" in out and "internal error" not in err


def _broken(kind: str, src: Path, tmp: Path) -> tuple[Path, str]:
    """A broken input of `kind` and what its one-line error must say."""
    if kind in ("ANTENNA", "FIELD", "SPECTRAL_WINDOW"):
        return (hostile_ms.truncated_subtable(src, tmp / "t.ms", kind),
                f"t.ms/{kind}: cannot read column ")
    if kind == "missing":
        return hostile_ms.missing_subtable(src, tmp / "m.ms", "FIELD"), "m.ms: missing subtable FIELD"
    if kind == "empty":
        return hostile_ms.empty_main_table(src, tmp / "e.ms"), "e.ms: the main table has no rows"
    if kind == "symlink loop":
        (tmp / "a.ms").symlink_to(tmp / "b.ms")
        (tmp / "b.ms").symlink_to(tmp / "a.ms")
        return tmp / "a.ms", "no such dataset"
    if kind == "fifo":
        os.mkfifo(tmp / "f.ms")
        return tmp / "f.ms", "f.ms"
    (tmp / "d.ms").mkdir()  # a directory that is not a table
    return tmp / "d.ms", "d.ms"


@pytest.mark.parametrize("kind", ["ANTENNA", "FIELD", "SPECTRAL_WINDOW", "missing", "empty", "symlink loop",
                                  "fifo", "not a table"])
@pytest.mark.parametrize("command", ["facts", "plan", "image"])
def test_broken_ms_is_one_line_with_exit_code_2(small_ms, tmp_path, kind, command, capsys):
    path, message = _broken(kind, small_ms, tmp_path)
    argv = [command, str(path)] + (["--all", "-o", str(tmp_path / "o")] if command == "image" else [])
    t0 = time.perf_counter()
    rc, out, err = _run(argv, capsys)
    assert time.perf_counter() - t0 < 30
    assert rc == 2, out + err
    assert message in err and "internal error" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_nan_antenna_without_data_is_left_out(small_ms, tmp_path, capsys):
    ms = hostile_ms.unused_nan_antenna(small_ms, tmp_path / "extra.ms")
    rc, out, err = _run(["facts", str(ms), "--json"], capsys)
    assert rc == 0, err
    names = [a["name"] for a in json.loads(out)["antennas"]]
    assert "XX99" not in names and names
    from almarules.engine.ms.facts import observation_info

    centre = observation_info(ms, [0], [0]).antenna_centre_m
    assert centre is not None and all(np.isfinite(centre))
