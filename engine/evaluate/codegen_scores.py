"""Scores compiled to Python once per rule set (`score_function`), as `codegen` compiles derived
values: one function per score computing its start, adding each term whose ``when`` holds (with
its reason, its coverage item and the inputs it read) and clamping the sum.

The reference semantics are `Evaluation._score`'s, which evaluates a score by its closures and
still does for a score nested too deeply for Python's compiler (`codegen.TooDeep`); a test
compares the two on every shipped rule set (tests/engine/evaluate/test_codegen.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from almarules.dsl import ast as A
from almarules.engine.evaluate.codegen import Gen, TooDeep, compile_source

if TYPE_CHECKING:
    from almarules.engine.evaluate.compile import Names


def score_function(decl: A.Score, names: Names, constant: Callable[[A.Expr], Any]) -> Callable[[Any, Any, str], Any]:
    """``fn(ev, ent, attr)`` computing the score `decl` of `ent`: an assumed or set value first;
    unless its ``when`` is true, an error value (or the unknown ``when``); else its start plus or
    minus the amount of every term whose ``when`` holds, unknown if a term's ``when`` or amount is,
    clamped. Its provenance is its frame: ``[decl, reasons, inputs read...]`` (`records.ProvMap`)."""
    kind, attr = decl.kind, decl.attr
    g = Gen(names, constant, framed=True)
    g.kinds["ent"] = (kind, True)
    scope = {"dataset": "ent"} if kind == "dataset" else {"dataset": "ds", kind: "ent"}
    try:
        outer = None
        if decl.when is not None:
            w = g.ex(decl.when, scope)
            g.emit(f"if {w} is not True: val = {w} if {w}.__class__ is _U else "
                   f"_U(errors=[{'score ' + decl.target + ' does not apply'!r}])")
            outer = g.block("else:")
        g.emit(f"val = {g.ex(decl.start, scope)}")  # (every checked score has a start)
        g.emit("pending = []")
        for term in decl.terms:
            _term(g, decl, term, scope)
        g.emit("if pending: val = _mu(pending + ([val] if val.__class__ is _U else []))")
        if decl.clamp is not None:
            with g.block("elif val.__class__ is not _U:"):
                lo, hi = g.ex(decl.clamp[0], scope), g.ex(decl.clamp[1], scope)
                g.emit(f"val = min(max(val, {lo}), {hi})")
        if outer is not None:
            outer.__exit__(None, None, None)
        g.flush()
        head = ["    ov = ev.overlay", f"    if ov and (hit := ov.get(({kind!r}, ent.key, {attr!r}))) is not None:",
                f"        ent.prov[{attr!r}] = hit[1]", "        return hit[0]",
                f"    fr = [{g.const(decl)}, ()]", "    reasons = []"]
        tail = ["    fr[1] = tuple(reasons)", f"    ent.prov[{attr!r}] = fr", "    return val"]
        fn = compile_source("def f(ev, ent, name):", head + g.prologue() + g.lines + tail, g.ns,
                            f"score {kind}.{attr}")
    except RecursionError as exc:
        raise TooDeep() from exc
    fn.__qualname__ = f"score {kind}.{attr}"
    return fn


def _term(g: Gen, decl: A.Score, term: A.ScoreTerm, scope: dict[str, str]) -> None:
    """One term: its amount added (or subtracted) when its ``when`` holds; an unknown ``when`` or
    amount pending (the score is then unknown)."""
    c = g.ex(term.when, scope)
    g.emit(f"if {c}.__class__ is _U: pending.append({c})")
    with g.block(f"elif {c}:"):
        a = g.ex(term.amount, scope)
        g.emit(f"if {a}.__class__ is _U: pending.append({a})")
        with g.block("else:"):
            g.emit(f"ev.coverage.add({g.const(('term', decl.target, term.reason))})")
            g.emit(f"reasons.append(({term.sign!r}, {a}, {term.reason!r}, {g.const(term.loc)}))")
            sign = 1.0 if term.sign == "+" else -1.0
            g.emit(f"if val.__class__ is not _U: val = val + {sign!r} * {a}")


__all__ = ["score_function"]
