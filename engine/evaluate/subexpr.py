"""Common subexpressions in generated code (`codegen`): a formula that writes the same
subexpression twice (in a ``where`` and in the element, say) computes it once per block.

Only subexpressions whose evaluation is straight-line qualify: arithmetic, comparisons and calls of
the registry's functions (`dsl.functions`) on literals, variables, parameters and attribute reads.
Their value depends only on the values read, which do not change while a function runs; the reads
are recorded again where the subexpression is written again (`codegen.Gen.replay`), so the inputs
recorded are the same as when it is computed twice. Logic (``and``/``or``), ``if`` and aggregates
are not reused (what they read depends on the values), nor table lookups (they record the row).
"""

from __future__ import annotations

from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.functions import FUNCTIONS

_LOGIC = ("and", "or")


def straight(e: A.Expr, known: dict[int, bool]) -> bool:
    """`e` is evaluated straight-line (see the module's docstring); `known` memoises by node id."""
    hit = known.get(id(e))
    if hit is None:
        if isinstance(e, (A.Num, A.Str, A.Bool, A.Name)):
            hit = True
        elif isinstance(e, A.Attr):
            hit = isinstance(e.obj, (A.Name, A.Attr)) and straight(e.obj, known)
        elif isinstance(e, A.Unary):
            hit = straight(e.operand, known)
        elif isinstance(e, A.Binary):
            hit = e.op not in _LOGIC and straight(e.left, known) and straight(e.right, known)
        elif isinstance(e, A.Call):
            hit = e.func in FUNCTIONS and all(straight(a, known) for a in e.args)
        else:
            hit = False
        known[id(e)] = hit
    return hit


def reuse_key(e: A.Expr, scope: dict[str, str], known: dict[int, bool]) -> Optional[tuple]:
    """The key under which `e`'s value, computed in `scope` (rule name -> Python local), can be
    reused; None when it cannot (not worth it for a leaf, or not straight-line)."""
    if not isinstance(e, (A.Binary, A.Call, A.Unary)) or not straight(e, known):
        return None
    return e, tuple(sorted(scope.items()))
