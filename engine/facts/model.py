"""Typed facts about a dataset (pydantic v2).

Every quantity carries its unit in the schema (``json_schema_extra['unit']``); a
summary may give a number in that unit or a string with any compatible unit
(``"230 GHz"``, ``"50 uJy/beam"``). A fact that is absent is *unknown* (None),
never silently defaulted: rules that need it say they wait for it.

The plural collection names (``spws``, ``fields``, ...) are the entity kinds the
rule language sees; `FACT_KINDS` maps kind name -> model.
"""

import math
from functools import partial
from typing import Annotated, Any, Literal, NamedTuple, Optional, Sequence

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, computed_field
from pydantic_core import PydanticCustomError

from almarules.dsl.units import UnitError, parse_quantity, parse_unit

INTENTS = (
    "TARGET", "PHASE", "BANDPASS", "AMPLITUDE", "CHECK", "ATMOSPHERE", "WVR",
    "POINTING", "POLARIZATION", "SIDEBAND", "FOCUS", "DELAY", "UNSPECIFIED",
)
Intent = Literal[
    "TARGET", "PHASE", "BANDPASS", "AMPLITUDE", "CHECK", "ATMOSPHERE", "WVR",
    "POINTING", "POLARIZATION", "SIDEBAND", "FOCUS", "DELAY", "UNSPECIFIED",
]
ArrayKind = Literal["12m", "7m", "TP", "VLA", "mixed"]
SPECMODES = ("mfs", "cont", "cube")

# Physical bounds on facts: values outside them cannot come from a real observation (each says why).
EARTH_BASELINE_M = 13.0e6
"""Longest ground baseline (m): Earth's diameter is 12,742 km."""
ITRF_RADIUS_M = 7.0e6
"""Largest |ITRF coordinate| of a ground antenna (m): Earth's radius is at most 6,378 km."""
MAX_FREQUENCY_HZ = 1.0e13
"""Highest frequency (Hz): 10 THz, ten times ALMA's highest band (950 GHz)."""
MAX_POINTING_OFFSET_ARCSEC = 36_000.0
"""Largest mosaic pointing offset from the field centre (arcsec): 10 deg; the largest ALMA
mosaics span a few degrees."""
MAX_MJD_SECONDS = 1.0e10
"""Latest time (MJD seconds): about the year 2175 (MJD 115,740)."""
MAX_INTEGRATION_S = 86_400.0
"""Longest integration (s): one day; ALMA integrations last seconds."""
MAX_DISH_M = 1_000.0
"""Largest dish diameter (m): twice the largest dish ever built (FAST, 500 m)."""
MAX_CHANNELS = 2 ** 18
"""Most channels in one spw: 262,144, far above any correlator's (ALMA: at most 7,680)."""

# Longest lists of a summary, far above real data (a 20,000-spw summary is refused with its path).
MAX_EBS = 1_000  # an MOUS has at most a few tens of execution blocks
MAX_ANTENNAS = 1_000  # ALMA has at most 80 antennas per array (66 + 4 TP), the ngVLA 263
MAX_SPWS = 1_000  # ALMA: at most 64 spws per EB (with the calibration and WVR spws)
MAX_FIELDS = 1_000  # distinct sources (a mosaic's pointings are one field's `pointings`); surveys: a few
# hundred. The rules compare fields with fields: evaluation grows with their square (500: ~5 s)
MAX_FIELD_IDS = 20_000  # MS FIELD rows of a scan: one per mosaic pointing, up to a few thousand
MAX_POINTINGS = 20_000  # per field: ALMA mosaics have up to a few thousand pointings
MAX_SCANS = 100_000  # a few hundred scans per EB
MAX_WEIGHTS = 1_000_000  # one per field, spw and EB
MAX_MEASUREMENTS = 100_000  # one per image of the imaging list, a few hundred
MAX_SHORT_LIST = 1_000  # intents, spw and field ids of a scan, rest frequencies, history origins
MAX_HISTORY = 100_000  # ORIGIN of the HISTORY rows of one MS


def _unit_converter(unit: str):
    scale_to, dim_to = parse_unit(unit)

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a quantity in {unit}, got a boolean")
        if isinstance(value, str):
            try:
                canonical, dim = parse_quantity(value)
            except UnitError as exc:
                raise ValueError(str(exc)) from None
            if dim.is_dimensionless and not dim_to.is_dimensionless:
                raise ValueError(f"a quantity in {unit} needs a unit, got {value!r}")
            if dim != dim_to:
                raise ValueError(f"{value!r} is not compatible with {unit}")
            return canonical / scale_to
        return value

    return convert


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    return value


# An optional count: a whole number, never a boolean (YAML's `true` is not 1).
Count = Annotated[Optional[int], BeforeValidator(_no_bool)]


class Limits(NamedTuple):
    """The bounds a quantity's check enforces (in `unit`), readable by the corpus's vectorised
    validation (engine.corpus.convert), which must enforce exactly the same ones."""

    unit: str
    gt: Optional[float]
    ge: Optional[float]
    le: Optional[float]
    nonzero: bool
    finite: bool


def _limits(unit: str, gt: Optional[float] = None, ge: Optional[float] = None, le: Optional[float] = None,
            nonzero: bool = False, finite: bool = True):
    """A check that a quantity (in `unit`) is finite (unless not `finite`) and physically possible;
    a violation is a ``fact_range`` error whose message names the limit and the value, in `unit`."""
    u = f" {unit}" if unit else ""

    def fail(text: str, value: float):
        return PydanticCustomError("fact_range", "{text}", {"text": f"{text} (got {value:g}{u})"})

    def check(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        if not finite and math.isnan(value):
            return value
        if finite and not math.isfinite(value):
            raise PydanticCustomError("fact_range", "{text}", {"text": f"must be a finite number (got {value})"})
        if gt is not None and not value > gt:
            raise fail(f"must be greater than {gt:g}{u}", value)
        if ge is not None and not value >= ge:
            raise fail(f"must be at least {ge:g}{u}", value)
        if le is not None and not value <= le:
            raise fail(f"must be at most {le:g}{u}", value)
        if nonzero and value == 0:
            raise fail("must not be 0", value)
        return value

    check.limits = Limits(unit, gt, ge, le, nonzero, finite)  # type: ignore[attr-defined]
    return check


def Q(unit: str, description: str, *, gt: Optional[float] = None, ge: Optional[float] = None,
      le: Optional[float] = None, nonzero: bool = False, finite: bool = True):
    """An optional float quantity stored in `unit`: finite, and within the given limits (in `unit`).
    ``finite=False`` (measured values) lets NaN and inf through: a measurement that failed."""
    return Annotated[
        Optional[float],
        BeforeValidator(_unit_converter(unit)),
        AfterValidator(_limits(unit, gt, ge, le, nonzero, finite)),
        Field(default=None, description=description, json_schema_extra={"unit": unit, **_schema_limits(gt, ge, le)}),
    ]


# A measured quantity: NaN/inf mean the measurement failed (kept; the QA rules score it).
MQ = partial(Q, finite=False)


def _schema_limits(gt: Optional[float], ge: Optional[float], le: Optional[float]) -> dict[str, float]:
    """The JSON Schema keywords of a quantity's limits."""
    pairs = (("exclusiveMinimum", gt), ("minimum", ge), ("maximum", le))
    return {k: v for k, v in pairs if v is not None}


# A frequency in a list (Hz): finite, positive and at most MAX_FREQUENCY_HZ.
Frequency = Annotated[float, AfterValidator(_limits("Hz", gt=0, le=MAX_FREQUENCY_HZ))]
# An ITRF coordinate (m): finite, within ITRF_RADIUS_M of the geocentre.
Coordinate = Annotated[float, AfterValidator(_limits("m", ge=-ITRF_RADIUS_M, le=ITRF_RADIUS_M))]


def Items(item: Any, most: int, description: Optional[str] = None, **extra: Any):
    """An optional list of `item`, at most `most` long (a longer one is refused with its path)."""
    return Annotated[Optional[list[item]], Field(default=None, max_length=most, description=description,
                                                 json_schema_extra=extra or None)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class BaselineStats(_Model):
    """Projected baseline lengths of one execution block (m), at most 13,000 km (ground baselines
    cannot exceed Earth's diameter, 12,742 km)."""

    min: Q("m", "shortest projected baseline", ge=0, le=EARTH_BASELINE_M) = None
    max: Q("m", "longest projected baseline", ge=0, le=EARTH_BASELINE_M) = None
    l75: Q("m", "75th percentile of projected baseline lengths", ge=0, le=EARTH_BASELINE_M) = None
    l80: Q("m", "80th percentile of projected baseline lengths", ge=0, le=EARTH_BASELINE_M) = None


class ExecutionBlock(_Model):
    """One Measurement Set from one observing run."""

    id: str = Field(description="execution block uid or MS name")
    ms_name: Optional[str] = None
    start: Q("s", "start time, MJD seconds (UTC)", ge=0, le=MAX_MJD_SECONDS) = None
    end: Q("s", "end time, MJD seconds (UTC)", ge=0, le=MAX_MJD_SECONDS) = None
    integration_time: Q("s", "typical integration time (at most a day)", gt=0, le=MAX_INTEGRATION_S) = None
    n_antennas: Count = Field(default=None, description="antennas with data")
    syscal_rows: Count = Field(default=None, description="rows in the SYSCAL (Tsys) table")
    history_origins: Items(str, MAX_HISTORY, "ORIGIN of HISTORY rows") = None
    processing_history: Optional[bool] = Field(
        default=None, description="HISTORY has rows not written by the importer")
    has_model_data: Optional[bool] = Field(default=None, description="MODEL_DATA column present")
    baselines: Optional[BaselineStats] = None

    @computed_field(json_schema_extra={"from": "baselines.l80", "unit": "m"})
    @property
    def l80(self) -> Optional[float]:
        """80th percentile projected baseline length (m)."""
        return self.baselines.l80 if self.baselines else None

    @computed_field(json_schema_extra={"from": "baselines.l75", "unit": "m"})
    @property
    def l75(self) -> Optional[float]:
        """75th percentile projected baseline length (m)."""
        return self.baselines.l75 if self.baselines else None


class Antenna(_Model):
    name: str
    station: Optional[str] = None
    position: Optional[tuple[Coordinate, Coordinate, Coordinate]] = Field(
        default=None, description="ITRF position (m)", json_schema_extra={"unit": "m"})
    dish_diameter: Q("m", "dish diameter (at most 1 km: FAST, the largest dish, is 500 m)", gt=0,
                     le=MAX_DISH_M) = None
    centre_distance: MQ("m", "distance from the array centre (median of the positions) in the local "
                             "horizontal plane; measured by refant", ge=0) = None
    unflagged: Count = Field(default=None, description="unflagged calibrator visibilities of the antenna "
                                                       "(the least over the calibrator intents); measured by refant")
    low_gain: Optional[bool] = Field(default=None, description="flagged by lowgainflag; measured")


class SpectralWindow(_Model):
    """A spectral window; channels as a list or as start/width/count."""

    id: int
    name: Optional[str] = None
    nchan: Count = Field(default=None, ge=1, le=MAX_CHANNELS, description="number of channels")
    channel_frequencies: Items(Frequency, MAX_CHANNELS, "channel centre frequencies (Hz)", unit="Hz") = None
    start_frequency: Q("Hz", "centre frequency of the first channel", gt=0, le=MAX_FREQUENCY_HZ) = None
    channel_width: Q("Hz", "channel width (negative when frequency decreases)", nonzero=True,
                     ge=-MAX_FREQUENCY_HZ, le=MAX_FREQUENCY_HZ) = None
    effective_bw: Q("Hz", "effective noise bandwidth of one channel", gt=0, le=MAX_FREQUENCY_HZ) = None
    frame: Optional[str] = Field(default=None, description="frequency frame (TOPO, LSRK, ...)")
    correlator_mode: Optional[Literal["TDM", "FDM"]] = None
    online_hanning: Optional[bool] = None
    intents: Items(Intent, MAX_SHORT_LIST, "intents of scans observing it") = None
    rest_frequencies: Items(Frequency, MAX_SHORT_LIST, "line rest frequencies in the SOURCE table for this spw (Hz)",
                            unit="Hz") = None
    rows: Count = Field(default=None, description="main-table rows of this spw (all execution blocks)")
    baselines: Count = Field(default=None, description="distinct cross-correlation baselines with data")
    # measured by the calibration stages (engine.stages.calibration), on the first execution block:
    bandpass_vis_snr: Optional[float] = Field(default=None, description="SNR of one visibility sample of the "
                                                                         "bandpass calibrator")
    bandpass_integrations: Count = Field(default=None, description="integrations of the bandpass calibrator")
    phase_vis_snr: Optional[float] = Field(default=None, description="SNR of one visibility sample of the "
                                                                      "phase calibrator")
    baselines_per_antenna: Count = Field(default=None, description="baselines of an antenna (median)")

    def _freqs(self) -> Optional[tuple[float, float]]:
        if self.channel_frequencies:
            f = self.channel_frequencies
            half = abs(self.channel_width or 0.0) / 2
            return min(f) - half, max(f) + half
        if self.start_frequency is not None and self.channel_width is not None and self.nchan:
            last = self.start_frequency + (self.nchan - 1) * self.channel_width
            half = abs(self.channel_width) / 2
            return min(self.start_frequency, last) - half, max(self.start_frequency, last) + half
        return None

    @computed_field(json_schema_extra={"from": "channel_frequencies or start_frequency, channel_width, nchan", "unit": "Hz"})
    @property
    def min_frequency(self) -> Optional[float]:
        """Lower edge of the band (Hz)."""
        f = self._freqs()
        return f[0] if f else None

    @computed_field(json_schema_extra={"from": "channel_frequencies or start_frequency, channel_width, nchan", "unit": "Hz"})
    @property
    def max_frequency(self) -> Optional[float]:
        """Upper edge of the band (Hz)."""
        f = self._freqs()
        return f[1] if f else None

    @computed_field(json_schema_extra={"from": "channel_frequencies or start_frequency, channel_width, nchan", "unit": "Hz"})
    @property
    def centre_frequency(self) -> Optional[float]:
        """Centre of the band (Hz)."""
        f = self._freqs()
        return (f[0] + f[1]) / 2 if f else None

    @computed_field(json_schema_extra={"from": "channel_frequencies or start_frequency, channel_width, nchan", "unit": "Hz"})
    @property
    def bandwidth(self) -> Optional[float]:
        """Total bandwidth (Hz)."""
        f = self._freqs()
        return f[1] - f[0] if f else None


class Pointing(_Model):
    """One mosaic pointing, as an offset from the field centre (arcsec), at most 10 deg
    (36,000 arcsec): the largest ALMA mosaics span a few degrees."""

    ra_offset: Q("arcsec", "offset in RA (true angle)", ge=-MAX_POINTING_OFFSET_ARCSEC,
                 le=MAX_POINTING_OFFSET_ARCSEC) = None
    dec_offset: Q("arcsec", "offset in Dec", ge=-MAX_POINTING_OFFSET_ARCSEC, le=MAX_POINTING_OFFSET_ARCSEC) = None


class FieldFacts(_Model):
    id: int
    name: str
    ra: Q("deg", "right ascension (J2000; 0 to 360, or -180 to 180)", ge=-360, le=360) = None
    dec: Q("deg", "declination (J2000)", ge=-90, le=90) = None
    intents: Items(Intent, MAX_SHORT_LIST) = None
    pointings: Items(Pointing, MAX_POINTINGS, "mosaic pointings; one (or none) for a single field") = None

    @computed_field(json_schema_extra={"from": "pointings"})
    @property
    def is_mosaic(self) -> Optional[bool]:
        """More than one pointing."""
        return None if self.pointings is None else len(self.pointings) > 1

    @computed_field(json_schema_extra={"from": "pointings", "unit": "arcsec"})
    @property
    def pointing_spread(self) -> Optional[float]:
        """Largest extent of the pointing centres, in RA or Dec (arcsec)."""
        if self.pointings is None:
            return None
        if not self.pointings:
            return 0.0
        ras = [p.ra_offset or 0.0 for p in self.pointings]
        decs = [p.dec_offset or 0.0 for p in self.pointings]
        return max(max(ras) - min(ras), max(decs) - min(decs))


class Scan(_Model):
    eb: Optional[str] = Field(default=None, description="execution block id")
    number: int
    intents: Items(Intent, MAX_SHORT_LIST) = None
    field_ids: Items(int, MAX_FIELD_IDS) = None
    spw_ids: Items(int, MAX_SPWS) = None
    start: Q("s", "start time, MJD seconds", ge=0, le=MAX_MJD_SECONDS) = None
    end: Q("s", "end time, MJD seconds", ge=0, le=MAX_MJD_SECONDS) = None

    @computed_field(json_schema_extra={"from": "start, end", "unit": "s"})
    @property
    def duration(self) -> Optional[float]:
        """end - start (s)."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


class WeightSum(_Model):
    """Natural-weighting sums of one field and spw (cross-correlations, both parallel hands,
    unflagged)."""

    field: str
    spw: int
    eb: Optional[str] = None
    sum_weight: Q("Jy-2", "sum of WEIGHT over unflagged cross-correlation visibilities", ge=0) = None
    flagged_fraction: Optional[float] = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    rows: Count = Field(default=None, description="main-table cross-correlation rows")
    time_on_source: Q("s", "integration time on this field in this spw", ge=0) = None

    @computed_field(json_schema_extra={"from": "sum_weight", "unit": "Jy"})
    @property
    def sensitivity(self) -> Optional[float]:
        """sigma_nat = 1/sqrt(sum w) (Jy)."""
        if not self.sum_weight:
            return None
        return 1.0 / math.sqrt(self.sum_weight)




class ImageMeasurement(_Model):
    """Numbers measured on an image by a later stage, keyed by field/intent/spws/specmode."""

    field: str
    intent: Intent
    spws: Annotated[list[int], Field(max_length=MAX_SPWS)]
    specmode: Literal["mfs", "cont", "cube"]
    sensitivity: MQ("Jy/beam", "theoretical sensitivity") = None
    dirty_peak: MQ("Jy/beam", "peak of the dirty image where PB > 0.2") = None
    dirty_dr: Optional[float] = Field(default=None, ge=0, description="dirty dynamic range")
    residual_rms: MQ("Jy/beam", "rms of the residual") = None
    rms: MQ("Jy/beam", "rms of the non-pbcor image outside the clean mask") = None
    beam_major: MQ("arcsec", "restoring beam major axis (FWHM)") = None
    beam_minor: MQ("arcsec", "restoring beam minor axis (FWHM)") = None
    beam_pa: MQ("deg", "restoring beam position angle") = None
    bad_psf_channels: Count = Field(default=None, ge=0, description="channels of a cube whose PSF fit failed")
    failed: Optional[bool] = Field(default=None, description="the imaging task failed")
    data_column: Optional[Literal["DATA", "CORRECTED_DATA"]] = Field(
        default=None, description="the MS column the visibilities were read from")
    calibrated: Optional[bool] = Field(
        default=None, description="the visibilities were calibrated (false: DATA read because CORRECTED_DATA "
                                   "was absent or empty)")
    clean_diverged: Optional[bool] = Field(
        default=None, description="the clean stopped because the residual grew (a cube: in some channel)")

    @computed_field
    @property
    def key(self) -> str:
        """``FIELD.INTENT.SPWS.SPECMODE``, the key of the image it measures."""
        return measurement_key(self.field, self.intent, self.spws, self.specmode)


def measurement_key(field: str, intent: str, spws: Sequence[int], specmode: str) -> str:
    """``FIELD.INTENT.SPWS.SPECMODE`` (spws joined by '_'): an image measurement's key."""
    return f"{field}.{intent}.{'_'.join(map(str, spws))}.{specmode}"


class FluxMeasurement(_Model):
    """A calibrator's flux density derived by gfluxscale (or set by setjy), one per field and spw."""

    field: str
    spw: int
    frequency: Q("Hz", "centre frequency of the spw", gt=0, le=MAX_FREQUENCY_HZ) = None
    flux: MQ("Jy", "derived Stokes I flux density") = None
    error: MQ("Jy", "standard error of the derived flux density", ge=0) = None
    catalogue: MQ("Jy", "flux density given by the flux file (flux.csv) or the flux model", ge=0) = None
    spix: Optional[float] = Field(default=None, description="spectral index fitted over the spws")
    reference: Optional[bool] = Field(default=None, description="the flux calibrator itself (set by setjy)")


class CalibrationFacts(_Model):
    """Dataset-wide numbers measured by the calibration stages."""

    flagged_before: Optional[float] = Field(default=None, ge=0, le=1, description="flagged fraction of the "
                                            "cross-correlation data before flagdata")
    flagged_flagdata: Optional[float] = Field(default=None, ge=0, le=1, description="fraction newly flagged "
                                              "by flagdata (all its agents)")
    flagged_after: Optional[float] = Field(default=None, ge=0, le=1, description="flagged fraction after "
                                           "applycal (data without a valid solution included)")
    flagged_applycal: Optional[float] = Field(default=None, ge=0, le=1, description="fraction newly flagged "
                                              "by applycal (no valid solution)")
    bandpass_flagged: Optional[float] = Field(default=None, ge=0, le=1, description="flagged fraction of the "
                                              "bandpass solutions")
    bandpass_flatness: Optional[float] = Field(default=None, description="rms of the bandpass amplitude about 1 "
                                                                          "(worst spw, central channels)")
    gain_phase_rms: MQ("deg", "rms of the per-integration phase of the phase calibrator after the "
                              "per-scan solutions (median over antennas, worst spw)", ge=0) = None
    low_gain_antennas: Count = Field(default=None, description="antennas flagged by lowgainflag")
    outliers: Count = Field(default=None, description="visibilities the amplitude-outlier heuristic flags")


class ContinuumFacts(_Model):
    """Dataset-wide numbers measured by findcont (heuristics.md section 10)."""

    searched: Count = Field(default=None, description="field/spw pairs of the target cubes findcont searched")
    with_ranges: Count = Field(default=None, description="pairs given continuum ranges (found or from a cont.dat)")
    allcont: Count = Field(default=None, description="pairs flagged ALLCONT (one range over >= 92.5 % of the band)")
    lowbandwidth: Count = Field(default=None, description="pairs flagged LOWBANDWIDTH (< 5 % of the band selected)")
    unsubtracted: Count = Field(default=None, description="target field/spw pairs whose cubes keep their continuum "
                                "(no cont.dat ranges: uvcontsub's fall-back)")


class Dataset(_Model):
    """Everything the rules may know about one dataset (one MOUS)."""

    project: Optional[str] = None
    mous_id: Optional[str] = None
    telescope: Optional[str] = None
    array: Optional[ArrayKind] = Field(default=None, description="array kind")
    representative_spw: Optional[int] = None
    representative_frequency: Q("Hz", "science goal representative frequency", gt=0, le=MAX_FREQUENCY_HZ) = None
    ebs: Items(ExecutionBlock, MAX_EBS, "execution blocks (at most 1,000; an MOUS has a few tens)") = None
    antennas: Items(Antenna, MAX_ANTENNAS, "antennas (at most 1,000; ALMA has at most 80)") = None
    spws: Items(SpectralWindow, MAX_SPWS, "spectral windows (at most 1,000; ALMA has at most 64 per EB)") = None
    fields: Items(FieldFacts, MAX_FIELDS, "fields: distinct sources, at most 1,000 (a mosaic is one field with its pointings)") = None
    scans: Items(Scan, MAX_SCANS, "scans (at most 100,000; an EB has a few hundred)") = None
    weights: Items(WeightSum, MAX_WEIGHTS, "weight sums, one per field, spw and EB (at most 1,000,000)") = None
    measurements: Items(ImageMeasurement, MAX_MEASUREMENTS,
                        "measurements of images made by later stages (at most 100,000)") = None
    fluxscales: Items(FluxMeasurement, MAX_MEASUREMENTS, "calibrator flux densities set (setjy) or derived (gfluxscale)") = None
    calibration: Optional[CalibrationFacts] = None
    continuum: Optional[ContinuumFacts] = None


#: facts the calibration and continuum stages measure and put into the facts as they run (a plan
#: made before them shows the values that need them as waiting for those stages, not as missing facts)
CALIBRATION_MEASURED = frozenset({"centre_distance", "unflagged", "low_gain", "bandpass_vis_snr",
                                  "bandpass_integrations", "phase_vis_snr", "baselines_per_antenna",
                                  "calibration", "fluxscales", "continuum"})

# kind name (as rules see it) -> model; the dataset itself is kind "dataset".
FACT_KINDS: dict[str, type[BaseModel]] = {
    "dataset": Dataset,
    "eb": ExecutionBlock,
    "antenna": Antenna,
    "spw": SpectralWindow,
    "field": FieldFacts,
    "scan": Scan,
    "weight": WeightSum,
    "measurement": ImageMeasurement,
    "fluxscale": FluxMeasurement,
}
#: the facts an entity's key is made of, per kind (a kind not listed is keyed by its position)
KEY_FACTS: dict[str, tuple[str, ...]] = {
    "spw": ("id",), "eb": ("id",), "field": ("name",), "antenna": ("name",), "scan": ("eb", "number"),
    "weight": ("field", "spw", "eb"), "fluxscale": ("field", "spw"), "measurement": ("key",),
}


def key_text(kind: str, values: tuple) -> str:
    """An entity's key from its `KEY_FACTS` values: ``25`` (spw), ``DA41``, ``uid_eb1#3`` (scan),
    ``T.25.uid_eb1`` (weight; without ``.EB`` when summed over EBs), ``T.TARGET.25.mfs`` ..."""
    if kind == "scan":
        eb, number = values
        return f"{eb}#{number}" if eb else str(number)
    if kind == "weight":
        field, spw, eb = values
        return f"{field}.{spw}" + (f".{eb}" if eb else "")
    if kind == "fluxscale":
        return f"{values[0]}.{values[1]}"
    return str(values[0])


# plural collection attribute of the dataset -> kind
COLLECTIONS: dict[str, str] = {
    "ebs": "eb", "antennas": "antenna", "spws": "spw", "fields": "field",
    "scans": "scan", "weights": "weight", "measurements": "measurement", "fluxscales": "fluxscale",
}
