"""Joint mosaic imaging of several pointings of one source onto one image grid: the mosaic dirty /
residual image in sky flux, the mosaic weight and primary-beam ("pb") images, a PSF for the minor
cycle and the model-to-visibility prediction for the major cycle.

Units: (u, v, w) in metres, frequencies in Hz, cells in arcsec, pointing offsets and declinations
in radians, visibilities in Jy, images in Jy/beam (dirty, residual, PSF) or Jy/pixel (model).
Image arrays, pixel <-> (l, m) and the sign convention are `kernels.gridding`'s: ``image[ix, iy]``,
l = (npix_x // 2 - ix) cell (east), m = (iy - npix_y // 2) cell (north), SIN projection about the
image centre, V = sum M exp(+2 pi i (u l + v m + w (n - 1)) nu / c).

What is computed: an image-plane joint linear mosaic
----------------------------------------------------
Each pointing p has visibilities V_k (rows x channels), imaging weights w_k, a direction (l_p,
m_p) (direction cosines of the pointing centre in the image's SIN projection about the image
centre), and the primary-beam power pattern A_p(x) of the named model (`kernels.primary_beam`,
e.g. "ALMA", "ACA", "gaussian") centred on (l_p, m_p). w_p = sum of its unflagged weights. With
I_p the pointing's dirty image on the common grid (`kernels.gridding.dirty_image`: the weighted
adjoint divided by w_p, so a 1 Jy source at x0 reads A_p(x0) Jy/beam at x0):

    weight(x) = sum_p A_p(x)^2 w_p                                        (`MosaicImage.weight`)
    pb(x)     = sqrt(weight(x) / max_x weight)                            (`MosaicImage.pb`)
    D(x)      = sum_p A_p(x) w_p I_p(x) / weight(x)   where pb(x) > pblimit, 0 elsewhere
                                                                          (`MosaicImage.image`)

All sums run over the pointings that have data (`SkippedPointing` lists the others). This is
the Cornwell-Holdaway-Uson (1993) / CASA `linearmosaic` "optimal" combination applied to the
pointings' dirty images, and is what a joint (uv-plane) mosaic gridder computes when its
convolution function applies A_p exactly: gridding each pointing with the Fourier transform of
A_p and one FFT of the sum gives sum_p A_p(x) w_p I_p(x) (the "raw" image), and the same with
the weights gives weight(x).

Properties (exact statements for this definition):

* Sky-flux normalisation ("flat sky"). A point source of S Jy at a pixel x0 gives
  D(x) = S sum_p A_p(x) A_p(x0) w_p P_p(x - x0) / weight(x), P_p the pointing's PSF (peak 1), so
  D(x0) = S wherever pb(x0) > pblimit, whatever the pointings' weights (for data attenuated by
  A_p at pb_freq_hz; see the frequency caveat below). Away from x0 the response
  is a position-dependent blend of the pointings' PSFs, not one PSF: the minor cycle's single PSF
  (below) is an approximation that the major cycle (`mosaic_residual`) corrects.
* Noise. For natural weights (w_k = 1 / sigma_k^2, sigma_k the noise of each of the real and
  imaginary parts of V_k) and independent noise between visibilities, Var I_p(x) = 1 / w_p and
  Var D(x) = 1 / weight(x): the noise of D rises towards the mosaic edge as
  sigma(x) = sigma_min / pb(x), sigma_min = 1 / sqrt(max weight) (`MosaicImage.noise`). At each
  pixel D is the minimum-variance unbiased linear combination of the pointings' images
  (weights proportional to A_p w_p). With other imaging weights (Briggs, uniform, tapers) D is
  still flux-correct but Var D = sum_p A_p^2 w_p^2 Var I_p / weight^2, Var I_p =
  sum_k w_k^2 sigma_k^2 / w_p^2, and `noise` is then only a relative guide.
* Flat noise. D x pb (`MosaicImage.flat_noise`) has uniform noise sigma_min (natural weights)
  and sky response S x pb: CASA's default ``normtype='flatnoise'`` residual. Dividing it by pb
  (CASA's pbcor) gives D back.

Relation to CASA tclean gridder='mosaic' (CASA 6, SIImageStore; casadocs `normtype`): CASA's
``.weight`` is "approximately sum(square(pb))", i.e. (as we read SIImageStore) sum_p A_p^2 w_p
divided by the sum of weights; its ``.pb`` is sqrt(.weight) / sqrt(max .weight)
(makePBFromWeight), set to 0 where it is not > pblimit -- our `pb` (not cut; `pblimit_mask` gives
CASA's cut). ``normtype='flatsky'`` divides the raw image by .weight where pb > pblimit (0
elsewhere): our D. ``normtype='flatnoise'`` (CASA's default) divides by sqrt(.weight) x
sqrt(max .weight): D x pb. A sky-brightness model (Jy/pixel) is predicted as it is (CASA's
flatsky); a model found on D x pb is divided by pb first (`MosaicImage.to_sky`, CASA's
divideModelByWeight for flatnoise), which lands on the same sky model.
Differences from CASA: CASA grids with a finite-support convolution function (the FT of the
voltage patterns' product), so its effective A_p is band-limited and sampled, evaluated per
spectral window; here A_p is the model evaluated in the image plane at one frequency
(`MosaicGrid.pb_freq_hz`) for all channels (image a cube one channel at a time; for a continuum
image across a wide band this is CASA's mfs with the PB at the reference frequency, and the
attenuation of a source at PB level A errs by a fraction of about 2 ln(A) x (nu / nu_pb - 1) per
channel, exactly so for a Gaussian beam, to first order cancelling over a band symmetric about
pb_freq_hz). One antenna type only (no
heterogeneous-array A_ij = sqrt(A_i A_j)); no beam squint, no parallactic-angle rotation, no
pointing-table offsets (usepointing=False).

The beam A_p is the named model's power at the image-plane distance
r = sqrt((l - l_p)^2 + (m - m_p)^2) (as tclean's PB images evaluate distances; the angle on the
sky differs by a fraction r^2 / 6), through `primary_beam.beam_model(...).power_r2` (CASA's
tabulated Airy beams as tclean looks them up, or the exact Gaussian).

Phase centres (`MosaicGrid.phase_centre`)
-----------------------------------------
* ``"pointing"`` (an ALMA mosaic Measurement Set: each field phase-centred on its pointing): the
  pointing's UVW are in the (u east, v north, w towards s_p) frame of its own direction s_p and
  V_k = sum S exp(+2 pi i b.(s - s_p) nu / c). Each pointing is moved exactly onto the image
  centre s_0: the baseline is rotated into the image-centre frame, uvw_0 = R_p^T uvw_p (R_p's
  rows are s_p's east, north and s_p in the image-centre frame; north points to the celestial
  pole, which is why `MosaicGrid.dec0_rad`, the image centre's declination, is required), and
  V_0 = V_p exp(+2 pi i (w_p - w_0) nu / c) with w_p = b.s_p, w_0 = b.s_0 (exact: the phase of
  b.(s - s_0) = b.(s - s_p) + b.(s_p - s_0)). Prediction applies the inverse. No small-angle
  approximation is made (a parallel-axes shift, e.g. ducc0's center_x / center_y, would ignore
  the rotation of north between s_p and s_0 by about l_p tan(dec0), a phase error of
  2 pi |b| / lambda x l_p tan(dec0) x |x - x_p|).
* ``"common"``: every pointing's UVW and visibilities are already phase-centred on the image
  centre (e.g. after CASA phaseshift); the pointing direction only centres A_p.

PSF (`mosaic_psf`)
------------------
The minor cycle's PSF is the weighted average of the pointings' PSFs P_p (each made from that
pointing's image-centre-frame uvw and weights, peak 1 at the centre pixel): by default
sum_p w_p P_p / sum_p w_p (every pointing as if centred on the PSF position, which is how we read
CASA's mosaic PSF at its psfphasecenter; CASA's exact weighting is not documented), or with
``at=(l, m)`` sum_p A_p(l, m)^2 w_p P_p / sum_p A_p(l, m)^2 w_p, the main lobe of D's response to
a point source at (l, m). Both peak at 1.0 at pixel (npix_x // 2, npix_y // 2). When all pointings
share one uv coverage (interleaved observing) the two agree and equal D's local response
everywhere to the extent that A_p is constant across the PSF's main lobe.

Prediction (`mosaic_predict`, `mosaic_residual`)
-----------------------------------------------
Model M (Jy/pixel, sky brightness, flat sky) -> per pointing V_p = FT[A_p M] at that pointing's
uvw in its own phase-centre convention (`kernels.gridding.predict` of A_p M, then the inverse
phase rotation): the exact direct Fourier sum of sum_x A_p(x) M(x) exp(+2 pi i b.(s_x - s_c)),
to ducc0's epsilon. `mosaic_residual(model, ...)` = `mosaic_image` of V_p - predicted V_p.

Deconvolution (the caller's Cotton-Schwab loop). Run the minor cycle on the flat-noise residual
``res.flat_noise`` = D x pb with `mosaic_psf`, inside ``res.mask``; its components c are in
flat-noise units (sky x pb) and become the sky model M += ``res.to_sky(c)`` = c / pb; then
``res = mosaic_residual(M, ...)``: two calls per major cycle, CASA's default normtype='flatnoise'.
Why not D itself: in flat-noise units the response at x to a component at x0 is
K(x, x0) = sum_p A_p(x) A_p(x0) w_p P_p(x - x0) / sqrt(weight(x) weight(x0)), symmetric with
K(x0, x0) = 1, which CLEAN's convergence relies on; in sky units it is K(x, x0) x pb(x0) / pb(x),
not symmetric, amplified where pb falls. On the 7-pointing ACA observation of
tests/kernels/test_mosaic.py, Hogbom on D (normtype='flatsky') put an edge source (pb 0.29) 0.12
pixel off and 2.5 % low at a 1.5 mJy threshold and diverged at 0.5 mJy, where on D x pb every
source came out within 0.4 % and 0.01 pixel at 1 mJy (0.5-1 Jy sources).

Pointings without data (no rows, or no unflagged sample with positive weight) are skipped and
reported (`SkippedPointing`), not an error; if none has data, ValueError.

Accuracy: ducc0's epsilon (`MosaicGrid.epsilon`, relative L2 error of each pointing's image or
visibilities against the exact direct sum; `kernels.gridding`). Cost per call: one grid or
degrid per pointing (w-gridding by default), plus one primary-beam image per pointing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np

from almarules.kernels import gridding, primary_beam
from almarules.kernels.constants import ARCSEC, C

PhaseCentre = Literal["pointing", "common"]
PHASE_CENTRES: tuple[str, ...] = ("pointing", "common")
_RAD2_TO_DEG2 = (180.0 / math.pi) ** 2


@dataclass(frozen=True, eq=False)
class Pointing:
    """One pointing of the mosaic.

    uvw_m: (nrow, 3) metres (the MS UVW column, in the frame `MosaicGrid.phase_centre` says);
    freq_hz: (nchan,); weight: (nrow, nchan) or broadcastable, imaging weights; l, m: the pointing
    direction's direction cosines (radians) in the image's SIN projection about the image centre
    (l east, m north); vis: (nrow, nchan) complex Jy (None where only the PSF, weights or a
    prediction are wanted); flags: (nrow, nchan) bool, True = flagged; name: for reports.
    """

    uvw_m: np.ndarray
    freq_hz: np.ndarray
    weight: np.ndarray
    l: float
    m: float
    vis: Optional[np.ndarray] = None
    flags: Optional[np.ndarray] = None
    name: str = ""


@dataclass(frozen=True)
class MosaicGrid:
    """The image grid and how the pointings map onto it.

    npix_x, npix_y (even, >= 32), cell_arcsec: the image (`kernels.gridding` conventions);
    pb_freq_hz: the frequency at which every A_p is evaluated; model, dish_m, blockage_m: the
    primary-beam model (`primary_beam.beam_model`; dish_m for "airy"/"gaussian" only);
    phase_centre: "pointing" or "common" (module docstring); dec0_rad: the image centre's
    declination (radians), required for "pointing"; pblimit: D is 0 where pb <= pblimit (CASA's
    default 0.2); epsilon, wgridding, nthreads: passed to ducc0 (`kernels.gridding`).
    """

    npix_x: int
    npix_y: int
    cell_arcsec: float
    pb_freq_hz: float
    model: str = "ALMA"
    dish_m: Optional[float] = None
    blockage_m: Optional[float] = None
    phase_centre: PhaseCentre = "pointing"
    dec0_rad: Optional[float] = None
    pblimit: float = 0.2
    epsilon: float = 1e-6
    wgridding: bool = True
    nthreads: int = 0

    def __post_init__(self) -> None:
        for name, n in (("npix_x", self.npix_x), ("npix_y", self.npix_y)):
            if int(n) != n or n < 32 or n % 2:
                raise ValueError(f"{name} must be an even integer >= 32 (ducc0's w-gridder), got {n}")
        if not float(self.cell_arcsec) > 0:
            raise ValueError(f"cell_arcsec must be positive, got {self.cell_arcsec}")
        if self.phase_centre not in PHASE_CENTRES:
            raise ValueError(f"phase_centre must be one of {PHASE_CENTRES}, got {self.phase_centre!r}")
        if self.phase_centre == "pointing":
            if self.dec0_rad is None:
                raise ValueError("phase_centre='pointing' needs dec0_rad, the image centre's declination "
                                 "(the pointings' north differs from the centre's by about l_p tan(dec0))")
            if not abs(float(self.dec0_rad)) <= math.pi / 2:
                raise ValueError(f"dec0_rad must be in [-pi/2, pi/2], got {self.dec0_rad}")
        if not 0.0 <= float(self.pblimit) < 1.0:
            raise ValueError(f"pblimit must be in [0, 1), got {self.pblimit}")
        primary_beam.beam_model(self.model, float(self.pb_freq_hz), self.dish_m, self.blockage_m)  # validates


@dataclass(frozen=True)
class SkippedPointing:
    """A pointing left out of the mosaic: its index in the input sequence, name and why."""

    index: int
    name: str
    reason: str


@dataclass
class MosaicImage:
    """A mosaic image (module docstring for the definitions).

    image: D (Jy/beam, sky flux), 0 where not `mask`; weight: sum_p A_p^2 w_p (units of the
    weights); pb: sqrt(weight / max weight), not cut; mask: pb > pblimit; sumwt: w_p per input
    pointing (0.0 for skipped ones); skipped: the pointings left out, and why.
    """

    image: np.ndarray
    weight: np.ndarray
    pb: np.ndarray
    mask: np.ndarray
    sumwt: tuple[float, ...]
    skipped: tuple[SkippedPointing, ...]

    @property
    def flat_noise(self) -> np.ndarray:
        """D x pb: uniform noise, sky response S x pb (CASA's normtype='flatnoise' image)."""
        return self.image * self.pb

    def to_sky(self, flat_noise_model: np.ndarray) -> np.ndarray:
        """A model found on `flat_noise` (Jy/pixel x pb) as a sky model (Jy/pixel): divided by pb
        inside `mask`, 0 outside (CASA's divideModelByWeight for normtype='flatnoise')."""
        c = np.asarray(flat_noise_model, dtype=np.float64)
        if c.shape != self.pb.shape:
            raise ValueError(f"the model must have the image's shape {self.pb.shape}, got {c.shape}")
        out = np.zeros(c.shape)
        np.divide(c, self.pb, out=out, where=self.mask)
        return out

    @property
    def noise(self) -> np.ndarray:
        """1 / sqrt(weight) inside `mask`, inf outside: the noise of D (Jy/beam) for natural weights
        w_k = 1 / sigma_k^2 (sigma_k per real and imaginary part, Jy); a relative guide otherwise."""
        out = np.full(self.weight.shape, np.inf)
        np.divide(1.0, np.sqrt(self.weight), out=out, where=self.mask)
        return out


# ---------------------------------------------------------------- geometry

def pointing_frame(l: float, m: float, dec0_rad: float) -> np.ndarray:
    """R (3 x 3): rows = east, north and the direction s_p of the pointing at (l, m), in the image
    centre's (east, north, centre) frame; north is towards the celestial pole, at declination
    dec0_rad of the image centre. uvw_p = R @ b and b = R.T @ uvw_p for a baseline b expressed in
    the image centre's frame."""
    l, m = float(l), float(m)
    rho2 = l * l + m * m
    if not rho2 < 1.0:
        raise ValueError(f"the pointing (l, m) = ({l}, {m}) is not on the sky (l^2 + m^2 >= 1)")
    s = np.array([l, m, math.sqrt(1.0 - rho2)])
    pole = np.array([0.0, math.cos(dec0_rad), math.sin(dec0_rad)])
    east = np.cross(pole, s)
    norm = float(np.linalg.norm(east))
    if not norm > 1e-12:
        raise ValueError("the pointing is at a celestial pole: east and north are undefined there")
    east /= norm
    north = np.cross(s, east)
    return np.stack([east, north, s])


def rotate_to_image_centre(uvw_m: np.ndarray, l: float, m: float,
                           dec0_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """(uvw_0, dw): the UVW (m) of a pointing phase-centred on (l, m), rotated into the image
    centre's frame, and dw = w_p - w_0 (m) per row; V_0 = V_p exp(+2 pi i dw nu / c) re-centres
    the visibilities on the image centre (module docstring)."""
    uvw = np.ascontiguousarray(uvw_m, dtype=np.float64)
    if uvw.ndim != 2 or uvw.shape[1] != 3:
        raise ValueError(f"uvw_m must have shape (nrow, 3), got {uvw.shape}")
    r = pointing_frame(l, m, dec0_rad)
    uvw0 = np.empty_like(uvw)  # rows: R.T @ uvw_p, column by column (faster than a (n, 3) @ (3, 3) matmul)
    for j in range(3):
        np.multiply(uvw[:, 0], r[0, j], out=uvw0[:, j])
        uvw0[:, j] += uvw[:, 1] * r[1, j]
        uvw0[:, j] += uvw[:, 2] * r[2, j]
    return uvw0, uvw[:, 2] - uvw0[:, 2]


def pointing_beam(grid: MosaicGrid, l: float, m: float) -> np.ndarray:
    """A_p: the primary-beam power pattern of `grid`'s model at `grid.pb_freq_hz`, centred on the
    pointing direction (l, m) (radians), on the image grid (npix_x, npix_y); evaluated at the
    image-plane distance sqrt((l_x - l)^2 + (m_x - m)^2) of each pixel."""
    beam = primary_beam.beam_model(grid.model, float(grid.pb_freq_hz), grid.dish_m, grid.blockage_m)
    nx, ny = int(grid.npix_x), int(grid.npix_y)
    cell = float(grid.cell_arcsec) * ARCSEC
    dl = (nx // 2 - np.arange(nx, dtype=np.float64)) * cell - float(l)
    dm = (np.arange(ny, dtype=np.float64) - ny // 2) * cell - float(m)
    r2_deg2 = (dl * dl)[:, None] * _RAD2_TO_DEG2 + (dm * dm)[None, :] * _RAD2_TO_DEG2
    return np.asarray(beam.power_r2(r2_deg2, float(grid.pb_freq_hz)), dtype=np.float64)


#: the relative frequency step of the beams' derivatives in `beam_taylor`
BEAM_STEP = 0.02


def beam_taylor(grid: MosaicGrid, l: float, m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a_0, a_1, a_2): the pointing's beam A_p on the grid to second order in x = (nu - nu0) / nu0
    about nu0 = pb_freq_hz, A_p(nu) = a_0 + a_1 x + a_2 x^2: a_0 = `pointing_beam`, a_1 and a_2 by
    central differences over nu0 (1 +- BEAM_STEP) (their error, ~ BEAM_STEP^2 of the third
    derivative, is far below the x^3 term the expansion leaves out: < 1e-3 of A over +-10 %)."""
    h = BEAM_STEP
    a0 = pointing_beam(grid, l, m)
    up = pointing_beam(dataclasses.replace(grid, pb_freq_hz=float(grid.pb_freq_hz) * (1.0 + h)), l, m)
    down = pointing_beam(dataclasses.replace(grid, pb_freq_hz=float(grid.pb_freq_hz) * (1.0 - h)), l, m)
    return a0, (up - down) / (2.0 * h), (up - 2.0 * a0 + down) / (2.0 * h * h)


def beam_value(grid: MosaicGrid, l_p: float, m_p: float, l: float, m: float) -> float:
    """A_p at the direction (l, m) for a pointing at (l_p, m_p) (radians), as `pointing_beam`
    evaluates it at a pixel."""
    beam = primary_beam.beam_model(grid.model, float(grid.pb_freq_hz), grid.dish_m, grid.blockage_m)
    dl, dm = float(l) - float(l_p), float(m) - float(m_p)
    r2_deg2 = np.array([dl * dl * _RAD2_TO_DEG2 + dm * dm * _RAD2_TO_DEG2])
    return float(beam.power_r2(r2_deg2, float(grid.pb_freq_hz))[0])


def pblimit_mask(pb: np.ndarray, pblimit: float) -> np.ndarray:
    """True where pb > pblimit (CASA keeps a pixel when its .pb is strictly above pblimit)."""
    return np.asarray(pb, dtype=np.float64) > float(pblimit)


# ---------------------------------------------------------------- per-pointing preparation

@dataclass
class _Prepared:
    index: int
    uvw0: np.ndarray
    dw: Optional[np.ndarray]  # w_p - w_0 (m) per row; None for phase_centre="common"
    freq: np.ndarray
    weight: np.ndarray  # (nrow, nchan)
    flags: Optional[np.ndarray]
    sumwt: float
    beam: np.ndarray  # A_p on the grid


def _rephase(vis: np.ndarray, dw: np.ndarray, freq: np.ndarray, sign: float) -> np.ndarray:
    """vis x exp(sign 2 pi i dw nu / c), per row and channel."""
    return vis * np.exp((sign * 2.0 * math.pi / C) * 1j * np.multiply.outer(dw, freq))


@dataclass(frozen=True, eq=False)
class Prepared:
    """The pointings' geometry on a grid, computed once (`prepare`) and passed to the functions
    below as ``prepared=`` so that major cycles do not rotate every pointing's uvw again: the
    pointings with data (rotated uvw, weights, sums of weights, beams on the grid) and the
    skipped ones. Valid for the very `pointings` and `grid` it was made from."""

    grid: MosaicGrid
    used: tuple[_Prepared, ...]
    skipped: tuple[SkippedPointing, ...]
    npointings: int


def prepare(pointings: Sequence[Pointing], grid: MosaicGrid) -> Prepared:
    """The geometry of `pointings` on `grid` (`Prepared`); ValueError as `mosaic_image`."""
    used, skipped = _prepare(pointings, grid)
    return Prepared(grid, tuple(used), tuple(skipped), len(pointings))


def _prepared(pointings: Sequence[Pointing], grid: MosaicGrid,
              prepared: Optional[Prepared]) -> tuple[list[_Prepared], list[SkippedPointing]]:
    if prepared is None:
        return _prepare(pointings, grid)
    if prepared.grid != grid or prepared.npointings != len(pointings):
        raise ValueError("prepared was made for another grid or another list of pointings")
    return list(prepared.used), list(prepared.skipped)


def _prepare(pointings: Sequence[Pointing], grid: MosaicGrid) -> tuple[list[_Prepared], list[SkippedPointing]]:
    used: list[_Prepared] = []
    skipped: list[SkippedPointing] = []
    for i, p in enumerate(pointings):
        uvw = np.ascontiguousarray(p.uvw_m, dtype=np.float64)
        freq = np.ascontiguousarray(np.atleast_1d(p.freq_hz), dtype=np.float64)
        if uvw.ndim != 2 or uvw.shape[1] != 3:
            raise ValueError(f"pointing {i} ({p.name}): uvw_m must have shape (nrow, 3), got {uvw.shape}")
        if freq.ndim != 1 or freq.size == 0:
            raise ValueError(f"pointing {i} ({p.name}): freq_hz must have shape (nchan,), nchan >= 1")
        shape = (uvw.shape[0], freq.size)
        if uvw.shape[0] == 0:
            skipped.append(SkippedPointing(i, p.name, "no visibilities"))
            continue
        weight = np.broadcast_to(np.asarray(p.weight, dtype=np.float64), shape)
        flags = None if p.flags is None else np.asarray(p.flags, dtype=bool)
        if flags is not None and flags.shape != shape:
            raise ValueError(f"pointing {i} ({p.name}): flags must have shape {shape}, got {flags.shape}")
        sumwt = float(np.sum(weight)) if flags is None else float(np.sum(weight, where=~flags))
        if not sumwt > 0.0:
            skipped.append(SkippedPointing(i, p.name, "no unflagged visibilities with positive weight"))
            continue
        if grid.phase_centre == "pointing":
            uvw0, dw = rotate_to_image_centre(uvw, p.l, p.m, float(grid.dec0_rad))
        else:
            uvw0, dw = uvw, None
        used.append(_Prepared(i, uvw0, dw, freq, weight, flags, sumwt, pointing_beam(grid, p.l, p.m)))
    if not used:
        reasons = "; ".join(f"{s.index} ({s.name}): {s.reason}" for s in skipped) or "no pointings given"
        raise ValueError(f"no pointing has visibilities to image: {reasons}")
    return used, skipped


def _vis_of(pointings: Sequence[Pointing],
            vis: Optional[Sequence[Optional[np.ndarray]]]) -> list[Optional[np.ndarray]]:
    if vis is None:
        return [p.vis for p in pointings]
    vis = list(vis)
    if len(vis) != len(pointings):
        raise ValueError(f"vis must give one array per pointing ({len(pointings)}), got {len(vis)}")
    return vis


def _combine(grid: MosaicGrid, used: list[_Prepared], skipped: list[SkippedPointing], npointings: int,
             numerator: Optional[np.ndarray]) -> MosaicImage:
    weight = np.zeros((int(grid.npix_x), int(grid.npix_y)))
    for u in used:
        weight += u.beam * u.beam * u.sumwt
    wmax = float(weight.max())
    if not wmax > 0.0:
        raise ValueError("the pointings' primary beams do not reach the image (the weight image is 0)")
    pb = np.sqrt(weight / wmax)
    mask = pblimit_mask(pb, grid.pblimit)
    image = np.zeros_like(weight)
    if numerator is not None:
        np.divide(numerator, weight, out=image, where=mask)
    sumwt = [0.0] * npointings
    for u in used:
        sumwt[u.index] = u.sumwt
    return MosaicImage(image, weight, pb, mask, tuple(sumwt), tuple(skipped))


# ---------------------------------------------------------------- public API

def mosaic_weight(pointings: Sequence[Pointing], grid: MosaicGrid,
                  prepared: Optional[Prepared] = None) -> MosaicImage:
    """The weight sum_p A_p^2 w_p, pb = sqrt(weight / max) and mask pb > pblimit of the pointings
    (no gridding; ``image`` is all zeros). Skipped pointings are reported in ``skipped``."""
    used, skipped = _prepared(pointings, grid, prepared)
    return _combine(grid, used, skipped, len(pointings), None)


def mosaic_image(pointings: Sequence[Pointing], grid: MosaicGrid,
                 vis: Optional[Sequence[Optional[np.ndarray]]] = None,
                 prepared: Optional[Prepared] = None) -> MosaicImage:
    """The mosaic dirty image D (Jy/beam, sky flux) with its weight, pb and mask (module docstring).

    vis: one (nrow, nchan) array per pointing to image instead of the pointings' own ``vis``
    (e.g. residual visibilities); entries of skipped pointings are ignored.
    """
    used, skipped = _prepared(pointings, grid, prepared)
    vis_list = _vis_of(pointings, vis)
    numerator = np.zeros((int(grid.npix_x), int(grid.npix_y)))
    for u in used:
        v = vis_list[u.index]
        if v is None:
            raise ValueError(f"pointing {u.index} ({pointings[u.index].name}) has no visibilities to image "
                             "(vis is None)")
        v = np.asarray(v)
        if u.dw is not None:
            v = _rephase(v, u.dw, u.freq, +1.0)
        dirty = gridding.dirty_image(u.uvw0, u.freq, v, u.weight, grid.npix_x, grid.npix_y, grid.cell_arcsec,
                                     epsilon=grid.epsilon, wgridding=grid.wgridding, nthreads=grid.nthreads,
                                     flags=u.flags)
        numerator += u.beam * u.sumwt * dirty
    return _combine(grid, used, skipped, len(pointings), numerator)


def mosaic_psf(pointings: Sequence[Pointing], grid: MosaicGrid,
               at: Optional[tuple[float, float]] = None,
               prepared: Optional[Prepared] = None) -> np.ndarray:
    """The minor cycle's PSF (npix_x, npix_y), peak 1.0 at (npix_x // 2, npix_y // 2): the average
    of the pointings' PSFs weighted by w_p, or by A_p(at)^2 w_p when ``at = (l, m)`` (radians)
    is given (module docstring). CASA's mosaic PSF (each pointing's times its beam) is
    `beam_weighted_psf`."""
    used, _ = _prepared(pointings, grid, prepared)
    if at is None:
        coeff = [u.sumwt for u in used]
    else:
        l_at, m_at = (float(a) for a in at)
        coeff = []
        for u in used:
            p = pointings[u.index]
            a = beam_value(grid, p.l, p.m, l_at, m_at)
            coeff.append(a * a * u.sumwt)
    total = float(sum(coeff))
    if not total > 0.0:
        raise ValueError(f"no pointing's primary beam reaches the PSF position {at}")
    out = np.zeros((int(grid.npix_x), int(grid.npix_y)))
    for u, c in zip(used, coeff, strict=True):
        if c == 0.0:
            continue
        out += (c / total) * gridding.psf(u.uvw0, u.freq, u.weight, grid.npix_x, grid.npix_y, grid.cell_arcsec,
                                          epsilon=grid.epsilon, wgridding=grid.wgridding, nthreads=grid.nthreads,
                                          flags=u.flags)
    return out


def beam_weighted_psf(pointings: Sequence[Pointing], grid: MosaicGrid, beam_freq_hz: Sequence[float],
                      spectral: Optional[Sequence[np.ndarray]] = None,
                      prepared: Optional[Prepared] = None) -> np.ndarray:
    """sum_p w_p A_p(x; nu_p) P_p(x) (npix_x, npix_y), not normalised: each pointing's PSF (the
    dirty image of unit visibilities, times `spectral`'s x^t when given, divided by w_p) times
    its sum of weights w_p and its beam pattern centred on the pointing at beam_freq_hz[p] --
    CASA's mosaic PSF (gridder='mosaic': the weights gridded with the beams' convolution
    functions) before its normalisation by the t = 0 PSF's value at the centre. Pointings of one
    direction at different beam frequencies (one per spw) give CASA's per-spw beams."""
    used, _ = _prepared(pointings, grid, prepared)
    if len(beam_freq_hz) != len(pointings):
        raise ValueError(f"beam_freq_hz must give one frequency per pointing ({len(pointings)}), got "
                         f"{len(beam_freq_hz)}")
    if spectral is not None and len(spectral) != len(pointings):
        raise ValueError(f"spectral must give one factor per pointing ({len(pointings)}), got {len(spectral)}")
    kw = dict(epsilon=grid.epsilon, wgridding=grid.wgridding, nthreads=grid.nthreads)
    out = np.zeros((int(grid.npix_x), int(grid.npix_y)))
    for u in used:
        p = pointings[u.index]
        factor = 1.0 if spectral is None else np.asarray(spectral[u.index], dtype=np.float64)
        ones = np.broadcast_to(factor, u.weight.shape).astype(np.complex128)
        one = gridding.dirty_image(u.uvw0, u.freq, ones, u.weight, grid.npix_x, grid.npix_y, grid.cell_arcsec,
                                   flags=u.flags, **kw)
        at = dataclasses.replace(grid, pb_freq_hz=float(beam_freq_hz[u.index]))
        out += u.sumwt * pointing_beam(at, p.l, p.m) * one
    return out


def mosaic_predict(model: np.ndarray, pointings: Sequence[Pointing], grid: MosaicGrid,
                   prepared: Optional[Prepared] = None,
                   spectral: Optional[Sequence[np.ndarray]] = None) -> list[np.ndarray]:
    """Model visibilities per pointing (complex (nrow, nchan), Jy, in the pointing's phase-centre
    convention) of the sky model `model` (npix_x, npix_y), Jy/pixel: V_p = FT[A_p M] at the
    pointing's uvw, A_p at pb_freq_hz. Flagged samples are 0; a pointing without rows gets a
    (0, nchan) array, one with no usable weight its prediction all the same (it is not imaged,
    but can be subtracted).

    Wide band: with `spectral` (per pointing, x = (nu - nu0) / nu0 of its samples, nu0 =
    pb_freq_hz, broadcastable to (nrow, nchan)), `model` is a stack of Taylor sky models M_t
    (nterms, npix_x, npix_y), the sky's spectrum sum_t M_t x^t, and each sample sees the
    pointing's beam at its own frequency (`beam_taylor`, second order):
    V_p = sum_j x^j FT[C_j], C_j = sum_{t + s = j} M_t a_s -- the attenuation each pointing's
    data carry, so that one sky model fits every pointing (with A_p at nu0 alone, a source's
    apparent spectrum differs from pointing to pointing and no model fits them all)."""
    mod = np.asarray(model, dtype=np.float64)
    shape = (int(grid.npix_x), int(grid.npix_y))
    if spectral is None and mod.shape != shape:
        raise ValueError(f"model must have shape {shape}, got {mod.shape}")
    if spectral is not None:
        if mod.ndim != 3 or mod.shape[1:] != shape:
            raise ValueError(f"with spectral, model must have shape (nterms, {shape[0]}, {shape[1]}), got {mod.shape}")
        if len(spectral) != len(pointings):
            raise ValueError(f"spectral must give one factor per pointing ({len(pointings)}), got {len(spectral)}")
    cached = {u.index: u for u in prepared.used} if prepared is not None else {}
    if prepared is not None and (prepared.grid != grid or prepared.npointings != len(pointings)):
        raise ValueError("prepared was made for another grid or another list of pointings")
    kw = dict(epsilon=grid.epsilon, wgridding=grid.wgridding, nthreads=grid.nthreads)
    out: list[np.ndarray] = []
    for i, p in enumerate(pointings):
        if i in cached:
            u = cached[i]
            uvw0, dw, freq = u.uvw0, u.dw, u.freq
        else:
            uvw = np.ascontiguousarray(p.uvw_m, dtype=np.float64)
            freq = np.ascontiguousarray(np.atleast_1d(p.freq_hz), dtype=np.float64)
            if uvw.ndim != 2 or uvw.shape[1] != 3:
                raise ValueError(f"pointing {i} ({p.name}): uvw_m must have shape (nrow, 3), got {uvw.shape}")
            if uvw.shape[0] == 0:
                out.append(np.zeros((0, freq.size), dtype=np.complex128))
                continue
            if grid.phase_centre == "pointing":
                uvw0, dw = rotate_to_image_centre(uvw, p.l, p.m, float(grid.dec0_rad))
            else:
                uvw0, dw = uvw, None
        if spectral is None:
            beam = cached[i].beam if i in cached else pointing_beam(grid, p.l, p.m)
            v = gridding.predict(uvw0, freq, beam * mod, grid.cell_arcsec, flags=p.flags, **kw)
        else:
            a = beam_taylor(grid, p.l, p.m)
            x = np.asarray(spectral[i], dtype=np.float64)
            nt = mod.shape[0]
            v = np.zeros((uvw0.shape[0], freq.size), dtype=np.complex128)
            for j in range(nt + len(a) - 1):
                c = sum(mod[t] * a[j - t] for t in range(nt) if 0 <= j - t < len(a))
                if not np.any(c):
                    continue
                pj = gridding.predict(uvw0, freq, c, grid.cell_arcsec, flags=p.flags, **kw)
                v += pj if j == 0 else pj * x ** j
        out.append(v if dw is None else _rephase(v, dw, freq, -1.0))
    return out


def mosaic_residual(model: np.ndarray, pointings: Sequence[Pointing], grid: MosaicGrid,
                    prepared: Optional[Prepared] = None) -> MosaicImage:
    """The major cycle: predict `model` (Jy/pixel, sky brightness) per pointing (`mosaic_predict`),
    subtract it from each pointing's ``vis`` and image the residual visibilities (`mosaic_image`).
    The next minor cycle runs on the result's ``flat_noise`` (module docstring, Deconvolution)."""
    predicted = mosaic_predict(model, pointings, grid, prepared)
    residual: list[Optional[np.ndarray]] = []
    for p, v in zip(pointings, predicted, strict=True):
        residual.append(None if p.vis is None else np.asarray(p.vis) - v)
    return mosaic_image(pointings, grid, vis=residual, prepared=prepared)
