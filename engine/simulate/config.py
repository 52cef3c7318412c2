"""The simulation config: `SimConfig` and the models of its parts, read from YAML.

Values may carry units (`Q`: a float stored in a fixed unit; a plain number is read in that
unit, a string such as ``'2.5 Jy'`` or ``'230 GHz'`` in any compatible unit), angles are read
as sexagesimal strings or degrees, and every error becomes a one-line `SimConfigError`
naming the key (`parse_sim_config`, `load_sim_config`). Also the intents a field may have
(`SimIntent`) and their ALMA ``STATE.OBS_MODE`` items (`OBS_MODES`).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from almarules.dsl.units import UnitError, parse_quantity, parse_unit
from almarules.kernels import sky as ksky

from .errors import SimConfigError
from .times import parse_utc

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
_MODE_DEFAULTS = {"TDM": (128, 15.625e6), "FDM": (1920, 0.9765625e6)}


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
                    parse_utc(value)
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


class OutlierConfig(_M):
    """Outlier visibilities for flagging tests: whole spectra of chosen (row, correlation) pairs scaled.

    A baseline-based gain glitch: every channel of one correlation of one main-table row of the
    corrupted model is multiplied by `amplitude_factor` before the noise is added (the noise is
    not scaled, as for antenna gains; FLAG, WEIGHT and SIGMA unchanged), so the outlier survives
    channel averaging wherever the model is well above the noise. The pairs are drawn without
    replacement among the unflagged rows (FLAG_ROW false) of `fields` (default: every field),
    in each execution block: ``floor(fraction * n + 1/2)`` of its n candidates, or exactly `count`.
    """

    fraction: Optional[float] = Field(default=None, ge=0, le=1, description="of the candidate (row, correlation) pairs")
    count: Optional[Int] = Field(default=None, ge=0, description="number of outliers (instead of 'fraction')")
    amplitude_factor: float = Field(default=20.0, gt=0, description="multiplies the model spectrum (< 1: low outliers)")
    seed: Optional[Int] = Field(default=None, ge=0, description="seed of the choice (default: the simulation's seed)")
    fields: Optional[list[str]] = Field(default=None, min_length=1, description="field names (default: all)")

    @model_validator(mode="after")
    def _check(self) -> "OutlierConfig":
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of 'fraction' and 'count'")
        return self


class LowGainConfig(_M):
    """An antenna whose gain amplitude is multiplied by `factor` (both polarisations, every integration)."""

    antenna: str = Field(min_length=1, description="antenna or pad name")
    factor: float = Field(gt=0, description="multiplies the drawn gain amplitude")


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
    outliers: Optional[OutlierConfig] = None
    low_gain_antennas: list[LowGainConfig] = Field(default_factory=list)

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
    primary_beam: Literal["imager", "gaussian", "none"] = Field(
        default="imager", description="imager: the power pattern the imaging corrects with (tclean's model for the "
                                      "telescope and dish: kernels.primary_beam); gaussian: FWHM pb_fwhm_factor lambda/D")
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
        outliers = self.corruptions.outliers
        for i, name in enumerate((outliers.fields or []) if outliers is not None else []):
            if name not in names:
                raise ValueError(f"corruptions.outliers.fields[{i}]: no field {name!r} (fields are {', '.join(names)})")
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
