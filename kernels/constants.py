"""Physical and unit constants shared by the kernels and the engine: one home for each number."""

from __future__ import annotations

import math

#: speed of light in vacuum (m/s), exact (SI)
C = 299_792_458.0
#: radians per arcsecond
ARCSEC = math.pi / 180.0 / 3600.0
#: half-power width of the Gaussian primary-beam approximation, in lambda / D of the physical dish
#: (heuristics.md section 3: fwhp = 1.12 lambda / D); the simulator's Gaussian sky attenuation and the
#: imaging stage's ``pb_model gaussian`` both use it
GAUSSIAN_PB_FWHP = 1.12
