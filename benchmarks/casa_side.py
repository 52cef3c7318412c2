"""The CASA half of `compare_casa.py`: run inside the CASA virtual environment only.

    <casa-venv>/bin/python benchmarks/casa_side.py SPEC.json

Never imported by the project: it imports casatools/casatasks, which must not share a process with
python-casacore. SPEC.json (written by compare_casa.py) gives the MS, the selection and every
tclean parameter taken from almarules' record, the clean mask (a .npy of 0/1 in almarules' plane
order, (nchan, ny, nx)), an output directory and ``t_launch`` (the epoch second at which the
parent started this process).

What it does, as the pipeline does:

1. imports casatasks/casatools (the time from ``t_launch`` to here is the import time);
2. tclean niter=0: PSF, PB, dirty image (the residual) and the fitted beam;
3. tclean clean call on the same image name, continuing from the niter=0 products
   (calcpsf=False, calcres=False, as the pipeline's iter1 reuses iter0's PSF and residual; with
   ``clean_from_scratch`` in the spec both are made again) with the imported mask, the threshold
   and niter of the record;
4. outside the timed part: every image as a float64 .npy in almarules' plane order
   (nchan, ny, nx), CASA's pixel mask as NaN; the restoring beam(s); apparentsens (imager tool,
   the same weighting, cell and image size) per plane; ``result.json`` with all of it.

Times are wall-clock seconds (time.perf_counter); ``whole`` = imports + both tclean calls. With
``timing_only`` in the spec, step 4 is skipped (the repeats of ``compare_casa.py --repeat``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import casatools
import numpy as np
from casatasks import tclean
from casatools import image, imager, quanta

T_IMPORTED = time.time()

PRODUCTS = ("psf", "pb", "residual", "image", "model", "mask")


def tclean_args(spec: dict, niter: int) -> dict:
    """The tclean keyword arguments of one call (niter 0: dirty, PSF, PB)."""
    p = spec["tclean"]
    args = dict(vis=spec["ms"], field=p["field"], spw=p["spw"], datacolumn=p["datacolumn"],
                imagename=spec["imagename"], imsize=[p["imsize"], p["imsize"]], cell=p["cell"],
                phasecenter=p["phasecenter"], stokes="I", specmode=p["specmode"], gridder="standard",
                weighting=p["weighting"], robust=p["robust"], deconvolver=p["deconvolver"], niter=niter,
                gain=p["gain"], cyclefactor=p["cyclefactor"], threshold=p["threshold"], pblimit=p["pblimit"],
                interactive=False, pbcor=False, restoration=niter > 0, fullsummary=False,
                uvrange=p.get("uvrange", ""))
    if p["specmode"] == "cube":
        args.update(nchan=p["nchan"], start=p["start"], width=p["width"], outframe=p["outframe"],
                    interpolation=p["interpolation"])
    return args


def read_image(path: str) -> np.ndarray:
    """A CASA image as float64 (nchan, ny, nx), masked pixels NaN (CASA's axes: x, y, stokes, chan)."""
    ia = image()
    ia.open(path)
    try:
        pix = np.asarray(ia.getchunk(), dtype=np.float64)
        ok = np.asarray(ia.getchunk(getmask=True), dtype=bool)
    finally:
        ia.close()
    pix = np.where(ok, pix, np.nan)
    while pix.ndim < 4:
        pix = pix[..., np.newaxis]
    return np.ascontiguousarray(pix[:, :, 0, :].transpose(2, 1, 0))


def write_mask(spec: dict, plane_mask: np.ndarray) -> str:
    """The clean mask as a CASA image on the niter=0 PB's coordinates; its path."""
    out = spec["imagename"] + ".inmask"
    shutil.rmtree(out, ignore_errors=True)
    ia = image()
    ia.open(spec["imagename"] + ".pb")
    csys = ia.coordsys()
    shape = ia.shape()
    ia.close()
    arr = np.zeros(shape, dtype=np.float32)
    arr[:, :, 0, :] = plane_mask.transpose(2, 1, 0)
    ia.fromarray(outfile=out, pixels=arr, csys=csys.torecord(), overwrite=True)
    ia.close()
    csys.done()
    return out


def beams(path: str) -> list[list[float]]:
    """[[bmaj arcsec, bmin arcsec, bpa deg], ...] per plane of the restored image."""
    qa = quanta()
    ia = image()
    ia.open(path)
    try:
        rb = ia.restoringbeam()
    finally:
        ia.close()

    def one(b: dict) -> list[float]:
        return [qa.convert(b["major"], "arcsec")["value"], qa.convert(b["minor"], "arcsec")["value"],
                qa.convert(b["positionangle"], "deg")["value"]]

    if "beams" in rb:
        return [one(rb["beams"][f"*{c}"]["*0"]) for c in range(int(rb["nChannels"]))]
    return [one(rb)] if rb else []


def frequencies(path: str) -> list[float]:
    """The spectral coordinate of each plane (Hz, the image's frame)."""
    ia = image()
    ia.open(path)
    try:
        cs = ia.coordsys()
        shape = ia.shape()
        ax = cs.findcoordinate("spectral")["pixel"][0]
        out = []
        for c in range(int(shape[ax])):
            pix = [0.0] * len(shape)
            pix[ax] = float(c)
            out.append(float(cs.toworld(pix, "n")["numeric"][ax]))
        cs.done()
    finally:
        ia.close()
    return out


def grid(path: str) -> dict:
    """The direction reference of an image: value (deg, the image's frame), pixel (0-based), increment
    (arcsec), and the frame's name."""
    ia = image()
    ia.open(path)
    try:
        cs = ia.coordsys()
        val = cs.referencevalue(format="n")["numeric"][:2]
        pix = cs.referencepixel()["numeric"][:2]
        inc = cs.increment(format="n")["numeric"][:2]
        frame = cs.referencecode("direction")[0]
        cs.done()
    finally:
        ia.close()
    return {"ref_deg": [float(np.degrees(v)) for v in val], "ref_pixel": [float(v) for v in pix],
            "cell_arcsec": [float(np.degrees(v) * 3600) for v in inc], "frame": frame}


def apparentsens(spec: dict) -> list[float]:
    """Point-source sensitivity from the weights (Jy/beam) per plane: imager.apparentsens with the
    image's weighting, cell and size (a cube: one call per channel of the selection)."""
    p = spec["tclean"]
    sel = [p["spw"]] if p["specmode"] != "cube" else spec["sens_spws"]
    out = []
    for spw in sel:
        im = imager()
        im.open(spec["ms"])
        try:
            im.selectvis(field=p["field"], spw=spw, uvrange=p.get("uvrange", ""))
            im.defineimage(nx=p["imsize"], ny=p["imsize"], cellx=p["cell"], celly=p["cell"], stokes="I",
                           phasecenter=p["phasecenter"], mode="mfs")
            im.weight(type=p["weighting"], robust=p["robust"])
            s = im.apparentsens()
        finally:
            im.close()
        out.append(float(s[1]))
    return out


def main(spec_file: str) -> int:
    spec = json.loads(open(spec_file).read())
    base = spec["imagename"]
    for ext in PRODUCTS + ("sumwt", "weight", "inmask"):
        shutil.rmtree(f"{base}.{ext}", ignore_errors=True)
    os.makedirs(spec["out"], exist_ok=True)
    res: dict = {"casatools": casatools.version_string(), "import": T_IMPORTED - spec["t_launch"]}

    t = time.perf_counter()
    tclean(**tclean_args(spec, 0))
    res["dirty_call"] = time.perf_counter() - t
    for kind in ("psf", "pb", "residual"):
        name = "dirty" if kind == "residual" else kind
        np.save(os.path.join(spec["out"], f"{name}.npy"), read_image(f"{base}.{kind}"))

    mask = write_mask(spec, np.load(spec["mask_npy"]))
    args = tclean_args(spec, spec["tclean"]["niter"])
    if not spec.get("clean_from_scratch"):
        args.update(calcpsf=False, calcres=False)
    args.update(mask=mask)
    t = time.perf_counter()
    summary = tclean(**args)
    res["clean_call"] = time.perf_counter() - t
    res["whole"] = res["import"] + res["dirty_call"] + res["clean_call"]
    if spec.get("timing_only"):
        with open(os.path.join(spec["out"], "result.json"), "w") as f:
            json.dump(res, f, indent=1)
        return 0

    for kind in ("image", "residual", "model", "mask"):
        np.save(os.path.join(spec["out"], f"{kind}.npy"), read_image(f"{base}.{kind}"))
    res["beams"] = beams(f"{base}.image")
    res["frequencies"] = frequencies(f"{base}.image")
    res["grid"] = grid(f"{base}.image")
    summary = summary or {}
    res["iterdone"] = int(summary.get("iterdone", -1))
    res["nmajordone"] = int(summary.get("nmajordone", -1))
    res["stopcode"] = int(summary.get("stopcode", -1))
    t = time.perf_counter()
    res["apparentsens"] = apparentsens(spec)
    res["apparentsens_time"] = time.perf_counter() - t
    with open(os.path.join(spec["out"], "result.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
