"""``almarules run --dry-run``: the plan, then what the run would do stage by stage, and, when
WORKDIR holds an earlier run, which images it would keep and which it would make again and why.
Nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from almarules.engine.evaluate.api import load_dataset, load_program
from almarules.engine.pipeline import contsteps
from almarules.engine.pipeline.context import Workdir
from almarules.engine.pipeline.inputs import Closure, changes, image_manifest, ms_digests
from almarules.engine.pipeline.runner import STAGES, images_by_stage, recipe_of
from almarules.engine.pipeline.session import RunOptions
from almarules.engine.plan.build import build_plan
from almarules.engine.plan.render.text import render
from almarules.engine.products.contdat import read_contdat
from almarules.engine.stages.imaging.job import split_key


def dry_run(opts: RunOptions) -> str:
    """The text of a dry run (module docstring)."""
    program = load_program(opts.rules)
    facts = load_dataset(opts.ms, opts.intents)
    plan = build_plan(program, facts, ", ".join(opts.ms), opts.sets)
    _name, recipe = recipe_of(plan.decisions)
    old = Workdir(Path(opts.workdir)).load_state() if Path(opts.workdir).is_dir() else None
    closure = Closure(plan.decisions, program)
    ms = ms_digests([Path(m) for m in opts.ms])
    contdat = _contdat(opts)
    line = _line_view(opts, plan.decisions, recipe, ms, contdat)
    flags = None  # applied by flagtargets, not implemented yet: not an input of the images
    by_stage = images_by_stage(recipe, plan.decisions.entities.get("image", []), 1, len(recipe))
    lines = [render(plan), "", f"What 'almarules run' would do in {opts.workdir}:"]
    for i, (rs, sp) in enumerate(zip(recipe, plan.recipe, strict=True), 1):
        label = f"[{i}] {rs.name}" + (f"({', '.join(map(str, rs.args))})" if rs.args else "")
        if rs.run is False:
            lines.append(f"  {label}: skipped ({sp.why})")
        elif rs.name not in STAGES:
            lines.append(f"  {label}: not implemented yet")
        elif rs.name == "makeimages":
            lines.append(f"  {label}:")
            for key in by_stage[i]:
                cube = line is not None and split_key(key)[3] == "cube"
                parts, words = image_manifest(key, closure, line if cube else ms, contdat, opts.switches(), flags,
                                              cube)
                prev = old.images.get(key) if old else None
                if prev is None or not prev.record:
                    lines.append(f"      make {key}")
                elif prev.inputs == parts:
                    lines.append(f"      keep {key} (inputs unchanged; kept if its products are whole)")
                else:
                    why = "; ".join(changes(prev.inputs, parts, prev.inputs_text, words))
                    lines.append(f"      make again {key}: {why}")
        else:
            lines.append(f"  {label}: runs")
    return "\n".join(lines) + "\n"


def _contdat(opts: RunOptions):
    """The cont.dat the images would read: --contfile, else the WORKDIR/cont.dat of an earlier run
    (findcont keeps its blocks)."""
    if opts.contfile:
        return read_contdat(opts.contfile)
    earlier = Path(opts.workdir) / contsteps.CONTDAT
    return read_contdat(earlier) if earlier.exists() else None


def _line_view(opts: RunOptions, dec, recipe, ms: list[tuple[str, str]], contdat) -> Optional[list[tuple[str, str]]]:
    """The cubes' view of the line copies uvcontsub would make (None when it would not run)."""
    if contdat is None or not any(rs.name == "uvcontsub" and rs.run is not False for rs in recipe):
        return None
    order = contsteps.uvcontsub_order(dec)
    return [(dest, view) for _src, dest, _ident, view in
            contsteps.line_copies(Path(opts.workdir), [m for m, _ in ms], ms, contdat, {}, order)]
