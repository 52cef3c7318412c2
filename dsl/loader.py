"""Load a rule set: files and directories, their imports, and override files.

A rule set is the union of its files' declarations. ``import "path"`` loads a
file or a directory (every ``*.rules`` in it, sorted) relative to the importing
file, once. An import reaches only ``.rules`` files: regular files (never a device, FIFO or
/proc entry) of at most MAX_RULE_FILE_BYTES, whose real path (symlinks followed) lies below the
parent of a rule-set path given to `load_ruleset` (so sibling sets can share files, as
``rules/alma/current`` imports ``../cycle4``) or in the shipped rule sets; a refused import is
a finding at the import that never quotes the foreign file. Paths given to `load_ruleset`
themselves must be regular files (or directories) within the same size limit. A declaration prefixed with ``override`` replaces (or, for tables,
scores and cascades, patches) the declaration of that name loaded before it (a
warning is named by its message; an overriding cascade step keeps its own ``when``; an
overriding parameter keeps the accepted values (``in ...``) unless it gives its own); a
plain declaration whose name is taken is a duplicate. Nothing here executes code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from almarules.dsl import ast as A
from almarules.dsl.errors import Finding, RuleError
from almarules.dsl.limits import MAX_IMPORT_SEGMENT_BYTES, MAX_RULE_FILE_BYTES
from almarules.dsl.userfiles import read_user_bytes
from almarules.dsl.parse_cache import parse_cached
from almarules.dsl.parser import parse_text


@dataclass
class RuleSet:
    """Merged declarations of a rule set, with where each came from."""

    roots: list[str]
    modules: list[A.Module] = field(default_factory=list)
    enums: dict[str, A.EnumDecl] = field(default_factory=dict)
    params: dict[str, A.Param] = field(default_factory=dict)
    derives: dict[str, list[A.Derive]] = field(default_factory=dict)
    tables: dict[str, A.Table] = field(default_factory=dict)
    bands: dict[str, A.Bands] = field(default_factory=dict)
    scores: dict[str, A.Score] = field(default_factory=dict)
    collections: dict[str, A.Collection] = field(default_factory=dict)
    cascades: dict[str, A.Cascade] = field(default_factory=dict)
    recipes: dict[str, A.Recipe] = field(default_factory=dict)
    warns: dict[str, A.Warn] = field(default_factory=dict)  # by message
    # param name -> file stem, so ``--set imaging.max_cube_size=40GB`` can name it
    param_modules: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    # declarations replaced by overrides (for "unused"/coverage they are gone)
    overridden: list[A.Decl] = field(default_factory=list)

    def digest(self) -> str:
        """SHA-256 of the rule set for provenance, independent of where it lies and of the working
        directory: over each file, in load order, its path relative to the directory holding all
        the set's files (POSIX separators), a NUL, its text (UTF-8), a NUL."""
        files = [Path(m.path).resolve() for m in self.modules]
        h = hashlib.sha256()
        if not files:
            return h.hexdigest()
        base = Path(os.path.commonpath([str(f.parent) for f in files]))
        for f, m in zip(files, self.modules, strict=True):
            h.update(f.relative_to(base).as_posix().encode())
            h.update(b"\0")
            h.update(m.source.encode())
            h.update(b"\0")
        return h.hexdigest()

    def all_derives(self) -> list[A.Derive]:
        return [d for rules in self.derives.values() for d in rules]


def display_path(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    real = path.resolve()
    try:
        return str(real.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(real)


def rule_files(path: Path) -> list[Path]:
    """The files of a rule-set path: a file, or the ``*.rules`` directly in a directory."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.rules") if p.is_file())
    return [path]


def rule_set_dirs(path: Path) -> list[Path]:
    """Every directory at or below `path` that holds ``*.rules`` files (each is one set)."""
    if not path.is_dir():
        return [path]
    dirs = {p.parent for p in path.rglob("*.rules") if p.is_file()}
    return sorted(dirs)


def _shipped_root() -> Path:
    from almarules.rules import path as shipped

    return shipped("").resolve()


def _inside(real: Path, roots: list[Path]) -> bool:
    return any(real == r or r in real.parents for r in roots)


def read_rule_file(path: Path) -> str:
    """The text of a rule file: a regular file of at most MAX_RULE_FILE_BYTES
    (`dsl.userfiles.read_user_bytes`), UTF-8. Raises OSError or `BadEncoding`."""
    data = read_user_bytes(path, MAX_RULE_FILE_BYTES, "a rule file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEncoding(data, exc.start) from None


class BadEncoding(ValueError):
    """Invalid UTF-8 at byte `offset` of a rule file: `line` and `column` (1-based, column in
    characters of the valid text before it)."""

    def __init__(self, data: bytes, offset: int):
        head = data[:offset]
        self.line = head.count(b"\n") + 1
        self.column = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        self.byte = data[offset]
        self.text = data.decode("utf-8", "replace")  # for the snippet under the finding
        super().__init__(f"invalid UTF-8 (byte 0x{self.byte:02x}): rule files are UTF-8 text")


class _Loader:
    def __init__(self) -> None:
        self.rs = RuleSet(roots=[])
        self.loaded: set[Path] = set()
        self.stack: list[Path] = []
        self.allowed: list[Path] = [_shipped_root()]

    def _refuse_import(self, path: Path, via: A.Import) -> Optional[str]:
        """Why an import may not be followed (module docstring), or None."""
        if "\x00" in via.path:  # the file system cannot name it (os.stat raises ValueError)
            return f"imported path {via.path!r} contains a NUL character"
        too_long = [seg for seg in Path(via.path).parts if len(seg.encode("utf-8", "surrogatepass")) > MAX_IMPORT_SEGMENT_BYTES]
        if too_long:
            return (f"imported path has a name of {len(too_long[0].encode('utf-8', 'surrogatepass'))} bytes: at most "
                    f"{MAX_IMPORT_SEGMENT_BYTES} (the limit)")
        try:
            real = path.resolve()
            is_dir = real.is_dir()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            return f"imported path {via.path!r} cannot be resolved ({type(exc).__name__})"
        if not _inside(real, self.allowed):
            return (f"imported path {via.path!r} lies outside the rule set's directory tree and the shipped "
                    f"rule sets")
        if not is_dir and real.suffix != ".rules":
            return f"imported path {via.path!r} is not a .rules file"
        return None

    def _member_ok(self, f: Path, via: Optional[A.Import]) -> bool:
        """A file of a rule-set directory is read only if its real path is a .rules file
        inside the allowed trees (a symlink to /etc/passwd is not)."""
        real = f.resolve()
        if real.suffix == ".rules" and _inside(real, self.allowed):
            return True
        loc = via.loc if via else A.Loc(str(f), 0, 0)
        self.rs.findings.append(Finding(loc, "import-refused",
                                        f"{f.name} links to a file outside the rule set's directory "
                                        f"tree and the shipped rule sets, or not to a .rules file: not read"))
        return False

    def load_path(self, path: Path, via: Optional[A.Import] = None) -> None:
        if via is not None:
            why = self._refuse_import(path, via)
            if why:
                self.rs.findings.append(Finding(via.loc, "import-refused", why))
                return
        try:
            exists = path.exists()
        except OSError as exc:
            exists = False
            if via is None:
                self.rs.findings.append(Finding(A.Loc(display_path(path), 0, 0), "io", f"cannot read: {exc.strerror}"))
                return
        if not exists:
            loc = via.loc if via else A.Loc(display_path(path), 0, 0)
            what = f"imported file {via.path!r} not found" if via else f"no such file or directory: {display_path(path)}"
            self.rs.findings.append(Finding(loc, "import-missing", what))
            return
        files = rule_files(path)
        if path.is_dir() and not files and via is not None:
            self.rs.findings.append(Finding(via.loc, "import-missing", f"imported directory {via.path!r} holds no .rules files"))
        for f in files:
            if path.is_dir() and not self._member_ok(f, via):
                continue
            self.load_file(f, via)

    def load_file(self, path: Path, via: Optional[A.Import]) -> None:
        real = path.resolve()
        if real in self.stack:
            cycle = " -> ".join(display_path(p) for p in self.stack[self.stack.index(real):] + [real])
            loc = via.loc if via else A.Loc(display_path(path), 0, 0)
            self.rs.findings.append(Finding(loc, "import-cycle", f"circular import: {cycle}"))
            return
        if real in self.loaded:
            return
        self.loaded.add(real)
        shown = display_path(path)
        try:
            text = read_rule_file(path)
        except BadEncoding as exc:
            self.rs.sources[shown] = exc.text
            self.rs.findings.append(Finding(A.Loc(shown, exc.line, exc.column), "encoding", str(exc)))
            return
        except OSError as exc:
            loc = via.loc if via else A.Loc(shown, 0, 0)
            why = exc.strerror if exc.strerror else str(exc)
            self.rs.findings.append(Finding(loc, "io", f"cannot read rule file: {why}"))
            return
        self.rs.sources[shown] = text
        try:
            module = parse_cached(text, shown, parse_text)
        except RuleError as exc:
            self.rs.findings.extend(exc.findings)
            return
        self.stack.append(real)
        for decl in module.decls:
            if isinstance(decl, A.Import):
                self.load_path(path.parent / decl.path, via=decl)
        self.stack.pop()
        self.rs.modules.append(module)
        stem = path.stem
        for decl in module.decls:
            if not isinstance(decl, A.Import):
                self.add(decl, stem)

    # ------------------------------------------------------------- merging
    def _table_for(self, decl: A.Decl) -> dict:
        return {
            A.EnumDecl: self.rs.enums, A.Param: self.rs.params, A.Table: self.rs.tables,
            A.Bands: self.rs.bands, A.Score: self.rs.scores, A.Collection: self.rs.collections,
            A.Cascade: self.rs.cascades, A.Recipe: self.rs.recipes, A.Warn: self.rs.warns,
        }[type(decl)]

    def add(self, decl: A.Decl, stem: str) -> None:
        name = A.decl_name(decl)
        kw = A.decl_keyword(decl)
        if isinstance(decl, A.Derive):
            existing = self.rs.derives.get(name)
            if decl.override:
                if not existing:
                    self._nothing(decl, kw, name)
                    return
                self.rs.overridden.extend(existing)
                self.rs.derives[name] = [decl]
            else:
                self.rs.derives.setdefault(name, []).append(decl)
            return
        table = self._table_for(decl)
        old = table.get(name)
        if decl.override:
            if old is None:
                self._nothing(decl, kw, name)
                return
            table[name] = self._patch(old, decl)
            self.rs.overridden.append(old)
            if isinstance(decl, A.Param):
                self.rs.param_modules.setdefault(name, stem)
            return
        if old is not None:
            shown = f'"{name}"' if isinstance(decl, A.Warn) else name
            self.rs.findings.append(Finding(
                decl.loc, "duplicate",
                f"{kw} {name!r} is already declared at {old.loc}",
                hint=f"write 'override {kw} {shown} ...' to replace it"))
            return
        table[name] = decl
        if isinstance(decl, A.Param):
            self.rs.param_modules[name] = stem

    def _nothing(self, decl: A.Decl, kw: str, name: str) -> None:
        import difflib

        pool = list(self._table_for(decl).keys()) if not isinstance(decl, A.Derive) else list(self.rs.derives)
        close = difflib.get_close_matches(name, pool, n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
        self.rs.findings.append(Finding(decl.loc, "override-nothing",
                                        f"override {kw} {name!r} names nothing declared before it", hint=hint))

    def _patch(self, old: A.Decl, new: A.Decl) -> A.Decl:
        """Tables/bands merge rows by interval, scores terms by reason, cascades steps by name."""
        if isinstance(old, A.Table) and isinstance(new, A.Table):
            rows = list(old.rows)
            for row in new.rows:
                idx = next((i for i, r in enumerate(rows) if r.interval == row.interval), None)
                if idx is None:
                    rows.append(row)
                else:
                    rows[idx] = row
            rows.sort(key=lambda r: (r.interval.lo.value, not r.interval.lo_closed))
            return replace(new, rows=tuple(rows), domain=new.domain, doc=new.doc or old.doc, override=False)
        if isinstance(old, A.Bands) and isinstance(new, A.Bands):
            rows = {r.label: r for r in old.rows}
            for row in new.rows:
                rows[row.label] = row
            ordered = sorted(rows.values(), key=lambda r: (r.interval.lo.value, not r.interval.lo_closed))
            return replace(new, rows=tuple(ordered), doc=new.doc or old.doc, override=False)
        if isinstance(old, A.Score) and isinstance(new, A.Score):
            terms = list(old.terms)
            for term in new.terms:
                idx = next((i for i, t in enumerate(terms) if t.reason == term.reason), None)
                if idx is None:
                    terms.append(term)
                else:
                    terms[idx] = term
            return replace(old, start=new.start or old.start, terms=tuple(terms),
                           clamp=new.clamp or old.clamp, when=new.when or old.when,
                           doc=new.doc or old.doc)
        if isinstance(old, A.Cascade) and isinstance(new, A.Cascade):
            steps = list(old.steps)
            for step in new.steps:
                idx = next((i for i, s in enumerate(steps) if s.name == step.name), None)
                if idx is not None:
                    steps[idx] = step
                    continue
                if step.position is None:
                    steps.append(step)
                    continue
                where, anchor = step.position
                at = next((i for i, s in enumerate(steps) if s.name == anchor), None)
                if at is None:
                    self.rs.findings.append(Finding(
                        step.loc, "override-nothing",
                        f"step {step.name!r} is placed {where} {anchor!r}, but cascade {old.name!r} has no such step",
                        hint="steps: " + ", ".join(repr(s.name) for s in steps)))
                    steps.append(step)
                    continue
                steps.insert(at + 1 if where == "after" else at, step)
            return replace(old, until=new.until or old.until, steps=tuple(steps), doc=new.doc or old.doc)
        if isinstance(old, A.Param) and isinstance(new, A.Param):
            # a new default keeps the accepted values unless it declares its own
            return replace(new, override=False, allowed=new.allowed or old.allowed)
        return replace(new, override=False) if hasattr(new, "override") else new


def load_ruleset(paths: list[str | Path]) -> RuleSet:
    """Load rule files/directories. Problems are collected in ``RuleSet.findings``."""
    loader = _Loader()
    for p in paths:
        path = Path(p)
        try:
            real = path.resolve()
            loader.allowed.append(real.parent if real.is_dir() else real.parent.parent)
        except (OSError, RuntimeError):
            pass  # load_path reports it
    for p in paths:
        path = Path(p)
        loader.rs.roots.append(display_path(path))
        loader.load_path(path)
    return loader.rs
