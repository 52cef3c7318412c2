"""Shared fixtures: the repository root, the shipped cycle4 program, the example summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from almarules.engine.ms.measures import setup_measures

setup_measures()  # before any test opens a table: current leap seconds and EOP (engine/ms/measures.py)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cycle4():
    from almarules.engine.evaluate.api import load_program

    return load_program([REPO / "rules" / "alma" / "cycle4"])


@pytest.fixture(scope="session")
def cycle5():
    from almarules.engine.evaluate.api import load_program

    return load_program([REPO / "rules" / "alma" / "cycle5"])


# ---------------------------------------------------------------- shared data (../shared/data)
import os
import shutil
import tarfile

SHARED_DATA = Path(os.environ.get("ALMARULES_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_ms(tmp_path_factory):
    """Unpack one of the shared Measurement Sets (once per session) and return its path.

    Skips, with the reason, where ../shared/data (or $ALMARULES_SHARED_DATA) is absent. The
    archives are unpacked with their table.lock files, which two of them need (see its README).
    """
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("shared_ms")

    def get(name: str) -> Path:
        archive = SHARED_DATA / f"{name}.tar.gz"
        if not archive.exists():
            pytest.skip(f"shared test data not found: {archive} (set ALMARULES_SHARED_DATA)")
        if name not in cache:
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
            cache[name] = root / name
        return cache[name]

    yield get
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def truth() -> dict:
    """The truth file of the shared alma_sim.ms (skips where the shared data are absent)."""
    import json

    path = SHARED_DATA / "alma_sim.truth.json"
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def alma_sim_calibrated(shared_ms, tmp_path_factory):
    """alma_sim.ms with CORRECTED_DATA = DATA with the true gains and bandpasses divided out (and the
    weights rescaled), made once per session by `truthcal.calibrated_copy`; its path. Skips where the
    shared data are absent."""
    import json

    from truthcal import calibrated_copy

    src = shared_ms("alma_sim.ms")
    truth_file = SHARED_DATA / "alma_sim.truth.json"
    if not truth_file.exists():
        pytest.skip(f"shared test data not found: {truth_file} (set ALMARULES_SHARED_DATA)")
    root = tmp_path_factory.mktemp("alma_sim_calibrated")
    yield calibrated_copy(src, json.loads(truth_file.read_text()), root / "alma_sim.ms")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ngc5921_calibrated(shared_ms, tmp_path_factory):
    """ngc5921.ms calibrated by `vlacal.calibrated_ngc5921` (bandpass and gains solved on its
    calibrators, flux scale from 3C286), made once per session; its path."""
    from vlacal import calibrated_ngc5921

    root = tmp_path_factory.mktemp("ngc5921_calibrated")
    yield calibrated_ngc5921(shared_ms("ngc5921.ms"), root / "ngc5921.ms")
    shutil.rmtree(root, ignore_errors=True)
