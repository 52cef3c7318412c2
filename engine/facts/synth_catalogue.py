"""Catalogues of the synthetic corpora: constants, ALMA's site, bands, configurations, correlator modes, names."""

from __future__ import annotations

import numpy as np

from almarules.kernels.constants import ARCSEC, C  # noqa: F401 - re-exported (synth's public names)

K_B = 1.380649e-23  # J/K
JY = 1e-26  # W m^-2 Hz^-1
ETA_C = 0.88  # correlator (quantisation) efficiency
# ALMA's position (WGS84 lon, lat [rad], height [m]) as in CASA's Observatories table, and the
# array centre in its tangent plane (east, north, up; m): ITRF (2225061.164, -5440057.370, -2481681.150)
ALMA_LON, ALMA_LAT, ALMA_ALT = -1.1825465955049892, -0.4018251640113072, 5056.8
CENTRE_ENU = np.array([19.656, -701.914, 13.532])

# band: (low GHz, high GHz, Tsys K, aperture efficiency, weight 12m, weight 7m)
BANDS: dict[int, tuple[float, float, float, float, float, float]] = {
    3: (84.0, 116.0, 75.0, 0.71, 0.20, 0.12),
    4: (125.0, 163.0, 85.0, 0.70, 0.08, 0.08),
    5: (163.0, 211.0, 120.0, 0.69, 0.03, 0.02),
    6: (211.0, 275.0, 100.0, 0.68, 0.30, 0.33),
    7: (275.0, 373.0, 150.0, 0.63, 0.27, 0.32),
    8: (385.0, 500.0, 400.0, 0.60, 0.05, 0.08),
    9: (602.0, 720.0, 900.0, 0.50, 0.05, 0.04),
    10: (787.0, 950.0, 1200.0, 0.45, 0.02, 0.01),
}
# 12-m configurations: (name, nominal projected L80 in m, weight)
CONFIGS_12M: tuple[tuple[str, float, float], ...] = (
    ("C43-1", 90.0, 0.12), ("C43-2", 170.0, 0.13), ("C43-3", 270.0, 0.15), ("C43-4", 420.0, 0.16),
    ("C43-5", 750.0, 0.14), ("C43-6", 1300.0, 0.10), ("C43-7", 1900.0, 0.08), ("C43-8", 3900.0, 0.06),
    ("C43-9", 6300.0, 0.04), ("C43-10", 8000.0, 0.02),
)
TDM = (128, 15.625e6)  # TDM spw: (nchan, channel width Hz)
# FDM spw modes: (nchan, channel width Hz, weight)
FDM_MODES: tuple[tuple[int, float, float], ...] = (
    (1920, 976562.5, 0.30), (3840, 488281.25, 0.12), (3840, 244140.625, 0.14),
    (3840, 122070.3125, 0.10), (3840, 61035.15625, 0.06), (960, 1953125.0, 0.10),
    (960, 488281.25, 0.05), (480, 3906250.0, 0.07), (480, 976562.5, 0.04), (7680, 244140.625, 0.02),
)
# narrow spws that share a baseband with a first one: (nchan, channel width Hz)
NARROW_MODES = ((3840, 122070.3125), (3840, 61035.15625), (960, 488281.25), (480, 976562.5))
HANNING = 2.667  # effective bandwidth / channel width with online Hanning smoothing

ANTENNA_NAMES_12M = ([f"DA{i}" for i in range(41, 66)] + [f"DV{i:02d}" for i in range(1, 26)]
                     + [f"PM{i:02d}" for i in range(1, 5)])
ANTENNA_NAMES_7M = [f"CM{i:02d}" for i in range(1, 13)]
# bandpass / flux grid quasars (the name gives the position)
GRID_QUASARS = ("J0006-0623", "J0237+2848", "J0238+1636", "J0423-0120", "J0510+1800", "J0522-3627",
                "J0538-4405", "J0750+1231", "J0854+2006", "J1037-2934", "J1058+0133", "J1229+0203",
                "J1256-0547", "J1337-1257", "J1427-4206", "J1517-2422", "J1550+0527", "J1617-5848",
                "J1733-1304", "J1751+0939", "J1924-2914", "J2000-1748", "J2056-4714", "J2148+0657",
                "J2232+1143", "J2253+1608", "J2258-2758", "J2357-5311")
PLANETS = ("Titan", "Ganymede", "Callisto", "Uranus", "Neptune", "Ceres", "Pallas", "Mars")
# name patterns of a single target and of the fields of a survey
TARGET_STYLES = ("NGC_{n}", "IRAS_{j}", "HD_{n6}", "Elias_{n2}", "HOPS-{n3}", "SPT{j}", "AzTEC{n2}",
                 "COSMOS_{n5}", "Lupus_{n2}", "Oph-MMS{n2}", "G{l}", "IRDC_{n3}", "BHR_{n3}", "HH_{n3}")
SURVEY_STYLES = ("HOPS-{k}", "COSMOS_{k}", "Lupus_disk_{k}", "Oph_{k}", "SPT_field_{k}", "Serpens_{k}",
                 "Orion_{k}", "Cha_I_{k}", "W43_{k}", "N159_{k}")
LATER_TASKS = (["flagdata"], ["flagdata", "applycal"], ["split"], ["mstransform", "flagdata"])
# facts a dataset may miss on purpose
MISSING_FACTS = ("ebs.baselines.l80", "ebs.baselines", "representative_spw", "representative_frequency",
                 "antennas.dish_diameter", "ebs.integration_time", "spws.intents", "spws.nchan",
                 "fields.pointings")
