"""The weblog of a run: a static site ``WORKDIR/weblog/`` (index.html and its pages) drawn from
the run state (run.json), the plan (plan.json), the facts (facts.json) and the image records.

The site is built in a temporary sibling directory and swapped in at the end (an atomic exchange
of the two directories where the kernel offers one, else two renames), so a reader never sees a
half-written weblog. Pictures whose inputs did not change are taken from the previous weblog
(`thumbs`). Nothing in it is loaded from the network; it opens from disk without a server; the
same inputs give byte-identical pages.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import jinja2
from pydantic import BaseModel

from almarules.engine.facts.model import Dataset
from almarules.engine.pipeline.context import PREDRAWN
from almarules.engine.pipeline.state import RunState
from almarules.engine.pipeline.weblog.attention import attention
from almarules.engine.pipeline.weblog.links import RuleLinks, image_page
from almarules.engine.pipeline.weblog import calpages, fmt
from almarules.engine.pipeline.weblog.model import ImageView, Link, Site, StageView
from almarules.engine.pipeline.weblog.outcome import QUANTITIES, outcome_rows, runtime_svg, summarise
from almarules.engine.pipeline.weblog.overview import overview
from almarules.engine.pipeline.weblog.pages import image_view, load_record, stage_view
from almarules.engine.pipeline.weblog.thumbs import Pictures, cube_figures, dataset_figures, image_thumbs
from almarules.engine.plan.model import Plan
from almarules.engine.stages.imaging.record import ImageRecord

TEMPLATES = Path(__file__).with_name("templates")
CSS = Path(__file__).resolve().parents[2] / "plan" / "render" / "assets" / "almarules.css"
M = TypeVar("M", bound=BaseModel)


def _load(path: Path, model: type[M]) -> Optional[M]:
    """The model in a JSON file, or None where the file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        return model.model_validate_json(path.read_text())
    except ValueError:
        return None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.globals["image_page"] = image_page
    env.globals["quantities"] = QUANTITIES
    return env


def _images(state: RunState, workdir: Path, links: RuleLinks, pics: Optional[Pictures],
            progress: Callable[[str], None]) -> list[ImageView]:
    views = []
    for n, (key, entry) in enumerate(sorted(state.images.items(), key=lambda kv: (kv[1].stage, kv[0])), 1):
        record, why = load_record(workdir, entry)
        view = image_view(key, entry, record, state, links)
        if record is None and view.error is None:
            view.error = why
        if record is not None and entry.record:
            images_dir = (workdir / entry.record).parent
            view.files = _files(workdir, entry.record, record)
            if pics is not None:
                drawn = pics.drawn
                view.thumbs = image_thumbs(pics, record, images_dir)
                view.cube_figures = cube_figures(pics, record, images_dir)
                if pics.drawn > drawn:  # a line only when pictures had to be drawn here (slow)
                    progress(f"weblog: pictures of {key} ({n}/{len(state.images)})")
        views.append(view)
    return views


def _files(workdir: Path, record_rel: str, record: ImageRecord) -> list[Link]:
    """Links (weblog-relative) to an image's record and its FITS products that exist."""
    images_dir = (workdir / record_rel).parent
    out = [Link(Path(record_rel).name, os.path.relpath(workdir / record_rel, workdir / "weblog"), "record (JSON)")]
    for p in record.products:
        if (images_dir / p.file).is_file():
            out.append(Link(p.file, os.path.relpath(images_dir / p.file, workdir / "weblog"), f"{p.kind}, {fmt.size(p.bytes)}"))
    return out


def build_site(workdir: Path, state: RunState, pics: Optional[Pictures],
               progress: Callable[[str], None]) -> Site:
    """The view models of every page (drawing pictures into `pics` when given)."""
    plan = _load(workdir / "plan.json", Plan)
    facts = _load(workdir / "facts.json", Dataset)
    links = RuleLinks(state.rules, workdir)
    stages: list[StageView] = [stage_view(s, state, links, workdir, with_log=True) for s in state.stages]
    calpages.attach(pics, stages, state, workdir, progress)
    images = _images(state, workdir, links, pics, progress)
    rows = outcome_rows(images, state.images, plan)
    data_figs = dataset_figures(pics, facts, facts.model_dump_json()) if facts is not None and pics else []
    title = f"{(facts.project if facts else None) or 'almarules'}: run {state.recipe}"
    site = Site(state=state, title=title, attention=attention(state, stages, images, plan, links), stages=stages,
                images=images, outcome_rows=rows, outcome_summary=summarise(rows), outcome_svg=runtime_svg(rows),
                overview={**overview(facts), "figures": data_figs, "plan": plan}, rule_pages=[])
    site.rule_pages = [{"file": f, "lines": f.path.read_text(errors="replace").splitlines()}
                       for f in links.files if f.path.is_file()]
    return site


def _write(build: Path, rel: str, html: str) -> None:
    path = build / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")


def write_pages(site: Site, build: Path) -> None:
    """Render every page of `site` into the directory `build`."""
    env = _environment()
    common: dict[str, Any] = {"site": site, "state": site.state}
    _write(build, "index.html", env.get_template("index.j2").render(root="", **common))
    for stage in site.stages:
        _write(build, stage.page, env.get_template("stage.j2").render(root="../", stage=stage, **common))
    _write(build, "images/index.html", env.get_template("images.j2").render(root="../", **common))
    for image in site.images:
        _write(build, image.page, env.get_template("image.j2").render(root="../", image=image, **common))
    _write(build, "outcome.html", env.get_template("outcome.j2").render(root="", **common))
    _write(build, "overview.html", env.get_template("overview.j2").render(root="", ov=site.overview, **common))
    for rp in site.rule_pages:
        _write(build, rp["file"].page, env.get_template("rules.j2").render(root="../", rp=rp, **common))
    shutil.copyfile(CSS, build / "almarules.css")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two directories (Linux renameat2 RENAME_EXCHANGE); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def swap_in(build: Path, target: Path) -> None:
    """Put the finished `build` where `target` is; the previous `target` is removed."""
    if not target.exists():
        os.rename(build, target)
        return
    if _exchange(build, target):
        shutil.rmtree(build, ignore_errors=True)  # now the old weblog
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=".weblog-old-"))
    os.rename(target, old / "weblog")
    os.rename(build, target)
    shutil.rmtree(old, ignore_errors=True)


STALE_S = 6 * 3600  # a build or old directory left this long ago by a killed render is removed


def _remove_stale(workdir: Path) -> None:
    """Remove what a render killed midway left in WORKDIR (hours ago: no render takes that long)."""
    now = time.time()
    for p in list(workdir.glob(".weblog-build-*")) + list(workdir.glob(".weblog-old-*")):
        try:
            if p.is_dir() and now - p.stat().st_mtime > STALE_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def write_weblog(workdir: Path, state: Optional[RunState] = None,
                 progress: Optional[Callable[[str], None]] = None) -> Path:
    """Write ``WORKDIR/weblog/`` from the run's files (`state` given: instead of run.json) and
    return the path of its index.html. `progress` receives one line per step."""
    workdir = Path(workdir).resolve()
    say = progress or (lambda _text: None)
    if state is None:
        state = RunState.model_validate_json((workdir / "run.json").read_text())
    target = workdir / "weblog"
    _remove_stale(workdir)
    build = Path(tempfile.mkdtemp(dir=workdir, prefix=".weblog-build-"))
    os.chmod(build, 0o755)  # mkdtemp makes it private; the weblog is for reading
    try:
        pics = Pictures(build, target if target.is_dir() else None, say, predrawn=workdir / PREDRAWN)
        site = build_site(workdir, state, pics, say)
        pics.write_index()
        say(f"weblog: {pics.drawn} pictures drawn, {pics.reused} reused; writing pages")
        write_pages(site, build)
        swap_in(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    say(f"weblog: {target / 'index.html'}")
    return target / "index.html"
