"""How the weblog writes numbers: one function (`number`) for every number shown, so a test can
format a record's value the same way and compare; unit scales for plan-against-outcome ratios;
durations and sizes in words.
"""

from __future__ import annotations

import math
from typing import Optional, Union

Scalar = Union[float, int, str, bool, None]

#: factor to the base unit of each family: Jy/beam, Hz, GB, s
_SCALE = {
    "Jy/beam": 1.0, "mJy/beam": 1e-3, "uJy/beam": 1e-6, "µJy/beam": 1e-6, "μJy/beam": 1e-6,
    "Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9,
    "B": 1e-9, "byte": 1e-9, "kB": 1e-6, "MB": 1e-3, "GB": 1.0, "TB": 1e3,
    "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
}


def number(value: Scalar, unit: Optional[str] = None, digits: int = 4) -> str:
    """`value` as shown: `digits` significant digits (no exponent between 1e-3 and 1e6), then the
    unit; words and booleans as they are; None as an en dash; NaN and inf spelled out."""
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, str):
        text = str(value).lower() if isinstance(value, bool) else value
    elif isinstance(value, int):
        text = str(value)
    elif math.isnan(value):
        text = "NaN"
    elif math.isinf(value):
        text = "inf" if value > 0 else "-inf"
    else:
        text = _float(float(value), digits)
    return f"{text} {unit}" if unit else text


def _float(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def to_base(value: Optional[float], unit: Optional[str]) -> Optional[float]:
    """`value` in its family's base unit (Jy/beam, Hz, GB, s); None if the unit is unknown."""
    if value is None or isinstance(value, (str, bool)) or unit not in _SCALE:
        return None
    return float(value) * _SCALE[unit]


def duration(seconds: Optional[float]) -> str:
    """A wall time in words: < 1 ms, 0.42 s, 12.3 s, 4 min 05 s, 2 h 03 min."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1e-3:
        return "< 1 ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def size(n_bytes: Optional[float]) -> str:
    """A file size in words (decimal units): 368.6 kB, 2.3 GB."""
    if n_bytes is None:
        return "–"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.4g} {unit}"
    return f"{int(n_bytes)} B"


def ratio(actual: Optional[float], estimate: Optional[float]) -> Optional[float]:
    """actual / estimate, or None where either is missing, not finite, or the estimate is 0."""
    if actual is None or estimate is None or not estimate or not math.isfinite(actual) or not math.isfinite(estimate):
        return None
    return actual / estimate
