"""Independent numbers for `compare_casa.py` where the two tools disagree: which one is right.

Made in the benchmark's own process with almarules' data selection and weighting kernels (the
same visibilities and imaging weights as the image; python-casacore only, never casatools):

* `exact_psf` -- the PSF at one pixel by a direct Fourier sum over every unflagged sample,
  sum W cos(2 pi (u l + v m) nu / c) / sum W (no w-term: both tools' standard gridding omits
  it). Where the two PSFs differ near the image edge, this says which gridder is off.
* `sigmas` -- the theoretical point-source noise sqrt(sum W^2 / w) / sum W with two choices of
  w, the per-sample inverse variance: almarules' (the variance of (XX + YY) / 2, w = 4 / (1/w_XX
  + 1/w_YY)) and CASA apparentsens' (w = w_XX + w_YY, exact only when the hands' weights are
  equal; `engine.ms.visibilities.stokes_i`). Equal weights give equal sigmas.

Units: Jy/beam for sigmas, fractions of the PSF peak for the PSF.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

C = 299_792_458.0
ARCSEC = math.pi / 180.0 / 3600.0


def _visibilities(ms: Path, record: dict):
    from almarules.engine.stages.imaging import data as vdata

    p = {k: v["value"] for k, v in record["parameters"].items()}
    sel = vdata.select_channels([ms], record["field"], record["spws"], record["specmode"], int(p["nbin"]))
    return vdata.read(sel, int(p["nbin"])), p


def _weights(vs, p: dict, cube: bool):
    from almarules.kernels import weighting

    n, cell = int(p["imsize"]), float(p["cell"])
    return weighting.briggs(vs.weighting_uvw, vs.freq, vs.weight, n, n, cell, float(p["robust"]), flags=vs.flag,
                            per_channel=cube)


def sigmas(ms: Path, record: dict) -> list[tuple[float, float, float]]:
    """Per plane (one for mfs; every channel of a cube), in Jy/beam: almarules' sigma, CASA's
    definition's sigma with the same imaging weights, and CASA's definition's sigma with mfs
    imaging weights -- what apparentsens computes for one channel of a cube, since the imager
    tool weighs a selection as mfs does (VisImagingWeight) where tclean's cube uses
    BriggsCubeWeightor (equal to the second for mfs)."""
    from almarules.kernels import weighting

    vs, p = _visibilities(ms, record)
    cube = record["specmode"] == "cube"
    iw = _weights(vs, p, cube)
    as_mfs = _weights(vs, p, False) if not cube else None
    cols = [slice(j, j + 1) for j in range(vs.freq.size)] if cube else [slice(None)]
    out = []
    for c in cols:
        w, f = iw[:, c], vs.flag[:, c]
        if not (w[~f] > 0).any():
            out.append((math.nan, math.nan, math.nan))
            continue
        if cube:
            n, cell = int(p["imsize"]), float(p["cell"])
            mfs_w = weighting.briggs(vs.weighting_uvw, vs.freq[c], vs.weight[:, c], n, n, cell, float(p["robust"]), flags=f)
        else:
            mfs_w = as_mfs
        out.append((weighting.sensitivity(vs.noise_weight[:, c], w, flags=f),
                    weighting.sensitivity(vs.weight[:, c], w, flags=f),
                    weighting.sensitivity(vs.weight[:, c], mfs_w, flags=f)))
    return out


def exact_psf(ms: Path, record: dict, offset_px: tuple[int, int], plane: int = 0) -> Optional[float]:
    """The PSF at `offset_px` = (x, y) pixels from the image centre in FITS order (x along RA,
    increasing westwards), by a direct Fourier sum; None when the plane has no data."""
    vs, p = _visibilities(ms, record)
    cube = record["specmode"] == "cube"
    iw = _weights(vs, p, cube)
    cols = slice(plane, plane + 1) if cube else slice(None)
    w = np.where(vs.flag[:, cols], 0.0, iw[:, cols])
    total = float(w.sum())
    if not total > 0:
        return None
    cell = float(p["cell"]) * ARCSEC
    l, m = -offset_px[0] * cell, offset_px[1] * cell  # kernels.gridding: l = (n // 2 - ix) cell
    freq = vs.freq[cols]
    phase = 2.0 * math.pi * (vs.uvw[:, 0:1] * l + vs.uvw[:, 1:2] * m) * (freq[None, :] / C)
    return float(np.sum(w * np.cos(phase)) / total)
