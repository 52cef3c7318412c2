"""What the rules decide for one image: its parameters, read from the evaluated decisions in the
units the kernels take, each with the rule (file:line) that set it.

The imaging stage reads these attributes of ``image[KEY]``: cell, imsize, robust, pblimit,
mask_pblimit, mask_method ("pb" or "auto-multithresh", with sidelobethreshold,
noisethreshold, lownoisethreshold, negativethreshold, minbeamfrac, growiterations,
smoothfactor and cutthreshold for the latter), niter, gain, cycle_factor, deconvolver, nterms,
nbin and pb_model (a model of `kernels.primary_beam` by name: "ALMA", "ACA", "VLA", "EVLA",
"airy", "gaussian"); after the dirty image, threshold and dr_correction; after cleaning, qa_score
and qa_colour. A rule set that lacks one is an `ImagingError` naming it.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel

from almarules.dsl.units import parse_unit
from almarules.engine.evaluate.decisions import Decisions, Value
from almarules.engine.stages.base import Scalar, Setting
from almarules.kernels.constants import ARCSEC
from almarules.kernels.primary_beam import MODEL_NAMES, ModelName


def split_key(key: str) -> tuple[str, str, list[int], str]:
    """``FIELD.INTENT.0_1.cont`` -> (FIELD, INTENT, [0, 1], cont); the field may hold dots."""
    head, intent, spws, specmode = key.rsplit(".", 3)
    return head, intent, [int(s) for s in spws.split("_")], specmode


class ImagingError(Exception):
    """A problem with the inputs of the imaging stage the user can fix; one line, exit code 2."""


class AutoMask(BaseModel):
    """auto-multithresh parameters (tclean's names and meanings; thresholds in sigma or
    sidelobe levels, minbeamfrac in beams, smoothfactor in beams)."""

    sidelobethreshold: float
    noisethreshold: float
    lownoisethreshold: float
    negativethreshold: float
    minbeamfrac: float
    growiterations: int
    smoothfactor: float
    cutthreshold: float


class ImageJob(BaseModel):
    """One image of the imaging list and the parameters the rules give it (kernel units:
    arcsec, pixels, Jy/beam, dimensionless)."""

    key: str
    field: str
    intent: str
    spws: list[int]
    specmode: Literal["mfs", "cont", "cube"]
    cell_arcsec: float
    imsize: int
    robust: float
    pblimit: float
    mask_pblimit: float
    mask_method: Literal["pb", "auto-multithresh"]
    automask: Optional[AutoMask] = None
    niter: int
    gain: float
    cycle_factor: float
    deconvolver: str
    nterms: int
    nbin: int
    pb_model: ModelName
    gridder: Literal["standard", "wproject"]
    phasecenter: Optional[str] = None  # "pointings_centre" or "first_pointing"; None: not given by the rules
    alpha_cutoff_fraction: Optional[float] = None  # mtmfs: alpha where tt0 > this x max(tt0 residual)
    mosweight: Literal["per_pointing", "joint"] = "per_pointing"  # a mosaic's Briggs density (tclean's mosweight)
    settings: dict[str, Setting]

    @property
    def path(self) -> str:
        return f"image[{self.key}]"


#: attribute -> the unit the kernels take it in (None: a plain number or a word)
_UNITS: dict[str, Optional[str]] = {
    "cell": "arcsec", "imsize": None, "robust": None, "pblimit": None, "mask_pblimit": None,
    "mask_method": None, "niter": None, "gain": None, "cycle_factor": None, "deconvolver": None,
    "nterms": None, "nbin": None, "pb_model": None, "gridder": None,
}
_AUTOMASK = list(AutoMask.model_fields)
#: attributes read when the rules give them (the stage says when an image needs one they lack)
_OPTIONAL: dict[str, Optional[str]] = {"phasecenter": None, "alpha_cutoff_fraction": None, "mosweight": None}


def setting(dec: Decisions, path: str, unit: Optional[str] = None) -> Setting:
    """The value at `path` (``image[K].cell``) in `unit`; ImagingError when the rules lack it or
    cannot compute it yet."""
    try:
        v = dec.value(path)
    except KeyError:
        attr = path.rsplit(".", 1)[-1]
        raise ImagingError(f"the rules ({', '.join(dec.rules)}) give no {path.split('[')[0]}.{attr}, "
                           f"which the imaging stage needs for {path.rsplit('.', 1)[0]}") from None
    if v.status != "known":
        why = "; ".join(v.errors) or ("waits for " + ", ".join(v.waits_for))
        raise ImagingError(f"{path} is {v.status} ({why}) [{v.at}]")
    return Setting(value=_convert(v, unit), unit=unit, source=v.at or v.origin)


def _convert(v: Value, unit: Optional[str]) -> Scalar:
    if unit is None:
        if v.unit:
            raise ImagingError(f"{v.path} is in {v.unit}; the imaging stage takes a plain number [{v.at}]")
        return v.value
    if not v.unit:
        raise ImagingError(f"{v.path} has no unit; the imaging stage takes it in {unit} [{v.at}]")
    (scale_from, dim_from), (scale_to, dim_to) = parse_unit(v.unit), parse_unit(unit)
    if dim_from != dim_to:
        raise ImagingError(f"{v.path} is in {v.unit}; the imaging stage takes it in {unit} [{v.at}]")
    return float(v.value) * scale_from / scale_to


#: the largest image side (pixels) the imaging stage makes: 4x ALMA's largest pipeline images
#: (~4000 pixels), 2 GB a float64 plane; larger is refused before any computation
MAX_IMSIZE = 16384


def _check_extent(path: str, imsize: int, cell_arcsec: float, settings: dict[str, Setting]) -> None:
    """ImagingError before any computation when the image is larger than MAX_IMSIZE pixels or
    its corners reach the horizon (l^2 + m^2 >= 1: a low-frequency array's field of view), which
    the imaging stage (no w-stacking of a hemisphere) cannot make."""
    where = f"[imsize {settings['imsize'].source}, cell {settings['cell'].source}]"
    if imsize > MAX_IMSIZE:
        raise ImagingError(f"{path}: the rules ask for {imsize}x{imsize} pixels, more than the imaging stage's "
                           f"limit of {MAX_IMSIZE}x{MAX_IMSIZE} {where}")
    half = imsize / 2 * cell_arcsec * ARCSEC  # direction cosine of the edge
    if 2 * half * half >= 1:
        raise ImagingError(f"{path}: the image ({imsize} pixels of {cell_arcsec:.4g} arcsec, "
                           f"{imsize * cell_arcsec / 3600:.4g} deg wide) reaches beyond the horizon "
                           f"(l^2 + m^2 = {2 * half * half:.3g} >= 1 at its corners): a field of view this wide "
                           f"(a low-frequency array) is not supported {where}")


def read_job(dec: Decisions, key: str, created: dict) -> ImageJob:
    """The job of image `key`; `created` holds what its collection emitted (field name, intent,
    spw ids, specmode)."""
    path = f"image[{key}]"
    settings = {a: setting(dec, f"{path}.{a}", unit) for a, unit in _UNITS.items()}
    method = settings["mask_method"].value
    automask = None
    if method == "auto-multithresh":
        for a in _AUTOMASK:
            settings[a] = setting(dec, f"{path}.{a}")
        automask = AutoMask(**{a: settings[a].value for a in _AUTOMASK})
    elif method != "pb":
        raise ImagingError(f"{path}.mask_method is {method!r}; the imaging stage knows 'pb' and "
                           f"'auto-multithresh' [{settings['mask_method'].source}]")
    if settings["pb_model"].value not in MODEL_NAMES:
        raise ImagingError(f"{path}.pb_model is {settings['pb_model'].value!r}; the primary-beam models are "
                           f"{', '.join(repr(m) for m in MODEL_NAMES)} [{settings['pb_model'].source}]")
    for a, unit in _OPTIONAL.items():
        try:
            settings[a] = setting(dec, f"{path}.{a}", unit)
        except ImagingError as exc:
            if "give no" not in str(exc):
                raise
    vals = {a: s.value for a, s in settings.items()}
    _check_extent(path, int(vals["imsize"]), float(vals["cell"]), settings)
    return ImageJob(key=key, field=created["field"], intent=created["intent"], spws=created["spws"],
                    specmode=created["specmode"], cell_arcsec=vals["cell"], imsize=int(vals["imsize"]),
                    robust=vals["robust"], pblimit=vals["pblimit"], mask_pblimit=vals["mask_pblimit"],
                    mask_method=method, automask=automask, niter=int(vals["niter"]), gain=vals["gain"],
                    cycle_factor=vals["cycle_factor"], deconvolver=str(vals["deconvolver"]),
                    nterms=int(vals["nterms"]), nbin=int(vals["nbin"]), pb_model=vals["pb_model"],
                    gridder=vals["gridder"], phasecenter=vals.get("phasecenter"),
                    alpha_cutoff_fraction=vals.get("alpha_cutoff_fraction"),
                    mosweight=vals.get("mosweight", "per_pointing"), settings=settings)
