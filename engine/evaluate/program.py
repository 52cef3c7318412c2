"""Evaluate a checked rule set against a dataset's facts.

`Program` compiles a rule set once (`compile_program`); `Program.run(dataset)` returns an
`Evaluation` (`evaluation`): every derived value, memoised, each with its provenance (the rule,
the inputs it read), the cascades' applied steps (`cascade`), the recipe's stages, the warnings
that fire, and which rule items were exercised (for test coverage).

The names others import from here (`Evaluation`, `Provenance`, `UsageError`, `coverage_key`,
`dataset_attrs`, `param_unit`, the records) are re-exported from the modules that hold them.
"""

from __future__ import annotations

from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.checker import CheckResult, outcome_attr
from almarules.dsl.errors import RuleError
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import T
from almarules.engine.evaluate.compile_program import (CCascade, CDerive, CScore, CTable, CWarn, attribute_origins,
                                                       compile_cascades, compile_collection_functions,
                                                       compile_collections,
                                                       compile_derive_functions, compile_derives, compile_params,
                                                       compile_recipes, compile_score_functions, compile_scores,
                                                       compile_tables, compile_warns,
                                                       coverage_key, dataset_attrs, rule_names)
from almarules.engine.evaluate.evaluation import Evaluation, attribute_getters
from almarules.engine.evaluate.params import UsageError, param_unit, resolve_set
from almarules.engine.evaluate.records import (CascadeRecord, Provenance, SkippedStep, StageRecord, StepRecord,
                                               WarningRecord)
from almarules.engine.evaluate.compute_all import all_function
from almarules.engine.evaluate.stale import StaleValues
from almarules.engine.evaluate.world import World
from almarules.engine.facts.model import Dataset

__all__ = ["CascadeRecord", "Evaluation", "Program", "Provenance", "SkippedStep", "StageRecord", "StepRecord",
           "UsageError", "WarningRecord", "coverage_key", "dataset_attrs", "language_coverage_items", "param_unit"]


class Program:
    """A checked rule set compiled to closures; evaluate it on any number of datasets."""

    def __init__(self, rs: RuleSet, check: CheckResult):
        if check.findings:
            raise RuleError(check.findings, rs.sources)
        self.rs = rs
        self.check = check
        self.schema = check.schema
        self.names = rule_names(rs, self.schema)
        self.origins: dict[str, dict[str, str]] = attribute_origins(self.schema)
        self.params: dict[str, float] = compile_params(rs, self.names)
        self.derives: dict[str, dict[str, list[CDerive]]] = compile_derives(rs, self.names)
        score_fns = compile_score_functions(rs, self.names)
        self.scores: dict[tuple[str, str], CScore] = compile_scores(rs, self.names, skip=score_fns)
        self.tables: dict[str, CTable] = compile_tables(rs, self.names)
        self.param_keys = {name: f"param:{name}" for name in rs.params}
        self.collection_fns = compile_collection_functions(rs, self.names)
        self.collections = compile_collections(rs, self.names, skip=self.collection_fns)
        self.cascades: list[CCascade] = compile_cascades(rs, check, self.names)
        self.outcome_of = {outcome_attr(name): name for name in rs.cascades}
        self.warns: list[CWarn] = compile_warns(rs, self.names)
        self.recipes, self.recipe_args = compile_recipes(rs, self.names)
        self.derive_fns = compile_derive_functions(self.derives, self.names, set(rs.collections))
        self.getters = attribute_getters(self.origins, self.derive_fns)
        for (kind, attr), score in score_fns.items():
            self.getters[kind][attr] = score  # (the others: Evaluation._score, by the closures)
        self.readers = self.names.readers  # (shared with the generated code)
        self.stale = StaleValues(rs, self.schema)
        self._unshared: dict[frozenset[tuple[str, str]], frozenset[int]] = {frozenset(): frozenset()}
        kinds = self.schema.kinds
        #: (kind, its derived and scored attributes and cascade outcomes, sorted), dataset first
        self.derived_names: list[tuple[str, tuple[str, ...]]] = [
            (kind, names) for kind in ["dataset"] + sorted(k for k in kinds if k != "dataset")
            if (names := tuple(sorted(a for a, info in kinds[kind].items()
                                      if info.origin in ("derived", "score", "outcome"))))]
        #: (kind, the function computing them all for its entities: compute_all.all_function)
        self.compute_every = [(kind, all_function(kind, names, self.names)) for kind, names in self.derived_names]

    def unshared(self, overlaid: frozenset[tuple[str, str]]) -> frozenset[int]:
        """The memo keys of shared and keyed values (`sharing`) not to use while the attributes
        `overlaid` ((kind, attribute) set by a cascade or assumed) have values of their own on
        some entities."""
        hit = self._unshared.get(overlaid)
        if hit is None:
            hit = self._unshared[overlaid] = frozenset(
                key for key, (kind, reads) in self.names.key_reads.items()
                if any((kind, attr) in overlaid for attr in reads))
        return hit

    def param_type(self, name: str) -> T:
        return self.check.param_types[name]

    def resolve_set(self, assignment: str) -> tuple[str, float | str]:
        """``imaging.max_cube_size=40GB`` -> ("max_cube_size", canonical value)."""
        return resolve_set(self.rs, self.check.param_types, assignment)

    def run(self, dataset: Dataset, params: Optional[dict[str, float]] = None,
            source: str = "<facts>", param_origins: Optional[dict[str, str]] = None,
            assume: Optional[dict[str, str]] = None) -> Evaluation:
        ev = Evaluation(self, World(dataset, self.schema, source, self.readers), params or {}, param_origins or {})
        for path, text in (assume or {}).items():
            ev.assume(path, text)
        ev.run()
        return ev


def language_coverage_items(program: Program) -> dict[tuple, str]:
    """Coverage items of the cascade and warning extensions, beyond `tester.coverage_items`:
    each ``warn`` (exercised when it fires) and each ``error`` action (when it fires)."""
    items: dict[tuple, str] = {}
    for w in program.rs.warns.values():
        items[coverage_key("warn", w.loc)] = f"warn {w.message!r}   [{w.loc}]"
    for c in program.rs.cascades.values():
        for st in c.steps:
            for a in st.actions:
                if isinstance(a, A.ErrorAction):
                    items[coverage_key("error", a.loc)] = (
                        f"cascade {c.name}: step {st.name!r}: error {a.message!r}   [{a.loc}]")
    return items
