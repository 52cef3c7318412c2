"""What each image of a run depends on, component by component, so a re-run redoes exactly the
images whose inputs changed and says why.

An image's *manifest* maps a component to a short digest (and, beside it, to words a person can
read): every Measurement Set (its files' sizes and modification times, as `almarules image`
resumes), each parameter its values reach, each rule declaration they reach (its source text,
not its line, so an edit elsewhere in the file that shifts lines changes nothing), the tables and
bands those declarations name, its cont.dat ranges (cont images and the cubes made from
continuum-subtracted copies: its field and spws only), the
flag template, and the run's switches. The closure follows ``Value.inputs`` from every value of
``image[KEY]`` in the decisions of the plan (the facts before any measurement).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from almarules import __version__
from almarules.engine.evaluate.decisions import Decisions
from almarules.engine.evaluate.program import Program
from almarules.engine.products.contdat import ContDat, lookup
from almarules.engine.stages.imaging.job import split_key
from almarules.engine.stages.imaging.resume import ms_identity


def digest(obj: Any) -> str:
    """SHA-256 (hex, first 16 characters) of `obj` as canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _declarations(program: Program) -> dict[str, Any]:
    """``file:line:col`` -> declaration, for every declaration a value's ``at`` can name."""
    rs = program.rs
    found: dict[str, Any] = {}
    groups: Iterable[Any] = [d for ds in rs.derives.values() for d in ds]
    for group in (groups, rs.params.values(), rs.tables.values(), rs.bands.values(), rs.scores.values(),
                  rs.cascades.values(), rs.collections.values()):
        for decl in group:
            found[str(decl.loc)] = decl
    return found


def declaration_text(program: Program, decl: Any) -> str:
    """The source lines of one declaration (its first line when the parser gave no end)."""
    loc = decl.loc
    lines = program.rs.sources.get(loc.file, "").splitlines()
    end = loc.end_line if loc.end_line >= loc.line else loc.line
    return "\n".join(lines[loc.line - 1:end])


class Closure:
    """The declarations, parameters and tables the values of one image reach."""

    def __init__(self, dec: Decisions, program: Program):
        self.dec = dec
        self.program = program
        self.by_path = {v.path: v for v in dec.values}
        self.decls = _declarations(program)
        self.params = {p.name: p for p in dec.params}
        self.by_image: dict[str, list[str]] = {}  # image key -> the paths of its values
        for v in dec.values:
            if v.path.startswith("image["):
                self.by_image.setdefault(v.path[len("image["):v.path.rfind("].")], []).append(v.path)

    def of(self, key: str) -> tuple[set[str], set[str], set[str]]:
        """(declaration locations, parameter names, table/bands names) reached from image[key]."""
        todo = list(self.by_image.get(key, []))
        seen: set[str] = set()
        at: set[str] = set()
        params: set[str] = set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            if path.startswith("param:"):
                params.add(path[len("param:"):])
                continue
            v = self.by_path.get(path)
            if v is None:
                continue
            if v.at:
                at.add(v.at)
            todo.extend(v.inputs)
        return at, params, self._named(at)

    def _named(self, at: set[str]) -> set[str]:
        """Tables and bands whose name appears in the declarations at `at`."""
        rs = self.program.rs
        names = set(rs.tables) | set(rs.bands)
        text = " ".join(declaration_text(self.program, self.decls[a]) for a in at if a in self.decls)
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
        return names & words


def image_manifest(key: str, closure: Closure, ms: list[tuple[str, str]], contdat: Optional[ContDat],
                   switches: dict[str, Any], flagtemplate: Optional[str],
                   line: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """(component -> digest, component -> words) of image `key`; `ms` is (path, identity digest);
    `line`: a cube made from continuum-subtracted copies, which depends on its field/spw's cont.dat
    ranges as a cont image does (and on no other field/spw's)."""
    at, params, named = closure.of(key)
    parts: dict[str, str] = {"almarules": __version__}
    words: dict[str, str] = {"almarules": f"almarules {__version__}"}
    for path, ident in ms:
        parts[f"ms:{path}"] = ident
        words[f"ms:{path}"] = f"Measurement Set {path}"
    for name in sorted(params):
        p = closure.params.get(name)
        if p is not None:
            parts[f"param:{name}"] = digest(p.value)
            words[f"param:{name}"] = f"parameter {name} = {p.text}"
    for loc in sorted(at):
        decl = closure.decls.get(loc)
        if decl is not None:
            text = declaration_text(closure.program, decl)
            name = _decl_name(loc, text)
            parts[f"rule:{name}"] = digest(text)
            words[f"rule:{name}"] = f"rule {name} ({loc})"
    rs = closure.program.rs
    for name in sorted(named):
        decl = rs.tables.get(name) or rs.bands.get(name)
        parts[f"table:{name}"] = digest(declaration_text(closure.program, decl))
        words[f"table:{name}"] = f"table {name} ({decl.loc})"
    field, _intent, spws, specmode = split_key(key)
    if specmode == "cont" or (line and specmode == "cube"):
        ranges = {s: (lookup(contdat, field, s).model_dump(mode="json") if contdat and lookup(contdat, field, s)
                      else None) for s in spws}
        parts["contdat"] = digest(ranges)
        words["contdat"] = f"cont.dat ranges of field {field}, spw {', '.join(map(str, spws))}"
    if flagtemplate is not None:  # applied by flagtargets: an input of the images once that stage runs
        parts["flagtemplate"] = digest(flagtemplate)
        words["flagtemplate"] = "the flag template"
    parts["switches"] = digest(switches)
    words["switches"] = "the run's switches (" + ", ".join(f"{k}={v}" for k, v in sorted(switches.items())) + ")"
    return parts, words


def _decl_name(loc: str, text: str) -> str:
    """A stable name of a declaration: its first line without the docstring, e.g. 'derive
    image.threshold' (with the file name, since two files may derive the same attribute)."""
    head = text.splitlines()[0].split("=")[0].rstrip(":").strip() if text else loc
    file = Path(loc.rsplit(":", 2)[0]).name
    return f"{file}: {' '.join(head.split())}"


def changes(old: dict[str, str], new: dict[str, str], old_words: dict[str, str],
            new_words: dict[str, str]) -> list[str]:
    """Why an image must be made again, one line per component that differs."""
    why = []
    for comp in sorted(set(old) | set(new)):
        if old.get(comp) == new.get(comp):
            continue
        if comp not in old:
            why.append(f"new input: {new_words.get(comp, comp)}")
        elif comp not in new:
            why.append(f"no longer an input: {old_words.get(comp, comp)}")
        elif comp.startswith("param:") and old_words.get(comp) != new_words.get(comp):
            why.append(f"{old_words.get(comp)} -> {new_words[comp].split(' = ', 1)[-1]}")
        else:
            why.append(f"changed: {new_words.get(comp, comp)}")
    return why


def ms_digests(ms_paths: list[Path]) -> list[tuple[str, str]]:
    """(resolved path, identity digest) of each Measurement Set."""
    return [(str(Path(m).resolve()), digest(ms_identity(Path(m)))) for m in ms_paths]
