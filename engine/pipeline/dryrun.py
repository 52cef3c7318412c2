"""``almarules run --dry-run``: the plan, then what the run would do stage by stage, and, when
WORKDIR holds an earlier run, which images it would keep and which it would make again and why.
Nothing is written."""

from __future__ import annotations

from pathlib import Path

from almarules.engine.evaluate.api import load_dataset, load_program
from almarules.engine.pipeline.context import Workdir
from almarules.engine.pipeline.inputs import Closure, changes, image_manifest, ms_digests
from almarules.engine.pipeline.runner import STAGES, images_by_stage, recipe_of
from almarules.engine.pipeline.session import RunOptions
from almarules.engine.plan.build import build_plan
from almarules.engine.plan.render.text import render
from almarules.engine.products.contdat import read_contdat


def dry_run(opts: RunOptions) -> str:
    """The text of a dry run (module docstring)."""
    program = load_program(opts.rules)
    facts = load_dataset(opts.ms, opts.intents)
    plan = build_plan(program, facts, ", ".join(opts.ms), opts.sets)
    _name, recipe = recipe_of(plan.decisions)
    old = Workdir(Path(opts.workdir)).load_state() if Path(opts.workdir).is_dir() else None
    closure = Closure(plan.decisions, program)
    ms = ms_digests([Path(m) for m in opts.ms])
    contdat = read_contdat(opts.contfile) if opts.contfile else None
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
                parts, words = image_manifest(key, closure, ms, contdat, opts.switches(), flags)
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
