"""The Measurement Set's layout: the main table's columns and storage managers, the subtables.

The MS: the standard tables of ``casacore.tables.default_ms`` plus SOURCE (REST_FREQUENCY,
SYSVEL, TRANSITION) and, with atmosphere scans, SYSCAL (TSYS); ANTENNA, FEED (X/Y),
SPECTRAL_WINDOW (TOPO), POLARIZATION (XX, YY), DATA_DESCRIPTION (one per spw), FIELD (one
row per pointing; mosaic pointings share NAME and SOURCE_ID), STATE (one row per OBS_MODE
and sub-scan; SIG true, REF false), OBSERVATION (SCHEDULE names the EB uid), PROCESSOR,
HISTORY (one row, ORIGIN ``almarules simulate``); POINTING and FLAG_CMD are empty. Main
table: cross-correlations only, rows ordered by TIME, DATA_DESC_ID, ANTENNA1, ANTENNA2;
DATA (complex64) and FLAG in TiledShapeStMan, WEIGHT/SIGMA per correlation, no
WEIGHT_SPECTRUM, MODEL_DATA or CORRECTED_DATA. The main table's rows are filled by
`writer`.
"""

from __future__ import annotations

import math

import numpy as np

from .plan import EBPlan, Plan


def main_desc():
    import casacore.tables as ct

    cols = [
        ct.makearrcoldesc("DATA", 0j, valuetype="complex", ndim=2, datamanagertype="TiledShapeStMan",
                          datamanagergroup="TiledData", comment="The data column"),
        ct.makearrcoldesc("FLAG", False, valuetype="boolean", ndim=2, datamanagertype="TiledShapeStMan",
                          datamanagergroup="TiledFlag", comment="The data flags, array of bools with same shape as data"),
        ct.makearrcoldesc("WEIGHT", 1.0, valuetype="float", ndim=1, shape=[2], datamanagertype="TiledShapeStMan",
                          datamanagergroup="TiledWeight", comment="Weight for each polarization spectrum"),
        ct.makearrcoldesc("SIGMA", 1.0, valuetype="float", ndim=1, shape=[2], datamanagertype="TiledShapeStMan",
                          datamanagergroup="TiledSigma",
                          comment="Estimated rms noise for channel with unity bandpass response"),
    ]
    return ct.maketabdesc(cols)


def main_dminfo(nchan_max: int) -> dict:
    ism = ["ARRAY_ID", "DATA_DESC_ID", "EXPOSURE", "FEED1", "FEED2", "FIELD_ID", "FLAG_ROW", "INTERVAL",
           "OBSERVATION_ID", "PROCESSOR_ID", "SCAN_NUMBER", "STATE_ID", "TIME", "TIME_CENTROID"]
    rows_per_tile = max(8, 65536 // (2 * max(1, nchan_max)))
    return {
        "*1": {"TYPE": "IncrementalStMan", "NAME": "ISMData", "SPEC": {}, "COLUMNS": ism},
        "*2": {"TYPE": "StandardStMan", "NAME": "SSMData", "SPEC": {}, "COLUMNS": ["ANTENNA1", "ANTENNA2", "UVW"]},
        "*3": {"TYPE": "TiledShapeStMan", "NAME": "TiledData",
               "SPEC": {"DEFAULTTILESHAPE": np.array([2, nchan_max, rows_per_tile], dtype=np.int32)},
               "COLUMNS": ["DATA"]},
        "*4": {"TYPE": "TiledShapeStMan", "NAME": "TiledFlag",
               "SPEC": {"DEFAULTTILESHAPE": np.array([2, nchan_max, 8 * rows_per_tile], dtype=np.int32)},
               "COLUMNS": ["FLAG"]},
        "*5": {"TYPE": "TiledShapeStMan", "NAME": "TiledWeight",
               "SPEC": {"DEFAULTTILESHAPE": np.array([2, 4096], dtype=np.int32)}, "COLUMNS": ["WEIGHT"]},
        "*6": {"TYPE": "TiledShapeStMan", "NAME": "TiledSigma",
               "SPEC": {"DEFAULTTILESHAPE": np.array([2, 4096], dtype=np.int32)}, "COLUMNS": ["SIGMA"]},
    }


def _subtable(ct, ms, name: str, extra: tuple[str, ...] = ()):
    full = ct.complete_ms_desc(name) if extra else None
    desc = {k: full[k] for k in extra} if extra else None
    t = ct.default_ms_subtable(name, f"{ms.name()}/{name}", desc)
    ms.putkeyword(name, f"Table: {t.name()}")
    return t


def write_subtables(ct, ms, plan: Plan, eb: EBPlan, truth_lines: dict) -> None:
    lay = plan.layout
    # ANTENNA
    t = ct.table(f"{ms.name()}/ANTENNA", readonly=False, ack=False)
    t.addrows(plan.nant)
    t.putcol("NAME", lay.names)
    t.putcol("STATION", lay.stations)
    t.putcol("POSITION", lay.positions)
    t.putcol("OFFSET", np.zeros((plan.nant, 3)))
    t.putcol("DISH_DIAMETER", lay.diameters.astype(np.float64))
    t.putcol("TYPE", ["GROUND-BASED"] * plan.nant)
    t.putcol("MOUNT", ["ALT-AZ"] * plan.nant)
    t.putcol("FLAG_ROW", np.zeros(plan.nant, bool))
    t.close()
    # FEED: one per antenna, all spws, linear X/Y receptors
    t = ct.table(f"{ms.name()}/FEED", readonly=False, ack=False)
    t.addrows(plan.nant)
    t.putcol("ANTENNA_ID", np.arange(plan.nant, dtype=np.int32))
    t.putcol("FEED_ID", np.zeros(plan.nant, np.int32))
    t.putcol("SPECTRAL_WINDOW_ID", np.full(plan.nant, -1, np.int32))
    t.putcol("TIME", np.zeros(plan.nant))
    t.putcol("INTERVAL", np.full(plan.nant, 1e30))
    t.putcol("NUM_RECEPTORS", np.full(plan.nant, 2, np.int32))
    t.putcol("BEAM_ID", np.full(plan.nant, -1, np.int32))
    t.putcol("BEAM_OFFSET", np.zeros((plan.nant, 2, 2)))
    t.putcol("POLARIZATION_TYPE", np.array([["X", "Y"]] * plan.nant))
    t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (plan.nant, 1, 1)))
    t.putcol("POSITION", np.zeros((plan.nant, 3)))
    t.putcol("RECEPTOR_ANGLE", np.tile(np.array([-math.pi / 4, math.pi / 4]), (plan.nant, 1)))
    t.close()
    # SPECTRAL_WINDOW
    t = ct.table(f"{ms.name()}/SPECTRAL_WINDOW", readonly=False, ack=False)
    t.addrows(len(plan.spws))
    for s in plan.spws:
        r = s.id
        n = s.nchan
        t.putcell("NUM_CHAN", r, n)
        t.putcell("NAME", r, s.name)
        t.putcell("CHAN_FREQ", r, s.freqs)
        t.putcell("CHAN_WIDTH", r, np.full(n, s.width))
        t.putcell("EFFECTIVE_BW", r, np.full(n, s.ebw))
        t.putcell("RESOLUTION", r, np.full(n, s.resolution))
        t.putcell("TOTAL_BANDWIDTH", r, s.bandwidth)
        t.putcell("REF_FREQUENCY", r, float(s.freqs[0]))
        t.putcell("MEAS_FREQ_REF", r, 5)  # TOPO
        t.putcell("NET_SIDEBAND", r, 2 if s.width > 0 else 1)  # ASDM NetSideband: 2 USB, 1 LSB
        t.putcell("IF_CONV_CHAIN", r, 0)
        t.putcell("FREQ_GROUP", r, 0)
        t.putcell("FREQ_GROUP_NAME", r, "")
        t.putcell("FLAG_ROW", r, False)
    t.close()
    # POLARIZATION, DATA_DESCRIPTION
    t = ct.table(f"{ms.name()}/POLARIZATION", readonly=False, ack=False)
    t.addrows(1)
    t.putcell("NUM_CORR", 0, 2)
    t.putcell("CORR_TYPE", 0, np.array([9, 12], dtype=np.int32))  # XX, YY
    t.putcell("CORR_PRODUCT", 0, np.array([[0, 0], [1, 1]], dtype=np.int32))
    t.putcell("FLAG_ROW", 0, False)
    t.close()
    t = ct.table(f"{ms.name()}/DATA_DESCRIPTION", readonly=False, ack=False)
    t.addrows(len(plan.spws))
    t.putcol("SPECTRAL_WINDOW_ID", np.arange(len(plan.spws), dtype=np.int32))
    t.putcol("POLARIZATION_ID", np.zeros(len(plan.spws), np.int32))
    t.putcol("FLAG_ROW", np.zeros(len(plan.spws), bool))
    t.close()
    # FIELD
    t = ct.table(f"{ms.name()}/FIELD", readonly=False, ack=False)
    nf = len(plan.field_rows)
    t.addrows(nf)
    dirs = np.array([[[ra, dec]] for (_, _, ra, dec) in plan.field_rows])
    t.putcol("NAME", [plan.sources[s].cfg.name for (s, _, _, _) in plan.field_rows])
    t.putcol("CODE", ["none"] * nf)
    t.putcol("PHASE_DIR", dirs)
    t.putcol("DELAY_DIR", dirs)
    t.putcol("REFERENCE_DIR", dirs)
    t.putcol("NUM_POLY", np.zeros(nf, np.int32))
    t.putcol("SOURCE_ID", np.array([s for (s, _, _, _) in plan.field_rows], np.int32))
    t.putcol("TIME", np.full(nf, eb.start))
    t.putcol("FLAG_ROW", np.zeros(nf, bool))
    t.close()
    # SOURCE: one row per source and spw
    t = _subtable(ct, ms, "SOURCE", ("REST_FREQUENCY", "SYSVEL", "TRANSITION"))
    mid = 0.5 * (eb.start + eb.end)
    row = 0
    for src in plan.sources:
        for s in plan.spws:
            t.addrows(1)
            t.putcell("SOURCE_ID", row, src.index)
            t.putcell("NAME", row, src.cfg.name)
            t.putcell("DIRECTION", row, np.array([src.ra, src.dec]))
            t.putcell("PROPER_MOTION", row, np.zeros(2))
            t.putcell("SPECTRAL_WINDOW_ID", row, s.id)
            t.putcell("TIME", row, mid)
            t.putcell("INTERVAL", row, eb.end - eb.start)
            t.putcell("CALIBRATION_GROUP", row, 0)
            t.putcell("CODE", row, "")
            lines = truth_lines.get((src.index, s.id), [])
            t.putcell("NUM_LINES", row, len(lines))
            # empty arrays (not undefined cells) for continuum-only rows
            t.putcell("REST_FREQUENCY", row, np.array([ln["rest_frequency_hz"] for ln in lines], dtype=np.float64))
            t.putcell("SYSVEL", row, np.array([ln["sysvel_m_s"] for ln in lines], dtype=np.float64))
            t.putcell("TRANSITION", row, np.array([ln["transition"] or "" for ln in lines], dtype=str))
            row += 1
    t.close()
    # STATE
    t = ct.table(f"{ms.name()}/STATE", readonly=False, ack=False)
    states = sorted(plan.states.items(), key=lambda kv: kv[1])
    t.addrows(len(states))
    t.putcol("OBS_MODE", [k[0] for k, _ in states])
    t.putcol("SUB_SCAN", np.array([k[1] for k, _ in states], np.int32))
    t.putcol("SIG", np.ones(len(states), bool))
    t.putcol("REF", np.zeros(len(states), bool))
    t.putcol("CAL", np.zeros(len(states)))
    t.putcol("LOAD", np.zeros(len(states)))
    t.putcol("FLAG_ROW", np.zeros(len(states), bool))
    t.close()
    # OBSERVATION
    t = ct.table(f"{ms.name()}/OBSERVATION", readonly=False, ack=False)
    t.addrows(1)
    t.putcell("TELESCOPE_NAME", 0, "ALMA" if plan.cfg.site.upper() in ("ALMA", "ACA") else plan.cfg.site)
    t.putcell("TIME_RANGE", 0, np.array([eb.start, eb.end]))
    t.putcell("OBSERVER", 0, plan.cfg.observer)
    t.putcell("PROJECT", 0, plan.cfg.project)
    t.putcell("SCHEDULE_TYPE", 0, "ALMA")
    t.putcell("SCHEDULE", 0, [f"SchedulingBlock uid://A002/X0/X{plan.seed & 0xFFFF:x}", f"ExecBlock {eb.uid}"])
    t.putcell("LOG", 0, ["simulated by almarules"])
    t.putcell("RELEASE_DATE", 0, 0.0)
    t.putcell("FLAG_ROW", 0, False)
    t.close()
    # PROCESSOR
    t = ct.table(f"{ms.name()}/PROCESSOR", readonly=False, ack=False)
    t.addrows(1)
    t.putcell("TYPE", 0, "CORRELATOR")
    t.putcell("SUB_TYPE", 0, "ALMA_CORRELATOR_MODE" if plan.diameter > 8 else "ACA_CORRELATOR_MODE")
    t.putcell("TYPE_ID", 0, 0)
    t.putcell("MODE_ID", 0, 0)
    t.putcell("FLAG_ROW", 0, False)
    t.close()
    # HISTORY
    from almarules import __version__

    t = ct.table(f"{ms.name()}/HISTORY", readonly=False, ack=False)
    t.addrows(1)
    t.putcell("TIME", 0, eb.start)
    t.putcell("OBSERVATION_ID", 0, 0)
    t.putcell("MESSAGE", 0, f"Simulated by almarules simulate {__version__} (execution block {eb.index + 1} of "
                            f"{len(plan.ebs)}, seed {plan.seed}); truth in the .truth.json file beside this MS")
    t.putcell("PRIORITY", 0, "NORMAL")
    t.putcell("ORIGIN", 0, "almarules simulate")
    t.putcell("OBJECT_ID", 0, 0)
    t.putcell("APPLICATION", 0, "almarules")
    t.putcell("CLI_COMMAND", 0, ["almarules simulate"])
    t.putcell("APP_PARAMS", 0, [f"seed={plan.seed}", f"eb={eb.index + 1}"])
    t.close()


def write_syscal(ct, ms, plan: Plan, rows: list[tuple[int, int, float, float, float]]) -> None:
    """SYSCAL rows (antenna, spw, time, interval, tsys) for the atmosphere scans."""
    t = _subtable(ct, ms, "SYSCAL", ("TSYS",))
    if rows:
        t.addrows(len(rows))
        t.putcol("ANTENNA_ID", np.array([r[0] for r in rows], np.int32))
        t.putcol("FEED_ID", np.zeros(len(rows), np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.array([r[1] for r in rows], np.int32))
        t.putcol("TIME", np.array([r[2] for r in rows]))
        t.putcol("INTERVAL", np.array([r[3] for r in rows]))
        t.putcol("TSYS", np.array([[r[4], r[4]] for r in rows], np.float32))
    t.close()
