"""Plain-text rendering of `Decisions` (tables by tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from almarules.engine.evaluate.decisions import Cascade, Decisions, RuleWarning


def _entity_of(path: str) -> str:
    return path.rsplit(".", 1)[0]


def decisions_table(d: Decisions) -> str:
    out: list[str] = []
    out.append(f"facts: {d.facts}")
    out.append(f"rules: {', '.join(d.rules)} (sha256 {d.rules_sha256[:12]})")
    out.append("")
    out.append("Parameters")
    out.append(tabulate([[p.name, p.text, p.origin, p.at] for p in d.params],
                        headers=["name", "value", "origin", "declared at"], tablefmt="simple"))
    groups: dict[str, list] = {}
    for v in d.values:
        groups.setdefault(_entity_of(v.path), []).append(v)
    for entity, values in groups.items():
        out.append("")
        out.append(entity)
        rows = []
        for v in values:
            name = v.path[len(entity) + 1:]
            rows.append([name, v.text, v.at or ""])
        out.append(tabulate(rows, headers=["value", "=", "rule at"], tablefmt="simple"))
    for c in d.cascades:
        out.extend(_cascade_lines(c))
    for name, stages in d.recipes.items():
        out.append("")
        out.append(f"Recipe {name}")
        rows = []
        for s in stages:
            run = "run" if s.run else ("skip" if s.run is False else "unknown")
            rows.append([s.name + (f"({', '.join(map(str, s.args))})" if s.args else ""), run,
                         ", ".join(s.waits_for), s.at])
        out.append(tabulate(rows, headers=["stage", "", "waits for", "at"], tablefmt="simple"))
    out.extend(_warning_lines(d.warnings))
    return "\n".join(out) + "\n"


def _cascade_lines(c: Cascade) -> list[str]:
    """A cascade: status (and outcome), values before, then applied and skipped steps in order."""
    status = c.status + (f" (waits for {', '.join(c.waits_for)})" if c.waits_for else "")
    if c.status != c.outcome:
        status += f" ({c.outcome})"
    if c.error:
        status += f": {c.error}"
    out = ["", f"Cascade {c.name}: {status}   [{c.at}]"]
    out.append("  before: " + ", ".join(f"{k} = {v}" for k, v in c.before.items()))
    skipped = sorted(c.skipped, key=lambda k: k.after_steps)
    for i, s in enumerate(c.steps, 1):
        out.extend(f"  -  {k.name}: skipped ({k.reason})   [{k.at}]" for k in skipped if k.after_steps == i - 1)
        changes = s.changes if len(s.changes) <= 6 else s.changes[:5] + [f"... and {len(s.changes) - 5} more"]
        out.append(f"  {i}. {s.name}: " + ("; ".join(changes) or "no change"))
        out.append("     after: " + ", ".join(f"{k} = {v}" for k, v in s.after.items()))
    out.extend(f"  -  {k.name}: skipped ({k.reason})   [{k.at}]" for k in skipped if k.after_steps >= len(c.steps))
    return out


def _warning_lines(warnings: list[RuleWarning]) -> list[str]:
    """Warnings that fire, then those that may apply (their condition waits for facts)."""
    if not warnings:
        return []
    out = ["", "Warnings"]
    for w in sorted(warnings, key=lambda w: w.status != "fires"):
        if w.status == "fires":
            out.append(f"  warning: {w.message}   [{w.at}]")
        else:
            out.append(f"  may apply: {w.message} (waits for {', '.join(w.waits_for)})   [{w.at}]")
    return out
