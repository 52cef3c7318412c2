"""A tiny but valid Measurement Set written with casacore's default_ms, for tests that must not
depend on shared data: 3 antennas (12 m), 1 spw of 8 channels, 2 fields (PHASE, TARGET), XX/YY."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_ANT, N_CHAN, N_TIME = 3, 8, 4
START = 5.0e9  # MJD seconds (UTC)
INTERVAL = 6.048


def make_tiny_ms(path: Path, weight: float = 4.0, flag_fraction: float = 0.0) -> Path:
    from casacore.tables import default_ms, makearrcoldesc, maketabdesc, table

    desc = maketabdesc([makearrcoldesc("DATA", 0j, valuetype="complex", shape=[N_CHAN, 2]),
                        makearrcoldesc("FLAG", False, valuetype="boolean", shape=[N_CHAN, 2])])
    ms = default_ms(str(path), desc)
    ant = table(f"{path}/ANTENNA", readonly=False, ack=False)
    ant.addrows(N_ANT)
    ant.putcol("NAME", [f"DA{41 + i}" for i in range(N_ANT)])
    ant.putcol("STATION", [f"A00{i + 1}" for i in range(N_ANT)])
    ant.putcol("DISH_DIAMETER", np.full(N_ANT, 12.0))
    ant.putcol("POSITION", np.array([[2225061.0 + 100 * i, -5440057.0 + 50 * i, -2481681.0] for i in range(N_ANT)]))
    ant.close()
    spw = table(f"{path}/SPECTRAL_WINDOW", readonly=False, ack=False)
    spw.addrows(1)
    freqs = 230e9 + 15.625e6 * np.arange(N_CHAN)
    spw.putcell("NUM_CHAN", 0, N_CHAN)
    spw.putcell("CHAN_FREQ", 0, freqs)
    spw.putcell("CHAN_WIDTH", 0, np.full(N_CHAN, 15.625e6))
    spw.putcell("EFFECTIVE_BW", 0, np.full(N_CHAN, 15.625e6))
    spw.putcell("RESOLUTION", 0, np.full(N_CHAN, 15.625e6))
    spw.putcell("MEAS_FREQ_REF", 0, 5)
    spw.putcell("NAME", 0, "ALMA_RB_06#BB_1#SW-01#FULL_RES")
    spw.putcell("REF_FREQUENCY", 0, freqs[0])
    spw.putcell("TOTAL_BANDWIDTH", 0, 15.625e6 * N_CHAN)
    spw.close()
    pol = table(f"{path}/POLARIZATION", readonly=False, ack=False)
    pol.addrows(1)
    pol.putcell("NUM_CORR", 0, 2)
    pol.putcell("CORR_TYPE", 0, np.array([9, 12], dtype=np.int32))
    pol.putcell("CORR_PRODUCT", 0, np.array([[0, 0], [1, 1]], dtype=np.int32))
    pol.close()
    dd = table(f"{path}/DATA_DESCRIPTION", readonly=False, ack=False)
    dd.addrows(1)
    dd.putcell("SPECTRAL_WINDOW_ID", 0, 0)
    dd.putcell("POLARIZATION_ID", 0, 0)
    dd.close()
    fld = table(f"{path}/FIELD", readonly=False, ack=False)
    fld.addrows(2)
    fld.putcol("NAME", ["J1733-1304", "TARGET_1"])
    dirs = np.array([[[np.radians(263.26), np.radians(-13.08)]], [[np.radians(240.0), np.radians(-30.0)]]])
    for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
        fld.putcol(col, dirs)
    fld.close()
    st = table(f"{path}/STATE", readonly=False, ack=False)
    st.addrows(2)
    st.putcol("OBS_MODE", ["CALIBRATE_PHASE#ON_SOURCE", "OBSERVE_TARGET#ON_SOURCE"])
    st.close()
    obs = table(f"{path}/OBSERVATION", readonly=False, ack=False)
    obs.addrows(1)
    obs.putcell("TELESCOPE_NAME", 0, "ALMA")
    obs.putcell("PROJECT", 0, "2099.1.00001.S")
    obs.close()
    baselines = [(i, j) for i in range(N_ANT) for j in range(i + 1, N_ANT)]
    rows = []
    for k in range(N_TIME):
        field = 0 if k == 0 else 1
        for i, j in baselines:
            rows.append((START + (k + 0.5) * INTERVAL, i, j, field, k + 1))
    ms.addrows(len(rows))
    n = len(rows)
    ms.putcol("TIME", np.array([r[0] for r in rows]))
    ms.putcol("INTERVAL", np.full(n, INTERVAL))
    ms.putcol("EXPOSURE", np.full(n, INTERVAL))
    ms.putcol("ANTENNA1", np.array([r[1] for r in rows], dtype=np.int32))
    ms.putcol("ANTENNA2", np.array([r[2] for r in rows], dtype=np.int32))
    ms.putcol("FIELD_ID", np.array([r[3] for r in rows], dtype=np.int32))
    ms.putcol("SCAN_NUMBER", np.array([r[4] for r in rows], dtype=np.int32))
    ms.putcol("STATE_ID", np.array([r[3] for r in rows], dtype=np.int32))
    ms.putcol("DATA_DESC_ID", np.zeros(n, dtype=np.int32))
    uvw = np.array([[100.0 * (r[2] - r[1]), 50.0 * (r[2] - r[1]), 1.0] for r in rows])
    ms.putcol("UVW", uvw)
    ms.putcol("DATA", np.ones((n, N_CHAN, 2), dtype=np.complex64))
    flags = np.zeros((n, N_CHAN, 2), dtype=bool)
    nflag = int(round(flag_fraction * N_CHAN))
    flags[:, :nflag, :] = True
    ms.putcol("FLAG", flags)
    ms.putcol("WEIGHT", np.full((n, 2), weight, dtype=np.float32))
    ms.putcol("SIGMA", np.full((n, 2), 1 / np.sqrt(weight), dtype=np.float32))
    ms.close()
    return path
