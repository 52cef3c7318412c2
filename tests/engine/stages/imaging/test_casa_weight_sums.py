"""Briggs imaging weights of the imaging stage's visibilities against CASA 6.7 tclean's sums of
weights (.sumwt), which tclean writes per image plane: sum over the samples of the imaging weight.

Measured once (CASA 6.7.0-31, separate venv) on the `alma_sim_calibrated` copy (tests/truthcal.py),
target SIMGAL_1 (FIELD_ID 3), CORRECTED_DATA, imsize 320, cell 0.133669339851 arcsec, Briggs
robust 0.5, gridder standard:

* spw 1 cube, ``specmode='cube', nchan=120, start=0, width=1, outframe='TOPO',
  interpolation='nearest'`` (tclean's BriggsCubeWeightor): the channels below;
* ``spw='1:10', specmode='mfs'`` (VisImagingWeight): 75444.1328125.

tclean bins the weight density at uv scaled by the LSRK frequency (nu_LSRK / nu_TOPO - 1 =
6.6e-6 here), also for this TOPO cube: binned at the TOPO uv, the sums below come out 5e-5 to
4e-4 off on the cube channels and 1.1e-6 on the mfs image. The sums are float32 in CASA (7 digits).
"""

from __future__ import annotations

import numpy as np
import pytest

from almarules.engine.stages.imaging import data as vdata
from almarules.kernels import weighting

NPIX, CELL, ROBUST = 320, 0.133669339851, 0.5
CASA_CUBE_SUMWT = {0: 74776.234375, 2: 74769.4765625, 22: 74767.7578125, 56: 74817.8359375,
                   101: 74747.4140625}
CASA_MFS_CHAN10_SUMWT = 75444.1328125


@pytest.fixture(scope="module")
def spw1(alma_sim_calibrated):
    sel = vdata.select_channels([alma_sim_calibrated], "SIMGAL_1", [1], "cube", 1)
    return vdata.read(sel, 1)


def test_the_weights_are_binned_at_lsrk_uv(spw1):
    assert spw1.lsrk_factor.shape == (spw1.uvw.shape[0],)
    assert spw1.lsrk_factor == pytest.approx(1 + 6.585e-6, abs=2e-9)
    assert np.allclose(spw1.weighting_uvw, spw1.uvw * spw1.lsrk_factor[:, None], rtol=0, atol=0)


def test_cube_weight_sums_match_tclean(spw1):
    iw = weighting.briggs(spw1.weighting_uvw, spw1.freq, spw1.weight, NPIX, NPIX, CELL, ROBUST,
                          flags=spw1.flag, per_channel=True)
    for chan, casa in CASA_CUBE_SUMWT.items():
        assert iw[:, chan].sum() == pytest.approx(casa, rel=1e-6), chan


def test_mfs_weight_sum_matches_tclean(spw1):
    c = slice(10, 11)
    iw = weighting.briggs(spw1.weighting_uvw, spw1.freq[c], spw1.weight[:, c], NPIX, NPIX, CELL, ROBUST,
                          flags=spw1.flag[:, c])
    assert iw.sum() == pytest.approx(CASA_MFS_CHAN10_SUMWT, rel=1e-7)
