"""Physical units for rules and facts, as astropy.units defines them.

At run time every quantity is a plain float in *canonical* units: the astropy
decomposition of its unit into base units (m, s, kg, rad, bit, beam, K, ...).
A `Dim` is that canonical unit with scale 1, held as ``((base, power), ...)``;
it is what the static checker compares. `parse_unit` turns a rule-file unit
string into (scale, Dim).

astropy.units takes ~0.2 s to import, a sixth of an `almarules image` run, so the
units the shipped rules and facts use are looked up in `known_units.KNOWN` (astropy's
own decompositions, checked against astropy by the tests); astropy is imported only
for any other unit and to spell a `Dim` in a message.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable

from almarules.dsl.known_units import KNOWN

# Spellings scientists use that astropy does not know, mapped to astropy names.
_ALIASES = {
    "GB": "GB",  # astropy: gigabyte = 1e9 byte (SI prefix), as heuristics.md defines
    "sec": "s",
    "Jy/b": "Jy/beam",
}

# Display units preferred for each canonical dimension (first one wins).
_DISPLAY = [
    "GHz", "Jy/beam", "Jy", "m", "s", "arcsec", "GB", "K", "m/s",
]

Powers = tuple[tuple[str, float], ...]


class UnitError(ValueError):
    """A unit string that astropy cannot parse."""


def _powers(pairs: Iterable[tuple[str, float]]) -> Powers:
    """Sorted by base name, equal bases summed, zero powers dropped, integral powers as int."""
    acc: dict[str, float] = {}
    for base, p in pairs:
        acc[base] = acc.get(base, 0) + p
    return tuple((b, int(p) if float(p).is_integer() else float(p)) for b, p in sorted(acc.items()) if p != 0)


@dataclass(frozen=True)
class Dim:
    """A canonical (scale-free) unit: the physical dimension of a quantity."""

    powers: Powers = ()

    @property
    def is_dimensionless(self) -> bool:
        return not self.powers

    def __str__(self) -> str:
        return "1" if self.is_dimensionless else self._astropy_unit().to_string()

    @property
    def physical_type(self) -> str:
        """astropy's name of the dimension: 'frequency', 'length', ..., 'dimensionless', 'unknown'."""
        return str(self._astropy_unit().physical_type)

    def _astropy_unit(self):  # noqa: ANN202 - astropy is imported only here (messages)
        import astropy.units as u

        return u.CompositeUnit(1, [u.Unit(b) for b, _ in self.powers], [p for _, p in self.powers])

    def __mul__(self, other: "Dim") -> "Dim":
        return Dim(_powers(self.powers + other.powers))

    def __truediv__(self, other: "Dim") -> "Dim":
        return Dim(_powers(self.powers + tuple((b, -p) for b, p in other.powers)))

    def __pow__(self, power: float) -> "Dim":
        return Dim(_powers((b, p * power) for b, p in self.powers))

    def display_unit(self) -> str:
        """A readable unit for reports (GHz for frequencies, arcsec for angles...)."""
        return display_unit_for(self)


DIMENSIONLESS = Dim()


def astropy_decomposition(text: str) -> tuple[float, Powers]:
    """(scale, powers) of a unit string by astropy: value_canonical = value * scale."""
    import astropy.units as u

    try:
        dec = u.Unit(_ALIASES.get(text, text), format="generic").decompose()
    except ValueError as exc:
        raise UnitError(f"unknown unit {text!r}") from exc
    scale = float(f"{float(dec.scale):.15g}")  # drop decomposition round-off
    return scale, _powers((b.name, p) for b, p in zip(dec.bases, dec.powers, strict=True))


@functools.lru_cache(maxsize=512)
def parse_unit(text: str) -> tuple[float, Dim]:
    """Parse a unit string such as ``mJy/beam`` or ``GHz`` into (scale, Dim)."""
    known = KNOWN.get(text)
    scale, powers = known if known is not None else astropy_decomposition(text)
    return scale, Dim(powers)


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
