"""An evaluation's decisions and records in comparable form (for tests comparing two ways of
evaluating the same rules: generated code and closures, selective and full resets, shared and
recomputed values)."""

from __future__ import annotations

from almarules.engine.evaluate.evaluation import Evaluation
from almarules.engine.evaluate.values import Entity


def input_text(item) -> str:
    """A recorded input as text: ``image[X].cell`` or ``param:ppb``."""
    return f"{item[0].path}.{item[1]}" if isinstance(item, tuple) else item


def _show(v) -> str:
    if isinstance(v, Entity):
        return v.path
    if isinstance(v, (tuple, frozenset)):
        return repr(sorted(map(_show, v)) if isinstance(v, frozenset) else [_show(x) for x in v])
    return repr(v)  # floats exactly; Unknown with its waits and errors, sorted


def everything(ev: Evaluation) -> list:
    """Every value (unknowns with their reasons) with its provenance (rule, inputs read in order,
    reasons), the cascades' records, the stages, the warnings and the coverage."""
    out: list = []
    for ent, name, value in ev.compute_all():
        prov = ent.prov.get(name)
        out.append((ent.path, name, _show(value), prov and (
            prov.origin, str(getattr(prov.decl, "loc", None)), [input_text(i) for i in prov.inputs],
            [(s, repr(a), r, str(loc)) for s, a, r, loc in prov.reasons], prov.note)))
    for c in ev.cascades:
        out.append((c.name, c.status, c.waits, c.error, {k: _show(v) for k, v in c.before.items()},
                    [(s.name, s.changes, {k: _show(v) for k, v in s.after.items()}) for s in c.steps],
                    [(s.name, s.position) for s in c.skipped]))
    out.append({name: [(s.name, [_show(a) for a in s.args], s.run, s.waits) for s in st]
                for name, st in ev.stages.items()})
    out.append([(w.message, w.status, w.waits) for w in ev.warnings])
    out.append(sorted(map(repr, ev.coverage)))
    return out
