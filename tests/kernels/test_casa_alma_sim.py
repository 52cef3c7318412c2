"""Weighting, beam and Hogbom Cotton-Schwab clean on the shared alma_sim against CASA 6.7 tclean.

The CASA numbers below were measured once (CASA 6.7.0, casatasks/casatools 6.7, in the separate
CASA venv) on the `alma_sim_calibrated` copy of alma_sim.ms (tests/truthcal.py), target SIMGAL_1
(FIELD_ID 3), spw 0 (64 channels, mfs), CORRECTED_DATA, imsize 320, cell 0.132512029549 arcsec:

* ``im.weight(type='briggs', robust=0.5); im.apparentsens()`` (casatools imager, same image):
  sigma 7.163293384634272e-05 Jy/beam, 1.0879753167617567 x natural;
* ``tclean(specmode='mfs', gridder='standard', weighting='briggs', robust=0.5,
  deconvolver='hogbom', niter=5000, gain=0.1, cyclefactor=1.0, threshold='0.144492044231mJy',
  mask=<the disc mask below, importfits'ed>, pblimit=0.2)``: restoring beam
  0.7592771649360657" x 0.6365727186203003" at 80.342041015625 deg; 494 iterations in 4 minor
  cycles (24, 65, 397, 8), first cycle threshold 0.003043638775125146 Jy/beam, model flux
  0.0297009 Jy, restored peak 0.0198807 Jy/beam;
* the same but spw='1:60', specmode='cube', nchan=1, outframe='TOPO', niter=0 (one channel of the
  120-channel spw 1, CASA's cube weighting, BriggsCubeWeightor): restoring beam
  0.7740075588226318" x 0.6493590474128723" at 81.69450378417969 deg. (Weighted as an mfs image
  instead, cell edges on multiples of du, the position angle comes out 1.35 deg off.)

Tolerances (the issue's targets): beam axes 0.5 %, position angle 0.5 deg; apparent sensitivity
0.2 %; restored peak 0.5 %; model flux 1 %; iterations 5 %; first cycle threshold 0.5 %. What
remains between us and CASA: CASA weights Stokes I by the mean of the two hands' weights where
`engine.ms.visibilities` uses their inverse-variance combination (the calibrated copy's hand weights differ
by up to ~50 %), which moves the PSF by ~1e-3 of its peak; with CASA's convention the weights give
apparentsens to 1e-5 (tested below). The code before this test (cell centres on multiples of du for
mfs, a PSF patch of +-3 beams in Hogbom, cycle threshold from another sidelobe measure) gave a beam
position angle 1.6 deg off, 937 iterations, model flux +4 % and the restored peak -0.66 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from almarules.kernels import beam as beammod
from almarules.kernels import deconvolve, gridding, restore, weighting

NPIX, CELL, ROBUST = 320, 0.132512029549, 0.5
FIELD, SPW = 3, 0
CASA_SENS, CASA_REL = 7.163293384634272e-05, 1.0879753167617567
CASA_BEAM = (0.7592771649360657, 0.6365727186203003, 80.342041015625)
CASA_CUBE_BEAM = (0.7740075588226318, 0.6493590474128723, 81.69450378417969)  # spw 1, channel 60
CASA_ITER, CASA_FLUX, CASA_PEAK, CASA_CYC0 = 494, 0.0297009, 0.0198807, 0.003043638775125146
THRESHOLD = 0.144492044231e-3  # Jy/beam, as given to tclean
# the clean mask given to both: the imaging stage's pb >= 0.3 mask of this image (Airy pattern of a
# 12 m dish at 231.0015 GHz), a disc of 39645 pixels: squared pixel offsets <= 12613 (next: 12618)
MASK_R2 = 12613


@pytest.fixture(scope="module")
def data(alma_sim_calibrated):
    """uvw (m), TOPO channel frequencies (Hz), CORRECTED_DATA (nrow, nchan, 2 hands), WEIGHT
    (nrow, 2) of the target's cross-correlations in spw 0 (unflagged, a single DATA_DESC_ID)."""
    from casacore.tables import table, taql

    t = table(str(alma_sim_calibrated), ack=False)
    sel = taql(f"select UVW, WEIGHT, CORRECTED_DATA, FLAG from $t where FIELD_ID=={FIELD} and "
               f"DATA_DESC_ID=={SPW} and ANTENNA1!=ANTENNA2")
    assert not sel.getcol("FLAG").any()
    freq = table(str(alma_sim_calibrated) + "/SPECTRAL_WINDOW", ack=False).getcell("CHAN_FREQ", SPW)
    return sel.getcol("UVW"), freq, sel.getcol("CORRECTED_DATA"), sel.getcol("WEIGHT")


@pytest.fixture(scope="module")
def target(data):
    """Stokes I as `engine.ms.visibilities` forms it: (XX + YY) / 2 with weight 4 / (1/w_XX + 1/w_YY);
    Briggs weights and the PSF as the imaging stage makes them."""
    uvw, freq, corr, wh = data
    vis = 0.5 * (corr[:, :, 0] + corr[:, :, -1])
    w = np.broadcast_to((4.0 / (1.0 / wh[:, 0] + 1.0 / wh[:, -1]))[:, None], vis.shape)
    iw = weighting.briggs(uvw, freq, w, NPIX, NPIX, CELL, ROBUST)
    psf = gridding.psf(uvw, freq, iw, NPIX, NPIX, CELL, epsilon=1e-6)
    return uvw, freq, vis, w, iw, psf


def test_briggs_mfs_sensitivity_matches_casa_apparentsens(data):
    # CASA's convention for this number: per (row, channel) the mean of the two hands' weights w,
    # natural weight 2 w, gridded weight 2 W (Imager::apparentSensitivity)
    uvw, freq, _, wh = data
    w = np.broadcast_to(wh.mean(axis=1)[:, None], (uvw.shape[0], freq.size))
    W = weighting.briggs(uvw, freq, w, NPIX, NPIX, CELL, ROBUST)
    sigma = weighting.sensitivity(2 * w, 2 * W)
    natural = weighting.sensitivity(2 * w, 2 * w)
    assert sigma == pytest.approx(CASA_SENS, rel=1e-4)
    assert sigma / natural == pytest.approx(CASA_REL, rel=1e-4)


def test_beam_matches_casa(target):
    psf = target[-1]
    b = beammod.fit_beam(psf, CELL)
    assert b.bmaj_arcsec == pytest.approx(CASA_BEAM[0], rel=0.005)
    assert b.bmin_arcsec == pytest.approx(CASA_BEAM[1], rel=0.005)
    assert b.bpa_deg == pytest.approx(CASA_BEAM[2], abs=0.5)


def test_cube_channel_beam_matches_casa(alma_sim_calibrated):
    from casacore.tables import table, taql

    t = table(str(alma_sim_calibrated), ack=False)
    sel = taql(f"select UVW, WEIGHT from $t where FIELD_ID=={FIELD} and DATA_DESC_ID==1 and ANTENNA1!=ANTENNA2")
    uvw, wh = sel.getcol("UVW"), sel.getcol("WEIGHT")
    freq = table(str(alma_sim_calibrated) + "/SPECTRAL_WINDOW", ack=False).getcell("CHAN_FREQ", 1)[60:61]
    w = (4.0 / (1.0 / wh[:, 0] + 1.0 / wh[:, -1]))[:, None]
    iw = weighting.briggs(uvw, freq, w, NPIX, NPIX, CELL, ROBUST, per_channel=True)
    b = beammod.fit_beam(gridding.psf(uvw, freq, iw, NPIX, NPIX, CELL, epsilon=1e-6), CELL)
    assert b.bmaj_arcsec == pytest.approx(CASA_CUBE_BEAM[0], rel=0.005)
    assert b.bmin_arcsec == pytest.approx(CASA_CUBE_BEAM[1], rel=0.005)
    assert b.bpa_deg == pytest.approx(CASA_CUBE_BEAM[2], abs=0.5)


def test_hogbom_cotton_schwab_matches_casa_tclean(target):
    uvw, freq, vis, w, iw, psf = target
    ix, iy = np.meshgrid(np.arange(NPIX), np.arange(NPIX), indexing="ij")
    mask = (ix - NPIX // 2) ** 2 + (iy - NPIX // 2) ** 2 <= MASK_R2
    assert int(mask.sum()) == 39645  # the mask CASA was given
    r = deconvolve.cotton_schwab(uvw, freq, vis, w, iw, NPIX, NPIX, CELL, psf=psf, mask=mask, gain=0.1,
                                 threshold=THRESHOLD, niter=5000, cycle_factor=1.0, epsilon=1e-6, minor="hogbom")
    image = restore.restore(r.model, r.residual, r.beam, CELL)
    assert r.stopped_by == "threshold"
    assert r.history[0].cycle_threshold == pytest.approx(CASA_CYC0, rel=0.005)
    assert r.iterations == pytest.approx(CASA_ITER, rel=0.05)
    assert r.model.sum() == pytest.approx(CASA_FLUX, rel=0.01)
    assert image.max() == pytest.approx(CASA_PEAK, rel=0.005)
