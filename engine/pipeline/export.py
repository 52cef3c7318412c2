"""``exportdata``: what the pipeline delivers, in ``WORKDIR/products/``.

- the FITS products of every image made (``.pbcor.fits``, ``.pb.fits`` and ``.mask.fits``; the
  working products stay in ``images/``), hard-linked (copied across file systems);
- ``cont.dat`` (given, or written by findcont) and the flag template;
- ``commands.log``: for every stage the equivalent ``almarules`` command and CASA call;
- ``rerun.sh``: the command that reproduces the run (the counterpart of ``casa_pipescript.py``);
- ``manifest.json``: every product with its SHA-256, size, the stage and rule set that made it.

Each file is written atomically; a product no longer made (an image dropped by an edit) is
removed, so the folder always matches the manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from pydantic import BaseModel

from almarules import __version__
from almarules.engine.pipeline import commands
from almarules.engine.io import write_atomic
from almarules.engine.pipeline.context import now
from almarules.engine.pipeline.session import RunContext
from almarules.engine.pipeline.state import StageRun
from almarules.engine.stages.imaging.record import ImageRecord

DELIVERED = ("pbcor", "pb", "mask", "tt0.pbcor", "pb.tt0", "alpha", "alpha.error")  # writer's kinds


class ManifestEntry(BaseModel):
    file: str
    sha256: str
    bytes: int
    kind: str  # "image:pbcor", "cont.dat", "flagtemplate", "commands", "rerun"
    image: Optional[str] = None
    stage: Optional[int] = None  # the stage that made it
    rules_sha256: str


class Manifest(BaseModel):
    almarules: str = __version__
    written: str
    rules: list[str]
    rules_sha256: str
    products: list[ManifestEntry]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _link(src: Path, dst: Path) -> None:
    """Put `src` at `dst` atomically: a hard link (a copy across file systems) then a rename."""
    if dst.exists() and os.path.samefile(src, dst):
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _image_products(ctx: RunContext) -> list[tuple[Path, str, str, int]]:
    """(source, kind, image key, stage) of each delivered FITS product."""
    found = []
    for key, entry in ctx.state.images.items():
        if not entry.record or entry.status == "failed":
            continue
        try:
            rec = ImageRecord.model_validate_json((ctx.wd.root / entry.record).read_bytes())
        except (OSError, ValueError):
            continue
        for p in rec.products:
            if p.kind in DELIVERED and (ctx.wd.images / p.file).is_file():
                found.append((ctx.wd.images / p.file, f"image:{p.kind}", key, entry.stage))
    return found


def commands_log(ctx: RunContext) -> str:
    """Every stage's equivalent commands, in recipe order."""
    lines = [f"# almarules {__version__}: the equivalent commands of each stage of this run",
             f"# rules: {', '.join(ctx.opts.rules)} (sha256 {ctx.dec.rules_sha256[:16]})", ""]
    for s in ctx.state.stages:
        lines.append(f"# [{s.index}] {s.name}{'(' + ', '.join(s.args) + ')' if s.args else ''}: {s.status}")
        for c in s.commands:
            prefix = "" if c.tool == "almarules" else "# CASA: "
            lines.append(prefix + c.text + (f"   # {c.note}" if c.note else ""))
        lines.append("")
    return "\n".join(lines)


def rerun_script(ctx: RunContext) -> str:
    argv = commands.run_argv(ctx.opts)
    return ("#!/bin/sh\n# Re-runs this pipeline run with almarules " + __version__ + " (the counterpart of "
            "casa_pipescript.py).\n# A finished run is kept: only what its inputs changed is made again.\nset -e\n"
            + commands.shell(argv) + ' "$@"\n')


def exportdata(ctx: RunContext, stage: StageRun) -> None:
    """Write products/ (module docstring)."""
    out = ctx.wd.products
    out.mkdir(parents=True, exist_ok=True)
    entries: list[ManifestEntry] = []
    rules_sha = ctx.dec.rules_sha256

    hashed: dict[tuple, str] = ctx.cache.setdefault("sha256", {})  # a product hashed by an earlier exportdata

    def add(path: Path, kind: str, image: Optional[str] = None, stage_index: Optional[int] = None) -> None:
        st = path.stat()
        ident = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if ident not in hashed:
            hashed[ident] = sha256(path)
        entries.append(ManifestEntry(file=path.name, sha256=hashed[ident], bytes=st.st_size, kind=kind,
                                     image=image, stage=stage_index, rules_sha256=rules_sha))

    for src, kind, key, index in _image_products(ctx):
        _link(src, out / src.name)
        add(out / src.name, kind, key, index)
    for given, kind in ((ctx.contfile or ctx.opts.contfile, "cont.dat"), (ctx.opts.flagtemplate, "flagtemplate")):
        if given:
            dst = out / ("cont.dat" if kind == "cont.dat" else Path(given).name)
            write_atomic(dst, Path(given).read_bytes())
            add(dst, kind, stage_index=stage.index)
    for path, kind in _calibration_products(ctx, out):
        add(path, kind, stage_index=stage.index)
    stage.commands = [commands.Command(tool="almarules", text=commands.shell(commands.run_argv(ctx.opts)),
                                       note="re-runs the whole run; finished work is kept")]
    write_atomic(out / "commands.log", commands_log(ctx))
    add(out / "commands.log", "commands", stage_index=stage.index)
    write_atomic(out / "rerun.sh", rerun_script(ctx))
    os.chmod(out / "rerun.sh", 0o755)
    add(out / "rerun.sh", "rerun", stage_index=stage.index)
    manifest = Manifest(written=now(), rules=ctx.opts.rules, rules_sha256=rules_sha, products=entries)
    _remove_stale(out, {e.file for e in entries} | {"manifest.json"})
    write_atomic(out / "manifest.json", manifest.model_dump_json(indent=2) + "\n")
    stage.items = [e.file for e in entries]
    n = sum(e.kind.startswith("image:") for e in entries)
    stage.notes.append(f"{n} FITS product(s) and {len(entries) - n} other file(s) in {ctx.wd.rel(out)}/, "
                       f"listed with checksums in manifest.json")
    ctx.stage_log(stage, stage.notes[-1])


def _calibration_products(ctx: RunContext, out: Path) -> list[tuple[Path, str]]:
    """The calibration's deliverables: its files (flux.csv, the outlier template) copied, and the
    CASA calibration tables of each MS as ``<ms>.caltables.tgz`` (the pipeline's packaging)."""
    import io
    import tarfile

    done: list[tuple[Path, str]] = []
    for src, kind in ctx.cache.get("cal_products", {}).items():
        dst = out / Path(src).name
        write_atomic(dst, Path(src).read_bytes())
        done.append((dst, kind))
    tables = sorted(Path(t) for t in ctx.cache.get("cal_tables", []) if Path(t).is_dir())
    for ms in dict.fromkeys(t.name.split(".ms.")[0] + ".ms" for t in tables):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for t in tables:
                if t.name.startswith(ms + "."):
                    tar.add(t, arcname=t.name)
        dst = out / f"{ms}.caltables.tgz"
        write_atomic(dst, buf.getvalue())
        done.append((dst, "caltables"))
    return done


def _remove_stale(out: Path, keep: set[str]) -> None:
    for p in out.iterdir():
        if p.is_file() and p.name not in keep and not p.name.startswith("."):
            p.unlink()
