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
import subprocess
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


#: simulated execution blocks the benchmarks make with `almarules simulate` (`simulated_ms`)
SIMULATED = {"alma_1h_sim": REPO / "examples" / "sim" / "alma_12m_band6_1h.yaml"}


def simulated_ms(name: str, config: Path, work: Path) -> tuple[Path, list[str]]:
    """The simulated MS (made once under work/data/sim) and the run's --fluxfile arguments: the
    AMPLITUDE calibrator's true flux density at each spw's centre, from the truth file."""
    out = work / "data" / "sim" / f"{name}.ms"
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "almarules", "simulate", str(config), "-o", str(out), "--force",
                        "--quiet"], check=True)
    truth = json.loads(out.with_suffix(".truth.json").read_text())
    lines = ["ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment"]
    for f in truth["fields"]:
        if "AMPLITUDE" not in f["intents"]:
            continue
        comp = f["components"][0]
        for spw in truth["spectral_windows"]:
            centre = spw["first_chan_centre_hz"] + (spw["nchan"] - 1) / 2 * spw["chan_width_hz"]
            flux = comp["flux_jy_at_ref"] * (centre / comp["reference_frequency_hz"]) ** comp["spectral_index"]
            lines.append(f"{out.name},{f['name']},{spw['id']},{flux:.6f},0,0,0,{comp['spectral_index']},0,0,truth")
    fluxfile = out.with_suffix(".flux.csv")
    fluxfile.write_text("\n".join(lines) + "\n")
    return out, ["--fluxfile", str(fluxfile)]
