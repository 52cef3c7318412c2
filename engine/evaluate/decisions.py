"""The decisions of one evaluation, as pydantic models (what crosses into reports).

Deterministic: entities appear in facts/creation order, attributes by name, and
the JSON has no timestamps, so the same rules and facts give byte-identical output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from almarules import __version__
from almarules.dsl import ast as A
from almarules.engine.evaluate.evaluation import Evaluation
from almarules.engine.evaluate.params import param_unit
from almarules.engine.evaluate.records import Provenance
from almarules.engine.evaluate.present import input_text, plain, present, show_value
from almarules.engine.evaluate.values import Unknown


# Value and Reason are plain (slotted) dataclasses: there are hundreds per evaluation and
# pydantic validates and serialises them as fields of `Decisions`, the boundary model.
@dataclass(slots=True)
class Reason:
    sign: str
    amount: float
    reason: str
    at: str


@dataclass(slots=True)
class Value:
    """One derived value with where it came from."""

    path: str
    status: Literal["known", "unknown", "error"]
    value: Any
    unit: Optional[str]
    text: str
    waits_for: list[str]
    errors: list[str]
    origin: str
    rule: Optional[str] = None
    at: Optional[str] = None
    formula: Optional[str] = None
    inputs: list[str] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    doc: Optional[str] = None


class Param(BaseModel):
    name: str
    value: Any
    unit: Optional[str] = None
    text: str
    origin: str
    at: str


class Step(BaseModel):
    name: str
    at: str
    changes: list[str]
    after: dict[str, str]


class SkippedStep(BaseModel):
    """A step passed over because its `when` condition was false."""

    name: str
    at: str
    reason: str
    after_steps: int  # how many applied steps come before it


class Cascade(BaseModel):
    name: str
    at: str
    status: str  # "not needed", "mitigated", "still exceeded", "error", "unknown"
    before: dict[str, str]
    steps: list[Step]  # the steps applied, in order
    waits_for: list[str] = Field(default_factory=list)
    outcome: str = "not needed"  # the value of dataset.NAME_outcome
    error: Optional[str] = None  # the message of the error action that stopped it
    skipped: list[SkippedStep] = Field(default_factory=list)


class RuleWarning(BaseModel):
    """A ``warn`` declaration whose condition holds ("fires") or is unknown ("unknown": may apply)."""

    message: str
    at: str
    status: Literal["fires", "unknown"]
    waits_for: list[str] = Field(default_factory=list)
    doc: Optional[str] = None


class Stage(BaseModel):
    name: str
    args: list[Any]
    run: Optional[bool]
    at: str
    waits_for: list[str] = Field(default_factory=list)


class Decisions(BaseModel):
    almarules: str = __version__
    rules: list[str]
    rules_sha256: str
    facts: str
    params: list[Param]
    entities: dict[str, list[str]]
    values: list[Value]
    cascades: list[Cascade]
    recipes: dict[str, list[Stage]]
    warnings: list[RuleWarning] = Field(default_factory=list)

    def value(self, path: str) -> Value:
        for v in self.values:
            if v.path == path:
                return v
        raise KeyError(path)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def source_text(ev: Evaluation, loc: A.Loc) -> Optional[str]:
    src = ev.p.rs.sources.get(loc.file)
    if src is None or loc.line <= 0:
        return None
    lines = src.splitlines()
    if loc.end_line == loc.line:
        return lines[loc.line - 1][loc.column - 1:loc.end_column - 1]
    parts = [lines[loc.line - 1][loc.column - 1:]]
    parts += [l.strip() for l in lines[loc.line:loc.end_line - 1]]
    parts.append(lines[loc.end_line - 1][:loc.end_column - 1].strip())
    return " ".join(p.strip() for p in parts if p.strip())


class _Presenter:
    """Turns an evaluation into report models; static facts about rules are computed once."""

    def __init__(self, ev: Evaluation):
        self.ev = ev
        self.attrs: dict[tuple[str, str], tuple] = {}
        self.decls: dict[int, tuple] = {}

    def attr_info(self, kind: str, name: str) -> tuple:
        key = (kind, name)
        info = self.attrs.get(key)
        if info is None:
            ev = self.ev
            attr = ev.p.schema.kinds[kind][name]
            info = (ev.value_type(kind, name), ev.display_unit(kind, name), attr.doc, attr.digits or 4)
            self.attrs[key] = info
        return info

    def decl_info(self, decl: Any, note: str) -> tuple:
        info = self.decls.get(id(decl))
        if info is None:
            formula = None
            if isinstance(decl, A.Derive):
                rule, formula = f"derive {decl.target}", source_text(self.ev, decl.expr.loc)
            elif isinstance(decl, A.Score):
                rule = f"score {decl.target}"
            elif isinstance(decl, A.Step):
                rule = note
            elif isinstance(decl, A.Collection):
                rule = f"collection {decl.kind}"
            elif isinstance(decl, A.Cascade):
                rule = f"cascade {decl.name}"
            else:
                rule = None
            info = (rule, str(decl.loc), formula)
            self.decls[id(decl)] = info
        return info

    def value(self, kind: str, name: str, ent_path: str, value: Any, prov: Optional[Provenance]) -> Value:
        t, unit_pref, doc, digits = self.attr_info(kind, name)
        shown, unit, text = present(value, t, unit_pref, digits)
        fields: dict[str, Any] = dict(path=f"{ent_path}.{name}", status="known", value=shown, unit=unit, text=text,
                                      waits_for=[], errors=[], origin=prov.origin if prov else "fact", rule=None,
                                      at=None, formula=None, inputs=[], reasons=[], doc=doc)
        if isinstance(value, Unknown):
            fields["status"] = "error" if value.errors else "unknown"
            fields["waits_for"], fields["errors"] = sorted(value.waits), sorted(value.errors)
        if prov is not None and prov.decl is not None:
            fields["rule"], fields["at"], fields["formula"] = self.decl_info(prov.decl, prov.note)
            fields["inputs"] = [t for t in dict.fromkeys(map(input_text, prov.inputs)) if not t.endswith(".key")]
            fields["reasons"] = [Reason(sign=s, amount=a, reason=r, at=str(loc)) for s, a, r, loc in prov.reasons]
        return Value(**fields)


class LazyDecisions:
    """The values of an evaluation, each presented as a `Value` only when asked for (`value`, as
    `Decisions.value`): for a caller that reads a few paths of a large evaluation again after each
    change of the facts (the calibration stages: half the cost of `decisions` is presenting every
    value)."""

    def __init__(self, ev: Evaluation):
        self._presenter = _Presenter(ev)
        self._computed = {f"{ent.path}.{name}": (ent, name, value) for ent, name, value in ev.compute_all()}
        self._values: dict[str, Value] = {}

    def value(self, path: str) -> Value:
        v = self._values.get(path)
        if v is None:
            ent, name, value = self._computed[path]  # KeyError: no such value
            v = self._values[path] = self._presenter.value(ent.kind, name, ent.path, value, ent.prov.get(name))
        return v


def decisions(ev: Evaluation) -> Decisions:
    """Every derived value of every live entity, with provenance."""
    p = ev.p
    pr = _Presenter(ev)
    params = []
    for name, decl in sorted(p.rs.params.items()):
        value = ev.param_values[name]
        origin = ev.param_overlay[name][1] if name in ev.param_overlay else ev.param_origins.get(name, "default")
        t = p.param_type(name)
        shown, unit, text = present(value, t, param_unit(decl))
        params.append(Param(name=name, value=shown, unit=unit, text=text, origin=origin, at=str(decl.loc)))
    values = [pr.value(ent.kind, name, ent.path, value, ent.prov.get(name)) for ent, name, value in ev.compute_all()]
    entities: dict[str, list[str]] = {}
    for kind in ev.derived_names():
        ents = ev.all_of(kind)
        entities[kind] = [] if isinstance(ents, Unknown) else [e.key for e in ents]
    for kind in sorted(p.rs.collections):
        ents = ev.entities(kind)
        entities[kind] = [] if isinstance(ents, Unknown) else [e.key for e in ents]
    cascades = []
    for rec in ev.cascades:
        cascades.append(Cascade(
            name=rec.name, at=str(rec.loc), status=rec.status,
            before={k: _show_path(ev, k, v) for k, v in rec.before.items()},
            steps=[Step(name=s.name, at=str(s.loc), changes=s.changes,
                        after={k: _show_path(ev, k, v) for k, v in s.after.items()}) for s in rec.steps],
            waits_for=list(rec.waits), outcome=rec.outcome, error=rec.error,
            skipped=[SkippedStep(name=k.name, at=str(k.loc), reason=k.reason, after_steps=k.position)
                     for k in rec.skipped]))
    warnings = [RuleWarning(message=w.message, at=str(w.loc), status=w.status, waits_for=list(w.waits), doc=w.doc)
                for w in ev.warnings]
    recipes = {name: [Stage(name=s.name, args=[plain(a, _ANY)[0] for a in s.args], run=s.run, at=str(s.loc),
                            waits_for=list(s.waits)) for s in stages]
               for name, stages in ev.stages.items()}
    return Decisions.model_construct(
        almarules=__version__, rules=p.rs.roots, rules_sha256=p.rs.digest(), facts=ev.world.source,
        params=params, entities=entities, values=values, cascades=cascades, recipes=recipes, warnings=warnings)


def _show_path(ev: Evaluation, path: str, value: Any) -> str:
    ent_path, _, attr = path.rpartition(".")
    kind = "dataset" if ent_path == "dataset" else ent_path.split("[", 1)[0]
    try:
        return show_value(value, ev.value_type(kind, attr), ev.display_unit(kind, attr))
    except KeyError:
        return show_value(value, _ANY)


from almarules.dsl.types import ANY as _ANY  # noqa: E402
