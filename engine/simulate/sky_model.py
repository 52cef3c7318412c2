"""The sky each (field, spw) sees: components with primary beam, spectra and Doppler-shifted lines.

Visibilities are the exact direct Fourier sum of `almarules.kernels.sky` (sign convention
of CASA, see there) at channel and integration centres, per field/pointing, with a primary beam
evaluated at each component's offset from the pointing centre, per channel -- by default
(``primary_beam: imager``) the power pattern the imaging corrects with (`imager_pb_model`:
tclean's model for the telescope and dish, `kernels.primary_beam`), so that a mosaic's truth tests
test the mosaic and not a mismatch of models; or a Gaussian (FWHM 1.12 lambda/D, kernels.constants)
-- spectral indices, and Gaussian spectral lines. An extended component takes the beam's value at
its centre (flat across it). Lines given in
LSRK (rest frequency + radio velocity, or a frequency) are Doppler-shifted to the
TOPO frame of the data per integration with casacore measures. The unpolarised sky
gives XX = YY = I (before corruption).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from almarules.kernels import primary_beam as kpb
from almarules.kernels import sky as ksky
from almarules.kernels.constants import ARCSEC

from .plan import EBPlan, Plan, Spw, Timeline


def sky_model_for(plan: Plan, eb: EBPlan, tl: Timeline):
    """Per (field row, spw): a function of integration indices -> list of kernel Components.

    Also returns per-(source, spw) line records for the SOURCE table and the truth, and the
    per-integration TOPO/LSRK Doppler factors of sources with LSRK lines.
    """
    cfg = plan.cfg
    geo = plan.geometry
    line_truth: dict[tuple[int, int], list[dict]] = {}
    topo: dict[int, np.ndarray] = {}
    # Doppler factors for sources with LSRK lines (per integration of that source)
    for src in plan.sources:
        if any(ln.frame == "LSRK" for c in src.cfg.components for ln in c.lines):
            fac = np.full(tl.times.size, np.nan)
            nu = next(ln.centre_hz() for c in src.cfg.components for ln in c.lines)
            for i in np.flatnonzero(np.isin(tl.field, src.field_ids)):
                fac[i] = geo.topo_factor(tl.times[i], src.ra, src.dec, nu)
            topo[src.index] = fac
        for c in src.cfg.components:
            for ln in c.lines:
                for s in plan.spws:
                    lo, hi = float(s.freqs.min()), float(s.freqs.max())
                    centre = ln.centre_hz()
                    if ln.frame == "LSRK" and src.index in topo and np.any(np.isfinite(topo[src.index])):
                        centre *= float(np.nanmean(topo[src.index]))
                    if lo - 3 * ln.fwhm_hz() <= centre <= hi + 3 * ln.fwhm_hz():
                        line_truth.setdefault((src.index, s.id), []).append({
                            "rest_frequency_hz": ln.rest_frequency if ln.rest_frequency is not None else centre,
                            "sysvel_m_s": (ln.velocity or 0.0) * 1e3,
                            "transition": ln.transition})

    builders = {}
    for fid, (si, k, pra, pdec) in enumerate(plan.field_rows):
        src = plan.sources[si]
        for s in plan.spws:
            static = []  # (Component template, flux spectrum (nchan,), lines)
            for ci, c in enumerate(src.cfg.components):
                l0, m0 = c.offset[0] * ARCSEC, c.offset[1] * ARCSEC
                cra, cdec = ksky.radec_from_lm(l0, m0, src.ra, src.dec)
                l, m, n = ksky.lmn(cra, cdec, pra, pdec)
                if k == 0 and src.pointings[0] == (src.ra, src.dec):
                    l, m = l0, m0  # exactly the configured offsets at the field centre
                    n = math.sqrt(max(0.0, 1 - l * l - m * m))
                rho = math.acos(max(-1.0, min(1.0, n)))
                pb = primary_beam(cfg.primary_beam, cfg.site, rho, s.freqs, plan.diameter, cfg.pb_fwhm_factor)
                if rho == 0.0:
                    pb = np.ones(s.nchan)
                ref = c.reference_frequency or plan.ref_freq
                cont = ksky.power_law(c.flux, s.freqs, ref, c.spectral_index) * pb
                shape = c.shape
                major = (c.major or 0.0) * ARCSEC
                minor = (c.minor or 0.0) * ARCSEC
                pa = math.radians(c.pa)
                static.append((ci, shape, l, m, major, minor, pa, cont, pb, c.lines))
            builders[(fid, s.id)] = _component_builder(static, s, topo.get(si))
    return builders, line_truth, topo


def imager_pb_model(site: str, dish_m: float) -> str:
    """The `kernels.primary_beam` model the imaging corrects with for this site and dish (the rules'
    dataset.pb_model_casa, tclean's choice): "ACA" for ALMA dishes under 12 m, "ALMA", "VLA",
    "EVLA", else the generic "airy" of the dish."""
    name = site.upper()
    if name in ("ALMA", "ACA"):
        return "ACA" if dish_m < 12.0 or name == "ACA" else "ALMA"
    return {"VLA": "VLA", "EVLA": "EVLA"}.get(name, "airy")


def primary_beam(kind: str, site: str, rho_rad: float, freqs: np.ndarray, dish_m: float, fwhm_factor: float
                 ) -> np.ndarray:
    """Power pattern (nchan,) at `rho_rad` from the pointing centre, per channel (Hz): `kind` "imager"
    (`imager_pb_model`), "gaussian" (FWHM fwhm_factor lambda / D) or "none" (1)."""
    if kind == "gaussian":
        return ksky.primary_beam_gaussian(rho_rad, freqs, dish_m, fwhm_factor)
    if kind == "none":
        return np.ones(freqs.size)
    model, r = imager_pb_model(site, dish_m), math.degrees(rho_rad) * 3600.0
    return np.array([float(kpb.beam_profile(model, r, float(f), dish_m)) for f in freqs])


def _component_builder(static, spw: Spw, topo_fac: Optional[np.ndarray]):
    def build(idx: np.ndarray) -> list[ksky.Component]:
        comps = []
        for ci, shape, l, m, major, minor, pa, cont, pb, lines in static:
            flux = cont
            if lines:
                spec = np.zeros((idx.size, 1, spw.nchan))
                for ln in lines:
                    centre, fwhm = ln.centre_hz(), ln.fwhm_hz()
                    if ln.frame == "LSRK":
                        fac = topo_fac[idx][:, None, None]
                        spec += ksky.gaussian_line(spw.freqs[None, None, :], ln.peak, centre * fac, fwhm * fac)
                    else:
                        spec += ksky.gaussian_line(spw.freqs[None, None, :], ln.peak, centre, fwhm)
                if np.any(spec > 0):
                    flux = cont[None, None, :] + spec * pb[None, None, :]
            if np.all(np.asarray(flux) == 0):
                continue
            comps.append(ksky.Component(shape, flux, l, m, major, minor, pa, label=str(ci)))
        return comps

    return build
