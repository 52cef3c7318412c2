"""The engine's front: load and check rules, load facts, evaluate.

    program = load_program(["rules/alma/cycle4"])
    result = evaluate(program, load_facts("examples/12m_single_field_tdm.yaml"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from almarules.dsl.checker import CheckResult, check
from almarules.dsl.errors import RuleError
from almarules.dsl.loader import RuleSet, load_ruleset
from almarules.engine.evaluate.decisions import Decisions, decisions
from almarules.engine.evaluate.program import Evaluation, Program, UsageError
from almarules.engine.facts.model import Dataset
from almarules.engine.facts.schema import fact_schema


def check_rules(paths: Sequence[str | Path]) -> tuple[RuleSet, CheckResult]:
    rs = load_ruleset(list(paths))
    return rs, check(rs, fact_schema())


def load_program(paths: Sequence[str | Path]) -> Program:
    """Load, check and compile a rule set; RuleError lists every finding."""
    rs, result = check_rules(paths)
    if result.findings:
        raise RuleError(result.findings, rs.sources)
    return Program(rs, result)


def default_rules() -> list[str]:
    from almarules.rules import path

    return [str(path("alma/cycle4"))]


def load_facts(path: str | Path) -> Dataset:
    """A dataset summary (JSON/YAML) or a Measurement Set."""
    return load_dataset([path])


def load_intents(path: str | Path) -> dict[str, list[str]]:
    """A YAML/JSON mapping field name (or id) -> intents, for data imported without intents."""
    from almarules.engine.ms.facts import MSError
    from almarules.engine.facts.summary import FactsError, read_data_file

    try:
        data = read_data_file(path, "an intents file")  # regular file, size, depth and alias bounds
    except FactsError as exc:
        raise MSError(str(exc)) from None
    if not isinstance(data, dict) or not all(isinstance(v, (list, str)) for v in data.values()):
        raise MSError(f"{path}: an intents file maps field name -> list of intents, e.g. 'N5921_2: [TARGET]'")
    return {str(k): [v] if isinstance(v, str) else [str(x) for x in v] for k, v in data.items()}


def load_dataset(paths: Sequence[str | Path], intents: Optional[str | Path] = None,
                 progress=None) -> Dataset:
    """Facts from one summary file, or from one or several Measurement Sets (execution blocks)."""
    from almarules.engine.ms.facts import is_ms, read_ms
    from almarules.engine.facts.summary import load_summary

    if any(is_ms(p) for p in paths):
        return read_ms(paths, load_intents(intents) if intents else None, progress)
    if len(paths) != 1:
        raise UsageError("give one summary file, or one or more Measurement Sets")
    return load_summary(paths[0])


def run(program: Program, facts: Dataset, sets: Sequence[str] = (), source: str = "<facts>",
        assume: Optional[dict] = None) -> Evaluation:
    """Evaluate with ``--set name=value`` overrides applied."""
    overrides: dict[str, float] = {}
    origins: dict[str, str] = {}
    for s in sets:
        name, value = program.resolve_set(s)
        overrides[name] = value
        origins[name] = f"--set {s}"
    return program.run(facts, overrides, source=source, param_origins=origins, assume=assume)


def evaluate(program: Program, facts: Dataset, sets: Sequence[str] = (), source: str = "<facts>") -> Decisions:
    """Every decision of `program` on `facts`, with provenance."""
    return decisions(run(program, facts, sets, source))


__all__ = ["check_rules", "load_program", "load_facts", "load_dataset", "load_intents", "evaluate", "run",
           "default_rules", "UsageError", "RuleError"]
