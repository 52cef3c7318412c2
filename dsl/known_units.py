"""Units the shipped rules, facts and reports use, decomposed as astropy.units decomposes them,
so that parsing them needs no astropy import (see `units`). Each entry: unit text ->
(scale to canonical units, ((base, power), ...) sorted by base). tests/dsl/test_units.py
checks every entry against astropy and that the shipped rules and facts need no other unit.

Regenerate (prints the table): ``python -m almarules.dsl.known_units``.
"""

from __future__ import annotations

NAMES = (
    "Hz", "kHz", "MHz", "GHz",
    "Jy", "mJy", "uJy", "Jy/beam", "mJy/beam", "uJy/beam", "Jy-2", "beam", "beam-1",
    "K", "mK", "J/K",
    "m", "mm", "cm", "km", "um", "m/s", "km/s",
    "s", "sec", "min", "h", "d",
    "rad", "deg", "arcmin", "arcsec", "mas",
    "bit", "byte", "kB", "MB", "GB", "TB",
)

KNOWN: dict[str, tuple[float, tuple[tuple[str, int | float], ...]]] = {
    'Hz': (1.0, (('s', -1),)),
    'kHz': (1000.0, (('s', -1),)),
    'MHz': (1000000.0, (('s', -1),)),
    'GHz': (1000000000.0, (('s', -1),)),
    'Jy': (1e-26, (('kg', 1), ('s', -2))),
    'mJy': (1e-29, (('kg', 1), ('s', -2))),
    'uJy': (1e-32, (('kg', 1), ('s', -2))),
    'Jy/beam': (1e-26, (('beam', -1), ('kg', 1), ('s', -2))),
    'mJy/beam': (1e-29, (('beam', -1), ('kg', 1), ('s', -2))),
    'uJy/beam': (1e-32, (('beam', -1), ('kg', 1), ('s', -2))),
    'Jy-2': (1e+52, (('kg', -2), ('s', 4))),
    'beam': (1.0, (('beam', 1),)),
    'beam-1': (1.0, (('beam', -1),)),
    'K': (1.0, (('K', 1),)),
    'mK': (0.001, (('K', 1),)),
    'J/K': (1.0, (('K', -1), ('kg', 1), ('m', 2), ('s', -2))),
    'm': (1.0, (('m', 1),)),
    'mm': (0.001, (('m', 1),)),
    'cm': (0.01, (('m', 1),)),
    'km': (1000.0, (('m', 1),)),
    'um': (1e-06, (('m', 1),)),
    'm/s': (1.0, (('m', 1), ('s', -1))),
    'km/s': (1000.0, (('m', 1), ('s', -1))),
    's': (1.0, (('s', 1),)),
    'sec': (1.0, (('s', 1),)),
    'min': (60.0, (('s', 1),)),
    'h': (3600.0, (('s', 1),)),
    'd': (86400.0, (('s', 1),)),
    'rad': (1.0, (('rad', 1),)),
    'deg': (0.0174532925199433, (('rad', 1),)),
    'arcmin': (0.000290888208665722, (('rad', 1),)),
    'arcsec': (4.84813681109536e-06, (('rad', 1),)),
    'mas': (4.84813681109536e-09, (('rad', 1),)),
    'bit': (1.0, (('bit', 1),)),
    'byte': (8.0, (('bit', 1),)),
    'kB': (8000.0, (('bit', 1),)),
    'MB': (8000000.0, (('bit', 1),)),
    'GB': (8000000000.0, (('bit', 1),)),
    'TB': (8000000000000.0, (('bit', 1),)),
}

if __name__ == "__main__":
    from almarules.dsl.units import astropy_decomposition

    print("KNOWN: dict[str, tuple[float, tuple[tuple[str, int | float], ...]]] = {")
    for name in NAMES:
        print(f"    {name!r}: {astropy_decomposition(name)!r},")
    print("}")
