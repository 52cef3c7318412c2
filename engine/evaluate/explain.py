"""The derivation tree of one value: formula, inputs, down to facts and constants."""

from __future__ import annotations

import difflib
from typing import Any

from almarules.dsl import ast as A
from almarules.dsl.format import format_allowed
from almarules.engine.evaluate.decisions import source_text
from almarules.engine.evaluate.evaluation import Evaluation
from almarules.engine.evaluate.params import UsageError, param_unit
from almarules.engine.evaluate.present import input_text, show_value
from almarules.engine.evaluate.values import Entity, Unknown
from almarules.engine.evaluate.world import summary_path


def known_paths(ev: Evaluation) -> list[str]:
    from almarules.engine.evaluate.decisions import decisions

    return [v.path for v in decisions(ev).values]


def explain(ev: Evaluation, path: str, depth: int = 8) -> str:
    """Text tree: each value with its rule (file:line), formula and inputs."""
    try:
        ent, attr = ev.resolve(path)
        ev.attr(ent, attr)
        ok = attr in ev.p.origins.get(ent.kind, {})
    except UsageError:
        ok = False
    if not ok:
        close = difflib.get_close_matches(path, known_paths(ev), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"no value {path!r} in these decisions{hint}")
    lines: list[str] = []
    _node(ev, path, "", depth, set(), lines, ev.world.source)
    return "\n".join(lines) + "\n"


def _value_text(ev: Evaluation, ent: Entity, attr: str, value: Any) -> str:
    if isinstance(value, Entity):
        return value.path
    if isinstance(value, tuple) and value and isinstance(value[0], Entity):
        return f"{len(value)} {value[0].kind}{'s' if len(value) != 1 else ''}"
    digits = ev.p.schema.kinds[ent.kind][attr].digits or 4
    return show_value(value, ev.value_type(ent.kind, attr), ev.display_unit(ent.kind, attr), digits)


def _node(ev: Evaluation, path: str, indent: str, depth: int, seen: set[str], out: list[str], source: str) -> None:
    if path.startswith("param:"):
        name = path[6:]
        decl = ev.p.rs.params[name]
        value = ev.param_values[name]
        origin = ev.param_overlay[name][1] if name in ev.param_overlay else ev.param_origins.get(name, "default")
        text = show_value(value, ev.p.param_type(name), param_unit(decl))
        accepts = (f"; accepts {format_allowed(decl.allowed)} ({decl.allowed.loc})"
                   if decl.allowed is not None else "")
        out.append(f"{indent}param {name} = {text}   [{origin}; declared {decl.loc}{accepts}]")
        return
    if path.startswith(("table:", "band:")):
        what, name, index = path.split(":")
        t = ev.p.tables[name].decl
        row = t.rows[int(index)]
        if what == "table":
            out.append(f"{indent}table {name}: row {row.interval} -> {source_text(ev, row.expr.loc)}   [{row.loc}]")
        else:
            out.append(f"{indent}bands {name}: {row.label} {row.interval}   [{row.loc}]")
        return
    try:
        ent, attr = ev.resolve(path)
    except UsageError:
        out.append(f"{indent}{path}")
        return
    value = ev.attr(ent, attr)
    origin = ev.p.origins[ent.kind].get(attr)
    text = _value_text(ev, ent, attr, value)
    if origin in ("fact", "builtin"):
        where = summary_path(ent, attr)
        note = (f"fact {where} in {source}" if not isinstance(value, Unknown)
                else f"fact {where} absent from {source}")
        out.append(f"{indent}{path} = {text}   [{note}]")
        return
    prov = ent.prov.get(attr)
    if origin == "created":
        if ent.kind == "dataset":
            coll = ev.p.rs.collections[ev.p.schema.collections[attr]]
            out.append(f"{indent}{path} = {text}   [collection {coll.kind}, {coll.loc}]")
        else:
            coll = ev.p.rs.collections[ent.kind]
            out.append(f"{indent}{path} = {text}   [emitted by collection {coll.kind}, {coll.loc}]")
        return
    if path in seen:
        out.append(f"{indent}{path} = {text}   (see above)")
        return
    seen.add(path)
    if prov is None or prov.decl is None:
        out.append(f"{indent}{path} = {text}")
        return
    decl = prov.decl
    if isinstance(decl, A.Derive):
        out.append(f"{indent}{path} = {text}   [derive {decl.target}, {decl.loc}]")
        if decl.doc:
            out.append(f"{indent}    \"{decl.doc.splitlines()[0]}\"")
        out.append(f"{indent}    = {source_text(ev, decl.expr.loc)}")
        if decl.when is not None:
            out.append(f"{indent}    when {source_text(ev, decl.when.loc)}")
    elif isinstance(decl, A.Score):
        out.append(f"{indent}{path} = {text}   [score {decl.target}, {decl.loc}]")
        if decl.doc:
            out.append(f"{indent}    \"{decl.doc.splitlines()[0]}\"")
        start = source_text(ev, decl.start.loc) if decl.start is not None else "?"
        out.append(f"{indent}    start {start}")
        for sign, amount, reason, loc in prov.reasons:
            out.append(f"{indent}    {sign} {amount:g} {reason!r}   [{loc}]")
        if not prov.reasons:
            out.append(f"{indent}    (no term applied)")
    elif isinstance(decl, A.Step):
        out.append(f"{indent}{path} = {text}   [{prov.note}, {decl.loc}]")
    else:
        out.append(f"{indent}{path} = {text}")
    if depth <= 0:
        if prov.inputs:
            out.append(f"{indent}    ... ({len(prov.inputs)} inputs; raise --depth to see them)")
        return
    for inp in dict.fromkeys(map(input_text, prov.inputs)):
        if inp.endswith(".key"):
            continue
        _node(ev, inp, indent + "    ", depth - 1, seen, out, source)
