"""``almarules run`` end to end on a simulated execution block (the project's simulator, no
corruptions, so DATA is calibrated): green images with the truth's fluxes, products with their
checksums, the equivalent commands, a second run that keeps everything, a cont.dat edit that
redoes exactly the one image it touches, a killed run that resumes, two workers equal to one,
a second run on the same WORKDIR refused, and the dry run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from almarules.engine.pipeline.context import Workdir, locked
from almarules.engine.pipeline.state import RunState
from almarules.engine.products.fits import read_image
from small_sim import run_cli, small_ms as make_small_ms

REPO = Path(__file__).resolve().parents[3]
CONTDAT = """Field: SIMGAL_1

SpectralWindow: 0
{a} LSRK

SpectralWindow: 1
228.0~230.0GHz LSRK
"""


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory) -> Path:
    return make_small_ms(tmp_path_factory.mktemp("run"))


def _state(wd: Path) -> RunState:
    return RunState.model_validate_json((wd / "run.json").read_bytes())


def _record(wd: Path, key: str) -> dict:
    return json.loads((wd / _state(wd).images[key].record).read_text())


def _fits(wd: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p)[0] for p in sorted((wd / "images").glob("*.fits"))}


@pytest.fixture(scope="module")
def serial(small_ms, tmp_path_factory):
    """A whole serial run, one thread per image (byte-identical products), with a cont.dat."""
    wd = tmp_path_factory.mktemp("serial") / "wd"
    cont = wd.parent / "cont.dat"
    cont.write_text(CONTDAT.format(a="230.2~231.6GHz"))
    argv = ["run", str(small_ms), "-o", str(wd), "--data-calibrated", "--workers", "1", "--threads", "1",
            "--contfile", str(cont), "--no-weblog"]
    rc = subprocess.run([sys.executable, "-m", "almarules.engine.cli.app", *argv], capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    return wd, argv, rc


def test_a_corruption_free_simulation_gives_green_images_with_the_truths_fluxes(serial, small_ms):
    wd, _argv, _rc = serial
    truth = json.loads(small_ms.with_name("small.truth.json").read_text())
    ref = truth["reference_frequency_hz"]
    fluxes = {f["name"]: f["components"][0] for f in truth["config"]["fields"]}
    state = _state(wd)
    assert len(state.images) == 11
    for key, entry in state.images.items():
        rec = _record(wd, key)
        assert rec["status"] == "ok" and rec["weblog"]["qa_colour"]["value"] == "green", key
        if rec["intent"] != "TARGET":  # a point calibrator at the phase centre: pbcor peak = its flux
            c = fluxes[rec["field"]]
            nu = rec["weblog"]["centre_frequency"]["value"] * 1e9
            expected = c["flux"] * (nu / ref) ** c["spectral_index"]
            noise = rec["weblog"]["rms"]["value"] / 1e3  # the check source is faint: 5 sigma of thermal noise
            assert rec["weblog"]["pbcor_max"]["value"] / 1e3 == pytest.approx(expected, abs=0.02 * expected + 5 * noise), key


def test_stages_without_an_implementation_are_recorded_as_such(serial):
    state = _state(serial[0])
    by_name = {s.name: s for s in state.stages}
    assert by_name["rawflagchans"].status == "not_implemented" and "calibration" in by_name["rawflagchans"].why
    assert by_name["bandpass"].status == "skipped" and "--data-calibrated" in by_name["bandpass"].why
    assert by_name["tsyscal"].status == "skipped"  # no Tsys in a simulated EB: its condition is false
    assert [s.status for s in state.stages if s.name == "makeimages"] == ["done"] * 4
    assert any("not implemented" in a.text for a in state.attention)
    assert state.finished


def test_products_carry_checksums_commands_and_a_rerun_script(serial):
    wd = serial[0]
    manifest = json.loads((wd / "products" / "manifest.json").read_text())
    files = {e["file"]: e for e in manifest["products"]}
    on_disk = {p.name for p in (wd / "products").iterdir()} - {"manifest.json"}
    assert set(files) == on_disk
    for name, e in files.items():
        assert hashlib.sha256((wd / "products" / name).read_bytes()).hexdigest() == e["sha256"], name
    pbcor = [f for f in files if f.endswith(".pbcor.fits")]
    assert len(pbcor) == 11 and len([f for f in files if f.endswith(".pb.fits")]) == 11
    assert "cont.dat" in files
    log = (wd / "products" / "commands.log").read_text()
    rec = _record(wd, "SIMGAL_1.TARGET.0.mfs")
    thr = rec["weblog"]["threshold"]
    imsize = int(rec['parameters']['imsize']['value'])
    assert f"imsize=[{imsize}, {imsize}]" in log and "niter=5000," in log  # integers, as tclean requires
    assert f"threshold='{thr['value']:.6g}mJy'" in log
    assert "almarules image" in log and "--image SIMGAL_1.TARGET.0.mfs" in log
    script = (wd / "products" / "rerun.sh").read_text()
    assert "almarules run" in script and str(wd) in script and os.access(wd / "products" / "rerun.sh", os.X_OK)


def test_a_second_run_keeps_every_image(serial, tmp_path, capsys):
    wd, argv, _ = serial
    before = {p.name: p.stat().st_mtime_ns for p in (wd / "images").glob("*.fits")}
    rc, _out, err = run_cli(argv, capsys)
    assert rc == 0, err
    state = _state(wd)
    assert sorted(k for s in state.stages for k in s.kept) == sorted(state.images)
    assert {p.name: p.stat().st_mtime_ns for p in (wd / "images").glob("*.fits")} == before


def test_a_contdat_edit_redoes_exactly_the_images_of_that_spw_and_says_why(serial, tmp_path, capsys):
    """spw 0's ranges edited: the cont image (spws 0 and 1) and the spw 0 cube (made from the
    continuum-subtracted copy) are made again, saying why; the spw 1 cube and the mfs images kept."""
    wd, argv, _ = serial
    cont = Path(argv[argv.index("--contfile") + 1])
    cont.write_text(CONTDAT.format(a="230.4~231.6GHz"))
    rc, out, err = run_cli(argv[:-1] + ["--dry-run"], capsys)
    assert rc == 0 and "make again SIMGAL_1.TARGET.0_1.cont: changed: cont.dat ranges" in out
    assert "make again SIMGAL_1.TARGET.0.cube: changed: cont.dat ranges of field SIMGAL_1, spw 0" in out
    assert out.count("make again") == 2
    rc, _out, err = run_cli(argv, capsys)
    assert rc == 0, err
    state = _state(wd)
    made = [k for s in state.stages if s.name == "makeimages" for k in s.items if k not in s.kept]
    assert sorted(made) == ["SIMGAL_1.TARGET.0.cube", "SIMGAL_1.TARGET.0_1.cont"]
    redone = {k: v for s in state.stages for k, v in s.redone.items()}
    assert sorted(redone) == sorted(made) and all("cont.dat" in v[0] for v in redone.values())
    assert "made again" in (wd / "logs" / "30_makeimages.log").read_text()


def test_a_parameter_edit_says_which_parameter_changed(serial, capsys):
    wd, argv, _ = serial
    rc, out, _err = run_cli(argv[:-1] + ["--set", "tlimit=3", "--dry-run"], capsys)
    assert rc == 0
    assert "make again SIMGAL_1.TARGET.0.cube: parameter tlimit = 4 -> 3" in out


def test_two_workers_give_the_serial_runs_products_byte_for_byte(serial, small_ms, tmp_path, capsys):
    wd, argv, _ = serial
    par = tmp_path / "par"
    cont = argv[argv.index("--contfile") + 1]
    rc, _out, err = run_cli(["run", str(small_ms), "-o", str(par), "--data-calibrated", "--workers", "2",
                             "--threads", "1", "--contfile", cont, "--no-weblog"], capsys)
    assert rc == 0, err
    workers = {e.worker for e in _state(par).images.values() if e.worker}
    assert any(w.startswith("tcp://") for w in workers), workers  # really on Dask
    a, b = _fits(wd), _fits(par)
    assert set(b) == set(a) and len(b) == 11 * 7
    for name, data in b.items():
        assert np.array_equal(data, a[name], equal_nan=True), name


def test_a_run_killed_with_sigkill_resumes_and_redoes_only_unfinished_work(serial, small_ms, tmp_path):
    wd0 = serial[0]
    wd = tmp_path / "wd"
    cont = serial[1][serial[1].index("--contfile") + 1]
    argv = [sys.executable, "-m", "almarules.engine.cli.app", "run", str(small_ms), "-o", str(wd), "--data-calibrated",
            "--workers", "1", "--threads", "1", "--contfile", cont, "--no-weblog"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once it has finished some images
        try:
            done = [e for e in _state(wd).images.values() if e.record]
        except (OSError, ValueError):
            done = []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {k for k, e in _state(wd).images.items() if e.record}
    assert 3 <= len(finished) < 11
    rc = subprocess.run(argv, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    state = _state(wd)
    kept = {k for s in state.stages for k in s.kept}
    assert finished <= kept and len(kept) < 11
    assert not [p for p in wd.rglob("*") if p.name.endswith(".tmp") or ".almarules-tmp" in p.name]
    a, b = _fits(wd0), _fits(wd)
    assert set(a) == set(b)
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name


def test_a_second_run_on_the_same_workdir_is_refused(small_ms, tmp_path, capsys):
    wd = Workdir(tmp_path / "wd")
    wd.root.mkdir()
    with locked(wd):
        rc, _out, err = run_cli(["run", str(small_ms), "-o", str(wd.root), "--no-weblog"], capsys)
    assert rc == 2 and "another 'almarules run' is using" in err


def test_bad_arguments_are_one_line(small_ms, tmp_path, capsys):
    for argv, text in (([str(tmp_path / "nope.ms")], "no such dataset"),
                       ([str(small_ms), "--contfile", str(tmp_path / "c.dat")], "--contfile: no such file"),
                       ([str(small_ms), "--workers", "0"], "--workers must be at least 1"),
                       ([str(small_ms), "--from", "fly"], "no stage 'fly' in the recipe")):
        rc, _out, err = run_cli(["run", *argv, "-o", str(tmp_path / "wd"), "--no-weblog"], capsys)
        assert rc == 2 and text in err and "Traceback" not in err, (argv, err)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_address_is_honoured(small_ms, tmp_path, capsys):
    """A scheduler and one worker started on localhost, as on a cluster: the images run there."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                               "--nthreads", "1", "--no-dashboard", "--name", "almarules-test-worker"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wd = tmp_path / "wd"
        rc, _out, err = run_cli(["run", str(small_ms), "-o", str(wd), "--data-calibrated", "--scheduler", address,
                                 "--until", "20", "--no-weblog"], capsys)
        assert rc == 0, err
        state = _state(wd)
        assert address in state.workers and "1 workers" in state.workers
        workers = {e.worker for e in state.images.values()}
        assert len(state.images) == 6 and all(w and w.startswith("tcp://127.0.0.1:") for w in workers), workers
    finally:
        for p in (worker, sched):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_the_raw_simulation_is_honestly_flagged(shared_ms, tmp_path, capsys):
    """alma_sim.ms as observed (gains, bandpasses, no CORRECTED_DATA) with the calibration stages
    stopped before applycal: the calibrator and target images are made from DATA, marked
    uncalibrated with a capped score, never green; the terminal says so."""
    wd = tmp_path / "wd"
    rc, _out, err = run_cli(["run", str(shared_ms("alma_sim.ms")), "-o", str(wd), "--workers", "1", "--from", "19",
                             "--until", "28", "--no-weblog"], capsys)
    assert rc == 0, err
    state = _state(wd)
    assert len(state.images) == 8 and {e.status for e in state.images.values()} == {"uncalibrated"}
    for key in state.images:
        assert _record(wd, key)["weblog"]["qa_colour"]["value"] != "green", key
    first = state.attention[0]
    assert first.level == "error" and "8 image(s) made from uncalibrated data" in first.text
    assert [s.status for s in state.stages if s.name == "applycal"] == ["pending"]
    assert [s.score.colour for s in state.stages if s.name == "makeimages" and s.status == "done"] == ["red", "red"]
    assert "ERROR 8 image(s) made from uncalibrated data" in err
    assert "WARNING 8 images (" in err and err.count("the visibilities were read from the DATA column") == 1


def test_the_raw_simulation_without_a_flux_scale_says_so(shared_ms, tmp_path, capsys):
    """alma_sim.ms calibrated without a flux file: its flux calibrator is in no catalogue, so setjy
    cannot scale it; gfluxscale fails with the reason and the terminal's first line says so."""
    wd = tmp_path / "wd"
    rc, _out, err = run_cli(["run", str(shared_ms("alma_sim.ms")), "-o", str(wd), "--workers", "1", "--until",
                             "applycal", "--no-weblog"], capsys)
    assert rc == 0, err
    state = _state(wd)
    by_name = {s.name: s for s in state.stages}
    assert by_name["applycal"].status == "done" and by_name["gfluxscale"].status == "failed"
    assert "--fluxfile" in by_name["gfluxscale"].error
    assert "ERROR gfluxscale failed" in err and "flux densities are relative" in err


def test_ctrl_c_stops_the_workers_exit_130_and_the_run_resumes(small_ms, tmp_path):
    """Ctrl-C in a terminal reaches the whole process group (the run and its Dask workers)."""
    wd = tmp_path / "wd"
    code = "import sys; from almarules.engine.cli.app import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "run", str(small_ms), "-o", str(wd), "--data-calibrated", "--workers", "2",
            "--no-weblog"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if sum(bool(e.record) for e in _state(wd).images.values()) >= 2:
                    break
            except (OSError, ValueError):
                pass
            assert proc.poll() is None, "finished before it could be interrupted"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert _state(wd).interrupted
    rc = subprocess.run(argv, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert len([e for e in _state(wd).images.values() if e.status == "ok"]) == 11
    assert not [p for p in wd.rglob("*") if p.name.endswith(".tmp")]


def test_a_flag_template_is_delivered_and_said_not_applied_without_calibration(small_ms, tmp_path, capsys):
    template = tmp_path / "uid.flagtargetstemplate.txt"
    template.write_text("mode='manual' antenna='DA41' reason='test'\n")
    wd = tmp_path / "wd"
    rc, _out, err = run_cli(["run", str(small_ms), "-o", str(wd), "--data-calibrated", "--workers", "1",
                             "--flagtemplate", str(template), "--until", "21", "--no-weblog"], capsys)
    assert rc == 0, err
    assert (wd / "products" / template.name).read_text() == template.read_text()
    assert "flag template uid.flagtargetstemplate.txt was not applied (flagdata did not run)" in err


def test_a_dataset_whose_images_fail_still_gets_products_and_a_weblog(shared_ms, tmp_path, capsys):
    """X5707 (one baseline, one integration): no PSF main lobe to fit, so every image fails; the run
    says so (exit 2), and still writes its products and a weblog that lists the failures first."""
    wd = tmp_path / "wd"
    rc, _out, err = run_cli(["run", str(shared_ms("X5707_1spw_1scan_10chan_1time_1bl_noatm.ms")), "-o", str(wd),
                             "--workers", "1"], capsys)
    assert rc == 2 and "Traceback" not in err
    state = _state(wd)
    assert {e.status for e in state.images.values()} == {"failed"}
    assert any(a.level == "error" and "PSF main lobe" in a.text for a in state.attention)
    assert (wd / "products" / "manifest.json").is_file() and (wd / "products" / "commands.log").is_file()
    index = (wd / "weblog" / "index.html").read_text()
    assert "PSF main lobe cannot be fitted" in index
