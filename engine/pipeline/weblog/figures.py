"""The weblog's figures: PNG files drawn with matplotlib's Agg renderer, one function a figure.

Image figures (`image_thumbnail`, `peak_spectrum`, `moment0`) live in `figures_image`, dataset
figures (`array_plot`, `scans_plot`) in `figures_dataset`; all are importable from here. This
module holds what they share: the descriptions they return and the atomic PNG write.

Every function draws on its own `matplotlib.figure.Figure` with an explicit `FigureCanvasAgg`
(never pyplot, never the global backend or rcParams), so figures can be drawn in parallel
threads or processes. matplotlib and astropy are imported inside the functions, so importing
this module costs nothing. Each PNG is written to a temporary file in its directory and renamed
(`almarules.engine.io.write_bytes_atomic`): a failure leaves no file and no temporary file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from almarules.engine.io import write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FigureInfo",
    "ImageFigure",
    "SpectrumFigure",
    "Moment0Figure",
    "ArrayFigure",
    "ScansFigure",
    "image_thumbnail",
    "peak_spectrum",
    "moment0",
    "array_plot",
    "scans_plot",
]

DPI = 100
"""Dots per inch of every figure: a figure of w x h pixels is w/100 x h/100 inches."""
FONT = 7.0
"""Font size (points) of tick labels and small texts; titles are one point larger."""


@dataclass(frozen=True, eq=False)
class FigureInfo:
    """One PNG written: its path, size (pixels), alt text for ``<img alt>``, a caption saying what
    is shown (plane, stretch and range, noise), the stretch (``asinh``, ``linear``, ``log``,
    ``binary``, ``none`` for a blank plane) and the colour range (in `unit`; None when none)."""

    path: Path
    width_px: int
    height_px: int
    alt: str
    caption: str
    stretch: str = "linear"
    vmin: float | None = None
    vmax: float | None = None
    unit: str = ""


@dataclass(frozen=True, eq=False)
class ImageFigure(FigureInfo):
    """A thumbnail of one plane. channel: the 0-based plane of a cube (None for one plane);
    nchan: planes in the file; rms: robust noise of the plane (1.4826 MAD, in `unit`; None
    where not measured); blank: why nothing could be drawn ("all NaN", "all zero") or None;
    beam_px: the drawn restoring beam (major, minor FWHM in pixels, PA deg east of north);
    axes_px: where the image lies in the PNG (left, top, right, bottom pixels from its top left),
    e.g. for an HTML image map."""

    channel: int | None = None
    nchan: int = 1
    rms: float | None = None
    blank: str | None = None
    beam_px: tuple[float, float, float] | None = None
    axes_px: tuple[float, float, float, float] | None = None


@dataclass(frozen=True, eq=False)
class SpectrumFigure(FigureInfo):
    """The plotted spectra: channel (0-based), frequency_ghz, peak (BUNIT, the spectrum at the
    peak pixel), peak_pixel (x, y; 0-based, numpy ``data[..., y, x]``), peak_channel;
    mask_flux: the per-channel sum within the mask divided by the beam area in pixels (Jy for
    Jy/beam), or None without a mask or a beam."""

    channel: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frequency_ghz: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peak: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peak_pixel: tuple[int, int] = (0, 0)
    peak_channel: int = 0
    mask_flux: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Moment0Figure(FigureInfo):
    """An integrated-intensity map: moment (ny, nx) in `unit` (``Jy/beam.km/s`` with a rest
    frequency, else ``Jy/beam.GHz``; with an m or µ prefix when that reads better, as drawn),
    channels (first, last) integrated, 0-based inclusive."""

    moment: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    channels: tuple[int, int] = (0, 0)


@dataclass(frozen=True, eq=False)
class ArrayFigure(FigureInfo):
    """Antenna positions: names and local east/north/up (m) about the array centre (the mean
    ITRF position), shortest and longest antenna separation (m, 3-D)."""

    names: tuple[str, ...] = ()
    east_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    north_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    up_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    baseline_min_m: float | None = None
    baseline_max_m: float | None = None


@dataclass(frozen=True, eq=False)
class ScansFigure(FigureInfo):
    """The scan timeline: rows (field names, top to bottom), scans drawn, and the start of the
    time axis (MJD seconds, UTC midnight of the first scan's day)."""

    rows: tuple[str, ...] = ()
    n_scans: int = 0
    day_start_mjd_s: float | None = None


def new_figure(width_px: int, height_px: int) -> Figure:
    """A matplotlib Figure of exactly `width_px` x `height_px` pixels on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if width_px < 16 or height_px < 16:
        raise ValueError(f"a figure needs at least 16 x 16 pixels, got {width_px} x {height_px}")
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, png_path: str | Path) -> tuple[int, int]:
    """Render `fig` and write it to `png_path` atomically; returns (width, height) in pixels.

    The figure is rendered to memory first, so a drawing error leaves nothing on disk."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": "almarules (matplotlib Agg)"})
    data = buf.getvalue()
    write_bytes_atomic(png_path, lambda fh: fh.write(data))
    width, height = (int(v) for v in np.round(fig.get_size_inches() * DPI))
    return width, height


def axes_box_px(fig: Figure, ax: Any) -> tuple[float, float, float, float]:
    """The drawn box of `ax` in PNG pixels (left, top, right, bottom; origin top left). Call after
    `save_png`, which draws the figure and so fixes an aspect-locked box."""
    box = ax.get_window_extent()
    height = fig.get_size_inches()[1] * DPI
    return float(box.x0), float(height - box.y1), float(box.x1), float(height - box.y0)


def blank_text(ax: Any, text: str) -> None:
    """Write `text` across the middle of `ax` (a plane or plot with nothing to show)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=FONT + 1,
            color="black", bbox={"facecolor": "white", "edgecolor": "0.5", "boxstyle": "round"})


_LAZY = {"image_thumbnail": "figures_image", "peak_spectrum": "figures_image", "moment0": "figures_image",
         "array_plot": "figures_dataset", "scans_plot": "figures_dataset"}


def __getattr__(name: str) -> Any:
    """The figure functions, imported from their modules on first use."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__package__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
