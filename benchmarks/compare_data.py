"""The calibrated Measurement Sets that `compare_casa.py` images with both tools, made once and
cached under a work directory (reruns reuse them).

- ``alma_sim.ms``: the shared simulated ALMA MS with its true gains and bandpasses divided out into
  CORRECTED_DATA (`tests/truthcal.py` ``calibrated_copy``, as the ``alma_sim_calibrated`` fixture).
- ``ngc5921.ms``: the shared real VLA MS calibrated on its calibrators (`tests/vlacal.py`
  ``calibrated_ngc5921``, as the ``ngc5921_calibrated`` fixture); its intents come from
  ``examples/intents/ngc5921.yaml``.

A copy counts as made when its ``.done`` marker exists; a half-made copy is removed and made again.
This module uses python-casacore (through the test helpers): never import it in the CASA process.
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
INTENTS_NGC5921 = REPO / "examples" / "intents" / "ngc5921.yaml"


def _helpers():
    """The calibration helpers of the test suite (tests/truthcal.py, tests/vlacal.py)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import truthcal
    import vlacal

    return truthcal, vlacal


def _unpack(archive: Path, dest_dir: Path) -> Path:
    """Unpack `archive` (one top-level MS directory, with its table.lock files) into `dest_dir`;
    returns the MS path. Reuses an earlier unpacking marked done."""
    name = archive.name.removesuffix(".tar.gz")
    ms = dest_dir / name
    marker = dest_dir / f"{name}.unpacked"
    if marker.exists() and ms.exists():
        return ms
    shutil.rmtree(ms, ignore_errors=True)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest_dir, filter="data")
    marker.touch()
    return ms


def _cached(dest: Path, make: Callable[[Path], Path], say: Callable[[str], None]) -> Path:
    marker = dest.with_name(dest.name + ".done")
    if marker.exists() and dest.exists():
        say(f"reusing {dest}")
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    say(f"making {dest} (once; cached for reruns)")
    make(dest)
    marker.touch()
    return dest


def alma_sim_calibrated(shared: Path, work: Path, say: Callable[[str], None] = print) -> Path:
    """alma_sim.ms with the true corruptions divided out into CORRECTED_DATA, under `work`."""
    truthcal, _ = _helpers()
    truth = json.loads((shared / "alma_sim.truth.json").read_text())

    def make(dest: Path) -> Path:
        src = _unpack(shared / "alma_sim.ms.tar.gz", work / "src")
        return truthcal.calibrated_copy(src, truth, dest)

    return _cached(work / "alma_sim.ms", make, say)


def ngc5921_calibrated(shared: Path, work: Path, say: Callable[[str], None] = print) -> Path:
    """ngc5921.ms calibrated on its calibrators (bandpass, gains, flux scale), under `work`."""
    _, vlacal = _helpers()

    def make(dest: Path) -> Path:
        src = _unpack(shared / "ngc5921.ms.tar.gz", work / "src")
        return vlacal.calibrated_ngc5921(src, dest)

    return _cached(work / "ngc5921.ms", make, say)
