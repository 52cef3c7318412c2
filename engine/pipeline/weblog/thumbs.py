"""The weblog's pictures (drawn by `figures`), cached: a PNG's name carries a hash of what it was
drawn from (FITS name, size and mtime, or the facts' hash) and of `VERSION`, so a PNG whose
inputs did not change is taken from the previous weblog instead of being drawn again. Alt text,
caption and size of every PNG are kept in ``thumbs/index.json`` for the same reuse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

from almarules.engine.pipeline.weblog.links import slug
from almarules.engine.pipeline.weblog.model import Thumb
from almarules.engine.stages.imaging.writer import base_kind

VERSION = "1"  # bump when the figures change: every PNG is drawn again
INDEX = "thumbs/index.json"
#: the thumbnails of an image page: product kind -> label (the first kind found of each tuple)
IMAGE_KINDS = ((("pbcor", "tt0.pbcor", "image", "image.tt0"), "image (pbcor)"), (("residual", "residual.tt0"), "residual"),
               (("mask",), "clean mask"), (("psf", "psf.tt0"), "PSF"), (("pb", "pb.tt0"), "primary beam"),
               (("model", "model.tt0"), "model"), (("alpha",), "spectral index"),
               (("alpha.error",), "spectral index error"), (("weight",), "mosaic weight"))



def file_key(path: Path) -> str:
    """What a picture of `path` depends on: its name, size and modification time (ns)."""
    st = path.stat()
    return f"{path.name}|{st.st_size}|{st.st_mtime_ns}"


def _read_meta(files: list[Path]) -> dict[str, dict[str, Any]]:
    meta: dict[str, dict[str, Any]] = {}
    for f in files:
        try:
            meta.update(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return meta


class Pictures:
    """Draws (or reuses) PNGs into ``<build>/thumbs/``; `old` is the previous weblog, if any, and
    `predrawn` a folder of pictures the image tasks drew on their workers (`predraw`)."""

    def __init__(self, build: Path, old: Optional[Path], progress: Callable[[str], None],
                 predrawn: Optional[Path] = None) -> None:
        self.build, self.progress = build, progress
        (build / "thumbs").mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, dict[str, Any]] = {}
        self.sources: list[tuple[Path, dict[str, dict[str, Any]]]] = []
        if old is not None:
            self.sources.append((old, _read_meta([old / INDEX])))
        if predrawn is not None and (predrawn / "thumbs").is_dir():
            self.sources.append((predrawn, _read_meta(sorted((predrawn / "thumbs").glob("index-*.json")))))
        self.drawn = self.reused = 0

    def picture(self, kind: str, label: str, stem: str, depends: str,
                draw: Callable[[Path], Any]) -> Thumb:
        """The Thumb of one PNG named after `stem`, `kind` and the hash of `depends`;
        `draw(png_path)` makes it (returning a figures.FigureInfo) when it is not cached."""
        digest = hashlib.sha256(f"{VERSION}|{kind}|{depends}".encode()).hexdigest()[:12]
        name = f"thumbs/{slug(stem)}.{kind}.{digest}.png"
        if self._reuse(name):
            self.reused += 1
        else:
            try:
                info = draw(self.build / name)
            except Exception as exc:  # a picture that cannot be drawn must not stop the weblog
                return Thumb(kind=kind, label=label, missing=f"not drawn: {type(exc).__name__}: {exc}")
            self.meta[name] = {"width": int(info.width_px), "height": int(info.height_px),
                               "alt": str(info.alt), "caption": str(info.caption)}
            self.drawn += 1
        m = self.meta[name]
        return Thumb(kind=kind, label=label, src=name, width=m["width"], height=m["height"], alt=m["alt"],
                     caption=m["caption"])

    def _reuse(self, name: str) -> bool:
        for root, meta in self.sources:
            if name not in meta or not (root / name).is_file():
                continue
            try:
                os.link(root / name, self.build / name)
            except OSError:
                shutil.copy2(root / name, self.build / name)
            self.meta[name] = meta[name]
            return True
        return False

    def write_index(self) -> None:
        (self.build / INDEX).write_text(json.dumps(self.meta, indent=1, sort_keys=True) + "\n")


def _products(record: Any, images_dir: Path) -> dict[str, Path]:
    return {p.kind: images_dir / p.file for p in record.products if (images_dir / p.file).is_file()}


def image_thumbs(pics: Pictures, record: Any, images_dir: Path) -> list[Thumb]:
    """The thumbnails of one image: image (pbcor), residual, mask, PSF, PB, model (those that exist)."""
    from almarules.engine.pipeline.weblog import figures

    files = _products(record, images_dir)
    mask = files.get("mask")
    out = []
    for kinds, label in IMAGE_KINDS:
        kind = next((k for k in kinds if k in files), None)
        if kind is None:
            continue
        fits = files[kind]
        with_mask = mask if kinds[0] == "pbcor" else None
        depends = file_key(fits) + (f"|{file_key(with_mask)}" if with_mask else "")

        def draw(png: Path, fits: Path = fits, kind: str = kind, with_mask: Optional[Path] = with_mask) -> Any:
            return figures.image_thumbnail(fits, png, base_kind(kind), mask_fits=with_mask)

        out.append(pics.picture(kind, label, record.key, depends, draw))
    return out


def cube_figures(pics: Pictures, record: Any, images_dir: Path) -> list[Thumb]:
    """A cube's peak spectrum and moment-0 map (of the non-pbcor image, else the pbcor one)."""
    from almarules.engine.pipeline.weblog import figures

    files = _products(record, images_dir)
    cube = files.get("image") or files.get("pbcor")
    if record.specmode != "cube" or cube is None:
        return []
    return [pics.picture("spectrum", "peak spectrum", record.key, file_key(cube),
                         lambda png: figures.peak_spectrum(cube, png)),
            pics.picture("moment0", "moment-0 map", record.key, file_key(cube),
                         lambda png: figures.moment0(cube, png))]


def predraw(record: Any, images_dir: Path, root: Path) -> None:
    """Draw the pictures of one image into ``root/thumbs/`` with their metadata in
    ``root/thumbs/index-<key>.json`` (each image its own file: tasks run at once), so that the
    weblog takes them instead of drawing them; called by the image task on its worker."""
    pics = Pictures(root, None, lambda _text: None)
    image_thumbs(pics, record, images_dir)
    cube_figures(pics, record, images_dir)
    index = root / "thumbs" / f"index-{slug(record.key)}.json"
    tmp = index.with_name(f".{index.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(pics.meta, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, index)


def dataset_figures(pics: Pictures, dataset: Any, facts_json: str) -> list[Thumb]:
    """The array plot and the scans plot of the dataset (cached on the facts' text)."""
    from almarules.engine.pipeline.weblog import figures

    digest = hashlib.sha256(facts_json.encode()).hexdigest()
    return [pics.picture("array", "antennas", "dataset", digest, lambda png: figures.array_plot(dataset, png)),
            pics.picture("scans", "scans over time", "dataset", digest, lambda png: figures.scans_plot(dataset, png))]
