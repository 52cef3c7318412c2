"""Broken and foreign Measurement Sets made from a valid one, for the hostile-input tests:
each function copies `src` to `dst`, changes one thing with casacore, and returns `dst`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def nan_positions(src: Path, dst: Path, rows: Sequence[int]) -> Path:
    """ANTENNA.POSITION of `rows` set to NaN (as some archive exports write unknown pads)."""
    from casacore.tables import table

    _copy(src, dst)
    with table(f"{dst}/ANTENNA", readonly=False, ack=False) as t:
        pos = t.getcol("POSITION")
        pos[list(rows)] = np.nan
        t.putcol("POSITION", pos)
    return dst


def zero_weights(src: Path, dst: Path) -> Path:
    """WEIGHT (and WEIGHT_SPECTRUM where present) all zero; nothing flagged."""
    from casacore.tables import table

    _copy(src, dst)
    with table(str(dst), readonly=False, ack=False) as t:
        t.putcol("WEIGHT", np.zeros_like(t.getcol("WEIGHT")))
        if "WEIGHT_SPECTRUM" in t.colnames() and t.iscelldefined("WEIGHT_SPECTRUM", 0):
            t.putcol("WEIGHT_SPECTRUM", np.zeros_like(t.getcol("WEIGHT_SPECTRUM")))
    return dst


def descending_spw(src: Path, dst: Path, spw: int) -> Path:
    """Spw `spw` with its channels in descending frequency, as SMA MSs have them: CHAN_FREQ
    reversed, CHAN_WIDTH, EFFECTIVE_BW and RESOLUTION negative, and the channel axis of every
    per-channel column of its rows reversed, so the physics is unchanged."""
    from casacore.tables import table

    _copy(src, dst)
    with table(f"{dst}/SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.putcell("CHAN_FREQ", spw, t.getcell("CHAN_FREQ", spw)[::-1])
        for col in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            t.putcell(col, spw, -np.abs(t.getcell(col, spw))[::-1])
        t.putcell("REF_FREQUENCY", spw, t.getcell("CHAN_FREQ", spw)[0])
    with table(f"{dst}/DATA_DESCRIPTION", ack=False) as dd:
        dds = [i for i, s in enumerate(dd.getcol("SPECTRAL_WINDOW_ID")) if int(s) == spw]
    with table(str(dst), readonly=False, ack=False) as t:
        rows = np.flatnonzero(np.isin(t.getcol("DATA_DESC_ID"), dds))
        for col in ("DATA", "CORRECTED_DATA", "MODEL_DATA", "FLAG", "WEIGHT_SPECTRUM", "SIGMA_SPECTRUM"):
            if col not in t.colnames() or not t.iscelldefined(col, int(rows[0])):
                continue
            for r in rows:
                t.putcell(col, int(r), t.getcell(col, int(r))[::-1])
    return dst


def low_frequency(src: Path, dst: Path, freq_hz: float, dish_m: float, telescope: str) -> Path:
    """A low-frequency array from a valid MS: every spw moved to start at `freq_hz` (channel
    widths scaled alike), DISH_DIAMETER `dish_m` (a dipole's effective size), TELESCOPE_NAME."""
    from casacore.tables import table

    _copy(src, dst)
    with table(f"{dst}/SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        for row in range(t.nrows()):
            f = t.getcell("CHAN_FREQ", row)
            scale = freq_hz / f[0]
            t.putcell("CHAN_FREQ", row, f * scale)
            for col in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
                t.putcell(col, row, t.getcell(col, row) * scale)
            t.putcell("REF_FREQUENCY", row, freq_hz)
            t.putcell("TOTAL_BANDWIDTH", row, t.getcell("TOTAL_BANDWIDTH", row) * scale)
    with table(f"{dst}/ANTENNA", readonly=False, ack=False) as t:
        t.putcol("DISH_DIAMETER", np.full(t.nrows(), dish_m))
    with table(f"{dst}/OBSERVATION", readonly=False, ack=False) as t:
        t.putcol("TELESCOPE_NAME", [telescope] * t.nrows())
    return dst


def long_baselines(src: Path, dst: Path, factor: float) -> Path:
    """UVW scaled by `factor`: baselines as long as a sparse wide-field array's relative to its
    dish, which makes the rules' image sizes huge."""
    from casacore.tables import table

    _copy(src, dst)
    with table(str(dst), readonly=False, ack=False) as t:
        t.putcol("UVW", t.getcol("UVW") * factor)
    return dst


def truncated_subtable(src: Path, dst: Path, name: str) -> Path:
    """The data files (table.f*) of subtable `name` cut to 100 bytes, as an interrupted copy leaves them."""
    _copy(src, dst)
    for f in sorted((dst / name).glob("table.f*")):
        with open(f, "r+b") as fh:
            fh.truncate(100)
    return dst


def missing_subtable(src: Path, dst: Path, name: str) -> Path:
    """Subtable `name` deleted."""
    _copy(src, dst)
    shutil.rmtree(dst / name)
    return dst


def empty_main_table(src: Path, dst: Path) -> Path:
    """The MS with its subtables and a main table of zero rows."""
    from casacore.tables import table

    with table(str(src), ack=False) as t:
        sel = t.query("ROWNUMBER() < 0")
        sel.copy(str(dst), deep=True, valuecopy=True).close()
        sel.close()
    return dst


def unused_nan_antenna(src: Path, dst: Path) -> Path:
    """One more ANTENNA row, with a NaN POSITION and no rows in the main table."""
    from casacore.tables import table

    _copy(src, dst)
    with table(f"{dst}/ANTENNA", readonly=False, ack=False) as t:
        t.addrows(1)
        row = t.nrows() - 1
        t.putcell("NAME", row, "XX99")
        t.putcell("STATION", row, "NOPAD")
        t.putcell("DISH_DIAMETER", row, 12.0)
        t.putcell("POSITION", row, np.full(3, np.nan))
    return dst
