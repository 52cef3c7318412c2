"""findcont for one field and spw: the coarse dirty cube (`cube`), the emission mask and mean
spectrum and its line-free channels (`kernels.continuum`); when the peak spectrum shows line
channels beyond doubt among them (emission anywhere in the field: an extended source moving across
it from channel to channel, which the mean over a fixed mask dilutes, as NGC 5921's HI), the search
again with those channels excluded; as a cont.dat selection (LSRK channel centres, version 3) and the arrays
the weblog's spectrum figure is drawn from.

A range is written from the LSRK centre of its first channel to that of its last, so that
`products.contdat.channel_mask` (channel centres inside a range, a thousandth of a channel of
tolerance) selects exactly the channels found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from almarules.engine.io import write_atomic
from almarules.engine.products.contdat import ContRange, SpwContinuum
from almarules.engine.stages.continuum.cube import CoarseCube, CoarseSetup, coarse_cube
from almarules.kernels import continuum as kc


@dataclass(frozen=True)
class SearchParams:
    """The search's thresholds (rules: image.findcont_*; see continuum.rules)."""

    mom0_mad: float
    peak_mad: float
    min_island: float
    pb_fallback: float
    quiet_fraction: float
    lower_factor: float
    trim: float
    allcont: float
    lowbandwidth: float
    peak_factor: float  # channels of the peak spectrum this many bands above its baseline are line channels


@dataclass(frozen=True)
class Found:
    """What findcont found for one field and spw."""

    field: str
    spw: int
    selection: SpwContinuum
    result: kc.ContinuumResult
    mask_how: str  # "emission" or "pb"
    mask_pixels: int
    strong: np.ndarray  # (nchan,) bool: line channels from the peak spectrum (excluded up front)
    freq_lsrk: np.ndarray  # (nchan,) Hz
    spectrum: np.ndarray  # (nchan,) Jy/beam, the mean over the mask
    notes: tuple[str, ...]

    def summary(self) -> str:
        r = self.result
        ranges = ", ".join(f"{a}~{b}" for a, b in r.ranges) or "none"
        flags = f" [{' '.join(r.flags)}]" if r.flags else ""
        strong = f", {int(self.strong.sum())} line channels from the peak spectrum" if self.strong.any() else ""
        return (f"{self.field} spw {self.spw}: channels {ranges} of {r.nchan} ({100 * r.fraction:.0f} %){flags}; "
                f"mean spectrum over {self.mask_pixels} pixels ({self.mask_how} mask{strong}), baseline "
                f"{1e3 * r.level:.3g} mJy/beam, sigma {1e3 * r.sigma:.3g} mJy/beam, peak S/N {r.peak_snr:.0f}")


def search(ms_paths: Sequence[Path], field: str, spw: int, setup: CoarseSetup, params: SearchParams, *,
           nthreads: int = 0, memory_limit: int = 1024 ** 3, say: Optional[Callable[[str], None]] = None) -> Found:
    """findcont of `field` in `spw` (module doc)."""
    cube = coarse_cube(ms_paths, field, spw, setup, nthreads=nthreads, memory_limit=memory_limit, say=say)
    return found_in(cube, field, spw, params)


def found_in(cube: CoarseCube, field: str, spw: int, params: SearchParams) -> Found:
    """The search on a coarse cube already made."""
    mask, how = kc.emission_mask(cube.cube, cube.pb, cube.beam_pixels, mom0_mad=params.mom0_mad,
                                 peak_mad=params.peak_mad, min_island_beams=params.min_island,
                                 pb_fallback=params.pb_fallback)
    spectrum = kc.mean_spectrum(cube.cube, mask)
    kw = dict(quiet_fraction=params.quiet_fraction, lower_factor=params.lower_factor, trim_fraction=params.trim,
              allcont_fraction=params.allcont, lowbandwidth_fraction=params.lowbandwidth)
    result = kc.find_continuum(spectrum, **kw)
    strong = kc.strong_channels(kc.peak_spectrum(cube.cube, cube.pb), params.peak_factor)
    if (strong & result.selected).any():  # the mean spectrum missed emission the peak spectrum sees: a veto
        result = kc.find_continuum(spectrum, exclude=strong, **kw)
    else:
        strong = np.zeros_like(strong)
    return Found(field, spw, selection(spw, result, cube.freq_lsrk), result, how, int(mask.sum()), strong,
                 cube.freq_lsrk, spectrum, cube.notes)


def selection(spw: int, result: kc.ContinuumResult, freq_lsrk: np.ndarray) -> SpwContinuum:
    """The cont.dat selection of `result`: one LSRK range per channel range (centre to centre),
    its flags; kind "none" when no channel is line-free."""
    ranges = [ContRange(low_hz=float(min(freq_lsrk[a], freq_lsrk[b])), high_hz=float(max(freq_lsrk[a], freq_lsrk[b])),
                        frame="LSRK") for a, b in result.ranges]
    ranges.sort(key=lambda r: r.low_hz)
    if not ranges:
        return SpwContinuum(spw=spw, kind="none", flags=list(result.flags))
    return SpwContinuum(spw=spw, ranges=ranges, flags=list(result.flags))


def save_spectrum(path: Path, found: Found) -> None:
    """The arrays of the weblog's findcont figure, as JSON (frequencies GHz, spectrum mJy/beam)."""
    r = found.result
    baseline = r.baseline()
    write_atomic(path, json.dumps({
        "field": found.field, "spw": found.spw, "freq_ghz": (found.freq_lsrk / 1e9).tolist(),
        "spectrum_mjy": [None if not np.isfinite(v) else float(v) * 1e3 for v in found.spectrum],
        "selected": r.selected.astype(int).tolist(), "baseline_mjy": (baseline * 1e3).tolist(),
        "band_mjy": [r.band[0] * 1e3, r.band[1] * 1e3], "flags": list(r.flags), "mask": found.mask_how,
        "mask_pixels": found.mask_pixels, "strong": found.strong.astype(int).tolist(), "why": list(r.why)}) + "\n")
