"""Flux models: Perley-Butler 2017 against values CASA 6.7's setjy reported, epochs and aliases as
CASA picks them, the analytic spectral index, flux.csv parsing and its located errors."""

from __future__ import annotations

import numpy as np
import pytest

from almarules.engine.stages.calibration import fluxmodels as fm

# Measured with CASA 6.7 (casatasks 6.7, casadata of the CASA venv):
#   setjy(vis, field=..., spw='0', standard='Perley-Butler 2017', usescratch=False)
# return dict [field][spw]['fluxd'][0] (Stokes I, Jy), which CASA evaluates at the spw's first
# channel. 'ngc5921' is ngc5921.ms itself (field 1331+30500002_0, first channel 1412665073.7685 Hz,
# 1995-04-13 = MJD 49820.39); the others are copies of it with field names, CHAN_FREQ (first
# channel = the frequency below) and TIME (+ TIME_CENTROID, OBSERVATION TIME_RANGE) shifted to
# the MJD below.
CASA_SETJY = [  # (field name, first-channel frequency Hz, MJD, Stokes I Jy)
    ("1331+30500002_0", 1412665073.7685, 49820.39, 15.01586437),
    ("3C48", 5.0e9, 57870.0, 5.258523941040039),
    ("3C147", 5.0e9, 57870.0, 7.6312336921691895),
    ("3C138", 5.0e9, 57870.0, 3.860630989074707),
    ("3C138", 22.0e9, 55000.0, 1.5078754425048828),
    ("0137+331", 22.0e9, 55000.0, 1.2718250751495361),
    ("J0542+4951", 22.0e9, 55000.0, 1.8704217672348022),
    ("3C48", 1.5e9, 52000.0, 15.536869049072266),
    ("3C138", 1.5e9, 52000.0, 8.153061866760254),
    ("3C147", 1.5e9, 52000.0, 21.23115348815918),
    ("J0542+4951", 8.4e9, 56500.0, 4.493852138519287),
    ("0518+165", 8.4e9, 56500.0, 2.785987615585327),
    ("3C48", 43.0e9, 49800.0, 0.6238852739334106),
    ("3C147", 43.0e9, 49800.0, 1.119102120399475),
    ("3C138", 43.0e9, 49800.0, 0.6579523086547852),
    ("3C48", 5.0e9, 57717.2, 5.245306015014648),  # 2016.9: the 2012.0 set, not the nearer 2017.0
    ("3C147", 5.0e9, 57717.2, 7.375662803649902),
    ("3C138", 5.0e9, 57717.2, 3.9512829780578613),
    ("3C48", 5.0e9, 46869.3, 5.396047115325928),
    ("3C48", 5.0e9, 44239.5, 5.289144992828369),  # 1980: before the first epoch (1983.4)
    ("3C147", 5.0e9, 44239.5, 7.4050984382629395),
    ("3C48", 5.0e9, 60310.5, 5.258523941040039),  # 2024: the last epoch (2017.0)
    ("3C138", 5.0e9, 55193.6, 4.0474934577941895),  # 2009.99: the 2008.7 set, not 2010.0
    ("3C 286", 5.0e9, 57870.0, 7.201491355895996),
    ("1328+307", 5.0e9, 57870.0, 7.201491355895996),
    ("J1331+3030", 5.0e9, 57870.0, 7.201491355895996),
    ("0134+329", 5.0e9, 57870.0, 5.258523941040039),
    ("J0521+1638", 5.0e9, 57870.0, 3.860630989074707),
    ("0542+498", 5.0e9, 57870.0, 7.6312336921691895),
    ("X3C147Y", 5.0e9, 57870.0, 7.6312336921691895),
]


@pytest.mark.parametrize("field, freq, mjd, casa", CASA_SETJY)
def test_matches_casa_setjy(field, freq, mjd, casa):
    model = fm.model_for(field, freq, mjd)
    assert model is not None
    assert model.flux_jy[0] == pytest.approx(casa, rel=3e-7)  # CASA's coefficients are float32


def test_3c286_against_the_paper_polynomial():
    """15.02 Jy at 1.4134 GHz (tests/vlacal.py, Perley & Butler 2017 table 6), any epoch."""
    x = np.log10(1.4134)
    expected = 10 ** (1.2481 - 0.4507 * x - 0.1798 * x**2 + 0.0357 * x**3)
    for mjd in (44000.0, 49820.39, 60000.0):
        model = fm.model_for("1331+30500002_0", [1.4134e9], mjd)
        assert model.name == "3C286" and model.epoch is None
        assert model.flux_jy[0] == pytest.approx(expected, rel=1e-12)
        assert model.flux_jy[0] == pytest.approx(15.01, abs=0.01)
    assert model.source.startswith("rules/fluxmodels/perley_butler_2017.csv:2")


def test_spectral_index_is_the_log_derivative():
    freqs = np.array([1.0e9, 5.0e9, 22.0e9, 43.0e9])
    model = fm.model_for("3C147", freqs, 58000.0)
    h = 1e-6
    up = np.array(fm.model_for("3C147", freqs * 10**h, 58000.0).flux_jy)
    down = np.array(fm.model_for("3C147", freqs * 10**-h, 58000.0).flux_jy)
    numeric = (np.log10(up) - np.log10(down)) / (2 * h)
    np.testing.assert_allclose(model.spix, numeric, rtol=1e-6)
    assert model.freq_hz == freqs.tolist() and model.in_range


def test_epoch_rows_and_sources():
    early = fm.model_for("3C48", 5e9, 52000.0)  # 2001.25
    late = fm.model_for("3C48", 5e9, 58000.0)  # 2017.57
    assert (early.epoch, late.epoch) == (2000.8, 2017.0)
    assert early.source != late.source and early.source.startswith("rules/fluxmodels/perley_butler_2017.csv:")


def test_valid_range_and_unknown_sources():
    assert not fm.model_for("3C138", [0.1e9, 1e9], 58000.0).in_range  # 3C138 is valid from 0.2 GHz
    assert fm.model_for("3C138", [0.2e9, 50e9], 58000.0).in_range
    assert fm.model_for("J1924-2914", 100e9, 58000.0) is None
    assert fm.model_for("Titan", 230e9, 58000.0) is None


def test_own_table(tmp_path):
    csv = tmp_path / "pb.csv"
    csv.write_text("source,aliases,epoch,nu_min_ghz,nu_max_ghz,a0,a1,a2,a3,a4,a5\n"
                   "FAKE,FAKE,,1,10,1,0,0,0,,\n"
                   "FAKE2,FK2,2000.0,1,10,0,-1,,,,\nFAKE2,FK2,2010.0,1,10,0,-2,,,,\n")
    assert fm.model_for("a FAKE field", 3e9, 58000.0, table=csv).flux_jy == [10.0]
    m = fm.model_for("FK2", 2e9, fm_mjd(2009.9), table=csv)
    assert m.flux_jy[0] == pytest.approx(0.5) and m.spix == [-1.0] and m.source == f"{csv}:3"
    assert fm.model_for("FK2", 2e9, fm_mjd(2010.1), table=csv).flux_jy[0] == pytest.approx(0.25)


def fm_mjd(year: float) -> float:
    return 51544.5 + (year - 2000.0) * 365.25


@pytest.mark.parametrize("name, expected", [
    ("Titan", True), ("titan", True), ("Uranus_1", True), ("Callisto", True), ("Ceres", True), ("Venus", True),
    ("Marsden", False), ("J1924-2914", False), ("3C286", False), ("Iota", False), ("Io", True)])
def test_solar_system(name, expected):
    assert fm.is_solar_system(name) is expected
    assert {"Mars", "Jupiter", "Uranus", "Neptune", "Callisto", "Ganymede", "Titan", "Io", "Europa",
            "Ceres", "Pallas", "Vesta", "Juno", "Venus"} <= fm.SOLAR_SYSTEM


# ------------------------------------------------------------------ flux.csv

FLUX_CSV = (
    "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n"
    'uid___A002_X1.ms,2,17,1.234,0.0,0.0,0.0,-0.65,0.0,0.0,"# field=J1924-2914 intents=BANDPASS,PHASE origin=DB age=-3.0 queried_at=2024-06-15 02:45:00 UTC"\n'
    "\n"
    "uid___A002_X1.ms,J1751+0939,19,0.87,0.01,0,0,-0.5,10.5,300,# field=J1751+0939 origin=N/A age=N/A\n"
    "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n"
    "uid___A002_X2.ms,0,16,2.5,,,,,,,\"'3C286' 1.6 Jy, freq=97.5GHz\"\n"
)


def test_read_flux_csv(tmp_path):
    path = tmp_path / "flux.csv"
    path.write_text(FLUX_CSV)
    a, b, c = fm.read_flux_csv(path)
    assert (a.ms, a.field, a.field_id, a.spw, a.I, a.spix, a.origin, a.age) == (
        "uid___A002_X1.ms", "2", 2, 17, 1.234, -0.65, "DB", -3.0)
    assert a.comment.startswith("# field=J1924-2914 intents=BANDPASS,PHASE") and a.source == f"{path}:2"
    assert (b.field, b.field_id, b.Q, b.uvmin, b.uvmax, b.origin, b.age, b.source) == (
        "J1751+0939", None, 0.01, 10.5, 300.0, None, None, f"{path}:4")
    assert (c.ms, c.field_id, c.spw, c.I, c.Q, c.spix, c.origin) == ("uid___A002_X2.ms", 0, 16, 2.5, 0.0, 0.0, "analysisUtils")


def test_old_header_without_uv_limits(tmp_path):
    path = tmp_path / "flux.csv"
    path.write_text("ms,field,spw,I,Q,U,V,spix,comment\nx.ms,1,0,3.0,0,0,0,-0.7,# origin=Source.xml\n")
    (e,) = fm.read_flux_csv(path)
    assert (e.I, e.spix, e.uvmin, e.uvmax, e.origin) == (3.0, -0.7, 0.0, 0.0, "Source.xml")


@pytest.mark.parametrize("body, message", [
    ("x.ms,1,0,abc,0,0,0,0,0,0,c", ":2:4: I: expected a number, got 'abc'"),
    ("x.ms,1,0,,0,0,0,0,0,0,c", ":2:4: I: expected a number, the cell is empty"),
    ("x.ms,1,zero,1,0,0,0,0,0,0,c", ":2:3: spw: expected an spw id (a whole number), got 'zero'"),
    ("x.ms,1,0,1,0,0,0,minus,0,0,c", ":2:8: spix: expected a number, got 'minus'"),
    ("x.ms,1,0,1,0,0,0,0,0,inf,c", ":2:10: uvmax: expected a finite number, got 'inf'"),
    ("x.ms,,0,1,0,0,0,0,0,0,c", ":2:2: field: expected a field id or name"),
    ("x.ms,1,0,1,0,0,0,0,0,0,a,b", ":2:1: expected 11 columns"),
])
def test_flux_csv_errors(tmp_path, body, message):
    path = tmp_path / "flux.csv"
    path.write_text("ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n" + body + "\n")
    with pytest.raises(fm.FluxCsvError) as err:
        fm.read_flux_csv(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_flux_csv_without_header(tmp_path):
    path = tmp_path / "flux.csv"
    path.write_text("# a comment line\nx.ms,1,0,1,0,0,0,0,0,0,c\n")
    with pytest.raises(fm.FluxCsvError, match=r"flux.csv:2:1: expected the header ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment"):
        fm.read_flux_csv(path)
