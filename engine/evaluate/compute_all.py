"""`Evaluation.compute_all`'s loop, generated once per rule set and kind (`all_function`).

For each entity of a kind, every derived value, score and cascade outcome not computed yet is
computed (a derived value by its generated function, `codegen.derive_function`; a value the same
for every entity from ``Evaluation.memo``, copied all at once when the memo holds them all:
`shared_values`), and (entity, attribute, value) appended to the output in report order.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Optional

from almarules.engine.evaluate.codegen import PRELUDE, TooDeep, compile_source, constant_name

if TYPE_CHECKING:
    from almarules.engine.evaluate.compile import Names


def shared_values(memo: dict, keys: tuple[int, ...], attrs: tuple[str, ...]
                  ) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
    """({attribute: value}, {attribute: provenance frame}) of the values the same for every
    entity of a kind (`sharing.shared`), once ``Evaluation.memo`` holds every one of them."""
    values: dict[str, Any] = {}
    refs: dict[str, Any] = {}
    for key, attr in zip(keys, attrs, strict=True):
        m = memo.get(key)
        if m is None:
            return None
        values[attr], refs[attr] = m
    return values, refs


def all_function(kind: str, attrs: tuple[str, ...], names: Names) -> Callable[[Any, Any, list], None]:
    """``fn(ev, ents, out)`` computing every attribute in `attrs` (derived, scored, outcomes) of
    each entity of `ents` not yet computed, and appending (entity, attribute, value) to `out`:
    `Evaluation.compute_all`'s loop, unrolled (a derived value by its function, a shared one from
    the memo when there, anything else by ``ev.value``)."""
    ns = names.ns
    if "_E" not in ns:  # (no function of the rules generated: only closures)
        ns.update(PRELUDE)
    ns.update(_zip=zip, _rep=repeat, _shv=shared_values)
    lines = ["    un = ev.unshared", "    memo = ev.memo", "    value = ev.value", "    for ent in ents:",
             "        ec = ent.cache"]
    shared = [(attr, key) for attr in attrs if (kind, attr) in names.functions
              and (key := names.shared.get((kind, attr))) is not None]
    rest = attrs
    if len(shared) > 1:  # the values the same for every entity, copied together once the memo has them all
        sattrs = tuple(a for a, _ in shared)
        ks, sa = constant_name(ns, tuple(k for _, k in shared)), constant_name(ns, sattrs)
        lines[3:3] = [f"    sv = None if {constant_name(ns, frozenset(k for _, k in shared))}.isdisjoint(un) else False"
                      "  # (shared_values; False: not all in the memo, or some not shared now)"]
        # (those the entity has already are the memo's too, with the same provenance)
        lines += ["        if sv: ec.update(sv[0]); ent.prov.update(sv[1])", "        else:"]
        lines += ["    " + line for line in _compute_lines(kind, sattrs, names)]
        rest = tuple(a for a in attrs if a not in sattrs)
    lines += _compute_lines(kind, rest, names)
    if len(attrs) > 1:  # (entity, attribute, value) made by zip, the values by one itemgetter
        lines.append(f"        out += _zip(_rep(ent), {constant_name(ns, attrs)}, {constant_name(ns, itemgetter(*attrs))}(ec))")
    else:
        lines.append(f"        out.append((ent, {attrs[0]!r}, ec[{attrs[0]!r}]))")
    if len(shared) > 1:
        lines.append(f"        if sv is None: sv = _shv(memo, {ks}, {sa}) or False")
    try:
        return compile_source("def f(ev, ents, out):", lines, ns, f"every value of a {kind}")
    except TooDeep:  # (more attributes than Python's compiler takes in one function)
        def every(ev: Any, ents: Any, out: list) -> None:
            out.extend((ent, attr, ev.value(ent, attr)) for ent in ents for attr in attrs)
        return every


def _compute_lines(kind: str, attrs: tuple[str, ...], names: Names) -> list[str]:
    """`all_function`'s lines computing the `attrs` of ``ent`` missing from its cache ``ec``."""
    lines = []
    for attr in attrs:
        a = repr(attr)
        fn = names.functions.get((kind, attr))
        key = names.shared.get((kind, attr))
        if fn is None:
            lines.append(f"        if {a} not in ec: value(ent, {a})")
        elif key is not None:  # the same for every entity (sharing.shared)
            lines.append(f"        if {a} not in ec:")
            lines.append(f"            if {key} not in un and (m := memo.get({key})) is not None: ec[{a}], ent.prov[{a}] = m")
            lines.append(f"            else: ec[{a}] = {fn}(ev, ent, {a})")
        else:
            lines.append(f"        if {a} not in ec: ec[{a}] = {fn}(ev, ent, {a})")
    return lines


__all__ = ["all_function", "shared_values"]
