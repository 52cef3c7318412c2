"""What the checker returns, and the words it shares: dependency nodes, cascade outcomes, kind plurals."""

from __future__ import annotations

from dataclasses import dataclass, field

from almarules.dsl.errors import Finding
from almarules.dsl.types import Schema, T
from almarules.dsl.units import Dim

Node = tuple  # ("param", name) | ("attr", kind, attr) | ("collection", kind) | ("table", name) | ("bands", name)
#               | ("cascade", name): a cascade's until, steps and actions; its outcome attribute depends on it

# The values of ``dataset.NAME_outcome`` (see `outcome_attr`).
OUTCOMES = ("not needed", "mitigated", "still exceeded", "error", "unknown")


def outcome_attr(cascade: str) -> str:
    """The dataset attribute holding a cascade's outcome: ``productsize`` -> ``productsize_outcome``."""
    return f"{cascade}_outcome"


def node_label(node: Node) -> str:
    """A dependency node as findings name it: ``image.threshold``, ``collection spw``, ``param tlimit``."""
    if node[0] == "attr":
        return f"{node[1]}.{node[2]}"
    if node[0] == "collection":
        return f"collection {node[1]}"
    return f"{node[0]} {node[1]}"


def plural(kind: str) -> str:
    """The dataset collection of a kind: ``spw`` -> ``spws``."""
    return kind + "s"


@dataclass
class CheckResult:
    """Every finding about a rule set and the typed schema it defines (facts + derived + created)."""

    findings: list[Finding]
    schema: Schema  # facts + derived + created attributes, with static types
    table_dims: dict[str, Dim] = field(default_factory=dict)
    param_types: dict[str, T] = field(default_factory=dict)
    # cascade names in evaluation order: a cascade whose rules read another's outcome runs after it
    cascade_order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings
