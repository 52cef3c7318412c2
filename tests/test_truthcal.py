"""tests/truthcal.py: alma_sim.ms calibrated by its true gains and bandpasses recovers the calibrators'
true flux densities within the noise, the residual noise is the thermal noise scaled by 1/|c|, the
weights follow, and the source MS is left as it was unpacked."""

from __future__ import annotations

import copy
import hashlib
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from conftest import SHARED_DATA
from truthcal import (bandpass_weight_error, calibrated_copy, corruption, match_times, truth_bandpass,
                      truth_gains)

REF_HZ = 230e9
CALIBRATORS = {0: (2.5, -0.3), 1: (0.6, -0.6)}  # FIELD_ID: (Jy at 230 GHz, spectral index)


def _field(ms: Path, truth: dict, field: int, spw: int) -> dict:
    """CORRECTED_DATA (nrow, nchan, 2), WEIGHT, SIGMA, the true corruption c and the true model of one
    field and spw of the calibrated copy; sigma is the truth's noise per visibility component (Jy)."""
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcell("CHAN_FREQ", spw)
    with table(str(ms), ack=False) as t, t.query(f"FIELD_ID=={field} && DATA_DESC_ID=={spw}") as sel:
        out = {c: sel.getcol(c) for c in ("CORRECTED_DATA", "DATA", "WEIGHT", "SIGMA", "TIME", "ANTENNA1", "ANTENNA2")}
    gt, _, gains = truth_gains(truth)
    out["c"] = corruption(gains, truth_bandpass(truth, spw, freq), match_times(gt, out["TIME"]),
                          out["ANTENNA1"], out["ANTENNA2"], [(0, 0), (1, 1)])
    s0, alpha = CALIBRATORS[field]
    out["model"] = s0 * (freq / REF_HZ) ** alpha  # (nchan,) real: a point at the phase centre
    out["sigma"] = truth["corruptions"]["thermal_noise"]["per_spw"][str(spw)]["sigma_jy_per_visibility_component"]
    return out


@pytest.mark.parametrize("spw", [0, 1])
@pytest.mark.parametrize("field", [0, 1], ids=["J1520-2500", "J1607-2730"])
def test_truthcal_recovers_calibrator_flux(alma_sim_calibrated, truth, field, spw):
    """The WEIGHT-weighted mean of CORRECTED_DATA (all rows, channels, XX and YY) equals the same mean of
    the true model within 5 standard errors (from the true per-visibility noise sigma/|c|); Im = 0."""
    f = _field(alma_sim_calibrated, truth, field, spw)
    w = np.broadcast_to(f["WEIGHT"][:, None, :].astype(float), f["CORRECTED_DATA"].shape)
    wsum = w.sum()
    mean = (w * f["CORRECTED_DATA"]).sum() / wsum
    model = (w * f["model"][None, :, None]).sum() / wsum
    se = math.sqrt((w ** 2 * f["sigma"] ** 2 / np.abs(f["c"]) ** 2).sum()) / wsum
    print(f"field {field} spw {spw}: {mean.real:.6f}{mean.imag:+.6f}j Jy vs model {model:.6f} Jy, se {se:.2e}, "
          f"(Re - model)/se = {(mean.real - model) / se:+.2f}, Im/se = {mean.imag / se:+.2f}")
    assert abs(mean.real - model) < 5 * se
    assert abs(mean.imag) < 5 * se
    # uncalibrated, the same mean is far off: the test can tell
    raw = (w * f["DATA"]).sum() / wsum
    assert abs(raw - model) > 100 * se


@pytest.mark.parametrize("spw", [0, 1])
def test_truthcal_residual_noise_and_weights(alma_sim_calibrated, truth, spw):
    """Field 0: CORRECTED_DATA - model is noise of std sigma/|c| per real and imaginary part (2 %);
    WEIGHT = 1/sigma^2 x channel mean of |c|^2, SIGMA = 1/sqrt(WEIGHT)."""
    f = _field(alma_sim_calibrated, truth, 0, spw)
    resid = f["CORRECTED_DATA"] - f["model"][None, :, None]
    abs_c = np.abs(f["c"])
    expect = math.sqrt(np.mean(f["sigma"] ** 2 / abs_c ** 2))  # rms of sigma/|c| over all samples
    z = resid * abs_c / f["sigma"]
    print(f"spw {spw}: std Re {resid.real.std():.5f} Im {resid.imag.std():.5f} vs rms(sigma/|c|) {expect:.5f}; "
          f"normalised std Re {z.real.std():.4f} Im {z.imag.std():.4f}")
    for part in (resid.real, resid.imag):
        assert part.std() == pytest.approx(expect, rel=0.02)
    for part in (z.real, z.imag):
        assert part.std() == pytest.approx(1.0, rel=0.02)
    # weights: the source had 1/sigma^2 (float32); scaled by the channel mean of |c|^2
    w0 = truth["corruptions"]["thermal_noise"]["per_spw"][str(spw)]["weight"]
    np.testing.assert_allclose(f["WEIGHT"], w0 * np.mean(abs_c ** 2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(f["SIGMA"], 1 / np.sqrt(f["WEIGHT"].astype(float)), rtol=1e-6)
    # with the row weights the residual is unit-variance up to the bandpass-shape error (Jensen: >= 1)
    zw = resid.real * np.sqrt(f["WEIGHT"][:, None, :])
    assert zw.std() == pytest.approx(1.0, rel=0.02)


def test_truthcal_weight_error_bound_of_the_docstring(alma_sim_calibrated, truth):
    """The per-channel weight error of the channel-mean scaling is what calibrated_copy's docstring says."""
    with table(str(alma_sim_calibrated / "SPECTRAL_WINDOW"), ack=False) as t:
        got = [bandpass_weight_error(truth_bandpass(truth, s, t.getcell("CHAN_FREQ", s))) for s in (0, 1)]
    print("weight error (rms, max) per spw:", got)
    assert [round(100 * r, 1) for r, _ in got] == [4.9, 5.4]
    assert [round(100 * m, 1) for _, m in got] == [26.2, 26.5]


def _tree_digest(root: Path, skip_locks: bool = False) -> dict[str, str]:
    """sha256 of every file under `root` by relative path; `skip_locks` leaves out table.lock files."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not (skip_locks and p.name == "table.lock")}


def _archive_digest() -> dict[str, str]:
    with tarfile.open(SHARED_DATA / "alma_sim.ms.tar.gz") as tar:
        return {str(Path(m.name).relative_to("alma_sim.ms")): hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                for m in tar if m.isfile()}


def test_truthcal_leaves_the_source_unchanged_and_is_chunk_and_order_independent(
        alma_sim_calibrated, shared_ms, truth, tmp_path):
    """calibrated_copy never touches its source: a fresh unpacking stays byte-identical to the archive
    (no file changed or added, not even a table.lock), and so do the data files of the session's shared
    source (other tests' read-only opens add table.lock files there). The copy made here with odd-sized
    chunks and the truth's antennas listed in reverse (mapped by name) has the session copy's
    CORRECTED_DATA, WEIGHT and SIGMA bit for bit, and the source's DATA."""
    archived = _archive_digest()
    assert _tree_digest(shared_ms("alma_sim.ms"), skip_locks=True) == archived
    with tarfile.open(SHARED_DATA / "alma_sim.ms.tar.gz") as tar:
        tar.extractall(tmp_path / "src", filter="data")
    src = tmp_path / "src" / "alma_sim.ms"
    reordered = copy.deepcopy(truth)
    reordered["corruptions"]["gains"]["antennas"].reverse()
    other = calibrated_copy(src, reordered, tmp_path / "again.ms", chunk_rows=7001)
    assert _tree_digest(src) == archived
    # per DATA_DESC_ID: the cell shape differs by spw (getcol over both overruns its buffer)
    with table(str(alma_sim_calibrated), ack=False) as a, table(str(other), ack=False) as b, \
            table(str(shared_ms("alma_sim.ms")), ack=False) as s:
        assert "CORRECTED_DATA" in b.colnames() and "CORRECTED_DATA" not in s.colnames()
        for dd in (0, 1):
            with a.query(f"DATA_DESC_ID=={dd}") as sa, b.query(f"DATA_DESC_ID=={dd}") as sb, \
                    s.query(f"DATA_DESC_ID=={dd}") as ss:
                for col in ("CORRECTED_DATA", "WEIGHT", "SIGMA"):
                    assert np.array_equal(sa.getcol(col), sb.getcol(col)), (dd, col)
                assert np.array_equal(sb.getcol("DATA"), ss.getcol("DATA"))


def test_truthcal_rejects_rows_without_a_gain_time(shared_ms, truth, tmp_path):
    """A row time with no gain time within 0.01 s is an error; the half-made copy is removed."""
    gt = np.array([10.0, 20.0, 30.0])
    assert match_times(gt, [9.995, 20.004, 30.0]).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="no gain time within 0.01 s"):
        match_times(gt, [20.02])
    shifted = copy.deepcopy(truth)
    g = shifted["corruptions"]["gains"]
    g["times_mjd_s"] = [x + 0.02 for x in g["times_mjd_s"]]
    with pytest.raises(ValueError, match="24 of 24 times have no gain time"):
        calibrated_copy(shared_ms("alma_sim.ms"), shifted, tmp_path / "never.ms")
    assert not (tmp_path / "never.ms").exists()
