"""The static checker: names, types and units, dependencies, conflicts, coverage.

`check(ruleset, schema)` returns every finding (never stops at the first). It
also returns the *typed schema*: the fact schema extended with the attributes
that rules derive and the kinds that collections create, which the evaluator uses.

The parts: `check_model` (the result and shared vocabulary), `check_state` (scopes and
findings), `check_exprs` (expression typing), `check_decls` (the walk of declarations),
`check_intervals` (table and bands coverage), `check_cascades`, `check_graph` (cycles, unused
declarations, cascade order), `disjoint` and `literals` (static reading of conditions and numbers).
"""

from __future__ import annotations

from almarules.dsl.check_cascades import check_cascades
from almarules.dsl.check_decls import (
    check_collections, check_conflicts, check_enums, check_params, check_recipes, check_tables, check_warns,
    register_attributes, type_attributes,
)
from almarules.dsl.check_exprs import ExprChecker
from almarules.dsl.check_graph import cascade_order, check_cycles, check_unused
from almarules.dsl.check_model import OUTCOMES, CheckResult, Node, node_label, outcome_attr, plural
from almarules.dsl.errors import finding_order
from almarules.dsl.loader import RuleSet
from almarules.dsl.types import Schema

__all__ = ["OUTCOMES", "CheckResult", "Checker", "Node", "check", "node_label", "outcome_attr", "plural"]


class Checker(ExprChecker):
    """One check of one rule set against the fact schema."""

    def run(self) -> CheckResult:
        """Every check, in an order where each sees what the earlier ones registered."""
        check_enums(self)
        check_params(self)
        check_tables(self)
        register_attributes(self)
        check_collections(self)
        type_attributes(self)
        check_conflicts(self)
        check_cascades(self)
        check_recipes(self)
        check_warns(self)
        check_cycles(self)
        check_unused(self)
        self.findings = sorted(set(self.findings), key=finding_order)
        return CheckResult(self.findings, self.schema, self.table_dims, self.param_types, cascade_order(self))


def check(rs: RuleSet, schema: Schema) -> CheckResult:
    """Every finding about a loaded rule set, and the typed schema it defines."""
    return Checker(rs, schema).run()
