"""The record of one image: every number the weblog shows for it (pipeline.md, "The weblog"),
each with its unit and where it came from, plus the clean's course, the data, the products and
the timings. Written next to the FITS products as ``<product stem>.record.json``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

from almarules import __version__
from almarules.engine.stages.imaging.job import Setting


class Weblog(BaseModel):
    """The numbers of an image page of the weblog."""

    centre_frequency: Optional[Setting] = None
    beam_major: Optional[Setting] = None
    beam_minor: Optional[Setting] = None
    beam_pa: Optional[Setting] = None
    sensitivity: Optional[Setting] = None
    threshold: Optional[Setting] = None
    dirty_dr: Optional[Setting] = None
    dr_correction: Optional[Setting] = None
    rms: Optional[Setting] = None
    pbcor_max: Optional[Setting] = None
    pbcor_min: Optional[Setting] = None
    fractional_bandwidth: Optional[Setting] = None
    aggregate_bandwidth: Optional[Setting] = None
    qa_score: Optional[Setting] = None
    qa_colour: Optional[Setting] = None
    qa_reasons: list[str] = Field(default_factory=list, description="the score's terms that applied, e.g. a cap")


class MajorCycleRecord(BaseModel):
    iterations: int
    cycle_threshold: float = Field(description="Jy/beam")
    minor_stopped_by: str
    peak_after: float = Field(description="masked residual peak after the cycle, Jy/beam")
    model_flux: float = Field(description="sum of the model after the cycle, Jy")


class CleanRecord(BaseModel):
    """The course of the clean (a cube: summed over channels, with the channels' own records)."""

    iterations: int
    major_cycles: int
    stopped_by: str
    initial_peak: Optional[float] = Field(None, description="masked dirty peak, Jy/beam")
    final_peak: Optional[float] = Field(None, description="masked residual peak at the end, Jy/beam")
    model_flux: Optional[float] = Field(None, description="Jy")
    psf_sidelobe: Optional[float] = None
    mask_pixels: Optional[int] = None
    history: list[MajorCycleRecord] = Field(default_factory=list)


class DataRecord(BaseModel):
    """The visibilities imaged."""

    measurement_sets: list[str]
    field_ids: dict[str, list[int]] = Field(description="MS name -> FIELD rows of the field")
    column: str
    rows: int
    channels: int = Field(description="(binned) channels per spw summed over spws")
    visibilities: int = Field(description="unflagged Stokes I samples")
    flagged_fraction: float
    channel_selection: str = Field(description="how the channels were chosen (all, cont.dat, ...)")
    phase_centre: Optional[tuple[float, float, str]] = Field(
        default=None, description="the image's phase centre (RA, Dec deg, frame) when it is not the first FIELD "
                                  "row's direction (a mosaic: the rules' phasecenter)")
    pointings: int = Field(default=1, description="pointings imaged jointly (a mosaic: more than one)")


class StatsRecord(BaseModel):
    """QA statistics of the non-pbcor restored image inside the pblimit (Jy/beam; a cube: over
    all channels). Offsets of the peak from the phase centre in arcsec, east and north."""

    peak: float
    peak_pixel: tuple[int, int] = Field(description="(ix, iy), ix increasing westwards")
    peak_offset_arcsec: tuple[float, float] = Field(description="(east, north) of the phase centre")
    peak_channel: Optional[int] = None
    min: float
    rms_outside_mask: float
    rms_annulus: Optional[float] = Field(None, description="rms in 0.2 <= PB < 0.3 outside the mask")
    pixels_outside_mask: int
    pixels_annulus: int


class ChannelRecord(BaseModel):
    """One channel of a cube (Jy/beam, arcsec, deg, Hz in the FITS frame)."""

    channel: int
    frequency: float
    sensitivity: Optional[float]
    dirty_peak: Optional[float]
    rms: Optional[float]
    peak: Optional[float]
    min: Optional[float] = None
    rms_annulus: Optional[float] = None
    beam_major: Optional[float]
    beam_minor: Optional[float]
    beam_pa: Optional[float]
    iterations: int
    stopped_by: str
    warnings: list[str] = Field(default_factory=list)


class Product(BaseModel):
    kind: str
    file: str
    bytes: int


class RunRecord(BaseModel):
    """When and where the image was made: the only run-dependent part of a record besides the
    timings (the FITS DATE card is `started` too)."""

    started: str = Field("", description="start of the imaging run, UTC, ISO 8601")
    host: str = ""
    threads: int = Field(0, description="--threads (0: all cores)")


#: The keys of a record that differ between runs of the same inputs.
RUN_KEYS = ("timings", "run")


#: The status of an image, worst first: "failed" (no image; `error` says why), "uncalibrated"
#: (made from the DATA column because CORRECTED_DATA was absent or empty), "unscaled" (calibrated
#: by this run without a flux scale: no flux calibrator had a flux model, so its flux densities are
#: relative), "diverged" (the clean stopped because the residual grew; a cube: in some channel),
#: "ok". An image with several of these takes the first; `concerns` lists every one in words.
Status = Literal["ok", "diverged", "unscaled", "uncalibrated", "failed"]


class ImageRecord(BaseModel):
    """Everything about one image made by the imaging stage."""

    almarules: str = __version__
    key: str
    field: str
    intent: str
    spws: list[int]
    specmode: str
    status: Status
    error: Optional[str] = None
    concerns: list[str] = Field(default_factory=list,
                                description="why the status is not ok (shown on the terminal too)")
    rules: list[str]
    rules_sha256: str
    inputs_sha256: str = Field("", description="this run's inputs (engine.stages.imaging.resume): a later run with "
                                                "the same keeps the image")
    settings: list[str] = Field(default_factory=list, description="--set assignments")
    parameters: dict[str, Setting] = Field(default_factory=dict)
    weblog: Weblog = Field(default_factory=Weblog)
    stats: Optional[StatsRecord] = None
    clean: Optional[CleanRecord] = None
    data: Optional[DataRecord] = None
    channels: list[ChannelRecord] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # what differs from run to run of the same inputs: only these two keys (`RUN_KEYS`)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per step (run-dependent)")
    run: RunRecord = Field(default_factory=lambda: RunRecord(), description="when and where (run-dependent)")

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
