"""Rule tests: ``*.test.yaml`` files of partial facts and expected decisions.

    rules: .                 # the rule set, relative to this file (default: its directory)
    defaults:                # facts shared by every test (merged under each test's `given`)
      array: 12m
    tests:
      - name: worked example
        given: {fields: [...], spws: [...], measurements: [...]}
        set: {tlimit: 4}                           # parameter overrides (optional)
        assume: {dataset.importdata_score: 0.33}   # pin derived values (optional)
        expect:
          image[T.TARGET.0.mfs].threshold: 0.4 mJy/beam ± 0.1%
          image[T.TARGET.0.mfs].qa_colour: green
          image[T.TARGET.0.cube].threshold: unknown (waits for measurements[T.TARGET.0.cube])
          dataset.importdata_score.reasons: [no phase calibrator]
          cascade productsize: [bin channels, image to PB 0.5]
          cascade productsize.status: mitigated
          entities.image: [T.TARGET.0.mfs, ...]

A test with ``corpus: PATH`` instead of ``given`` checks properties of every value over a corpus
(engine.ruletest.corpus_tests). Tolerances: ``± 0.1%`` (relative) or ``± 0.01 mJy/beam`` (absolute, any compatible unit);
default relative 1e-9. Coverage: every derive rule, table row, band, score term,
cascade step and emit of the rule set must be exercised by some test.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


from almarules.dsl import ast as A
from almarules.dsl.errors import RuleError
from almarules.dsl.loader import display_path
from almarules.dsl.types import NumT
from almarules.dsl.units import UnitError, format_quantity, parse_quantity
from almarules.engine.evaluate.decisions import Decisions, Value, decisions
from almarules.engine.evaluate.program import Evaluation, Program, UsageError, coverage_key, language_coverage_items

DEFAULT_RTOL = 1e-9


@dataclass
class Outcome:
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    path: str
    rules: Optional[str]
    outcomes: list[Outcome] = field(default_factory=list)
    error: Optional[str] = None
    rules_broken: bool = False  # the rule set does not load or check (a usage error: exit 2)


@dataclass
class Report:
    files: list[FileResult]
    coverage: dict[str, tuple[int, list[str]]]  # rule set -> (items, never exercised)
    text: str = ""

    @property
    def ok(self) -> bool:
        return all(f.error is None and all(o.passed for o in f.outcomes) for f in self.files)

    @property
    def rules_broken(self) -> bool:
        """Some test file's rule set has findings (shown once per rule set in `text`)."""
        return any(f.rules_broken for f in self.files)


# ---------------------------------------------------------------- expectations
@dataclass
class Expected:
    kind: str  # "number", "text", "status", "bool", "list"
    value: Any = None
    dim: Any = None
    rtol: float = DEFAULT_RTOL
    atol: float = 0.0
    raw: str = ""


_TOL = re.compile(r"^(?P<value>.*?)\s*(?:±|\+-|\+/-)\s*(?P<tol>[^%]+?)\s*(?P<pct>%)?\s*$")


def parse_expected(raw: Any) -> Expected:
    if isinstance(raw, bool):
        return Expected("bool", raw, raw=str(raw).lower())
    if isinstance(raw, (int, float)):
        return Expected("number", float(raw), None, raw=str(raw))
    if isinstance(raw, list):
        return Expected("list", [str(x) for x in raw], raw=str(raw))
    text = str(raw).strip()
    if text.startswith(("unknown", "error")):
        return Expected("status", text, raw=text)
    m = _TOL.match(text)
    value_text, rtol, atol = text, DEFAULT_RTOL, 0.0
    if m:
        value_text = m.group("value")
        tol_text = m.group("tol").strip()
        if m.group("pct"):
            rtol, atol = float(tol_text) / 100.0, 0.0
        else:
            tol_value, tol_dim = parse_quantity(tol_text)
            rtol, atol = 0.0, tol_value
    try:
        value, dim = parse_quantity(value_text)
    except UnitError:
        if m:
            raise
        return Expected("text", text, raw=text)
    if m and not m.group("pct"):
        _, tol_dim = parse_quantity(m.group("tol").strip())
        if tol_dim != dim:
            raise UnitError(f"tolerance {m.group('tol').strip()!r} is not in the unit of {value_text!r}")
    return Expected("number", value, dim, rtol, atol, raw=text)


def _canonical(ev: Evaluation, v: Value) -> Any:
    """The canonical run-time value behind a reported Value."""
    ent, attr = ev.resolve(v.path)
    return ev.attr(ent, attr), ev.value_type(ent.kind, attr)


def compare(ev: Evaluation, v: Value, exp: Expected) -> Optional[str]:
    """None when `v` meets the expectation, else what differs."""
    if exp.kind == "status":
        want = exp.value
        status = want.split()[0].rstrip(":")
        if v.status != status:
            return f"expected {want}, got {v.text}"
        detail = re.search(r"\((?:waits for\s*)?(.*)\)", want)
        if detail:
            for item in (s.strip() for s in detail.group(1).split(",")):
                pool = v.waits_for if status == "unknown" else v.errors
                if not any(item in w for w in pool):
                    return f"expected {want}, got {v.text}"
        return None
    if v.status != "known":
        return f"expected {exp.raw}, got {v.text}"
    actual, t = _canonical(ev, v)
    if exp.kind == "bool":
        return None if actual is exp.value else f"expected {exp.raw}, got {v.text}"
    if exp.kind == "text":
        shown = actual if isinstance(actual, str) else v.text
        return None if shown == exp.value else f"expected {exp.value!r}, got {v.text!r}"
    if exp.kind == "list":
        got = [str(x) for x in (v.value if isinstance(v.value, list) else [v.value])]
        return None if got == exp.value else f"expected {exp.value}, got {got}"
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        return f"expected the number {exp.raw}, got {v.text}"
    dim = t.dim if isinstance(t, NumT) else None
    if exp.dim is not None and dim is not None and exp.dim != dim:
        return (f"expected {exp.raw}, but {v.path} is in {dim.display_unit() or 'plain numbers'} "
                f"(the expectation's unit does not fit)")
    if exp.dim is not None and not exp.dim.is_dimensionless and dim is not None and dim.is_dimensionless:
        return f"expected {exp.raw}, but {v.path} is a plain number"
    if exp.dim is not None and exp.dim.is_dimensionless and dim is not None and not dim.is_dimensionless:
        return f"expected {exp.raw}, but {v.path} is in {dim.display_unit()}: give the unit"
    tol = max(exp.atol, exp.rtol * abs(exp.value))
    if math.isclose(actual, exp.value, rel_tol=0.0, abs_tol=tol) or actual == exp.value:
        return None
    shown = format_quantity(actual, dim, digits=10) if dim is not None else f"{actual:.10g}"
    return f"expected {exp.raw}, got {shown}"


# ---------------------------------------------------------------- running
def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


class _Programs:
    def __init__(self) -> None:
        self.cache: dict[tuple[str, ...], Program] = {}
        self.broken: dict[tuple[str, ...], str] = {}  # rule set -> the file whose error showed its findings

    def get(self, paths: list[Path]) -> Program:
        from almarules.engine.evaluate.api import load_program

        key = tuple(str(p.resolve()) for p in paths)
        if key not in self.cache:
            self.cache[key] = load_program([display_path(p) for p in paths])
        return self.cache[key]

    def failure(self, paths: list[Path], exc: RuleError, shown_in: str) -> str:
        """The findings of a rule set that does not check, rendered once; later files refer back."""
        key = tuple(str(p.resolve()) for p in paths)
        if key in self.broken:
            return f"the rules do not check (findings shown under {self.broken[key]})"
        self.broken[key] = shown_in
        return f"the rules do not check:\n{exc.render()}"


def _explain_line(v: Value) -> str:
    if v.rule and v.formula:
        return f"from {v.rule} ({v.at}): {v.formula}"
    if v.rule:
        return f"from {v.rule} ({v.at})"
    return ""


def check_expectations(ev: Evaluation, d: Decisions, expect: dict) -> list[str]:
    problems: list[str] = []
    values = {v.path: v for v in d.values}
    cascades = {c.name: c for c in d.cascades}
    for key, raw in expect.items():
        key = str(key)
        try:
            if key.startswith("cascade "):
                name, _, what = key[len("cascade "):].partition(".")
                c = cascades.get(name)
                if c is None:
                    problems.append(f"{key}: no cascade {name!r}")
                elif what == "status":
                    if c.status != str(raw):
                        problems.append(f"{key}: expected {raw!r}, got {c.status!r}")
                else:
                    got = [s.name for s in c.steps]
                    want = list(raw or [])
                    if got != want:
                        problems.append(f"{key}: expected steps {want}, got {got}")
                continue
            if key.startswith("entities."):
                kind = key[len("entities."):]
                got = d.entities.get(kind)
                if got is None:
                    problems.append(f"{key}: no entities of kind {kind!r}")
                elif got != [str(x) for x in raw]:
                    problems.append(f"{key}: expected {list(raw)}, got {got}")
                continue
            if key.endswith(".reasons"):
                path = key[: -len(".reasons")]
                v = values.get(path)
                if v is None:
                    problems.append(f"{key}: no value {path!r}")
                    continue
                got = [r.reason for r in v.reasons]
                if got != [str(x) for x in (raw or [])]:
                    problems.append(f"{key}: expected reasons {list(raw or [])}, got {got}")
                continue
            v = values.get(key)
            if v is None:
                import difflib

                close = difflib.get_close_matches(key, list(values), n=1, cutoff=0.6)
                problems.append(f"{key}: no such value" + (f" (did you mean {close[0]}?)" if close else ""))
                continue
            exp = parse_expected(raw)
            diff = compare(ev, v, exp)
            if diff:
                line = _explain_line(v)
                problems.append(f"{key}: {diff}" + (f"\n        {line}" if line else ""))
        except (UnitError, ValueError) as exc:
            problems.append(f"{key}: cannot read the expectation {raw!r}: {exc}")
    return problems


def run_file(path: Path, programs: _Programs, coverage: dict[str, set]) -> FileResult:
    from almarules.engine.evaluate.api import run
    from almarules.engine.facts.summary import FactsError, parse_summary

    result = FileResult(display_path(path), None)
    from almarules.engine.facts.summary import read_data_file

    try:
        doc = read_data_file(path, "a rule test file")  # bounded: size, depth, aliases
    except FactsError as exc:
        result.error = str(exc).replace(str(path), display_path(path), 1)
        return result
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        result.error = f"{display_path(path)}: a test file is a mapping with a 'tests' list"
        return result
    unknown = set(doc) - {"rules", "defaults", "tests"}
    if unknown:
        result.error = f"{display_path(path)}: unknown key(s) {', '.join(sorted(unknown))} (expected rules, defaults, tests)"
        return result
    rules_field = doc.get("rules", ".")
    rule_paths = [path.parent / r for r in (rules_field if isinstance(rules_field, list) else [rules_field])]
    result.rules = ", ".join(display_path(p) for p in rule_paths)
    try:
        program = programs.get(rule_paths)
    except RuleError as exc:
        result.error = f"{display_path(path)}: {programs.failure(rule_paths, exc, display_path(path))}"
        result.rules_broken = True
        return result
    defaults = doc.get("defaults") or {}
    for i, test in enumerate(doc["tests"]):
        name = str(test.get("name", f"test {i + 1}")) if isinstance(test, dict) else f"test {i + 1}"
        if not isinstance(test, dict) or not isinstance(test.get("expect"), dict):
            result.outcomes.append(Outcome(name, False, ["a test needs 'name', 'given' and an 'expect' mapping"]))
            continue
        extra = set(test) - {"name", "given", "set", "assume", "expect", "corpus"}
        if extra:
            result.outcomes.append(Outcome(name, False, [f"unknown key(s) {', '.join(sorted(extra))}"]))
            continue
        if "corpus" in test:
            result.outcomes.append(_corpus_outcome(path, name, program, test))
            continue
        facts_data = _merge(defaults, test.get("given") or {})
        try:
            facts = parse_summary(facts_data, f"{display_path(path)} [{name}]")
            sets = [f"{k}={v}" for k, v in (test.get("set") or {}).items()]
            ev = run(program, facts, sets, source=f"{display_path(path)} [{name}]",
                     assume={str(k): v for k, v in (test.get("assume") or {}).items()})
            d = decisions(ev)
        except (FactsError, UsageError) as exc:
            result.outcomes.append(Outcome(name, False, [str(exc)]))
            continue
        coverage.setdefault("*", set()).update(ev.coverage)
        problems = check_expectations(ev, d, test["expect"])
        result.outcomes.append(Outcome(name, not problems, problems))
    return result


def _corpus_outcome(path: Path, name: str, program: Program, test: dict) -> Outcome:
    """A test over every dataset of a corpus (engine.ruletest.corpus_tests)."""
    from almarules.engine.ruletest.corpus_tests import run_corpus_test

    if "given" in test or "assume" in test:
        return Outcome(name, False, ["a corpus test has 'corpus' instead of 'given' (and no 'assume')"])
    problems = run_corpus_test(program, path.parent / str(test["corpus"]), test.get("set") or {}, test["expect"])
    return Outcome(name, not problems, problems)


def coverage_items(program: Program) -> dict[tuple, str]:
    """Every exercisable item of a rule set -> how to name it in a report."""
    items: dict[tuple, str] = {}
    for d in program.rs.all_derives():
        cond = " (when ...)" if d.when is not None else ""
        items[coverage_key("derive", d.loc)] = f"derive {d.target}{cond}   [{d.loc}]"
    for t in program.rs.tables.values():
        for i, row in enumerate(t.rows):
            items[("table", t.name, i, f"table:{t.name}:{i}")] = f"table {t.name} row {row.interval}   [{row.loc}]"
    for b in program.rs.bands.values():
        for i, row in enumerate(b.rows):
            items[("band", b.name, i, f"band:{b.name}:{i}")] = f"bands {b.name}: {row.label} {row.interval}   [{row.loc}]"
    for s in program.rs.scores.values():
        for term in s.terms:
            items[("term", s.target, term.reason)] = f"score {s.target}: {term.sign} {term.reason!r}   [{term.loc}]"
    for c in program.rs.cascades.values():
        for st in c.steps:
            items[("step", c.name, st.name)] = f"cascade {c.name}: step {st.name!r}   [{st.loc}]"
    for coll in program.rs.collections.values():
        for emit in _emits(coll.body):
            items[coverage_key("emit", emit.loc)] = f"collection {coll.kind}: emit   [{emit.loc}]"
    items.update(language_coverage_items(program))
    return items


def _emits(body) -> list[A.Emit]:
    out = []
    for item in body:
        if isinstance(item, A.Emit):
            out.append(item)
        else:
            out.extend(_emits(item.body))
    return out


def test_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.rglob("*.test.yaml")))
        else:
            files.append(p)
    return files


def run_tests(paths: list[Path], coverage: bool = True) -> Report:
    programs = _Programs()
    cov: dict[str, set] = {}
    results = [run_file(f, programs, cov) for f in test_files(paths)]
    lines: list[str] = []
    passed = failed = 0
    for r in results:
        lines.append(r.path)
        if r.error:
            lines.append(f"  ERROR {r.error}")
            failed += 1
            continue
        for o in r.outcomes:
            if o.passed:
                passed += 1
                lines.append(f"  ok    {o.name}")
            else:
                failed += 1
                lines.append(f"  FAIL  {o.name}")
                for p in o.problems:
                    lines.append(f"        {p}")
    if not results:
        lines.append("no *.test.yaml files found")
    report_cov: dict[str, tuple[int, list[str]]] = {}
    if coverage:
        by_rules: dict[str, Program] = {}
        for r in results:
            if r.rules and r.rules not in by_rules and r.error is None:
                parts = [Path(p.strip()) for p in r.rules.split(",")]
                by_rules[r.rules] = programs.get(parts)
        for rules, program in sorted(by_rules.items()):
            items = coverage_items(program)
            hit = cov.get("*", set())
            missing = [text for key, text in items.items() if key not in hit]
            report_cov[rules] = (len(items), missing)
            lines.append("")
            lines.append(f"coverage of {rules}: {len(items) - len(missing)}/{len(items)} items exercised")
            for m in missing:
                lines.append(f"  never exercised: {m}")
    lines.append("")
    lines.append(f"{passed} passed, {failed} failed")
    return Report(results, report_cov, "\n".join(lines) + "\n")
