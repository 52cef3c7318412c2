"""casacore measures data from astropy-iers-data (`engine.ms.measures`): casacore's leap-second
warning silenced because the data are current, and back when they are not; UTC -> TAI and
UT1 - UTC through casacore against independent values (pyerfa's built-in leap-second table, the
raw IERS Bulletin A text). Each check runs in a fresh process with its own cache directory:
casacore reads its resource files once per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from almarules.engine.ms.measures import PRE_1972, leap_second_rows

REPO = Path(__file__).resolve().parents[3]
SMALL = REPO / "examples" / "sim" / "alma_12m_band6_small.yaml"
ALARMS = ("SEVERE", "out-of-date", "outside the range", "WARN")


def _iers_data() -> Path:
    import astropy_iers_data

    return Path(astropy_iers_data.__file__).parent / "data"


def _env(cache: Path, **extra: str) -> dict:
    """The environment of a fresh command: our cache, no casacore resource settings inherited
    (a setup earlier in this test process sets CASARCFILES, which children would inherit)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CASARCFILES", "CASAPATH", "AIPSPATH",
                                                           "CASACORE_DATADIR", "ALMARULES_NO_MEASURES_SETUP")}
    env["ALMARULES_CACHE"] = str(cache)
    env.update(extra)
    return env


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


# UTC -> TAI and UT1 - UTC (s) at 00:00 UTC of a date, through casacore measures
_CONVERT = """
    from almarules.engine.ms.measures import setup_measures
    {setup}
    from casacore.measures import measures
    from casacore import quanta as qa
    dm = measures()
    for day in {days!r}:
        e = dm.epoch("UTC", qa.quantity(day))
        utc = e["m0"]["value"]
        tai = dm.measure(e, "TAI")["m0"]["value"]
        ut1 = dm.measure(e, "UT1")["m0"]["value"]
        print(day, (tai - utc) * 86400.0, (ut1 - utc) * 86400.0)
"""


def _finals_ut1_utc(mjd: int) -> float:
    """UT1 - UTC (s) of one day from the raw text of IERS finals2000A.all (columns 59-68, Bulletin A)."""
    for line in (_iers_data() / "finals2000A.all").read_text().splitlines():
        if len(line) > 68 and line[7:15].strip() and int(float(line[7:15])) == mjd:
            return float(line[58:68])
    raise AssertionError(f"MJD {mjd} not in finals2000A.all")


def test_utc_to_tai_in_2026_is_37_s_and_nothing_alarming(tmp_path):
    proc = _python(_CONVERT.format(setup="setup_measures()", days=["2026/06/01/00:00:00", "2026/11/30/00:00:00"]),
                   _env(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert not any(a in proc.stderr for a in ALARMS), proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    for _, tai_utc, _ in rows:
        assert float(tai_utc) == pytest.approx(37.0, abs=1e-6)  # since 2017-01-01 (IERS Bulletin C)
    # UT1 - UTC on 2026-11-30 (MJD 61374): after the end of the tables in python-casacore's wheel,
    # which gave 0 here; now the Bulletin A value
    assert float(rows[1][2]) == pytest.approx(_finals_ut1_utc(61374), abs=2e-6)
    assert abs(float(rows[1][2])) > 0.01


def test_simulate_prints_nothing_alarming(tmp_path):
    """`almarules simulate` (UVW, elevations and LSRK Doppler factors through casacore measures) on
    a fresh cache: no casacore SEVERE / out-of-date lines on stderr."""
    proc = subprocess.run([sys.executable, "-m", "almarules", "simulate", str(SMALL), "-o", str(tmp_path / "s.ms"),
                           "--no-noise"], capture_output=True, text=True, env=_env(tmp_path / "cache"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not any(a in proc.stderr for a in ALARMS), proc.stderr
    # the bundled tables alone (our setup switched off) do alarm today: the test would see it
    if (date.today() - _bundled_vs_date()).days > 180:
        old = subprocess.run([sys.executable, "-m", "almarules", "simulate", str(SMALL), "-o",
                              str(tmp_path / "old.ms"), "--no-noise"], capture_output=True, text=True,
                             env=_env(tmp_path / "cache", ALMARULES_NO_MEASURES_SETUP="1"), timeout=300)
        assert "Leap second table TAI_UTC seems out-of-date" in old.stderr


def _bundled_vs_date() -> date:
    import importlib.util

    from casacore.tables import table

    pkg = Path(list(importlib.util.find_spec("casacore").submodule_search_locations)[0])
    t = table(str(pkg / "data" / "geodetic" / "TAI_UTC"), ack=False)
    y, m, d = (int(x) for x in t.getkeyword("VS_DATE").split("/")[:3])
    t.close()
    return date(y, m, d)


def test_an_expired_leap_second_list_still_warns(tmp_path):
    """The warning is silenced for the right reason: with a Leap_Second.dat past its expiry date,
    casacore warns again."""
    fake = tmp_path / "iers"
    shutil.copytree(_iers_data(), fake)
    text = (fake / "Leap_Second.dat").read_text()
    import re

    (fake / "Leap_Second.dat").write_text(re.sub(r"File expires on .*", "File expires on 28 June 2020", text))
    code = f"""
        import os
        from pathlib import Path
        from almarules.engine.ms import measures as cm
        target = Path({str(tmp_path / 'm')!r})
        rc = Path({str(tmp_path / 'rc')!r})
        rc.write_text(cm._rc_text(target / "geodetic", cm._casacore_data() / "data"))
        os.environ["CASARCFILES"] = str(rc)
        cm._build(target, Path({str(fake)!r}))
    """
    code = textwrap.dedent(code) + textwrap.dedent(_CONVERT.format(setup="", days=["2026/06/01/00:00:00"]))
    proc = _python(code, _env(tmp_path / "cache", ALMARULES_NO_MEASURES_SETUP="1"))
    assert proc.returncode == 0, proc.stderr
    assert "Leap second table TAI_UTC seems out-of-date" in proc.stderr
    assert float(proc.stdout.split()[1]) == pytest.approx(37.0, abs=1e-6)


def test_leap_second_rows_against_erfa():
    """Our TAI_UTC rows, evaluated as casacore does (dUTC + (MJD - Offset) x Multiplier), give
    erfa's TAI - UTC (its own built-in table) on the first day of every month 1961-2026."""
    import erfa

    rows, expiry = leap_second_rows(_iers_data() / "Leap_Second.dat")
    assert expiry > date(2026, 12, 6)
    assert rows[:len(PRE_1972)] == list(PRE_1972) and len(rows) == len(PRE_1972) + 28
    mjd = np.array([r[0] for r in rows])
    for year in range(1961, 2027):
        for month in range(1, 13):
            day_mjd = float(erfa.cal2jd(year, month, 1)[1])
            i = int(np.searchsorted(mjd, day_mjd, side="right")) - 1
            d_utc, offset, mult = rows[i][1:]
            ours = d_utc + (day_mjd - offset) * mult
            assert ours == pytest.approx(float(erfa.dat(year, month, 1, 0.0)), abs=1e-6), (year, month)


def test_setup_is_cheap_once_built(tmp_path):
    """The second command finds the tables and only points casacore at them (a few stat calls)."""
    code = """
        import time
        from almarules.engine.ms.measures import setup_measures
        t0 = time.perf_counter()
        where = setup_measures()
        print(where, time.perf_counter() - t0)
    """
    env = _env(tmp_path / "cache")
    first = _python(code, env)
    second = _python(code, env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    where, took = second.stdout.split()
    assert where == first.stdout.split()[0] and Path(where, "geodetic", "TAI_UTC", "table.dat").exists()
    assert float(took) < 0.05
    # the tables and the casacore resource file naming them; no temporary directory left behind
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2 and names[0].startswith("casarc-") and names[1] == Path(where).name
