"""Deterministic mutators: each case is built from ``random.Random(seed, index)`` alone, so any
input of a campaign can be rebuilt from its seed and index.

A case is a dict: ``kind`` (rules | summary | set), ``command``, ``argv`` (paths relative to the
worker's case directory, where ``alma/`` is a copy of the shipped rules and ``ex/`` of the
examples), ``files`` (relative path -> bytes written into the case directory) and ``label`` (the
mutations applied, a readable reproducer together with the files)."""

from __future__ import annotations

import json
import math
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import yaml

REPO = Path(__file__).resolve().parents[2]
RULE_SETS = ("cycle4", "current", "cycle5")
Case = dict[str, Any]
FIFO = "{FIFO}"  # replaced by the worker with the path of a FIFO in its own temp directory

DEPTHS = (50, 500, 5000, 100_000)
HOSTILE_EXPRS = (
    "9" * 5000, "1e400", "1e-400", "-1e400", "1e308 * 1e308", "1 furlong", "3 GHz + 2 Jy",
    "fft_size(1e300)", "fft_size(-1)", "fft_size(1e18)", "2^100000", "(-8)^0.5", "0^-1", "0/0",
    "1/0", "log(0)", "sqrt(-1)", "exp(1e6)", "10^400", "percentile(150, s.nchan for s in spws)",
    "percentile(-1, s.nchan for s in spws)", "clip(1, 2, 0)", "linear_score(1, 2, 2, 0, 1)",
    "erf_score(1, 0, 0, 0)", "max(s.nchan for s in spws where false)", "the(s for s in spws)",
    "lookup(spws, 1e300)", "round(1e300)", "floor(inf)", "ceil(-inf)", "µ", "√2", "1 µJy", "٣",
    "\u202e1", "\ufeff1", "'", '"', "1 GHz^1e300", "1 m^-400",
)
HOSTILE_PATHS = (
    "/etc/passwd", "../../../../../../etc/passwd", "/proc/self/environ", "/dev/zero",
    "/dev/urandom", "/proc/self/mem", FIFO, "/", ".", "..", "", "\x00", "a" * 300 + "/x.rules",
    ("b" * 300 + "/") * 20 + "x.rules", "nonexistent.rules", "/proc/self/fd/0",
)
BAD_BYTES = (b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\x80abc",
             "\u202e".encode(), "\u2028".encode(), b"\r", b"\t", b"\x1b[2J")


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s+|\w+|[^\w\s]", text)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def m_token_delete(rng: random.Random, text: str) -> tuple[str, str]:
    """Delete one token."""
    t = _tokens(text)
    i = rng.randrange(len(t))
    return "".join(t[:i] + t[i + 1:]), f"delete token {i} {t[i]!r}"


def m_token_dup(rng: random.Random, text: str) -> tuple[str, str]:
    """Duplicate one token."""
    t = _tokens(text)
    i = rng.randrange(len(t))
    return "".join(t[:i + 1] + t[i:]), f"duplicate token {i} {t[i]!r}"


def m_token_swap(rng: random.Random, text: str) -> tuple[str, str]:
    """Swap two tokens."""
    t = _tokens(text)
    i, j = rng.randrange(len(t)), rng.randrange(len(t))
    t[i], t[j] = t[j], t[i]
    return "".join(t), f"swap tokens {i},{j}"


def m_line_edit(rng: random.Random, text: str) -> tuple[str, str]:
    """Delete, duplicate or swap lines."""
    ls = _lines(text)
    i, j = rng.randrange(len(ls)), rng.randrange(len(ls))
    op = rng.choice(("delete", "duplicate", "swap"))
    if op == "delete":
        del ls[i]
    elif op == "duplicate":
        ls.insert(i, ls[i])
    else:
        ls[i], ls[j] = ls[j], ls[i]
    return "".join(ls), f"{op} line {i + 1}" + (f",{j + 1}" if op == "swap" else "")


def _deep(rng: random.Random) -> tuple[str, str]:
    n = rng.choice(DEPTHS)
    kind = rng.choice(("neg", "not", "paren", "sum", "pow", "ifte"))
    expr = {"neg": "-" * n + "1", "not": "not " * n + "true", "paren": "(" * n + "1" + ")" * n,
            "sum": " + ".join(["1"] * n), "pow": "^".join(["2"] * min(n, 5000)),
            "ifte": "if true then " * min(n, 5000) + "1" + " else 1" * min(n, 5000)}[kind]
    return expr, f"deep {kind} x{n}"


def _formula_lines(ls: list[str]) -> list[int]:
    return [k for k, line in enumerate(ls) if re.match(r"\s*(override\s+)?(param|derive)\b.*=", line)]


def m_replace_formula(rng: random.Random, text: str) -> tuple[str, str]:
    """Replace the right-hand side of a param or derive with a hostile expression."""
    ls = _lines(text)
    cands = _formula_lines(ls)
    if not cands:
        return m_token_delete(rng, text)
    k = rng.choice(cands)
    if rng.random() < 0.4:
        expr, label = _deep(rng)
    else:
        expr = rng.choice(HOSTILE_EXPRS)
        label = f"expr {expr[:40]!r}" + (f" ({len(expr)} chars)" if len(expr) > 40 else "")
    head = ls[k].split("=", 1)[0]
    ls[k] = f"{head}= {expr}\n"
    return "".join(ls), f"line {k + 1}: {label}"


def m_import(rng: random.Random, text: str) -> tuple[str, str]:
    """Prepend an import of a hostile path (reading only)."""
    path = rng.choice(HOSTILE_PATHS)
    quoted = json.dumps(path)
    return f"import {quoted}\n" + text, f"import {quoted[:60]}"


def m_repeat_cascade(rng: random.Random, text: str) -> tuple[str, str]:
    """Append a cascade whose steps repeat the previous ones, twice each (2^k blow-up)."""
    k = rng.choice((5, 20, 60))
    steps = ['    step "s0":\n        set ppb = 3\n']
    for i in range(1, k):
        prev = f'"s{i - 1}"'
        steps.append(f'    step "s{i}":\n        repeat {prev}, {prev}, {prev}\n')
    if rng.random() < 0.3:
        steps.append(f'    step "s{k}":\n        repeat "s{k}"\n')
    body = "cascade fuzzboom:\n    until false\n" + "".join(steps)
    return text + "\n" + body, f"nested repeat cascade x{k}"


def m_units(rng: random.Random, text: str) -> tuple[str, str]:
    """Swap a unit for an odd one."""
    odd = rng.choice(("furlong", "lyr", "Jy^99", "GB/0", "m^1e9", "dimensionless_unscaled", "beam^-1",
                      "GHz**2", "u.m", "mag", "dex", "%", "K", "Ω", "deg_C"))
    new, n = re.subn(r"\b(GB|GHz|MHz|mJy/beam|arcsec|m|s|h|byte)\b", odd, text, count=1)
    return new, f"unit -> {odd}" if n else "unit (none)"


TEXT_MUTATORS: tuple[Callable[[random.Random, str], tuple[str, str]], ...] = (
    m_token_delete, m_token_dup, m_token_swap, m_line_edit, m_replace_formula, m_replace_formula,
    m_import, m_repeat_cascade, m_units,
)


def m_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Insert invalid UTF-8 or control bytes at a random offset."""
    b = rng.choice(BAD_BYTES)
    i = rng.randrange(len(data) + 1)
    return data[:i] + b + data[i:], f"bytes {b!r} at offset {i}"


@lru_cache(maxsize=None)
def rule_files(rule_set: str) -> tuple[str, ...]:
    """The .rules files of a shipped rule set, by name."""
    return tuple(sorted(p.name for p in (REPO / "rules" / "alma" / rule_set).glob("*.rules")))


@lru_cache(maxsize=None)
def shipped_text(rel: str) -> str:
    """A shipped file's text (cached)."""
    return (REPO / rel).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def examples() -> tuple[str, ...]:
    """The example summaries' names."""
    return tuple(sorted(p.name for p in (REPO / "examples").iterdir() if p.suffix in (".yaml", ".json")))


@lru_cache(maxsize=None)
def params() -> tuple[str, ...]:
    """Names of the shipped cycle4 parameters."""
    names = set()
    for f in rule_files("cycle4"):
        names.update(re.findall(r"^param (\w+)", shipped_text(f"rules/alma/cycle4/{f}"), re.M))
    return tuple(sorted(names))


def rules_case(rng: random.Random) -> Case:
    """Mutate one file of a shipped rule set; run check, eval, plan or test on the set."""
    rs = rng.choice(RULE_SETS)
    name = rng.choice(rule_files(rs))
    rel = f"alma/{rs}/{name}"
    text, labels = shipped_text(f"rules/{rel}"), []
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
        text, label = rng.choice(TEXT_MUTATORS)(rng, text)
        labels.append(label)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        data, label = m_bytes(rng, data)
        labels.append(label)
    command = rng.choices(("check", "eval", "plan", "test"), (0.45, 0.2, 0.15, 0.2))[0]
    ex = f"ex/{rng.choice(examples())}"
    target = f"alma/{rs}" if command != "check" or rng.random() < 0.6 else rel
    argv = {"check": ["check", target], "test": ["test", target],
            "eval": ["eval", ex, "--rules", target], "plan": ["plan", ex, "--rules", target]}[command]
    return {"kind": "rules", "command": command, "argv": argv, "files": {rel: data},
            "label": f"{rel}: " + "; ".join(labels)}


HOSTILE_VALUES: tuple[Any, ...] = (
    math.nan, math.inf, -math.inf, "1e400 GHz", "nan GHz", "inf m", -5, -1, 0, 0.0, 1e15, 1e9, 1e300,
    1e-320, 1000, -1000, "abc", None, [], {}, True, "", "1 furlong", "-0", int("9" * 400), "\x00",
    "\u202e", [[[]]], {"a": 1}, 2 ** 63, -(2 ** 63), "12 m", "230 GHz", "1e400", "9" * 5000,
)
TARGETED = (("antennas", "dish_diameter", 0.0), ("fields", "dec", 1000), ("fields", "dec", "1000 deg"),
            ("ebs", "n_antennas", -3), ("spws", "nchan", -5), ("spws", "nchan", 0), ("fields", "offsets", 1e15),
            ("spws", "chan_width", 0), ("spws", "chan_width", "1e400 GHz"), ("spws", "ref_freq", -1))


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, path + (k,))] or [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, path + (i,))] or [path]
    return [path]


def _containers(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path] if isinstance(node, (dict, list)) and node else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out += _containers(v, path + (k,))
    return out


def _get(node: Any, path: tuple) -> Any:
    for k in path:
        node = node[k]
    return node


def _set(node: Any, path: tuple, value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value


def _fmt(path: tuple) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


@lru_cache(maxsize=None)
def example_text(name: str) -> str:
    return shipped_text(f"examples/{name}")


def _load(name: str) -> Any:
    return yaml.safe_load(example_text(name)) if name.endswith((".yaml", ".yml")) else json.loads(example_text(name))


_LOADED: dict[str, Any] = {}


def _copy_example(name: str) -> Any:
    if name not in _LOADED:
        _LOADED[name] = json.dumps(_load(name), default=str)
    return json.loads(_LOADED[name])


def s_value(rng: random.Random, data: Any) -> str:
    """Set one leaf (or a targeted field) to a hostile value."""
    if rng.random() < 0.3:
        coll, key, value = rng.choice(TARGETED)
        items = data.get(coll) if isinstance(data, dict) else None
        if isinstance(items, list) and items:
            i = rng.randrange(len(items))
            if isinstance(items[i], dict):
                items[i][key] = value
                return f"{coll}[{i}].{key} = {value!r}"
    path = rng.choice(_leaves(data))
    value = rng.choice(HOSTILE_VALUES)
    if path:
        _set(data, path, value)
    shown = repr(value)
    return f"{_fmt(path)} = {shown[:40]}" + (f" ({len(shown)} chars)" if len(shown) > 40 else "")


def s_structure(rng: random.Random, data: Any) -> str:
    """Drop or duplicate a key or item, or give a container the wrong type."""
    path = rng.choice(_containers(data) or [()])
    node = _get(data, path)
    op = rng.choice(("drop", "dup", "wrongtype", "wrongtype_scalar"))
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        if op == "drop":
            del node[key]
        elif op == "dup":
            node[f"{key}"] = node[key] if not isinstance(node[key], list) else node[key] * 2
        elif op == "wrongtype":
            node[key] = [node[key]] if not isinstance(node[key], list) else {"x": node[key]}
        else:
            node[key] = "oops"
        return f"{op} {_fmt(path + (key,))}"
    if isinstance(node, list) and node:
        i = rng.randrange(len(node))
        if op == "drop":
            del node[i]
        elif op == "dup":
            node.insert(i, node[i])
        else:
            node[i] = "oops" if op == "wrongtype_scalar" else [node[i]]
        return f"{op} {_fmt(path + (i,))}"
    return "structure (none)"


def s_many_spws(rng: random.Random, data: Any) -> str:
    """Many copies of an existing entity (spws, fields, antennas)."""
    coll = rng.choice(("spws", "fields", "antennas", "ebs"))
    n = rng.choice((2000, 20_000))
    items = data.get(coll) if isinstance(data, dict) else None
    if not items:
        return "many (none)"
    data[coll] = [items[i % len(items)] for i in range(n)]
    return f"{coll} x{n}"


SUMMARY_DATA_MUTATORS = (s_value, s_value, s_value, s_structure, s_structure, s_many_spws)


def _text_hostile(rng: random.Random, text: str) -> tuple[str, str]:
    """Text-level summary mutations: deep nesting, alias bombs, duplicate keys."""
    op = rng.choice(("deep", "bomb", "dupkey", "tab", "tags"))
    if op == "deep":
        n = rng.choice((1000, 100_000))
        return text + f"\nextra_deep: {'[' * n}{']' * n}\n", f"100k-style nesting: extra_deep [x{n}"
    if op == "bomb":
        lines = ['lol0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"lol{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
        nested = "fields:\n  - name: bomb\n    " + "\n    ".join(lines) + "\n"
        return text + "\n" + nested, "YAML alias bomb in fields[].lol9"
    if op == "dupkey":
        return text + "\narray: 7m\narray: 12m\n", "duplicate key array"
    if op == "tab":
        return text.replace("  ", "\t", 5), "tabs for indentation"
    return text + "\nexploit: !!python/object/apply:os.system ['true']\n", "python tag"


def summary_case(rng: random.Random) -> Case:
    """Mutate an example summary (values, structure, text, encoding); eval or plan it."""
    name = rng.choice(examples())
    data = _copy_example(name)
    r = rng.random()
    labels = []
    if r < 0.7:
        for _ in range(1 if rng.random() < 0.7 else 2):
            labels.append(rng.choice(SUMMARY_DATA_MUTATORS)(rng, data))
        as_json = rng.random() < 0.3
        text = json.dumps(data) if as_json else yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        fname = "s.json" if as_json else "s.yaml"
    else:
        text, label = _text_hostile(rng, example_text(name))
        labels.append(label)
        fname = "s.yaml"
    blob = text.encode("utf-8", "surrogatepass")
    enc = rng.random()
    if enc < 0.05:
        blob, labels = text.encode("utf-16"), labels + ["utf-16"]
    elif enc < 0.15:
        blob, label = m_bytes(rng, blob)
        labels.append(label)
    command = rng.choice(("eval", "plan"))
    rs = rng.choice(("cycle4", "cycle4", "current"))
    return {"kind": "summary", "command": command, "argv": [command, fname, "--rules", f"alma/{rs}"],
            "files": {fname: blob}, "label": f"{name}: " + "; ".join(labels)}


SET_VALUES = ("-3", "1e-320", "inf", "nan", "-inf", "1e400", "3 Jy", "5 furlong", "", "abc", "0", "-0",
              "1e308 GB", '"x"', "1" * 5000, "1e-400", "NaN GB", "30 GB GB", "(1", "2^100000", "1/0",
              "\x00", "\u202e", "0x10", "1_000", "１", "3e8 m/s", "true", "-1e308", "50 %")


def set_case(rng: random.Random) -> Case:
    """``eval``/``plan --set`` with hostile values for the shipped parameters."""
    name = rng.choice(params())
    qualified = rng.random() < 0.2
    value = rng.choice(SET_VALUES)
    spec = f"{'imaging.' if qualified else ''}{name}={value}"
    if rng.random() < 0.05:
        spec = rng.choice(("ppb", "=3", "nosuch=1", "imaging.=3", "a.b.c=1", "ppb==3"))
    command = rng.choice(("eval", "plan"))
    ex = f"ex/{rng.choice(examples())}"
    return {"kind": "set", "command": command, "argv": [command, ex, "--set", spec],
            "files": {}, "label": f"--set {spec[:80]!r}"}


def make_case(seed: int, index: int) -> Case:
    """The case ``index`` of campaign ``seed`` (45 % rules, 40 % summaries, 15 % --set)."""
    rng = random.Random(f"{seed}:{index}")
    r = rng.random()
    case = rules_case(rng) if r < 0.45 else summary_case(rng) if r < 0.85 else set_case(rng)
    case["id"] = f"{seed}:{index}"
    return case
