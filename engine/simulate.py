"""``almarules simulate``: realistic ALMA-like Measurement Sets, written with python-casacore.

A simulation is described by a YAML file (`SimConfig`, see ``examples/sim/``): the array
(a configuration file shipped in ``engine/arrays/`` or a path), the date and schedule, the
fields with their intents and sky components, the spectral windows, noise, corruptions,
flags and the seed. `simulate` writes one MS per execution block and, next to each, a
truth file ``<name>.truth.json`` with everything that went into it.

What is computed, and how
-------------------------
* Antennas: pad positions from a CASA ``simobserve`` configuration file, turned into ITRF
  exactly as CASA's simulator does (``simutil.locxyz2itrf`` about the observatory position).
* Times: ``TIME`` is MJD seconds (UTC) at the centre of each integration.
* UVW: from the antennas' ITRF positions with **casacore measures** (the ``Muvw``
  conversion CASA's own simulator uses: ITRF baseline -> J2000 uvw of the field's J2000
  phase centre, with precession, nutation, sidereal time and the IERS data bundled with
  python-casacore), one conversion per integration and field. Stored as CASA stores
  them: ``UVW = uvw(ANTENNA1) - uvw(ANTENNA2)`` (checked against the CASA-simulated
  ``alma_sim.ms`` of the shared data: equal to 0.4 mm). Like CASA's, these J2000 uvw
  include the annual-aberration rotation (~20 arcsec) between the apparent and the
  catalogue direction; an independent ERFA/astropy computation with that rotation agrees
  to 2e-6 of the baseline length (tested).
* Visibilities: the exact direct Fourier sum of `almarules.kernels.sky` (sign convention
  of CASA, see there) at channel and integration centres, per field/pointing, with a
  Gaussian primary beam (FWHM 1.13 lambda/D) evaluated at each component's offset from
  the pointing centre, spectral indices, and Gaussian spectral lines. Lines given in
  LSRK (rest frequency + radio velocity, or a frequency) are Doppler-shifted to the
  TOPO frame of the data per integration with casacore measures.
* Noise: radiometer equation (`almarules.kernels.noise`); ``SIGMA`` = sigma and
  ``WEIGHT`` = 1/sigma^2 per correlation, the values of the noise actually added (with
  noise off they hold the nominal values of the noise that would have been added).
* Corruptions: `almarules.kernels.corrupt` (antenna gains drifting in time, bandpasses).
* The unpolarised sky gives XX = YY = I (before corruption).

The MS: the standard tables of ``casacore.tables.default_ms`` plus SOURCE (REST_FREQUENCY,
SYSVEL, TRANSITION) and, with atmosphere scans, SYSCAL (TSYS); ANTENNA, FEED (X/Y),
SPECTRAL_WINDOW (TOPO), POLARIZATION (XX, YY), DATA_DESCRIPTION (one per spw), FIELD (one
row per pointing; mosaic pointings share NAME and SOURCE_ID), STATE (one row per OBS_MODE
and sub-scan; SIG true, REF false), OBSERVATION (SCHEDULE names the EB uid), PROCESSOR,
HISTORY (one row, ORIGIN ``almarules simulate``); POINTING and FLAG_CMD are empty. Main
table: cross-correlations only, rows ordered by TIME, DATA_DESC_ID, ANTENNA1, ANTENNA2;
DATA (complex64) and FLAG in TiledShapeStMan, WEIGHT/SIGMA per correlation, no
WEIGHT_SPECTRUM, MODEL_DATA or CORRECTED_DATA.

Work is done in chunks of consecutive integrations on one field (at most
`CHUNK_VISIBILITIES`): the sky model with numexpr (2 threads), corruptions and noise per
integration on a 2-thread pool, and the table writes on a background thread, so memory
stays bounded (a few hundred MB) whatever the length of the observation.

Execution blocks: one EB writes exactly ``OUT``; several write ``<OUT stem>_eb1.ms``,
``<OUT stem>_eb2.ms``, ... beside it (``OUT`` = ``dir/name.ms`` gives ``dir/name_eb1.ms``);
each EB starts ``eb_gap`` after the previous one ends, has its own gains, bandpasses and
noise, and the same sky. Truth files: ``<MS path without .ms>.truth.json``. Every MS is
written under a temporary name in the target directory and renamed when complete.

Determinism: every random draw comes from ``numpy.random.SeedSequence(seed,
spawn_key=(eb, purpose, ...))`` -- gains (eb, 1), bandpass (eb, 2, spw), noise
(eb, 3, integration, spw) -- so the same seed gives the same data whatever the chunking
or the number of threads.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import time as _time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from almarules.dsl.units import UnitError, parse_quantity, parse_unit
from almarules.kernels import corrupt as kcorrupt
from almarules.kernels import noise as knoise
from almarules.kernels import sky as ksky

__all__ = ["SimConfig", "SimConfigError", "SimError", "load_sim_config", "parse_sim_config", "simulate",
           "load_array", "ArrayLayout", "output_paths", "ARRAY_DIR", "OBS_MODES"]

ARRAY_DIR = Path(__file__).resolve().parent / "arrays"
ARRAY_ALIASES = {
    "c-1": "alma.cycle12.1", "c-4": "alma.cycle12.4", "c-7": "alma.cycle12.7", "c40-3": "alma.cycle4.3",
    "7m": "aca.cycle12.named", "aca": "aca.cycle12.named", "aca.cycle12": "aca.cycle12.named",
}
# WGS84 (longitude, latitude [rad], height [m]) of CASA's Observatories table (python-casacore
# measures data); used when the measures data cannot be read.
_OBSERVATORIES = {
    "ALMA": (-1.1825465955049892, -0.4018251640113072, 5056.8),
    "ACA": (-1.1825456819705693, -0.40191120447707007, 5056.8),
}
# facts intent -> ALMA STATE.OBS_MODE item
OBS_MODES = {
    "BANDPASS": "CALIBRATE_BANDPASS#ON_SOURCE", "AMPLITUDE": "CALIBRATE_FLUX#ON_SOURCE",
    "PHASE": "CALIBRATE_PHASE#ON_SOURCE", "TARGET": "OBSERVE_TARGET#ON_SOURCE",
    "CHECK": "OBSERVE_CHECK_SOURCE#ON_SOURCE", "ATMOSPHERE": "CALIBRATE_ATMOSPHERE#ON_SOURCE",
    "WVR": "CALIBRATE_WVR#ON_SOURCE", "POINTING": "CALIBRATE_POINTING#ON_SOURCE",
    "POLARIZATION": "CALIBRATE_POLARIZATION#ON_SOURCE", "DELAY": "CALIBRATE_DELAY#ON_SOURCE",
    "FOCUS": "CALIBRATE_FOCUS#ON_SOURCE", "SIDEBAND": "CALIBRATE_SIDEBAND_RATIO#ON_SOURCE",
}
SimIntent = Literal["BANDPASS", "AMPLITUDE", "PHASE", "TARGET", "CHECK", "ATMOSPHERE", "WVR", "POINTING",
                    "POLARIZATION", "DELAY", "FOCUS", "SIDEBAND"]
_ROLE_INTENTS = {"BANDPASS", "AMPLITUDE", "PHASE", "TARGET", "CHECK"}
# ALMA receiver bands (GHz) for default spw names
_BANDS = [(1, 35, 52), (2, 65, 90), (3, 84, 116), (4, 125, 163), (5, 158, 211), (6, 211, 275),
          (7, 275, 373), (8, 385, 500), (9, 602, 720), (10, 787, 950)]
_MODE_DEFAULTS = {"TDM": (128, 15.625e6), "FDM": (1920, 0.9765625e6)}
_HANNING_EBW = 2.667  # effective (noise) bandwidth / channel width with online Hanning smoothing
_MJD0 = _dt.datetime(1858, 11, 17, tzinfo=_dt.timezone.utc)
VERSION = 1  # truth-file format


class SimConfigError(ValueError):
    """A simulation config that cannot be read or is inconsistent; one line naming the field."""


class SimError(RuntimeError):
    """A simulation that cannot be run as asked (e.g. the output exists); one line."""


# ---------------------------------------------------------------- config: value types
def _unit_converter(unit: str):
    scale_to, dim_to = parse_unit(unit)

    def convert(value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool):
            raise ValueError(f"expected a quantity in {unit}, got a boolean")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                canonical, dim = parse_quantity(value)
            except UnitError as exc:
                raise ValueError(str(exc)) from None
            if dim.is_dimensionless:
                return canonical  # a plain number: in `unit`
            if dim != dim_to:
                raise ValueError(f"{value!r} is not compatible with {unit}")
            return canonical / scale_to
        raise ValueError(f"expected a number (in {unit}) or a quantity such as '1 {unit}'")

    return convert


def Q(unit: str):
    """A float stored in `unit`; a plain number is read in `unit`, a string may carry any compatible unit."""
    return Annotated[float, BeforeValidator(_unit_converter(unit)),
                     Field(json_schema_extra={"unit": unit})]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]


def _angle(value: Any, kind: str) -> float:
    """RA ('16h00m00s', '16:00:00', degrees) or Dec ('-30d00m00s', '-30:00:00', degrees) -> degrees."""
    from astropy.coordinates import Angle
    import astropy.units as u

    if isinstance(value, bool):
        raise ValueError("expected an angle, got a boolean")
    if isinstance(value, (int, float)):
        deg = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if kind == "ra" and ("h" in text or ":" in text):
                deg = Angle(text, unit=u.hourangle).degree
            elif any(c.isalpha() for c in text):
                deg = Angle(text).degree
            else:
                deg = Angle(text, unit=u.deg).degree
        except Exception:  # noqa: BLE001 - astropy raises several kinds
            raise ValueError(f"cannot read {value!r} as an angle "
                             f"(e.g. {'16h00m00.0s' if kind == 'ra' else '-30d00m00.0s'} or degrees)") from None
    else:
        raise ValueError("expected an angle string or a number of degrees")
    if kind == "dec" and not -90.0 <= deg <= 90.0:
        raise ValueError(f"declination {deg:g} deg is outside [-90, 90]")
    return deg % 360.0 if kind == "ra" else deg


# ---------------------------------------------------------------- config: models
class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineConfig(_M):
    """A Gaussian spectral line added to a component's spectrum (peak in Jy)."""

    peak: Q("Jy")
    frequency: Optional[Q("Hz")] = Field(default=None, description="centre frequency (in `frame`)")
    frame: Literal["LSRK", "TOPO"] = "LSRK"
    rest_frequency: Optional[Q("Hz")] = None
    velocity: Optional[Q("km/s")] = Field(default=None, description="radio velocity (LSRK)")
    fwhm: Optional[float] = Field(default=None, description="FWHM in km/s (filled from a velocity)")
    fwhm_frequency: Optional[Q("Hz")] = Field(default=None, description="FWHM in Hz (filled from a frequency)")
    transition: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _width(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("fwhm"), str):
            text = data["fwhm"]
            try:
                canonical, dim = parse_quantity(text)
            except UnitError as exc:
                raise ValueError(f"fwhm: {exc}") from None
            data = dict(data)
            if dim == parse_unit("Hz")[1]:
                data["fwhm_frequency"] = canonical
                data.pop("fwhm")
            elif dim == parse_unit("km/s")[1]:
                data["fwhm"] = canonical / 1e3
            elif dim.is_dimensionless:
                data["fwhm"] = canonical
            else:
                raise ValueError(f"fwhm: {text!r} is neither a velocity nor a frequency")
        return data

    @model_validator(mode="after")
    def _check(self) -> "LineConfig":
        if self.frequency is None and (self.rest_frequency is None or self.velocity is None):
            raise ValueError("give the line centre as 'frequency', or as 'rest_frequency' and 'velocity'")
        if self.frequency is not None and self.velocity is not None:
            raise ValueError("give either 'frequency' or 'velocity', not both")
        if (self.fwhm is None) == (self.fwhm_frequency is None):
            raise ValueError("give the line width 'fwhm' (e.g. '30 km/s' or '20 MHz')")
        if (self.fwhm or 0) < 0 or (self.fwhm_frequency or 0) < 0:
            raise ValueError("fwhm must be positive")
        return self

    def centre_hz(self) -> float:
        """Centre frequency in `frame` (Hz); radio convention nu = nu0 (1 - v/c) for a velocity."""
        if self.frequency is not None:
            return self.frequency
        return self.rest_frequency * (1.0 - self.velocity * 1e3 / ksky.C)

    def fwhm_hz(self) -> float:
        if self.fwhm_frequency is not None:
            return self.fwhm_frequency
        ref = self.rest_frequency if self.rest_frequency is not None else self.centre_hz()
        return ref * self.fwhm * 1e3 / ksky.C


class ComponentConfig(_M):
    """A sky component: a point or an elliptical Gaussian, offset from the field centre."""

    shape: Literal["point", "gaussian"] = "point"
    flux: Q("Jy") = Field(default=0.0, description="flux density (integrated, for a Gaussian) at the reference frequency")
    spectral_index: float = 0.0
    reference_frequency: Optional[Q("Hz")] = None
    offset: tuple[Q("arcsec"), Q("arcsec")] = Field(
        default=(0.0, 0.0), description="(east, north) direction cosines about the field centre, arcsec")
    major: Optional[Q("arcsec")] = Field(default=None, description="FWHM major axis")
    minor: Optional[Q("arcsec")] = Field(default=None, description="FWHM minor axis")
    pa: Q("deg") = Field(default=0.0, description="position angle of the major axis, north through east")
    lines: list[LineConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "ComponentConfig":
        if self.shape == "gaussian":
            if self.major is None or self.minor is None:
                raise ValueError("a gaussian needs 'major' and 'minor' (FWHM, e.g. '0.8 arcsec')")
            if self.minor <= 0 or self.major <= 0:
                raise ValueError("major and minor must be positive")
            if self.minor > self.major:
                raise ValueError("minor is larger than major")
        elif self.major is not None or self.minor is not None:
            raise ValueError("a point component has no 'major'/'minor'; use shape: gaussian")
        return self


class FieldConfig(_M):
    name: str = Field(min_length=1)
    ra: float = Field(description="J2000 right ascension (degrees; '16h00m00s' accepted)")
    dec: float = Field(description="J2000 declination (degrees; '-30d00m00s' accepted)")
    intents: list[SimIntent] = Field(min_length=1)
    components: list[ComponentConfig] = Field(default_factory=list)
    pointings: Optional[list[tuple[Q("arcsec"), Q("arcsec")]]] = Field(
        default=None, description="mosaic pointings: (RA offset x cos(dec), Dec offset) from (ra, dec), arcsec")

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, v: Any) -> float:
        return _angle(v, "ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, v: Any) -> float:
        return _angle(v, "dec")

    @field_validator("pointings")
    @classmethod
    def _pointings(cls, v):
        if v is not None and not v:
            raise ValueError("give at least one pointing, or leave 'pointings' out")
        return v


class SpwConfig(_M):
    name: Optional[str] = None
    mode: Literal["TDM", "FDM"] = "TDM"
    nchan: Optional[Int] = Field(default=None, gt=0, description="channels (default: TDM 128, FDM 1920)")
    start_frequency: Optional[Q("Hz")] = Field(default=None, description="centre of the first channel")
    centre_frequency: Optional[Q("Hz")] = Field(default=None, description="centre of the band")
    channel_width: Optional[Q("Hz")] = Field(default=None, description="(negative: decreasing frequency)")
    online_hanning: bool = False
    baseband: Optional[Int] = Field(default=None, ge=1, le=4)
    tsys: Optional[Q("K")] = Field(default=None, gt=0, description="overrides noise.tsys for this spw")

    @model_validator(mode="after")
    def _check(self) -> "SpwConfig":
        if (self.start_frequency is None) == (self.centre_frequency is None):
            raise ValueError("give exactly one of 'start_frequency' and 'centre_frequency'")
        if self.channel_width is not None and self.channel_width == 0:
            raise ValueError("channel_width must not be 0")
        return self

    def frequencies(self) -> np.ndarray:
        nchan, width = self.resolved()
        if self.start_frequency is not None:
            return self.start_frequency + width * np.arange(nchan)
        return self.centre_frequency + width * (np.arange(nchan) - (nchan - 1) / 2.0)

    def resolved(self) -> tuple[int, float]:
        dn, dw = _MODE_DEFAULTS[self.mode]
        return (self.nchan or dn), (self.channel_width if self.channel_width is not None else dw)


class ScheduleConfig(_M):
    start: Optional[str] = Field(default=None, description="UTC start, ISO 8601 (2024-06-15T02:40:00)")
    date: Optional[str] = Field(default=None, description="UTC date, with start_hour_angle or hour_angle_range")
    start_hour_angle: Optional[Q("h")] = Field(default=None, description="hour angle of the first target at the start")
    hour_angle_range: Optional[tuple[Q("h"), Q("h")]] = None
    duration: Optional[Q("s")] = Field(default=None, gt=0, description="length of one execution block (default 1 h)")
    integration: Q("s") = Field(default=6.048, gt=0)
    bandpass_scan: Q("s") = Field(default=300.0, gt=0)
    flux_scan: Q("s") = Field(default=120.0, gt=0)
    phase_scan: Q("s") = Field(default=30.0, gt=0)
    target_scan: Q("s") = Field(default=360.0, gt=0, description="per visit of each target between phase scans")
    check_scan: Q("s") = Field(default=60.0, gt=0)
    scan_gap: Q("s") = Field(default=20.0, ge=0, description="slew/setup time between scans")
    atmosphere_scans: bool = False
    atmosphere_scan: Optional[Q("s")] = Field(default=None, gt=0, description="default 3 integrations")
    atmosphere_interval: Q("s") = Field(default=1200.0, gt=0)
    execution_blocks: Int = Field(default=1, ge=1, le=50)
    eb_gap: Q("s") = Field(default=600.0, ge=0)
    min_elevation: Q("deg") = Field(default=5.0, ge=-90, le=90)

    @field_validator("start", "date", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        if isinstance(v, (_dt.datetime, _dt.date)):
            return v.isoformat()
        return v

    @model_validator(mode="after")
    def _check(self) -> "ScheduleConfig":
        has_ha = self.start_hour_angle is not None or self.hour_angle_range is not None
        if self.start is not None and (self.date is not None or has_ha):
            raise ValueError("give either 'start', or 'date' with 'start_hour_angle' or 'hour_angle_range'")
        if self.start is None and not (self.date is not None and has_ha):
            raise ValueError("give 'start' (UTC), or 'date' with 'start_hour_angle' or 'hour_angle_range'")
        if self.start_hour_angle is not None and self.hour_angle_range is not None:
            raise ValueError("give either 'start_hour_angle' or 'hour_angle_range', not both")
        if self.hour_angle_range is not None:
            a, b = self.hour_angle_range
            if b <= a:
                raise ValueError("hour_angle_range must increase")
            if self.duration is not None:
                raise ValueError("give either 'duration' or 'hour_angle_range', not both")
        for key in ("start", "date"):
            value = getattr(self, key)
            if value is not None:
                try:
                    _parse_utc(value)
                except ValueError:
                    raise ValueError(f"{key}: cannot read {value!r} as a UTC date-time (2024-06-15T02:40:00)") from None
        return self


class AtmosphereConfig(_M):
    trx: Q("K") = Field(gt=0)
    tatm: Q("K") = Field(default=260.0, gt=0)
    tau_zenith: float = Field(ge=0)


class NoiseConfig(_M):
    enabled: bool = True
    tsys: Q("K") = Field(default=100.0, gt=0, description="system temperature (ignored with 'atmosphere')")
    aperture_efficiency: float = Field(default=0.7, gt=0, le=1)
    correlator_efficiency: float = Field(default=1.0, gt=0, le=1)
    atmosphere: Optional[AtmosphereConfig] = Field(
        default=None, description="elevation-dependent Tsys from receiver temperature and zenith opacity")


class CorruptionConfig(_M):
    enabled: bool = True
    gain_amplitude: float = Field(default=0.05, ge=0, description="rms of the static log-amplitude")
    gain_amplitude_drift: float = Field(default=0.03, ge=0, description="rms of the relative amplitude drift")
    gain_phase: Q("deg") = Field(default=20.0, ge=0)
    gain_phase_pol: Q("deg") = Field(default=5.0, ge=0, description="rms X-Y phase difference")
    gain_phase_drift: Q("deg") = Field(default=20.0, ge=0)
    drift_periods: tuple[Q("s"), Q("s")] = (600.0, 3600.0)
    bandpass: bool = True
    bandpass_slope: float = Field(default=0.04, ge=0)
    bandpass_ripple: tuple[float, float] = (0.01, 0.03)
    bandpass_phase: Q("deg") = Field(default=10.0, ge=0)
    bandpass_delay: Q("ps") = Field(default=20.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "CorruptionConfig":
        if not 0 < self.drift_periods[0] <= self.drift_periods[1]:
            raise ValueError("drift_periods must be positive and increasing")
        if not 0 <= self.bandpass_ripple[0] <= self.bandpass_ripple[1]:
            raise ValueError("bandpass_ripple must be [min, max] with 0 <= min <= max")
        return self


class FlagConfig(_M):
    antennas: list[str] = Field(default_factory=list, description="antenna (or pad) names flagged in full")
    channels: dict[Int, list[tuple[Int, Int]]] = Field(
        default_factory=dict, description="spw -> [[first, last], ...] channel ranges flagged (inclusive)")


class SimConfig(_M):
    """A simulation: see ``examples/sim/README.md`` for every key."""

    project: str = "2099.1.00001.S"
    observer: str = "almarules"
    site: str = "ALMA"
    array: str = Field(min_length=1, description="configuration name (C-1, C-4, C-7, C40-3, 7m) or file path")
    antennas: Optional[Union[Int, list[str]]] = Field(
        default=None, description="number of pads to use (spread over the file), or their names")
    schedule: ScheduleConfig
    fields: list[FieldConfig] = Field(min_length=1)
    spws: list[SpwConfig] = Field(min_length=1)
    reference_frequency: Optional[Q("Hz")] = Field(
        default=None, description="for fluxes and spectral indices (default: mean spw centre)")
    primary_beam: Literal["gaussian", "none"] = "gaussian"
    pb_fwhm_factor: float = Field(default=ksky.PB_FWHM_FACTOR, gt=0)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    corruptions: CorruptionConfig = Field(default_factory=CorruptionConfig)
    flags: FlagConfig = Field(default_factory=FlagConfig)
    seed: Int = Field(default=0, ge=0)

    @field_validator("antennas")
    @classmethod
    def _antennas(cls, v):
        if isinstance(v, int) and v < 2:
            raise ValueError("an interferometer needs at least 2 antennas")
        return v

    @model_validator(mode="after")
    def _check(self) -> "SimConfig":
        names = [f.name for f in self.fields]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ValueError(f"fields[{i}].name: {n!r} is given twice")
        if not any("TARGET" in f.intents for f in self.fields):
            raise ValueError("fields: no field has the TARGET intent")
        for spw, ranges in self.flags.channels.items():
            if not 0 <= spw < len(self.spws):
                raise ValueError(f"flags.channels: no spw {spw} (spws are 0..{len(self.spws) - 1})")
            nchan = self.spws[spw].resolved()[0]
            for a, b in ranges:
                if not 0 <= a <= b < nchan:
                    raise ValueError(f"flags.channels[{spw}]: range [{a}, {b}] is outside channels 0..{nchan - 1}")
        return self


# ---------------------------------------------------------------- config loading
def _format_validation(exc: ValidationError, source: str) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = ""
    for part in first["loc"]:
        if isinstance(part, int):
            loc += f"[{part}]"
        elif part.startswith("function-") or part in ("tagged-union",):
            continue
        else:
            loc += f".{part}" if loc else str(part)
    msg = first["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key missing"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    where = f"{loc}: " if loc else ""
    return f"{source}: {where}{msg}{more}".replace("\n", " ")


def parse_sim_config(data: Any, source: str = "<config>") -> SimConfig:
    """Validate a config mapping; errors are one-line `SimConfigError`s naming the key."""
    if not isinstance(data, dict):
        raise SimConfigError(f"{source}: a simulation config is a mapping (array, schedule, fields, spws, ...)")
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        raise SimConfigError(_format_validation(exc, source)) from None


def load_sim_config(path: str | Path) -> SimConfig:
    """Read and validate a YAML (or JSON) simulation config."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SimConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_sim_config(data, str(path))


# ---------------------------------------------------------------- arrays and sites
@dataclass
class ArrayLayout:
    """Antennas of an array configuration: ITRF positions (m), names, pads, diameters (m)."""

    names: list[str]
    stations: list[str]
    positions: np.ndarray  # (nant, 3) ITRF, m
    diameters: np.ndarray  # (nant,)
    observatory: str
    source: str


def _observatory(name: str) -> tuple[float, float, float]:
    """WGS84 (lon, lat, height) of an observatory of CASA's Observatories table."""
    try:
        from casacore.measures import measures

        dm = measures()
        pos = dm.measure(dm.observatory(name), "WGS84")
        return (float(pos["m0"]["value"]), float(pos["m1"]["value"]), float(pos["m2"]["value"]))
    except Exception:  # noqa: BLE001 - unknown name or no measures data
        if name.upper() in _OBSERVATORIES:
            return _OBSERVATORIES[name.upper()]
        raise SimConfigError(f"unknown observatory {name!r} (not in casacore's Observatories table)") from None


def _loc_to_itrf(lon: float, lat: float, alt: float, loc: np.ndarray) -> np.ndarray:
    """CASA simutil.locxyz2itrf: local tangent-plane (east, north, up) metres -> ITRF metres."""
    a, b = 6378137.0, 6356752.3142  # WGS84 semi-axes
    ae = math.acos(b / a)
    sphi = math.sin(lat)
    n = a / math.sqrt(1.0 - (math.sin(ae) * sphi) ** 2)
    x, y, z = loc[:, 0], loc[:, 1], loc[:, 2]
    t = (n + z + alt) * math.cos(lat) - y * sphi
    return np.stack([t * math.cos(lon) - x * math.sin(lon),
                     t * math.sin(lon) + x * math.cos(lon),
                     (n * (b / a) ** 2 + z + alt) * sphi + y * math.cos(lat)], axis=1)


def _geodetic_to_itrf(lon: float, lat: float, h: float) -> np.ndarray:
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    n = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    return np.array([(n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
                     (n * (1 - e2) + h) * math.sin(lat)])


def _twelve_metre_names(n: int) -> list[str]:
    names = [f"DA{i}" for i in range(41, 66)] + [f"DV{i:02d}" for i in range(1, 26)] + [f"PM{i:02d}" for i in range(1, 5)]
    names += [f"SIM{i:03d}" for i in range(1, max(0, n - len(names)) + 1)]
    return names[:n]


def array_file(spec: str) -> Path:
    """The configuration file for a name (``C-4``, ``alma.cycle12.4``) or a path."""
    key = spec.strip()
    alias = ARRAY_ALIASES.get(key.lower(), key)
    for cand in (ARRAY_DIR / alias, ARRAY_DIR / f"{alias}.cfg"):
        if cand.is_file() and cand.parent == ARRAY_DIR:
            return cand
    p = Path(key)
    if p.is_file():
        return p
    shipped = sorted(ARRAY_ALIASES) + sorted(f.stem for f in ARRAY_DIR.glob("*.cfg"))
    raise SimConfigError(f"array: no configuration {spec!r} (shipped: {', '.join(shipped)}; or give a file path)")


def load_array(spec: str, select: Optional[Union[int, list[str]]] = None) -> ArrayLayout:
    """Read a CASA simobserve configuration file (``# observatory=``, ``# coordsys=LOC|XYZ``,
    then ``x y z diameter pad [antenna]`` per line) into ITRF positions."""
    path = array_file(spec)
    observatory, coordsys = "ALMA", "LOC"
    rows = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            if body.lower().startswith("observatory="):
                observatory = body.split("=", 1)[1].strip()
            elif body.lower().startswith("coordsys="):
                coordsys = body.split("=", 1)[1].strip().split()[0].upper()
            continue
        parts = line.split("#", 1)[0].split()
        try:
            xyz = [float(v) for v in parts[:3]]
            diam = float(parts[3])
        except (ValueError, IndexError):
            raise SimConfigError(f"array: {path}:{lineno}: expected 'x y z diameter pad [name]'") from None
        pad = parts[4] if len(parts) > 4 else f"P{len(rows) + 1:03d}"
        name = parts[5] if len(parts) > 5 else None
        rows.append((xyz, diam, pad, name))
    if len(rows) < 2:
        raise SimConfigError(f"array: {path}: fewer than 2 antennas")
    xyz = np.array([r[0] for r in rows], dtype=np.float64)
    if coordsys == "LOC":
        lon, lat, h = _observatory(observatory)
        itrf = _loc_to_itrf(lon, lat, h, xyz)
    elif coordsys in ("XYZ", "ITRF", "GLOBAL"):
        itrf = xyz
    else:
        raise SimConfigError(f"array: {path}: coordsys {coordsys!r} is not supported (LOC or XYZ)")
    diam = np.array([r[1] for r in rows])
    pads = [r[2] for r in rows]
    if all(r[3] for r in rows):
        names = [r[3] for r in rows]
    elif np.all(np.round(diam) == 7):
        names = [f"CM{i:02d}" for i in range(1, len(rows) + 1)]
    else:
        names = _twelve_metre_names(len(rows))
    idx = list(range(len(rows)))
    if isinstance(select, int):
        if select > len(rows):
            raise SimConfigError(f"antennas: {select} asked, the configuration has {len(rows)} pads")
        idx = sorted(set(np.round(np.linspace(0, len(rows) - 1, select)).astype(int).tolist()))
    elif isinstance(select, list):
        idx = []
        for s in select:
            if s in names:
                idx.append(names.index(s))
            elif s in pads:
                idx.append(pads.index(s))
            else:
                raise SimConfigError(f"antennas: no antenna or pad {s!r} in {path.name}")
        if len(set(idx)) != len(idx):
            raise SimConfigError("antennas: an antenna is listed twice")
        if len(idx) < 2:
            raise SimConfigError("antennas: an interferometer needs at least 2 antennas")
    return ArrayLayout([names[i] for i in idx], [pads[i] for i in idx], itrf[idx], diam[idx], observatory, str(path))


# ---------------------------------------------------------------- time helpers
def _parse_utc(text: str) -> _dt.datetime:
    t = text.strip().replace("Z", "")
    if " " in t and "T" not in t:
        t = t.replace(" ", "T", 1)
    d = _dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc)


def _mjd_seconds(d: _dt.datetime) -> float:
    return (d - _MJD0).total_seconds()


def _utc_text(mjd_s: float) -> str:
    d = _MJD0 + _dt.timedelta(seconds=float(mjd_s))
    return d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


# ---------------------------------------------------------------- geometry (casacore measures)
class _Geometry:
    """UVW rotation matrices, elevations, hour angles and Doppler factors from casacore measures."""

    def __init__(self, site_itrf: np.ndarray, lon: float, lat: float):
        from casacore.measures import measures
        from casacore.quanta import quantity

        self.q = quantity
        self.dm = measures()
        self.dm.do_frame(self.dm.position("ITRF", *[quantity(float(x), "m") for x in site_itrf]))
        self.lon, self.lat = lon, lat
        self.up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
        self._unit = self.dm.baseline("itrf", quantity([1.0, 0.0, 0.0], "m"), quantity([0.0, 1.0, 0.0], "m"),
                                      quantity([0.0, 0.0, 1.0], "m"))
        self._dir = None

    def _frame(self, t: float, ra: float, dec: float) -> None:
        self.dm.do_frame(self.dm.epoch("UTC", self.q(float(t), "s")))
        if self._dir != (ra, dec):
            self.dm.do_frame(self.dm.direction("J2000", self.q(ra, "rad"), self.q(dec, "rad")))
            self._dir = (ra, dec)

    def uvw_matrix(self, t: float, ra: float, dec: float) -> np.ndarray:
        """3x3 M with uvw = M @ xyz_ITRF (J2000 uvw frame of the direction (ra, dec) at UTC t)."""
        self._frame(t, ra, dec)
        x = np.asarray(self.dm.to_uvw(self._unit)["xyz"].get_value(), dtype=np.float64).reshape(3, 3)
        return x.T

    def elevation(self, m: np.ndarray) -> float:
        """Elevation (rad) of the w axis of a uvw matrix, from the site's geodetic vertical."""
        return math.asin(max(-1.0, min(1.0, float(m[2] @ self.up))))

    def hour_angle(self, m: np.ndarray) -> float:
        """Local hour angle (rad, in (-pi, pi]) of the w axis of a uvw matrix."""
        w = m[2]
        ha = math.atan2(-w[1], w[0]) + self.lon
        return (ha + math.pi) % (2 * math.pi) - math.pi

    def topo_factor(self, t: float, ra: float, dec: float, nu: float) -> float:
        """nu_TOPO / nu_LSRK for a source at (ra, dec) at UTC t."""
        self._frame(t, ra, dec)
        f = self.dm.measure(self.dm.frequency("LSRK", self.q(float(nu), "Hz")), "TOPO")
        return float(f["m0"]["value"]) / float(nu)


# ---------------------------------------------------------------- the plan
@dataclass
class _Spw:
    id: int
    name: str
    mode: str
    freqs: np.ndarray
    width: float
    ebw: float
    resolution: float
    hanning: bool
    tsys: Optional[float]
    baseband: int

    @property
    def nchan(self) -> int:
        return int(self.freqs.size)

    @property
    def centre(self) -> float:
        return float((self.freqs[0] + self.freqs[-1]) / 2.0)

    @property
    def bandwidth(self) -> float:
        return abs(self.width) * self.nchan


@dataclass
class _Source:
    index: int
    cfg: FieldConfig
    ra: float  # rad
    dec: float
    pointings: list[tuple[float, float]]  # (ra, dec) rad of each pointing
    pointing_offsets: list[tuple[float, float]]  # arcsec, as in the config
    field_ids: list[int] = field(default_factory=list)


@dataclass
class _Scan:
    number: int
    source: int
    role: str  # bandpass, flux, calibrator, phase, target, check, atmosphere
    obs_mode: str
    intents: list[str]
    subscans: list[tuple[int, int, float, int]] = field(default_factory=list)  # (field_id, sub_scan, start, nint)

    @property
    def start(self) -> float:
        return self.subscans[0][2]


@dataclass
class _EBPlan:
    index: int
    start: float
    end: float
    scans: list[_Scan]
    uid: str


class _Plan:
    def __init__(self, cfg: SimConfig, seed: int):
        self.cfg = cfg
        self.seed = seed
        self.layout = load_array(cfg.array, cfg.antennas)
        diam = np.unique(np.round(self.layout.diameters, 3))
        if diam.size != 1:
            raise SimConfigError("array: mixed dish diameters are not supported")
        self.diameter = float(diam[0])
        self.nant = len(self.layout.names)
        for name in cfg.flags.antennas:
            if name not in self.layout.names and name not in self.layout.stations:
                raise SimConfigError(f"flags.antennas: no antenna or pad {name!r} in the array "
                                     f"({', '.join(self.layout.names[:6])}, ...)")
        self.flagged_ants = sorted({(self.layout.names.index(n) if n in self.layout.names
                                     else self.layout.stations.index(n)) for n in cfg.flags.antennas})
        self.site_lon, self.site_lat, self.site_h = _observatory(cfg.site)
        self.site_itrf = _geodetic_to_itrf(self.site_lon, self.site_lat, self.site_h)
        self.geometry = _Geometry(self.site_itrf, self.site_lon, self.site_lat)
        self.a1, self.a2 = np.triu_indices(self.nant, 1)
        self.a1 = self.a1.astype(np.int32)
        self.a2 = self.a2.astype(np.int32)
        self.nbl = self.a1.size
        self.spws = self._spws()
        self.ref_freq = cfg.reference_frequency or float(np.mean([s.centre for s in self.spws]))
        self.sources, self.field_rows = self._sources()
        self.states: dict[tuple[str, int], int] = {}
        self.ebs = self._schedule()

    # ------------------------------------------------ spectral windows
    def _spws(self) -> list[_Spw]:
        out = []
        per_bb: dict[int, int] = {}
        for i, s in enumerate(self.cfg.spws):
            nchan, width = s.resolved()
            freqs = s.frequencies()
            if freqs.min() - abs(width) / 2 <= 0:
                raise SimConfigError(f"spws[{i}]: channel frequencies must be positive")
            bb = s.baseband or (i % 4) + 1
            per_bb[bb] = per_bb.get(bb, 0) + 1
            name = s.name
            if name is None:
                centre = float(freqs.mean()) / 1e9
                band = next((b for b, lo, hi in _BANDS if lo <= centre <= hi), None)
                if band is None:
                    raise SimConfigError(f"spws[{i}]: {centre:.3f} GHz is in no ALMA band; give a 'name'")
                name = f"ALMA_RB_{band:02d}#BB_{bb}#SW-{per_bb[bb]:02d}#FULL_RES"
            ebw = abs(width) * (_HANNING_EBW if s.online_hanning else 1.0)
            res = abs(width) * (2.0 if s.online_hanning else 1.0)
            out.append(_Spw(i, name, s.mode, freqs, float(width), ebw, res, s.online_hanning, s.tsys, bb))
        return out

    # ------------------------------------------------ fields
    def _sources(self):
        sources, rows = [], []
        for i, f in enumerate(self.cfg.fields):
            ra, dec = math.radians(f.ra), math.radians(f.dec)
            offsets = f.pointings or [(0.0, 0.0)]
            pts = []
            for dra, ddec in offsets:
                pdec = dec + math.radians(ddec / 3600.0)
                pra = (ra + math.radians(dra / 3600.0) / math.cos(dec)) % (2 * math.pi)
                if not -math.pi / 2 <= pdec <= math.pi / 2:
                    raise SimConfigError(f"fields[{i}].pointings: a pointing lies beyond the pole")
                pts.append((pra, pdec))
            src = _Source(i, f, ra, dec, pts, [tuple(map(float, o)) for o in offsets])
            for k, (pra, pdec) in enumerate(pts):
                src.field_ids.append(len(rows))
                rows.append((i, k, pra, pdec))
            sources.append(src)
        return sources, rows

    def _state(self, obs_mode: str, sub_scan: int) -> int:
        key = (obs_mode, sub_scan)
        if key not in self.states:
            self.states[key] = len(self.states)
        return self.states[key]

    # ------------------------------------------------ schedule
    def _start_times(self) -> list[float]:
        sch = self.cfg.schedule
        if sch.start is not None:
            return [_mjd_seconds(_parse_utc(sch.start))]
        # hour angle of the first target at the start
        target = next(s for s in self.sources if "TARGET" in s.cfg.intents)
        ra, dec = target.pointings[0]
        ha0 = sch.start_hour_angle if sch.start_hour_angle is not None else sch.hour_angle_range[0]
        day = _parse_utc(sch.date)
        t = _mjd_seconds(day.replace(hour=0, minute=0, second=0, microsecond=0))
        omega = 7.2921158553e-5  # rad per UT1 second (Earth rotation angle rate)
        want = math.radians(ha0 * 15.0)
        for it in range(3):
            ha = self.geometry.hour_angle(self.geometry.uvw_matrix(t, ra, dec))
            delta = want - ha
            delta = delta % (2 * math.pi) if it == 0 else (delta + math.pi) % (2 * math.pi) - math.pi
            t += delta / omega
        return [round(t, 3)]

    def _duration(self) -> float:
        sch = self.cfg.schedule
        if sch.hour_angle_range is not None:
            a, b = sch.hour_angle_range
            return (b - a) * 3600.0 / 1.00273781191135448
        return sch.duration if sch.duration is not None else 3600.0

    def _schedule(self) -> list[_EBPlan]:
        sch = self.cfg.schedule
        t0 = self._start_times()[0]
        duration = self._duration()
        ebs = []
        start = t0
        for e in range(sch.execution_blocks):
            scans, end = self._eb_scans(start, duration)
            uid = "uid://A002/X{:x}/X{:x}".format(
                int(np.random.SeedSequence(self.seed, spawn_key=(e, 0)).generate_state(1)[0]) & 0xFFFFFF, e + 1)
            ebs.append(_EBPlan(e, start, end, scans, uid))
            start = end + sch.eb_gap
        return ebs

    def _eb_scans(self, start: float, duration: float) -> tuple[list[_Scan], float]:
        sch = self.cfg.schedule
        dt = sch.integration
        atm_len = sch.atmosphere_scan or 3 * dt
        srcs = self.sources
        bandpass = [s for s in srcs if "BANDPASS" in s.cfg.intents]
        phase = [s for s in srcs if "PHASE" in s.cfg.intents]
        targets = [s for s in srcs if "TARGET" in s.cfg.intents]
        checks = [s for s in srcs if "CHECK" in s.cfg.intents]
        others = [s for s in srcs if not ({"BANDPASS", "PHASE", "TARGET", "CHECK"} & set(s.cfg.intents))]
        scans: list[_Scan] = []
        clock = [start]
        last_atm: dict[int, float] = {}

        def extras(src: _Source) -> list[str]:
            return [i for i in src.cfg.intents if i not in _ROLE_INTENTS]

        def add(src: _Source, role: str, intents: list[str], length: float, all_pointings: bool) -> None:
            obs_mode = ",".join(OBS_MODES[i] for i in intents)
            scan = _Scan(len(scans) + 1, src.index, role, obs_mode, intents)
            n = max(1, int(round(length / dt)))
            fids = src.field_ids if all_pointings else src.field_ids[:1]
            per = max(1, int(round(n / len(fids))))
            t = clock[0]
            for k, fid in enumerate(fids):
                sub = k + 1
                self._state(obs_mode, sub)
                scan.subscans.append((fid, sub, t, per))
                t += per * dt
            scans.append(scan)
            clock[0] = t + sch.scan_gap

        def atm(src: _Source, force: bool = False) -> None:
            if not sch.atmosphere_scans:
                return
            if not force and src.index in last_atm and clock[0] - last_atm[src.index] < sch.atmosphere_interval:
                return
            last_atm[src.index] = clock[0]
            intents = ["ATMOSPHERE"] + (["WVR"] if "WVR" in src.cfg.intents else [])
            add(src, "atmosphere", intents, atm_len, False)

        for s in bandpass:
            atm(s)
            add(s, "bandpass", ["BANDPASS"] + (["AMPLITUDE"] if "AMPLITUDE" in s.cfg.intents else []) + extras(s),
                sch.bandpass_scan, True)
        for s in others:
            atm(s)
            role = "flux" if "AMPLITUDE" in s.cfg.intents else "calibrator"
            add(s, role, [i for i in s.cfg.intents if i in ("AMPLITUDE",)] + extras(s), sch.flux_scan, True)
        def phase_scan() -> None:
            for ph in phase:  # a second phase calibrator follows the first
                atm(ph)
                add(ph, "phase", ["PHASE"] + extras(ph), sch.phase_scan, True)

        def cost(length: float) -> float:
            return max(1, round(length / dt)) * dt + sch.scan_gap

        end_block = cost(sch.check_scan) * len(checks) + cost(sch.phase_scan) * len(phase)
        cycle = sum(cost(sch.target_scan) for _ in targets) + cost(sch.phase_scan) * len(phase)
        phase_scan()
        first = True
        while first or clock[0] + cycle + end_block <= start + duration + 1e-6:
            for s in targets:
                atm(s)
                add(s, "target", ["TARGET"] + extras(s), sch.target_scan, True)
            phase_scan()
            first = False
        if checks:
            # the check source(s) near the end, then a closing phase scan
            for s in checks:
                atm(s)
                add(s, "check", ["CHECK"] + extras(s), sch.check_scan, True)
            phase_scan()
        end = clock[0] - sch.scan_gap
        return scans, end


# ---------------------------------------------------------------- outputs
def output_paths(out: str | Path, n_ebs: int) -> list[tuple[Path, Path]]:
    """(MS, truth file) paths: ``OUT`` for one EB, ``<stem>_eb<k>.ms`` beside it for several."""
    out = Path(out)
    stem = out.name[:-3] if out.name.endswith(".ms") else out.name
    if n_ebs == 1:
        ms = [out]
    else:
        ms = [out.parent / f"{stem}_eb{k + 1}.ms" for k in range(n_ebs)]
    res = []
    for m in ms:
        s = m.name[:-3] if m.name.endswith(".ms") else m.name
        res.append((m, m.parent / f"{s}.truth.json"))
    return res


# ---------------------------------------------------------------- the MS
def _main_desc():
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


def _main_dminfo(nchan_max: int) -> dict:
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


def _write_subtables(ct, ms, plan: _Plan, eb: _EBPlan, truth_lines: dict) -> None:
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


def _write_syscal(ct, ms, plan: _Plan, rows: list[tuple[int, int, float, float, float]]) -> None:
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


# ---------------------------------------------------------------- simulate one EB
@dataclass
class _Timeline:
    times: np.ndarray  # (nint,) MJD s, integration centres
    field: np.ndarray  # (nint,) FIELD row
    scan: np.ndarray
    state: np.ndarray
    scan_index: np.ndarray  # index into eb.scans


def _timeline(plan: _Plan, eb: _EBPlan) -> _Timeline:
    dt = plan.cfg.schedule.integration
    t, f, sc, st, si = [], [], [], [], []
    for k, scan in enumerate(eb.scans):
        for fid, sub, start, n in scan.subscans:
            state = plan.states[(scan.obs_mode, sub)]
            for j in range(n):
                t.append(start + (j + 0.5) * dt)
                f.append(fid)
                sc.append(scan.number)
                st.append(state)
                si.append(k)
    return _Timeline(np.round(np.array(t), 6), np.array(f, np.int32), np.array(sc, np.int32),
                     np.array(st, np.int32), np.array(si, np.int32))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))))


class _Timer:
    def __init__(self):
        self.t: dict[str, float] = {}

    def add(self, key: str, start: float) -> float:
        now = _time.perf_counter()
        self.t[key] = self.t.get(key, 0.0) + now - start
        return now


CHUNK_VISIBILITIES = 8_000_000  # visibilities (row x channel x correlation) computed per chunk


def _chunks(field: np.ndarray, per_chunk: int):
    """(start, stop) runs of integrations on one FIELD row, at most `per_chunk` long."""
    n = field.size
    c0 = 0
    while c0 < n:
        c1 = c0 + 1
        while c1 < n and c1 - c0 < per_chunk and field[c1] == field[c0]:
            c1 += 1
        yield c0, c1
        c0 = c1


class _Writer:
    """Writes computed chunks to the main table on a background thread (bounded queue).

    python-casacore lets numpy work go on while it copies into the table, so writing one
    chunk overlaps computing the next. Errors are re-raised in the caller by `put`/`close`.
    """

    def __init__(self, ms, plan: "_Plan", tl: "_Timeline", sigma, weight, flag_blocks, frow, uniform, timer):
        import queue
        import threading

        self.ms, self.plan, self.tl = ms, plan, tl
        self.sigma, self.weight = sigma.astype(np.float32), weight.astype(np.float32)
        self.flag_blocks, self.frow, self.uniform, self.timer = flag_blocks, frow, uniform, timer
        nspw = len(plan.spws)
        self.a1_all = np.tile(plan.a1, nspw)
        self.a2_all = np.tile(plan.a2, nspw)
        self.ddid_block = np.repeat(np.arange(nspw, dtype=np.int32), plan.nbl)
        self.error: Optional[BaseException] = None
        self.queue: "queue.Queue" = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._run, name="almarules-ms-writer", daemon=True)
        self.thread.start()

    def put(self, c0: int, c1: int, uvw: np.ndarray, data) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((c0, c1, uvw, data))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            try:
                t0 = _time.perf_counter()
                self._write(*item)
                self.timer.add("table writing (background thread)", t0)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self.error = exc

    def _write(self, c0: int, c1: int, uvw: np.ndarray, data) -> None:
        ms, plan, tl = self.ms, self.plan, self.tl
        nspw, nbl, npol = len(plan.spws), plan.nbl, 2
        nt = c1 - c0
        r0 = c0 * nspw * nbl
        nr = nt * nspw * nbl
        interval = plan.cfg.schedule.integration
        times = np.repeat(tl.times[c0:c1], nspw * nbl)
        ms.putcol("TIME", times, r0, nr)
        ms.putcol("TIME_CENTROID", times, r0, nr)
        ms.putcol("INTERVAL", np.full(nr, interval), r0, nr)
        ms.putcol("EXPOSURE", np.full(nr, interval), r0, nr)
        ms.putcol("ANTENNA1", np.tile(self.a1_all, nt), r0, nr)
        ms.putcol("ANTENNA2", np.tile(self.a2_all, nt), r0, nr)
        zeros = np.zeros(nr, np.int32)
        for col in ("FEED1", "FEED2", "OBSERVATION_ID", "ARRAY_ID", "PROCESSOR_ID"):
            ms.putcol(col, zeros, r0, nr)
        ms.putcol("DATA_DESC_ID", np.tile(self.ddid_block, nt), r0, nr)
        ms.putcol("FIELD_ID", np.repeat(tl.field[c0:c1], nspw * nbl), r0, nr)
        ms.putcol("SCAN_NUMBER", np.repeat(tl.scan[c0:c1], nspw * nbl), r0, nr)
        ms.putcol("STATE_ID", np.repeat(tl.state[c0:c1], nspw * nbl), r0, nr)
        ms.putcol("UVW", np.repeat(uvw[:, None], nspw, axis=1).reshape(-1, 3), r0, nr)
        sig = np.repeat(self.sigma[c0:c1], nbl, axis=1).reshape(-1)
        ms.putcol("SIGMA", np.repeat(sig[:, None], npol, axis=1), r0, nr)
        w = np.repeat(self.weight[c0:c1], nbl, axis=1).reshape(-1)
        ms.putcol("WEIGHT", np.repeat(w[:, None], npol, axis=1), r0, nr)
        ms.putcol("FLAG_ROW", np.tile(self.frow, nt), r0, nr)
        if self.uniform:
            nchan = data.shape[3]
            ms.putcol("DATA", data.reshape(nr, nchan, npol), r0, nr)
            fl = np.broadcast_to(np.stack(self.flag_blocks)[None], (nt, nspw, nbl, nchan, npol))
            ms.putcol("FLAG", np.ascontiguousarray(fl).reshape(nr, nchan, npol), r0, nr)
        else:
            for j in range(nt):
                for s in plan.spws:
                    start = r0 + (j * nspw + s.id) * nbl
                    ms.putcol("DATA", data[s.id][j], start, nbl)
                    ms.putcol("FLAG", self.flag_blocks[s.id], start, nbl)


def _simulate_eb(plan: _Plan, eb: _EBPlan, ms_path: Path, progress, done_before: int, total: int,
                 timer: _Timer, final_path: Path) -> dict:
    import casacore.tables as ct

    cfg = plan.cfg
    seed = plan.seed
    t_start = _time.perf_counter()
    tl = _timeline(plan, eb)
    nint = tl.times.size
    nspw, nbl, nant = len(plan.spws), plan.nbl, plan.nant
    npol = 2
    geo = plan.geometry
    pos = plan.layout.positions - plan.layout.positions.mean(axis=0)

    # -------------------------------------------- geometry per integration
    mats = np.empty((nint, 3, 3))
    elev = np.empty(nint)
    for i in range(nint):
        _, _, ra, dec = plan.field_rows[tl.field[i]]
        mats[i] = geo.uvw_matrix(tl.times[i], ra, dec)
        elev[i] = geo.elevation(mats[i])
    low = np.flatnonzero(elev < math.radians(cfg.schedule.min_elevation))
    if low.size:
        i = int(low[0])
        name = plan.sources[plan.field_rows[tl.field[i]][0]].cfg.name
        raise SimError(f"schedule: field {name} is at elevation {math.degrees(elev[i]):.1f} deg at "
                       f"{_utc_text(tl.times[i])} UTC, below min_elevation {cfg.schedule.min_elevation:g} deg; "
                       f"choose another start or hour angle")
    ant_uvw = np.einsum("tij,aj->tai", mats, pos)  # (nint, nant, 3); baselines per chunk below
    t0 = timer.add("uvw and geometry (casacore measures)", t_start)

    # -------------------------------------------- noise level per integration and spw
    nz = cfg.noise
    if nz.atmosphere is not None:
        tsys_t = knoise.tsys_airmass(nz.atmosphere.trx, nz.atmosphere.tatm, nz.atmosphere.tau_zenith, elev)
    else:
        tsys_t = np.full(nint, nz.tsys)
    tsys = np.empty((nint, nspw))
    for s in plan.spws:
        tsys[:, s.id] = s.tsys if s.tsys is not None else tsys_t
    sefd = knoise.sefd(tsys, plan.diameter, nz.aperture_efficiency)
    sigma = knoise.sigma_visibility(sefd, np.array([s.ebw for s in plan.spws])[None, :],
                                    cfg.schedule.integration, eta_c=nz.correlator_efficiency)  # (nint, nspw)
    weight = knoise.weight_from_sigma(sigma)

    # -------------------------------------------- corruptions
    cc = cfg.corruptions
    gains = None
    gain_params = None
    bp_params: list[Optional[kcorrupt.BandpassParams]] = [None] * nspw
    bb: list[Optional[np.ndarray]] = [None] * nspw
    if cc.enabled:
        gain_params = kcorrupt.draw_gains(
            _rng(seed, eb.index, 1), nant, npol, amp_rms=cc.gain_amplitude, amp_drift=cc.gain_amplitude_drift,
            phase_rms=math.radians(cc.gain_phase), pol_phase_rms=math.radians(cc.gain_phase_pol),
            phase_drift=math.radians(cc.gain_phase_drift), period_min=cc.drift_periods[0],
            period_max=cc.drift_periods[1], t0=eb.start)
        gains = kcorrupt.evaluate_gains(gain_params, tl.times)  # (nint, nant, npol)
        if cc.bandpass:
            for s in plan.spws:
                bp_params[s.id] = kcorrupt.draw_bandpass(
                    _rng(seed, eb.index, 2, s.id), nant, npol, s.centre, slope_rms=cc.bandpass_slope,
                    ripple_min=cc.bandpass_ripple[0], ripple_max=cc.bandpass_ripple[1],
                    phase_rms=math.radians(cc.bandpass_phase), delay_rms=cc.bandpass_delay * 1e-12)
                bb[s.id] = kcorrupt.baseline_bandpass(kcorrupt.evaluate_bandpass(bp_params[s.id], s.freqs),
                                                      plan.a1, plan.a2).astype(np.complex64)

    # -------------------------------------------- sky per (field row, spw)
    sky, line_truth, topo = _sky_model(plan, eb, tl)
    t0 = timer.add("sky-model setup (components, Doppler)", t0)

    # -------------------------------------------- flags
    ant_flag = np.zeros(nant, bool)
    ant_flag[plan.flagged_ants] = True
    row_flag = ant_flag[plan.a1] | ant_flag[plan.a2]  # (nbl,)
    chan_flag = []
    for s in plan.spws:
        cf = np.zeros(s.nchan, bool)
        for a, b in cfg.flags.channels.get(s.id, []):
            cf[a:b + 1] = True
        chan_flag.append(cf)

    # -------------------------------------------- the MS
    nchan_max = max(s.nchan for s in plan.spws)
    uniform = len({s.nchan for s in plan.spws}) == 1
    ms = ct.default_ms(str(ms_path), _main_desc(), _main_dminfo(nchan_max))
    try:
        ms.putcolkeyword("UVW", "MEASINFO", {"type": "uvw", "Ref": "J2000"})
        _write_subtables(ct, ms, plan, eb, line_truth)
        syscal_rows = []
        if cfg.schedule.atmosphere_scans:
            for k, scan in enumerate(eb.scans):
                if scan.role != "atmosphere":
                    continue
                idx = np.flatnonzero(tl.scan_index == k)
                tmid = float(tl.times[idx].mean())
                length = idx.size * cfg.schedule.integration
                for a in range(nant):
                    for s in plan.spws:
                        syscal_rows.append((a, s.id, tmid, length, float(tsys[idx[0], s.id])))
            _write_syscal(ct, ms, plan, syscal_rows)
        nrows = nint * nspw * nbl
        ms.addrows(nrows)
        t0 = timer.add("table writing", t0)

        per_chunk = max(1, int(CHUNK_VISIBILITIES // (nspw * nbl * nchan_max * npol)))
        flag_blocks = []
        for s in plan.spws:
            f = np.zeros((nbl, s.nchan, npol), bool)
            f[row_flag] = True
            f[:, chan_flag[s.id], :] = True
            flag_blocks.append(f)
        frow = np.stack([row_flag | chan_flag[s.id].all() for s in plan.spws]).reshape(-1)  # (nspw * nbl,)
        writer = _Writer(ms, plan, tl, sigma, weight, flag_blocks, frow, uniform, timer)
        pool = knoise._pool()
        done = 0
        try:
            for c0, c1 in _chunks(tl.field, per_chunk):
                nt = c1 - c0
                fid = int(tl.field[c0])
                uvw = ant_uvw[c0:c1, plan.a1] - ant_uvw[c0:c1, plan.a2]  # CASA: uvw(ANTENNA1) - uvw(ANTENNA2)
                data = np.empty((nt, nspw, nbl, nchan_max, npol), np.complex64) if uniform else None
                blocks = []
                for s in plan.spws:
                    t0 = _time.perf_counter()
                    model = np.zeros((nt, nbl, s.nchan), np.complex128)
                    comps = sky[(fid, s.id)](np.arange(c0, c1))
                    if comps:
                        ksky.predict(uvw, s.freqs, comps, out=model)
                    t0 = timer.add("sky model (direct Fourier sum)", t0)
                    out = data[:, s.id] if uniform else np.empty((nt, nbl, s.nchan, npol), np.complex64)
                    g = gains[c0:c1] if gains is not None else None
                    sig = sigma[c0:c1, s.id].astype(np.float32)

                    def finish(j: int, s=s, out=out, model=model, g=g, sig=sig) -> None:
                        # corruptions, then noise, of one integration (runs on a pool thread)
                        kcorrupt.apply_corruptions(model[j:j + 1], out[j:j + 1], plan.a1, plan.a2,
                                                   g[j:j + 1] if g is not None else None, bb[s.id])
                        if nz.enabled:
                            noise = np.empty((nbl, s.nchan, npol), np.complex64)
                            knoise.fill_standard_complex([(_rng(seed, eb.index, 3, c0 + j, s.id), noise)])
                            noise *= sig[j]
                            out[j] += noise

                    list(pool.map(finish, range(nt)))
                    del model
                    timer.add("corruptions and noise (2 threads)", t0)
                    if not uniform:
                        blocks.append(out)
                writer.put(c0, c1, uvw, data if uniform else blocks)
                done += nt * nspw * nbl
                if progress is not None:
                    progress(done_before + done, total)
        finally:
            t0 = _time.perf_counter()
            writer.close()
            timer.add("waiting for the table writer", t0)
        t0 = _time.perf_counter()
    finally:
        ms.close()
    timer.add("table writing", t0)

    return _truth(plan, eb, tl, elev, tsys, sefd, sigma, weight, gain_params, gains, bp_params, sky,
                  line_truth, topo, final_path, syscal_rows if cfg.schedule.atmosphere_scans else [],
                  row_flag, chan_flag)


def _sky_model(plan: _Plan, eb: _EBPlan, tl: _Timeline):
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
                l0, m0 = math.radians(c.offset[0] / 3600.0), math.radians(c.offset[1] / 3600.0)
                cra, cdec = ksky.radec_from_lm(l0, m0, src.ra, src.dec)
                l, m, n = ksky.lmn(cra, cdec, pra, pdec)
                if k == 0 and src.pointings[0] == (src.ra, src.dec):
                    l, m = l0, m0  # exactly the configured offsets at the field centre
                    n = math.sqrt(max(0.0, 1 - l * l - m * m))
                rho = math.acos(max(-1.0, min(1.0, n)))
                pb = (ksky.primary_beam_gaussian(rho, s.freqs, plan.diameter, cfg.pb_fwhm_factor)
                      if cfg.primary_beam == "gaussian" else np.ones(s.nchan))
                if rho == 0.0:
                    pb = np.ones(s.nchan)
                ref = c.reference_frequency or plan.ref_freq
                cont = ksky.power_law(c.flux, s.freqs, ref, c.spectral_index) * pb
                shape = c.shape
                major = math.radians((c.major or 0.0) / 3600.0)
                minor = math.radians((c.minor or 0.0) / 3600.0)
                pa = math.radians(c.pa)
                static.append((ci, shape, l, m, major, minor, pa, cont, pb, c.lines))
            builders[(fid, s.id)] = _component_builder(static, s, topo.get(si))
    return builders, line_truth, topo


def _component_builder(static, spw: _Spw, topo_fac: Optional[np.ndarray]):
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


# ---------------------------------------------------------------- truth
def _truth(plan: _Plan, eb: _EBPlan, tl: _Timeline, elev, tsys, sefd, sigma, weight, gain_params, gains,
           bp_params, sky, line_truth, topo, ms_path: Path, syscal_rows, row_flag, chan_flag) -> dict:
    cfg = plan.cfg
    lay = plan.layout
    const_sigma = bool(np.allclose(sigma, sigma[:1], rtol=0, atol=0))
    scans = []
    for k, scan in enumerate(eb.scans):
        idx = np.flatnonzero(tl.scan_index == k)
        scans.append({
            "scan": scan.number, "field": plan.sources[scan.source].cfg.name, "role": scan.role,
            "obs_mode": scan.obs_mode, "intents": scan.intents,
            "field_ids": sorted({fid for fid, _, _, _ in scan.subscans}),
            "sub_scans": [{"field_id": fid, "sub_scan": sub, "state_id": plan.states[(scan.obs_mode, sub)],
                           "n_integrations": n} for fid, sub, _, n in scan.subscans],
            "start_mjd_s": float(tl.times[idx[0]] - cfg.schedule.integration / 2),
            "end_mjd_s": float(tl.times[idx[-1]] + cfg.schedule.integration / 2),
            "start_utc": _utc_text(tl.times[idx[0]] - cfg.schedule.integration / 2),
            "n_integrations": int(idx.size),
        })
    fields = []
    for src in plan.sources:
        sel = np.isin(tl.field, src.field_ids)
        comps = []
        for ci, c in enumerate(src.cfg.components):
            l0, m0 = math.radians(c.offset[0] / 3600.0), math.radians(c.offset[1] / 3600.0)
            cra, cdec = ksky.radec_from_lm(l0, m0, src.ra, src.dec)
            comp = {"index": ci, "shape": c.shape, "flux_jy_at_ref": c.flux, "spectral_index": c.spectral_index,
                    "reference_frequency_hz": c.reference_frequency or plan.ref_freq,
                    "offset_l_arcsec": c.offset[0], "offset_m_arcsec": c.offset[1],
                    "ra_deg": math.degrees(cra), "dec_deg": math.degrees(cdec)}
            if c.shape == "gaussian":
                comp.update({"major_fwhm_arcsec": c.major, "minor_fwhm_arcsec": c.minor, "pa_deg": c.pa})
            lines = []
            for ln in c.lines:
                rec = {"peak_jy": ln.peak, "frame": ln.frame, "centre_hz": ln.centre_hz(), "fwhm_hz": ln.fwhm_hz(),
                       "rest_frequency_hz": ln.rest_frequency, "velocity_km_s": ln.velocity,
                       "fwhm_km_s": ln.fwhm, "transition": ln.transition,
                       "profile": "peak * exp(-0.5 ((nu - centre) / (fwhm / 2.3548))^2), in `frame`"}
                if ln.frame == "LSRK" and src.index in topo and np.any(sel):
                    fac = topo[src.index][sel]
                    rec["topo_centre_hz_range"] = [float(ln.centre_hz() * fac.min()), float(ln.centre_hz() * fac.max())]
                    rec["topo_over_lsrk_range"] = [float(fac.min()), float(fac.max())]
                lines.append(rec)
            if lines:
                comp["lines"] = lines
            comps.append(comp)
        fields.append({
            "name": src.cfg.name, "source_id": src.index, "field_ids": src.field_ids,
            "ra_deg": src.cfg.ra, "dec_deg": src.cfg.dec, "intents": list(src.cfg.intents),
            "pointings_arcsec": [list(p) for p in src.pointing_offsets],
            "pointing_directions_deg": [[math.degrees(a), math.degrees(b)] for a, b in src.pointings],
            "n_integrations": int(sel.sum()),
            "elevation_deg_range": ([float(np.degrees(elev[sel].min())), float(np.degrees(elev[sel].max()))]
                                    if np.any(sel) else None),
            "components": comps,
        })
        if src.index in topo and np.any(sel):
            fields[-1]["doppler"] = {"times_mjd_s": tl.times[sel].tolist(),
                                     "topo_over_lsrk": topo[src.index][sel].tolist(),
                                     "note": "nu_TOPO / nu_LSRK per integration of this field (casacore measures)"}
    corruptions: dict[str, Any] = {"enabled": cfg.corruptions.enabled,
                                   "order": "DATA = g_a1 conj(g_a2) b_a1 conj(b_a2) * model + noise (noise not multiplied by gains)"}
    if gain_params is not None:
        corruptions["gains"] = {
            "formula": kcorrupt.__doc__.split("Gains")[1].split("Bandpass")[0].strip(),
            "parameters": gain_params.to_json(),
            "times_mjd_s": tl.times.tolist(),
            "antennas": lay.names, "pols": ["X", "Y"],
            "amplitude": np.round(np.abs(gains), 7).transpose(1, 2, 0).tolist(),
            "phase_deg": np.round(np.degrees(np.angle(gains)), 5).transpose(1, 2, 0).tolist(),
            "layout": "amplitude[antenna][pol][integration], phase_deg[antenna][pol][integration]",
        }
    if any(p is not None for p in bp_params):
        corruptions["bandpass"] = {
            "formula": "b(nu) = (1 + slope x + ripple cos(2 pi cycles x + ripple_phase)) * "
                       "exp(i (phase0 + 2 pi delay (nu - nu_centre))); x = (chan - (nchan-1)/2)/(nchan-1); "
                       "radians, seconds, Hz",
            "layout": "arrays [antenna][pol]",
            "per_spw": {str(i): p.to_json() for i, p in enumerate(bp_params) if p is not None},
        }
    nz = cfg.noise
    noise = {
        "enabled": nz.enabled,
        "formula": "sigma = sqrt(SEFD_i SEFD_j) / (eta_c sqrt(2 dnu t)); SEFD = 2 k Tsys / (eta_a pi D^2 / 4); "
                   "sigma per real/imaginary part of one visibility; dnu = EFFECTIVE_BW",
        "aperture_efficiency": nz.aperture_efficiency, "correlator_efficiency": nz.correlator_efficiency,
        "dish_diameter_m": plan.diameter, "integration_s": cfg.schedule.integration,
        "tsys_model": "atmosphere" if nz.atmosphere is not None else "constant",
        "per_spw": {},
    }
    if nz.atmosphere is not None:
        noise["atmosphere"] = nz.atmosphere.model_dump()
    for s in plan.spws:
        rec = {"effective_bw_hz": s.ebw}
        if const_sigma:
            rec.update({"tsys_k": float(tsys[0, s.id]), "sefd_jy": float(sefd[0, s.id]),
                        "sigma_jy": float(sigma[0, s.id]), "weight": float(weight[0, s.id])})
        else:
            rec.update({"tsys_k": tsys[:, s.id].tolist(), "sefd_jy": sefd[:, s.id].tolist(),
                        "sigma_jy": sigma[:, s.id].tolist(), "weight": weight[:, s.id].tolist(),
                        "layout": "one value per integration (times_mjd_s)"})
        noise["per_spw"][str(s.id)] = rec
    expected = _expected_facts(plan, eb, tl, ms_path, weight, row_flag, chan_flag)
    return {
        "format": f"almarules simulate truth v{VERSION}",
        "what": "SIMULATED ALMA-like execution block (not a real observation)",
        "ms_name": ms_path.name,
        "execution_block": {"index": eb.index + 1, "of": len(plan.ebs), "uid": eb.uid},
        "seed": plan.seed,
        "config": cfg.model_dump(mode="json"),
        "conventions": {
            "uvw": "UVW = uvw(ANTENNA1) - uvw(ANTENNA2) (CASA), J2000 frame, casacore measures",
            "visibility": "V = sum S A T exp(+2 pi i (u l + v m + w (n - 1)) nu / c) with the stored UVW (CASA sign)",
            "primary_beam": (f"Gaussian, FWHM = {cfg.pb_fwhm_factor} lambda / D" if cfg.primary_beam == "gaussian"
                             else "none"),
            "correlations": "XX, YY; unpolarised sky: XX = YY = I before corruption",
            "time": "TIME = MJD seconds (UTC) at integration centres",
        },
        "observation": {
            "start_mjd_s": eb.start, "end_mjd_s": eb.end, "start_utc": _utc_text(eb.start),
            "end_utc": _utc_text(eb.end), "integration_s": cfg.schedule.integration,
            "site": cfg.site, "array_file": Path(plan.layout.source).name,
            "antennas": [{"name": n, "station": st, "position_itrf_m": p.tolist(), "dish_diameter_m": float(d)}
                         for n, st, p, d in zip(lay.names, lay.stations, lay.positions, lay.diameters)],
            "n_baselines": plan.nbl, "rows": int(tl.times.size * len(plan.spws) * plan.nbl),
            "row_order": "TIME, DATA_DESC_ID, ANTENNA1, ANTENNA2 (cross-correlations only)",
            "scans": scans,
            "states": [{"state_id": v, "obs_mode": k[0], "sub_scan": k[1]}
                       for k, v in sorted(plan.states.items(), key=lambda kv: kv[1])],
            "syscal_rows": len(syscal_rows),
        },
        "spectral_windows": [{"id": s.id, "name": s.name, "mode": s.mode, "nchan": s.nchan,
                              "first_chan_centre_hz": float(s.freqs[0]), "chan_width_hz": s.width,
                              "effective_bw_hz": s.ebw, "resolution_hz": s.resolution,
                              "online_hanning": s.hanning, "frame": "TOPO"} for s in plan.spws],
        "fields": fields,
        "reference_frequency_hz": plan.ref_freq,
        "corruptions": corruptions,
        "thermal_noise": noise,
        "flags": {"antennas": [lay.names[i] for i in plan.flagged_ants],
                  "channels": {str(k): [list(r) for r in v] for k, v in cfg.flags.channels.items()}},
        "expected_facts": expected,
    }


def _expected_facts(plan: _Plan, eb: _EBPlan, tl: _Timeline, ms_path: Path, weight: np.ndarray,
                    row_flag: np.ndarray, chan_flag: list[np.ndarray]) -> dict:
    """What ``almarules facts`` should read back from this MS (the facts schema's keys and units)."""
    cfg = plan.cfg
    dt = cfg.schedule.integration
    field_intents: dict[int, set[str]] = {}
    for scan in eb.scans:
        field_intents.setdefault(scan.source, set()).update(scan.intents)
    fields = []
    for src in plan.sources:
        if src.index not in field_intents:
            continue
        ra0, dec0 = src.pointings[0]
        pts = [{"ra_offset": math.degrees((ra - ra0 + math.pi) % (2 * math.pi) - math.pi) * math.cos(dec0) * 3600.0,
                "dec_offset": math.degrees(dec - dec0) * 3600.0} for ra, dec in src.pointings]
        fields.append({"id": src.field_ids[0], "name": src.cfg.name, "ra": math.degrees(ra0) % 360.0,
                       "dec": math.degrees(dec0), "intents": sorted(field_intents[src.index]), "pointings": pts})
    scans = []
    for k, scan in enumerate(eb.scans):
        idx = np.flatnonzero(tl.scan_index == k)
        scans.append({"eb": eb.uid, "number": scan.number, "intents": sorted(set(scan.intents)),
                      "field_ids": sorted({fid for fid, _, _, _ in scan.subscans}),
                      "spw_ids": [s.id for s in plan.spws],
                      "start": float(tl.times[idx[0]] - dt / 2), "end": float(tl.times[idx[-1]] + dt / 2)})
    all_intents = sorted({i for s in eb.scans for i in s.intents})
    weights = []
    for src in plan.sources:
        sel = np.isin(tl.field, src.field_ids)
        if not np.any(sel):
            continue
        for s in plan.spws:
            good = np.outer(~row_flag, ~chan_flag[s.id])  # (nbl, nchan), per correlation
            n_good = float(good.sum()) * 2
            weights.append({"field": src.cfg.name, "spw": s.id, "eb": eb.uid,
                            "sum_weight": float(np.sum(weight[sel, s.id].astype(np.float32).astype(np.float64))
                                                * n_good),
                            "flagged_fraction": 1.0 - n_good / (2 * good.size),
                            "rows": int(sel.sum()) * plan.nbl, "time_on_source": float(sel.sum()) * dt})
    return {
        "project": cfg.project, "telescope": "ALMA" if cfg.site.upper() in ("ALMA", "ACA") else cfg.site,
        "array": "12m" if round(plan.diameter) == 12 else ("7m" if round(plan.diameter) == 7 else None),
        "ebs": [{"id": eb.uid, "ms_name": ms_path.name, "start": float(tl.times[0] - dt / 2),
                 "end": float(tl.times[-1] + dt / 2), "integration_time": dt, "n_antennas": plan.nant,
                 "syscal_rows": (plan.nant * len(plan.spws) * sum(1 for s in eb.scans if s.role == "atmosphere")
                                 if cfg.schedule.atmosphere_scans else 0),
                 "history_origins": ["almarules simulate"], "processing_history": False,
                 "has_model_data": False}],
        "antennas": [{"name": n, "station": st, "position": [float(x) for x in p], "dish_diameter": float(d)}
                     for n, st, p, d in zip(plan.layout.names, plan.layout.stations, plan.layout.positions,
                                            plan.layout.diameters)],
        "spws": [{"id": s.id, "name": s.name, "nchan": s.nchan, "start_frequency": float(s.freqs[0]),
                  "channel_width": s.width, "effective_bw": s.ebw, "frame": "TOPO",
                  "correlator_mode": s.mode, "online_hanning": s.hanning, "intents": all_intents}
                 for s in plan.spws],
        "fields": fields,
        "scans": scans,
        "weights": weights,
    }


# ---------------------------------------------------------------- entry point
def simulate(config: SimConfig | str | Path, out_path: str | Path, seed: Optional[int] = None,
             progress: Optional[Callable[[int, int], None]] = None, *, overwrite: bool = False,
             timings: Optional[dict] = None) -> dict:
    """Simulate the execution block(s) of `config` into `out_path` (see the module docstring).

    Returns ``{"ms": [paths], "truth_files": [paths], "execution_blocks": [truth, ...]}``; each
    truth is also written as JSON next to its MS. `progress(done, total)` is called with
    main-table rows written. `timings`, if given, is filled with seconds per stage.
    Raises `SimConfigError` for an inconsistent config, `SimError` when the outputs exist
    (unless `overwrite`) or the schedule cannot be observed (source below min_elevation).
    """
    cfg = config if isinstance(config, SimConfig) else load_sim_config(config)
    seed = cfg.seed if seed is None else int(seed)
    if seed < 0:
        raise SimConfigError("seed: must be >= 0")
    timer = _Timer()
    t0 = _time.perf_counter()
    plan = _Plan(cfg, seed)
    outputs = output_paths(out_path, len(plan.ebs))
    for ms, truth in outputs:
        if not ms.parent.is_dir():
            raise SimError(f"output directory does not exist: {ms.parent}")
        for p in (ms, truth):
            if p.exists() and not overwrite:
                raise SimError(f"{p} exists (use --force to replace it)")
    timer.add("planning", t0)
    total = sum(plan.nbl * len(plan.spws) * _timeline(plan, eb).times.size for eb in plan.ebs)
    done = 0
    truths = []
    for eb, (ms, truth_path) in zip(plan.ebs, outputs):
        tmp = ms.parent / f".{ms.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            truth = _simulate_eb(plan, eb, tmp, progress, done, total, timer, ms)
            done += truth["observation"]["rows"]
            t1 = _time.perf_counter()
            text = json.dumps(truth, indent=1, allow_nan=False)
            tmp_truth = truth_path.parent / f".{truth_path.name}.tmp-{uuid.uuid4().hex[:8]}"
            tmp_truth.write_text(text + "\n", encoding="utf-8")
            if ms.exists():
                trash = ms.parent / f".{ms.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(ms, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, ms)
            os.replace(tmp_truth, truth_path)
            timer.add("truth file", t1)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            for p in ms.parent.glob(f".{truth_path.name}.tmp-*"):
                p.unlink(missing_ok=True)
            raise
        truths.append(truth)
    if timings is not None:
        timings.update(timer.t)
    return {"ms": [str(m) for m, _ in outputs], "truth_files": [str(t) for _, t in outputs],
            "execution_blocks": truths}
