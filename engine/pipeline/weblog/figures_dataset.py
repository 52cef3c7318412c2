"""Figures of a dataset's facts (`almarules.engine.facts.model.Dataset`): the antenna layout
(local east/north about the array centre, the mean ITRF position of the antennas:
`almarules.engine.ms.geodesy.itrf_to_enu`) and the scans over time.

Times: scan start/end are MJD seconds (UTC); the time axis is UTC hours from 0 h of the first
scan's day (beyond 24 on later days).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from almarules.engine.ms.geodesy import itrf_to_enu
from almarules.engine.pipeline.weblog.figures import (FONT, ArrayFigure, ScansFigure, blank_text, new_figure,
                                                      save_png)

if TYPE_CHECKING:
    from almarules.engine.facts.model import Dataset

__all__ = ["array_plot", "scans_plot", "INTENT_COLOURS"]

MAX_LABELLED = 60
"""Antenna names are written beside their markers for at most this many antennas."""
#: Colour of each intent; a scan with several intents takes the colour of its first in this order.
INTENT_COLOURS: dict[str, str] = {
    "TARGET": "#d62728", "PHASE": "#1f77b4", "BANDPASS": "#2ca02c", "AMPLITUDE": "#ff7f0e",
    "CHECK": "#9467bd", "POLARIZATION": "#8c564b", "DELAY": "#e377c2", "POINTING": "#7f7f7f",
    "FOCUS": "#bcbd22", "SIDEBAND": "#17becf", "ATMOSPHERE": "#aaaaaa", "WVR": "#cccccc",
    "UNSPECIFIED": "#444444",
}


def _separations(xyz: np.ndarray) -> tuple[float | None, float | None]:
    """Shortest and longest 3-D distance between two antennas (m); None for fewer than two."""
    if len(xyz) < 2:
        return None, None
    d = np.sqrt(((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(axis=-1))
    upper = d[np.triu_indices(len(xyz), k=1)]
    return float(upper.min()), float(upper.max())


def _date(mjd_s: float) -> str:
    """The UTC date (YYYY-MM-DD) of MJD seconds."""
    return (datetime(1858, 11, 17) + timedelta(seconds=mjd_s)).strftime("%Y-%m-%d")


def _length(m: float) -> str:
    return f"{m / 1000:.3g} km" if m >= 1000 else f"{m:.3g} m"


def array_plot(dataset: Dataset, png_path: str | Path, *, size_px: int = 480) -> ArrayFigure:
    """Antenna positions in local east/north metres (km beyond 5 km) about the array centre,
    named when there are at most `MAX_LABELLED`; the antenna separations' range in the title.
    Antennas without a position are left out (the caption counts them)."""
    ants = [a for a in dataset.antennas or [] if a.position is not None]
    missing = len(dataset.antennas or []) - len(ants)
    xyz = np.array([a.position for a in ants], dtype=np.float64).reshape(-1, 3)
    enu = itrf_to_enu(xyz) if len(ants) else np.zeros((0, 3))
    lo, hi = _separations(xyz)
    fig = new_figure(size_px, size_px)
    ax = fig.add_axes((0.15, 0.11, 0.8, 0.76))
    ax.tick_params(labelsize=FONT - 1)
    scale, unit = (1000.0, "km") if len(ants) and np.abs(enu[:, :2]).max() > 5000 else (1.0, "m")
    if not ants:
        blank_text(ax, "no antenna positions")
    else:
        e, n = enu[:, 0] / scale, enu[:, 1] / scale
        ax.scatter(e, n, s=14, color="#1f77b4", edgecolor="black", linewidth=0.4, zorder=3)
        if len(ants) <= MAX_LABELLED:
            for a, x, y in zip(ants, e, n, strict=True):
                ax.annotate(a.name, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=FONT - 2,
                            color="0.25")
        _square_limits(ax, e, n)
    ax.set_aspect("equal", adjustable="box")
    ax.grid(color="0.9", linewidth=0.5)
    ax.set_xlabel(f"east ({unit})", fontsize=FONT)
    ax.set_ylabel(f"north ({unit})", fontsize=FONT)
    span = f"separations {_length(lo)} \u2013 {_length(hi)}" if lo is not None else "fewer than two antennas"
    name = dataset.telescope or "array"
    fig.text(0.5, 0.975, f"{name}: {len(ants)} antennas, {span}", ha="center", va="top", fontsize=FONT + 1)
    caption = (f"Positions of {len(ants)} antennas in local east/north about the array centre (WGS84 tangent "
               f"plane); {span} (3-D, between antennas: projected baselines are shorter)."
               + (f" {missing} antennas without a position are not shown." if missing else ""))
    w, h = save_png(fig, png_path)
    return ArrayFigure(path=Path(png_path), width_px=w, height_px=h, alt=f"Antenna layout: {len(ants)} antennas",
                       caption=caption, unit=unit, names=tuple(a.name for a in ants), east_m=enu[:, 0],
                       north_m=enu[:, 1], up_m=enu[:, 2], baseline_min_m=lo, baseline_max_m=hi)


def _square_limits(ax: Any, e: np.ndarray, n: np.ndarray) -> None:
    """Equal, padded ranges centred on the antennas (room for the names)."""
    half = max(float(np.ptp(e)), float(np.ptp(n)), 1e-3) * 0.56
    ce, cn = (float(e.max() + e.min()) / 2, float(n.max() + n.min()) / 2)
    ax.set_xlim(ce - half, ce + half)
    ax.set_ylim(cn - half, cn + half)


def _intent_label(intents: Sequence[str] | None) -> str:
    order = list(INTENT_COLOURS)
    known = sorted(set(intents or ["UNSPECIFIED"]), key=lambda i: order.index(i) if i in order else len(order))
    return "+".join(known)


def _scan_rows(dataset: Dataset) -> list[tuple[str, float, float, int, str]]:
    """(field name, start, end, scan number, intent label) per scan and field, in time order;
    scans without times are left out."""
    names = {f.id: f.name for f in dataset.fields or []}
    out = []
    for s in dataset.scans or []:
        if s.start is None or s.end is None:
            continue
        fields = dict.fromkeys(names.get(i, f"field {i}") for i in (s.field_ids or [-1]))
        for name in fields:
            out.append((name if name != "field -1" else "(no field)", s.start, s.end, s.number,
                        _intent_label(s.intents)))
    return sorted(out, key=lambda r: (r[1], r[3]))


def scans_plot(dataset: Dataset, png_path: str | Path, *, width_px: int = 720) -> ScansFigure:
    """Scans over time: one row per field (in order of first observation, top to bottom), a bar
    per scan from its start to its end in UTC hours, coloured by intent, with its number written
    on it where the bar is wide enough."""
    rows = _scan_rows(dataset)
    fields = list(dict.fromkeys(r[0] for r in rows))
    height = int(min(900, 110 + 26 * max(len(fields), 1)))
    fig = new_figure(width_px, height)
    left = min(0.3, 0.02 + 0.0125 * max((len(f) for f in fields), default=8) * 720 / width_px)
    ax = fig.add_axes((left, 60 / height, 0.97 - left, 1 - 100 / height))
    ax.tick_params(labelsize=FONT - 1)
    day0 = math.floor(min(r[1] for r in rows) / 86400.0) * 86400.0 if rows else None
    if not rows:
        blank_text(ax, "no scans with times")
    else:
        _draw_scans(fig, ax, rows, fields, day0)
    ax.set_xlabel(f"UTC on {_date(day0)} (hh:mm; beyond 24:00 on later days)" if day0 is not None else "UTC",
                  fontsize=FONT)
    n_scans = len({(r[3], r[1]) for r in rows})
    fig.text(0.5, 1 - 6 / height, f"{n_scans} scans on {len(fields)} fields", ha="center", va="top",
             fontsize=FONT + 1)
    caption = (f"{n_scans} scans over time (UTC hours), one row per field, coloured by intent; scan numbers on the "
               "bars wide enough to hold them.")
    w, h = save_png(fig, png_path)
    return ScansFigure(path=Path(png_path), width_px=w, height_px=h,
                       alt=f"Timeline of {n_scans} scans on {len(fields)} fields", caption=caption, unit="h",
                       rows=tuple(fields), n_scans=n_scans, day_start_mjd_s=day0)


def _hhmm(hours: float, _pos: Any = None) -> str:
    """Hours as hh:mm (rounded to the minute)."""
    minutes = round(hours * 60.0)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _hatch(intent: str) -> str | None:
    """Scans with several intents are hatched (their colour is their first intent's)."""
    return "////" if "+" in intent else None


def _draw_scans(fig: Any, ax: Any, rows: list[tuple[str, float, float, int, str]], fields: list[str],
                day0: float) -> None:
    """The bars, their numbers, the field labels and the intent legend."""
    from matplotlib.patches import Patch
    from matplotlib.patheffects import withStroke
    from matplotlib.ticker import FuncFormatter

    t0 = min(r[1] for r in rows) - day0
    t1 = max(r[2] for r in rows) - day0
    pad = max((t1 - t0) * 0.02, 30.0)
    ax.set_xlim((t0 - pad) / 3600.0, (t1 + pad) / 3600.0)
    ax.set_ylim(len(fields) - 0.4, -0.6)
    px_per_hour = ax.get_window_extent().width / ((t1 - t0 + 2 * pad) / 3600.0)
    labels: dict[str, str] = {}
    for name, start, end, number, intent in rows:
        colour = INTENT_COLOURS.get(intent.split("+")[0], "#444444")
        labels.setdefault(intent, colour)
        y, x, w = fields.index(name), (start - day0) / 3600.0, (end - start) / 3600.0
        ax.broken_barh([(x, max(w, 1e-9))], (y - 0.35, 0.7), facecolors=colour, edgecolors="black",
                       linewidth=0.3, hatch=_hatch(intent))
        if w * px_per_hour >= 5.5 * len(str(number)) + 2:
            ax.text(x + w / 2, y, str(number), ha="center", va="center", fontsize=FONT - 2, color="white",
                    path_effects=[withStroke(linewidth=1.5, foreground="black")])
    ax.set_yticks(range(len(fields)), labels=fields, fontsize=FONT - 1)
    ax.xaxis.set_major_formatter(FuncFormatter(_hhmm))
    ax.grid(axis="x", color="0.9", linewidth=0.5)
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.3, hatch=_hatch(i), label=i)
               for i, c in labels.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=FONT - 1, frameon=False,
               bbox_to_anchor=(0.5, 0.0), handlelength=1.2, columnspacing=1.0)
