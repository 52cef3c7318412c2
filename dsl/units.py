"""Physical units for rules and facts, on top of astropy.units.

At run time every quantity is a plain float in *canonical* units: the astropy
decomposition of its unit into base units (m, s, kg, rad, byte, beam, K, ...).
A `Dim` is that canonical unit with scale 1; it is what the static checker
compares. `parse_unit` turns a rule-file unit string into (scale, Dim).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import astropy.units as u

# Spellings scientists use that astropy does not know, mapped to astropy names.
_ALIASES = {
    "uJy": "microJy",
    "µJy": "microJy",
    "μJy": "microJy",
    "um": "micron",
    "µm": "micron",
    "GB": "GB",  # astropy: gigabyte = 1e9 byte (SI prefix), as heuristics.md defines
    "sec": "s",
    "Jy/b": "Jy/beam",
}

# Display units preferred for each canonical dimension (first one wins).
_DISPLAY = [
    "GHz", "Jy/beam", "Jy", "m", "s", "arcsec", "GB", "K", "m/s",
]


class UnitError(ValueError):
    """A unit string that astropy cannot parse."""


@dataclass(frozen=True)
class Dim:
    """A canonical (scale-free) unit: the physical dimension of a quantity."""

    unit: u.UnitBase

    @property
    def is_dimensionless(self) -> bool:
        return self.unit == u.dimensionless_unscaled

    def __str__(self) -> str:
        if self.is_dimensionless:
            return "1"
        return self.unit.to_string()

    def __mul__(self, other: "Dim") -> "Dim":
        return canonical(self.unit * other.unit)[1]

    def __truediv__(self, other: "Dim") -> "Dim":
        return canonical(self.unit / other.unit)[1]

    def __pow__(self, power: float) -> "Dim":
        return canonical(self.unit**power)[1]

    def display_unit(self) -> str:
        """A readable unit for reports (GHz for frequencies, arcsec for angles...)."""
        return display_unit_for(self)


DIMENSIONLESS = Dim(u.dimensionless_unscaled)


def canonical(unit: u.UnitBase) -> tuple[float, Dim]:
    """Scale and canonical unit of an astropy unit: value_canonical = value * scale."""
    dec = unit.decompose()
    scale = float(f"{float(dec.scale):.15g}")  # drop decomposition round-off
    base = u.CompositeUnit(1, dec.bases, dec.powers) if dec.bases else u.dimensionless_unscaled
    return scale, Dim(base)


@functools.lru_cache(maxsize=512)
def parse_unit(text: str) -> tuple[float, Dim]:
    """Parse a unit string such as ``mJy/beam`` or ``GHz`` into (scale, Dim)."""
    spelled = _ALIASES.get(text, text)
    try:
        unit = u.Unit(spelled, format="generic")
    except ValueError as exc:
        raise UnitError(f"unknown unit {text!r}") from exc
    return canonical(unit)


@functools.lru_cache(maxsize=128)
def display_unit_for(dim: Dim) -> str:
    if dim.is_dimensionless:
        return ""
    for name in _DISPLAY:
        if parse_unit(name)[1] == dim:
            return name
    return str(dim)


def from_canonical(value: float, unit_text: str) -> float:
    """A canonical value expressed in `unit_text`."""
    return value / parse_unit(unit_text)[0]


def format_quantity(value: float, dim: Dim, unit_text: str | None = None, digits: int = 4) -> str:
    """``0.0004 mJy/beam`` style text: a canonical value shown in a readable unit."""
    if isinstance(value, bool):
        return "true" if value else "false"
    unit_text = unit_text or display_unit_for(dim)
    shown = from_canonical(value, unit_text) if unit_text else value
    text = format_number(shown, digits)
    return f"{text} {unit_text}" if unit_text else text


def format_number(value: float, digits: int = 4) -> str:
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    if not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if 10 ** digits <= abs(value) < 1e15:  # large: round to `digits` significant figures, no exponent
        return str(int(float(f"{value:.{digits}g}")))
    return f"{value:.{digits}g}"


def parse_quantity(text: str) -> tuple[float, Dim]:
    """Parse ``40GB``, ``40 GB``, ``0.5`` into (canonical value, Dim)."""
    text = text.strip()
    i = 0
    while i < len(text) and (text[i].isdigit() or text[i] in "+-.eE"):
        # stop at an 'e' that starts a unit rather than an exponent
        if text[i] in "eE" and not (i + 1 < len(text) and (text[i + 1].isdigit() or text[i + 1] in "+-")):
            break
        i += 1
    number, unit_text = text[:i], text[i:].strip()
    try:
        value = float(number)
    except ValueError as exc:
        raise UnitError(f"not a number with a unit: {text!r}") from exc
    if not unit_text:
        return value, DIMENSIONLESS
    scale, dim = parse_unit(unit_text)
    return value * scale, dim
