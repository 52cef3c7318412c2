"""Restoring: clean-component model convolved with the restoring beam, plus the residual.

Units: model in Jy/pixel, residual and restored image in Jy/beam, cell in arcsec. Arrays follow
`kernels.gridding` (``image[ix, iy]``, shape (npix_x, npix_y)); cubes (npix_x, npix_y, ...) are
restored plane by plane over the trailing axes with one beam.
"""

from __future__ import annotations

import numpy as np

from .beam import Beam
from .masks import beam_area_pixels, convolve_beam

__all__ = ["restore", "beam_area_pixels"]


def restore(model: np.ndarray, residual: np.ndarray, beam: Beam, cell_arcsec: float) -> np.ndarray:
    """Restored image (Jy/beam) = model (Jy/pixel) convolved with the unit-peak Gaussian `beam`
    (FFT linear convolution, zero-padded, kernel truncated at 3 bmaj where it is < 1e-10) +
    residual (Jy/beam).

    A point of S Jy at a pixel becomes a Gaussian of peak S Jy/beam centred on that pixel; its
    integral, sum(restored) / beam_area_pixels, is S to the sampling error of the Gaussian (below
    1e-6 for >= 3 pixels per FWHM). Flux of the model beyond the image edge is lost.
    """
    mod = np.asarray(model, dtype=np.float64)
    res = np.asarray(residual, dtype=np.float64)
    if mod.shape != res.shape:
        raise ValueError(f"model shape {mod.shape} differs from residual shape {res.shape}")
    if mod.ndim < 2:
        raise ValueError(f"images must be at least 2-D (npix_x, npix_y), got shape {mod.shape}")
    if not cell_arcsec > 0:
        raise ValueError(f"cell_arcsec must be positive, got {cell_arcsec}")
    if mod.ndim == 2:
        return convolve_beam(mod, beam, cell_arcsec) + res
    out = np.empty_like(res)
    for idx in np.ndindex(*mod.shape[2:]):
        sl = (slice(None), slice(None)) + idx
        plane = mod[sl]
        out[sl] = (convolve_beam(plane, beam, cell_arcsec) if np.any(plane) else 0.0) + res[sl]
    return out
