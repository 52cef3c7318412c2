"""``almarules image`` under hostile conditions (issue 11): hostile field names, a killed run, a
full disk, a read-only output directory, Ctrl-C, and reproducible products. Each failure is one
line with exit code 2 (130 for Ctrl-C), and nothing half-written is left."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits

from almarules.engine import io as engine_io
from almarules.engine.stages.imaging.record import RUN_KEYS
from almarules.engine.products.fits import MAX_COMPONENT, field_tokens, product_name, sanitize_name
from small_sim import run_cli, small_ms as make_small_ms

MFS = ["--field", "SIMGAL_1", "--spw", "0", "--specmode", "mfs", "--data-calibrated"]
CUBE = ["--field", "SIMGAL_1", "--spw", "1", "--specmode", "cube", "--data-calibrated"]
PIPELINE_CHARS = re.compile(r"^[A-Za-z0-9_.+-]+$")


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory) -> Path:
    return make_small_ms(tmp_path_factory.mktemp("image_faults"))


def _run(argv, capsys):
    return run_cli(argv, capsys)


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ---------------------------------------------------------------- hostile names
HOSTILE = ["../../etc/x", "..", ".hidden", "a/b", "a b", "a\x00b", "Ünïcødé→☃", " " * 3, "x" * 300, "y" * 300,
           "a..b", "...", "-", "C:\\evil", "name\nwith newline"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_in_the_pipeline_character_set(name):
    token = sanitize_name(name)
    assert PIPELINE_CHARS.match(token) and ".." not in token and not token.startswith(".")
    assert 1 <= len(token) <= MAX_COMPONENT
    product = product_name("uid://A001/X1/X2", name, "TARGET", [0], "mfs", kind="pbcor")
    assert PIPELINE_CHARS.match(product) and ".." not in product and not product.startswith(".")
    assert len(product.encode()) <= 255 and "/" not in product


def test_distinct_hostile_names_never_share_a_product():
    tokens = field_tokens(HOSTILE + ["a_b", "____etc_x"])
    assert len(set(tokens.values())) == len(tokens)  # 'a/b', 'a b', 'a\0b', 'a_b' would all be 'a_b'
    assert field_tokens(["SIMGAL_1", "a/b", "NGC 2872"]) == {"SIMGAL_1": "SIMGAL_1", "a/b": "a_b",
                                                             "NGC 2872": "NGC_2872"}  # unshared: kept
    assert sanitize_name("x" * 300) != sanitize_name("x" * 299)  # long names keep a hash of the whole


def test_a_field_named_like_a_path_writes_only_inside_the_output_directory(small_ms, tmp_path, capsys):
    from casacore.tables import table

    ms = tmp_path / "hostile.ms"
    shutil.copytree(small_ms, ms)
    with table(f"{ms}/FIELD", readonly=False, ack=False) as t:
        names = list(t.getcol("NAME"))
        names[names.index("SIMGAL_1")] = "../../etc/x"
        t.putcol("NAME", names)
    out = tmp_path / "a" / "b" / "out"
    rc, _, err = _run(["image", str(ms), "--field", "../../etc/x", "--spw", "0", "--specmode", "mfs",
                       "--data-calibrated", "--threads", "1", "-o", str(out)], capsys)
    assert rc == 0, err
    assert _names(out) == [f"2099.1.00001.S.____etc_x_sci.spw0.mfs.I.{k}" for k in
                           ("pb.fits", "pbcor.fits", "record.json")]
    assert _names(tmp_path / "a") == ["b"] and _names(tmp_path / "a" / "b") == ["out"]


# ---------------------------------------------------------------- a killed run
def test_leftovers_of_a_killed_run_are_removed_and_the_image_made_again(small_ms, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = _run(["image", str(small_ms), *MFS, "--threads", "1", "-o", str(out)], capsys)
    assert rc == 0, err
    stem = "2099.1.00001.S.SIMGAL_1_sci.spw0.mfs.I"
    complete = {n: (out / n).read_bytes() for n in _names(out)}
    # as kill -9 leaves them: the pb's temporary, the pbcor renamed, no record yet
    (out / f"{stem}.record.json").unlink()
    (out / f"{stem}.pb.fits").rename(out / f".{stem}.pb.fits.hfrimjkc.tmp")
    # and what is not ours: kept
    keep = {"notes.txt": b"mine", ".cache.abcdefgh.tmp": b"not a product", "mine.I.pb.fits": b"x",
            "2099.1.00001.S.OTHER_sci.spw0.mfs.I.pb.fits": b"not almarules' FITS"}
    for n, data in keep.items():
        (out / n).write_bytes(data)
    rc, _, err = _run(["image", str(small_ms), *MFS, "--threads", "1", "-o", str(out)], capsys)
    assert rc == 0, err
    assert f"removed .{stem}.pb.fits.hfrimjkc.tmp: the temporary file of an interrupted write" in err
    assert f"removed {stem}.pbcor.fits: a product of an image without its record" in err
    assert _names(out) == sorted(set(complete) | set(keep))
    assert all((out / n).read_bytes() == data for n, data in keep.items())
    for n in complete:
        assert (out / n).stat().st_size > 0


def test_a_run_killed_by_sigkill_leaves_nothing_a_later_run_does_not_repair(small_ms, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "almarules.engine.cli.app", "image", str(small_ms), "--all", "--data-calibrated",
           "--threads", "1", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.name.endswith((".tmp", ".fits")) for p in out.iterdir()):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names = _names(out)
    assert not [n for n in names if n.endswith(".tmp")]
    records = [n for n in names if n.endswith(".record.json")]
    assert len(records) == 11
    for r in records:  # every product listed in its record, with its size; nothing else on disk
        rec = json.loads((out / r).read_text())
        for p in rec["products"]:
            assert (out / p["file"]).stat().st_size == p["bytes"]
    assert len(names) == 11 * 3
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # now complete: resumed, kept
    assert again.returncode == 0 and again.stderr.count("kept (its record and products match") == 11
    assert _names(out) == names


def test_a_complete_image_is_kept_unless_its_inputs_changed(small_ms, tmp_path, capsys):
    ms = tmp_path / "copy.ms"
    shutil.copytree(small_ms, ms)
    out = tmp_path / "out"
    argv = ["image", str(ms), *MFS, "--threads", "1", "-o", str(out)]
    assert _run(argv, capsys)[0] == 0
    record = out / "2099.1.00001.S.SIMGAL_1_sci.spw0.mfs.I.record.json"
    first = record.read_bytes()
    rc, _, err = _run(argv, capsys)
    assert rc == 0 and "kept (its record and products match this run's inputs)" in err
    assert record.read_bytes() == first
    st = (ms / "table.f1").stat()  # the MS changed (recalibrated, say): made again
    os.utime(ms / "table.f1", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    rc, _, err = _run(argv, capsys)
    assert rc == 0 and "kept" not in err and record.read_bytes() != first
    rc, _, err = _run(argv + ["--set", "tlimit=3"], capsys)  # another parameter: made again
    assert rc == 0 and "kept" not in err


def test_a_second_run_in_the_same_directory_is_refused_while_the_first_writes(small_ms, tmp_path, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".almarules-image.lock", "w") as held:  # as a running 'almarules image' holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        its_tmp = out / ".2099.1.00001.S.SIMGAL_1_sci.spw0.mfs.I.pbcor.fits.abcdefgh.tmp"
        its_tmp.write_bytes(b"")  # the first run's temporary: not a leftover while it runs
        rc, _, err = _run(["image", str(small_ms), *MFS, "-o", str(out)], capsys)
    assert rc == 2 and f"another 'almarules image' is writing in {out}" in err
    assert its_tmp.exists()


# ---------------------------------------------------------------- a full disk, a read-only directory
class _FullDisk:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.mark.parametrize("select", [MFS, CUBE], ids=["mfs", "cube"])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(small_ms, tmp_path, capsys, monkeypatch,
                                                                     select):
    real = os.fdopen

    def fdopen(fd, mode="r", *a, **k):  # files opened for writing fail (reads, e.g. of rules, do not)
        fh = real(fd, mode, *a, **k)
        return _FullDisk(fh) if "w" in mode else fh

    monkeypatch.setattr(engine_io.os, "fdopen", fdopen)
    out = tmp_path / "out"
    rc, _, err = _run(["image", str(small_ms), *select, "--threads", "1", "-o", str(out)], capsys)
    monkeypatch.undo()
    assert rc == 2, err
    last = err.splitlines()[-1]  # after the progress lines, the error: one line naming the file
    assert re.fullmatch(r"almarules: no space left on device writing \S+/2099\.1\.00001\.S\.SIMGAL_1_sci\.spw\d"
                        r"\.(mfs|cube)\.I\.pbcor\.fits", last), err
    assert "Traceback" not in err and "internal error" not in err
    assert _names(out) == []


def test_a_read_only_output_directory_fails_before_any_data_are_read(small_ms, tmp_path, capsys, monkeypatch):
    import almarules.engine.cli.common as cli

    def never(*_a, **_k):
        raise AssertionError("the data were read before the output directory was checked")

    monkeypatch.setattr(cli, "read_dataset", never)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    candidates = [locked, Path("/sys/kernel")]  # root may write in a 0o555 directory; not in sysfs
    target = next((d for d in candidates if d.is_dir() and not _writable(d)), None)
    if target is None:
        pytest.skip("no read-only directory here")
    rc, _, err = _run(["image", str(small_ms), *MFS, "-o", str(target)], capsys)
    assert rc == 2
    assert err.startswith(f"almarules: cannot write in the output directory {target}: ") and err.count("\n") == 1
    rc, _, err = _run(["image", str(small_ms), *MFS, "-o", str(target / "sub")], capsys)
    assert rc == 2 and f"cannot create the output directory {target / 'sub'}" in err


def _writable(d: Path) -> bool:
    try:
        (d / ".probe").write_bytes(b"")
    except OSError:
        return False
    (d / ".probe").unlink()
    return True


# ---------------------------------------------------------------- Ctrl-C
def test_ctrl_c_while_writing_leaves_no_partial_product(small_ms, tmp_path, capsys, monkeypatch):
    real = os.fdopen
    calls = []

    class Interrupted(_FullDisk):
        def write(self, data):  # the second product's temporary exists when Ctrl-C arrives
            raise KeyboardInterrupt

    def fdopen(fd, mode="r", *a, **k):
        fh = real(fd, mode, *a, **k)
        if "w" not in mode:
            return fh
        calls.append(fd)
        return Interrupted(fh) if len(calls) == 2 else fh

    monkeypatch.setattr(engine_io.os, "fdopen", fdopen)
    out = tmp_path / "out"
    rc, _, err = _run(["image", str(small_ms), *MFS, "--threads", "1", "-o", str(out)], capsys)
    monkeypatch.undo()
    assert rc == 130 and err.splitlines()[-1].startswith("almarules: interrupted") and "Traceback" not in err
    assert len(calls) == 2 and _names(out) == []  # the first product removed, the second's temporary too


# ---------------------------------------------------------------- reproducible products
def test_single_thread_runs_give_identical_products(small_ms, tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        rc, _, err = _run(["image", str(small_ms), *MFS, "--threads", "1", "-o", str(tmp_path / name)], capsys)
        assert rc == 0, err
        runs.append(tmp_path / name)
    assert _names(runs[0]) == _names(runs[1])
    for n in _names(runs[0]):
        a, b = runs[0] / n, runs[1] / n
        if n.endswith(".fits"):
            with fits.open(a) as ha, fits.open(b) as hb:
                assert ha[0].data.tobytes() == hb[0].data.tobytes()
                changed = [k for k in ha[0].header if ha[0].header[k] != hb[0].header.get(k)]
                assert set(changed) <= {"DATE", "CHECKSUM"}
                rec = json.loads((a.parent / n.replace(n.split(".I.")[1], "record.json")).read_text())
                assert ha[0].header["DATE"] == rec["run"]["started"][:19]
            continue
        ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
        assert set(RUN_KEYS) <= set(ra) and ra["run"]["threads"] == 1 and ra["run"]["host"]
        for key in RUN_KEYS:
            ra.pop(key), rb.pop(key)
        assert ra == rb


def test_the_threads_option_is_checked(small_ms, tmp_path, capsys):
    rc, _, err = _run(["image", str(small_ms), *MFS, "--threads", "-1", "-o", str(tmp_path)], capsys)
    assert rc == 2 and "--threads must be 0 (all cores) or a positive number" in err


def test_a_threshold_the_rules_cannot_give_fails_before_any_imaging(small_ms, tmp_path, capsys):
    # MWA-like data lacked a fact the threshold needs: the image was made (~100 s) and then failed
    from almarules.rules import path as shipped

    rules = tmp_path / "rules"
    shutil.copytree(shipped("alma/cycle4"), rules)
    for t in rules.glob("*.test.yaml"):
        t.unlink()
    text = (rules / "threshold.rules").read_text()
    (rules / "threshold.rules").write_text(text.replace(
        "derive image.threshold = tlimit * image.sensitivity * image.dr_correction",
        "derive image.threshold = tlimit * image.sensitivity * image.dr_correction * dataset.l80 / dataset.l80 "
        "* (0 ^ -1) * 0 + tlimit * image.sensitivity"))
    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc, _, err = _run(["image", str(small_ms), "-o", str(out), "--rules", str(rules), *MFS], capsys)
    assert rc == 2
    assert "threshold could not be computed even after the dirty image" in err
    assert "0 to a negative power" in err
    assert time.perf_counter() - t0 < 30
    assert not list(out.glob("*.fits"))
