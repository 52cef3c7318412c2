"""Current leap-second and Earth-orientation data for casacore measures, from astropy-iers-data.

python-casacore's wheel bundles a measures tree (``casacore/data``) frozen at its build. casacore
reads the leap-second table ``geodetic/TAI_UTC`` on the first UTC conversion and logs three
SEVERE "Leap second table TAI_UTC seems out-of-date" lines when *today - VS_DATE > 180 days*
(``MeasTable::calc_dUTC``; VS_DATE is a keyword of the table, the date it was last regenerated).
Its Earth-orientation tables ``IERSeop97`` (measured) and ``IERSpredict`` (predicted) end at the
build too: later dates get UT1 - UTC = 0 and polar motion 0, with an INFO line.

`setup_measures` builds these three tables from the ``astropy-iers-data`` package (a dependency of
astropy, released every week or two, data only) once per version of that package, into a user
cache directory (``$ALMARULES_CACHE``, else ``$XDG_CACHE_HOME/almarules`` or ``~/.cache/almarules``;
written by a child process into a temporary directory, then renamed: atomic), and points casacore at
them through ``CASARCFILES``: a casacore resource file setting ``measures.tai_utc.directory``,
``measures.ierseop97.directory`` and ``measures.ierspredict.directory``, with
``measures.directory`` still the bundled tree for everything else (observatories, JPL
ephemerides, line lists). It must run before casacore first reads its resource files (its first
table or measures operation in the process); after that it is a no-op (cheap: a few ``stat``s).

* TAI_UTC: the 1961-1971 rate-based rows (historical constants, USNO tai-utc.dat) and the
  integer leap seconds of ``Leap_Second.dat``. Its VS_DATE is set to *the file's expiry date -
  180 days*, so casacore's out-of-date warning appears exactly when the leap-second list is no
  longer known to be complete (its expiry date has passed): then upgrade astropy-iers-data.
* IERSeop97: IERS EOP C04 (``eopc04.1962-now``); IERSpredict: IERS Bulletin A with predictions
  (``finals2000A.all``). x, y (arcsec), UT1 - UTC (s), LOD (s) and their errors; dPsi and dEps are
  0 (the files give IAU 2000 dX, dY instead; casacore uses dPsi, dEps only when
  ``measures.nutation.b_useiers`` is set, which it is not by default).

Nothing is changed when the user configured casacore (``CASARCFILES``, ``CASAPATH``, an
``AIPSPATH`` of their own, or a ``~/.casarc``, ``~/.casa/rc`` or ``~/.aipsrc`` that sets
``measures.*``), or when ``ALMARULES_NO_MEASURES_SETUP`` is set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["setup_measures", "measures_dir", "PRE_1972", "leap_second_rows"]

FORMAT = 1  # bump when the tables built change
_DONE: Optional[Path] = None
_TRIED = False
_MJD_EPOCH = date(1858, 11, 17)
_CASACORE_WINDOW = 180  # days: MeasTable::calc_dUTC warns when today - VS_DATE exceeds this

# TAI - UTC before 1972 (USNO tai-utc.dat; historical, fixed): from MJD, TAI - UTC =
# dUTC + (MJD - Offset) * Multiplier  [s]; casacore's TAI_UTC rows (MJD, dUTC, Offset, Multiplier)
PRE_1972 = (
    (37300.0, 1.4228180, 37300.0, 0.0012960), (37512.0, 1.3728180, 37300.0, 0.0012960),
    (37665.0, 1.8458580, 37665.0, 0.0011232), (38334.0, 1.9458580, 37665.0, 0.0011232),
    (38395.0, 3.2401300, 38761.0, 0.0012960), (38486.0, 3.3401300, 38761.0, 0.0012960),
    (38639.0, 3.4401300, 38761.0, 0.0012960), (38761.0, 3.5401300, 38761.0, 0.0012960),
    (38820.0, 3.6401300, 38761.0, 0.0012960), (38942.0, 3.7401300, 38761.0, 0.0012960),
    (39004.0, 3.8401300, 38761.0, 0.0012960), (39126.0, 4.3131700, 39126.0, 0.0025920),
    (39887.0, 4.2131700, 39126.0, 0.0025920),
)
_MONTHS = {m: i + 1 for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                           "august", "september", "october", "november", "december"))}
_EOP_COLUMNS = ("MJD", "x", "Dx", "y", "Dy", "dUT1", "DdUT1", "LOD", "DLOD", "dPsi", "DdPsi", "dEps", "DdEps")
_UNITS = {"MJD": "d", "x": "arcsec", "Dx": "arcsec", "y": "arcsec", "Dy": "arcsec", "dUT1": "s", "DdUT1": "s",
          "LOD": "s", "DLOD": "s", "dPsi": "arcsec", "DdPsi": "arcsec", "dEps": "arcsec", "DdEps": "arcsec",
          "dUTC": "s", "Offset": "d", "Multiplier": "s"}


# ---------------------------------------------------------------- where
def _casacore_data() -> Optional[Path]:
    """python-casacore's bundled measures tree (site-packages/casacore/data), without importing it."""
    spec = importlib.util.find_spec("casacore")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _user_configured(pkg: Optional[Path]) -> bool:
    """True when the user set up casacore's resources themselves (then we change nothing)."""
    if os.environ.get("ALMARULES_NO_MEASURES_SETUP") or os.environ.get("CASARCFILES") or os.environ.get("CASAPATH"):
        return True
    aips = os.environ.get("AIPSPATH")
    if aips and (pkg is None or Path(aips.split()[0]).resolve() != pkg.resolve()):
        return True
    for rc in _user_rc_files():
        try:
            if re.search(r"^\s*measures\.", rc.read_text(errors="replace"), re.M):
                return True
        except OSError:
            continue
    return False


def _user_rc_files() -> list[Path]:
    home = Path(os.environ.get("HOME") or Path.home())
    return [home / ".casarc", home / ".casa" / "rc", home / ".aipsrc"]


def _cache_base() -> Path:
    env = os.environ.get("ALMARULES_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "almarules"


def measures_dir() -> Optional[Path]:
    """The directory of the tables `setup_measures` pointed casacore at (None if it did not)."""
    return _DONE


# ---------------------------------------------------------------- setup
def setup_measures() -> Optional[Path]:
    """Point casacore at current TAI_UTC / IERS tables (built once per astropy-iers-data version);
    returns their directory, or None when the user's own casacore setup is kept (or the build
    failed: then one line says why on stderr). Call before casacore's first table or measures
    operation in the process; later calls return at once."""
    global _DONE, _TRIED
    if _TRIED:
        return _DONE
    _TRIED = True
    pkg = _casacore_data()
    if pkg is None or _user_configured(pkg):
        return None
    try:
        import astropy_iers_data as iers_data
    except ImportError:
        return None
    version = f"{iers_data.__version__}-f{FORMAT}"
    base = _cache_base()
    target = base / f"measures-{version}"
    tag = hashlib.sha1(str(pkg.resolve()).encode()).hexdigest()[:10]
    rc = base / f"casarc-{tag}-{version}"
    try:
        if not (target / "geodetic" / "TAI_UTC" / "table.dat").exists():
            _build_elsewhere(target, Path(iers_data.__file__).parent / "data")
        if not rc.exists():
            _write_atomic(rc, _rc_text(target / "geodetic", pkg / "data"))
    except Exception as exc:  # noqa: BLE001 - never stop a command over this; say it once
        print(f"almarules: note: could not prepare current measures data in {base} "
              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); casacore uses the "
              f"tables bundled with python-casacore", file=sys.stderr)
        return None
    # casacore reads its resource files once, at its first table or measures operation: after this
    os.environ["CASARCFILES"] = ":".join([str(p) for p in _user_rc_files()] + [str(rc)])
    _DONE = target
    _say_if_expired(Path(iers_data.__file__).parent / "data" / "Leap_Second.dat", iers_data.__version__)
    return target


def _say_if_expired(leap_file: Path, version: str) -> None:
    """One line on stderr when the leap-second list is past its expiry date (casacore then logs its
    own SEVERE out-of-date lines, rightly): how to get a current one."""
    expiry = _expiry(leap_file.read_text(errors="replace"))
    if expiry is not None and expiry < date.today():
        print(f"almarules: note: the leap-second list of astropy-iers-data {version} expired on {expiry}; "
              f"times may be off by a leap second: pip install -U astropy-iers-data", file=sys.stderr)


def _rc_text(geodetic: Path, bundled: Path) -> str:
    return (f"# written by almarules (engine/ms/measures.py): current TAI_UTC and IERS tables\n"
            f"measures.directory: {bundled}\n"
            f"measures.tai_utc.directory: {geodetic}\n"
            f"measures.ierseop97.directory: {geodetic}\n"
            f"measures.ierspredict.directory: {geodetic}\n")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _build_elsewhere(target: Path, data: Path) -> None:
    """`_build` in a child process, so that this one has not touched casacore (and read its
    resource files) before CASARCFILES is set; RuntimeError with the child's last line if it fails."""
    import subprocess

    code = ("import sys; from pathlib import Path; from almarules.engine.ms.measures import _build; "
            "_build(Path(sys.argv[1]), Path(sys.argv[2]))")
    env = dict(os.environ, ALMARULES_NO_MEASURES_SETUP="1")
    proc = subprocess.run([sys.executable, "-c", code, str(target), str(data)], capture_output=True, text=True,
                          env=env, timeout=600)
    if proc.returncode != 0 or not (target / "geodetic" / "TAI_UTC" / "table.dat").exists():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or [f"exit code {proc.returncode}"]
        raise RuntimeError(lines[-1])


def _build(target: Path, data: Path) -> None:
    """Write the three tables into a temporary sibling of `target`, then rename it to `target`
    (another process may have won the race: then its copy is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        geo = tmp / "geodetic"
        geo.mkdir()
        _write_tai_utc(geo / "TAI_UTC", data / "Leap_Second.dat")
        eop, predict, today = _eop_rows(data)
        _write_iers(geo / "IERSeop97", eop, "eop97", "IERS EOP C04 (astropy-iers-data eopc04.1962-now)", today)
        _write_iers(geo / "IERSpredict", predict, "predict",
                    "IERS Bulletin A with predictions (astropy-iers-data finals2000A.all)", today)
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "geodetic" / "TAI_UTC" / "table.dat").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- leap seconds
def leap_second_rows(path: Path) -> tuple[list[tuple[float, float, float, float]], date]:
    """casacore TAI_UTC rows (MJD, dUTC s, Offset d, Multiplier s) from IERS ``Leap_Second.dat``
    (rows from 1972 on) after the pre-1972 ones, and the file's expiry date."""
    text = path.read_text()
    expiry = _expiry(text)
    rows = list(PRE_1972)
    for line in text.splitlines():
        parts = line.split()
        if not parts or line.lstrip().startswith("#") or len(parts) < 5:
            continue
        rows.append((float(parts[0]), float(parts[4]), 41317.0, 0.0))
    if expiry is None or len(rows) < 35:
        raise ValueError(f"{path}: not an IERS Leap_Second.dat (no expiry date, or fewer than 22 leap seconds)")
    return rows, expiry


def _expiry(text: str) -> Optional[date]:
    """The "File expires on 28 June 2027" date of a Leap_Second.dat."""
    m = re.search(r"expires on\s+(\d{1,2})\s+([A-Za-z]+)\s+(\d{4})", text)
    if m and m.group(2).lower() in _MONTHS:
        return date(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
    return None


def _vs(d: date) -> str:
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}/00:00"


def _write_tai_utc(path: Path, source: Path) -> None:
    rows, expiry = leap_second_rows(source)
    cols = {name: np.array([r[i] for r in rows]) for i, name in enumerate(("MJD", "dUTC", "Offset", "Multiplier"))}
    valid_from = expiry - timedelta(days=_CASACORE_WINDOW)
    _write_table(path, cols, "leapSecond", {
        "VS_DATE": _vs(valid_from), "VS_CREATE": _vs(date.today()), "VS_VERSION": "0001.0001",
        "VS_TYPE": f"TAI_UTC difference from IERS Leap_Second.dat (astropy-iers-data), expires {expiry.isoformat()}",
        "MJD0": float(cols["MJD"][0]), "dMJD": 0.0})


# ---------------------------------------------------------------- Earth orientation
def _eop_rows(data: Path) -> tuple[dict, dict, date]:
    """(IERSeop97 columns, IERSpredict columns, date of the data) from the IERS B and A files."""
    from astropy import units as u
    from astropy.utils import iers

    b = iers.IERS_B.open(str(data / "eopc04.1962-now"))
    a = iers.IERS_A.open(str(data / "finals2000A.all"))

    def cols(t, x, y, ut1, lod, ex, ey, eut1, elod) -> dict:
        def val(name, unit):
            if name is None:
                return np.zeros(len(t))
            q = t[name]
            v = q.to_value(unit) if hasattr(q, "to_value") else np.asarray(q, dtype=float)
            return np.asarray(np.ma.filled(np.ma.asarray(v, dtype=float), np.nan), dtype=float)
        out = {"MJD": val("MJD", u.d), "x": val(x, u.arcsec), "y": val(y, u.arcsec), "dUT1": val(ut1, u.s),
               "LOD": val(lod, u.s), "Dx": val(ex, u.arcsec), "Dy": val(ey, u.arcsec),
               "DdUT1": val(eut1, u.s), "DLOD": val(elod, u.s)}
        for name in ("dPsi", "DdPsi", "dEps", "DdEps"):
            out[name] = np.zeros(len(t))
        keep = np.isfinite(out["x"]) & np.isfinite(out["y"]) & np.isfinite(out["dUT1"])
        out = {k: np.nan_to_num(v[keep]) for k, v in out.items()}
        _contiguous(out["MJD"])
        return out

    eop = cols(b, "PM_x", "PM_y", "UT1_UTC", "LOD", "e_PM_x", "e_PM_y", "e_UT1_UTC", "e_LOD")
    predict = cols(a, "PM_x_A", "PM_y_A", "UT1_UTC_A", "LOD_A", "e_PM_x_A", "e_PM_y_A", "e_UT1_UTC_A", "e_LOD_A")
    measured = np.asarray(a["UT1Flag_A"]) == "I"
    last = float(np.asarray(a["MJD"].to_value(u.d))[measured].max()) if measured.any() else float(eop["MJD"][-1])
    return eop, predict, _MJD_EPOCH + timedelta(days=int(last))


def _contiguous(mjd: np.ndarray) -> None:
    """casacore needs daily rows without gaps (MeasIERS::initMeas)."""
    if mjd.size < 2 or not np.all(np.diff(mjd) == 1.0):
        raise ValueError("IERS rows are not daily without gaps")


def _write_iers(path: Path, cols: dict, subtype: str, kind: str, when: date) -> None:
    _write_table(path, {k: cols[k] for k in _EOP_COLUMNS}, subtype, {
        "VS_DATE": _vs(when), "VS_CREATE": _vs(date.today()), "VS_VERSION": "0001.0001", "VS_TYPE": kind,
        "MJD0": float(cols["MJD"][0]) - 1.0, "dMJD": 1.0})


def _write_table(path: Path, cols: dict[str, np.ndarray], subtype: str, keywords: dict) -> None:
    """A casacore table of Double columns with UNIT keywords, table info type IERS."""
    from casacore.tables import makescacoldesc, maketabdesc, table

    desc = maketabdesc([makescacoldesc(name, 0.0, keywords={"UNIT": _UNITS[name]}) for name in cols])
    n = len(next(iter(cols.values())))
    t = table(str(path), desc, nrow=n, ack=False)
    try:
        for name, values in cols.items():
            t.putcol(name, np.asarray(values, dtype=np.float64))
        for k, v in keywords.items():
            t.putkeyword(k, v)
        t.putinfo({"type": "IERS", "subType": subtype, "readme": ""})
    finally:
        t.close()
