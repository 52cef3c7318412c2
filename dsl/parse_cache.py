"""A disk cache of parsed rule files: every command parses the shipped rules (8 files, ~0.2 s
with lark) although they rarely change.

Key: SHA-256 of the cache format, the grammar, the parser's and the AST's source, the file's
shown path (it is in every location) and its text. Value: the `ast.Module`, pickled. Loading
uses an unpickler that resolves only the AST's own classes (and `frozenset`, `set`), so a
tampered cache file can at worst fail to load -- it is then parsed again -- and never runs code
or builds objects of other types: rule files stay data.

Where: ``$ALMARULES_CACHE_DIR`` or ``$XDG_CACHE_HOME/almarules/ast`` (default
``~/.cache/almarules/ast``); ``ALMARULES_CACHE_DIR=off`` disables it. Entries are written
atomically; an unwritable cache directory only means no caching. Files that fail to parse are
not cached.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tempfile
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

from almarules.dsl import ast as A

FORMAT = b"almarules-ast-cache 1\0"
_MAX_ENTRY_BYTES = 64 * 1024 * 1024
_ALLOWED_BUILTINS = {"frozenset": frozenset, "set": set}


def cache_dir() -> Optional[Path]:
    """The cache directory, or None when caching is off."""
    env = os.environ.get("ALMARULES_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env) / "ast"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "almarules" / "ast"


@functools.lru_cache(maxsize=1)
def _code_digest() -> bytes:
    """What the cached ASTs depend on besides the file: grammar, parser and AST definitions."""
    h = hashlib.sha256(FORMAT)
    pkg = resources.files("almarules.dsl")
    for name in ("rules.lark", "parser.py", "ast.py", "limits.py"):
        h.update(name.encode() + b"\0" + pkg.joinpath(name).read_bytes() + b"\0")
    return h.digest()


def key(text: str, shown: str) -> str:
    """The cache key of one file's text parsed under the path it is shown as."""
    h = hashlib.sha256(_code_digest())
    h.update(shown.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class _AstUnpickler(pickle.Unpickler):
    """Resolves the AST's classes only; anything else is refused."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        if module == A.__name__:
            obj = getattr(A, name, None)
            if isinstance(obj, type) and obj.__module__ == A.__name__:
                return obj
        if module == "builtins" and name in _ALLOWED_BUILTINS:
            return _ALLOWED_BUILTINS[name]
        raise pickle.UnpicklingError(f"{module}.{name} is not part of the rule AST")


def _load(path: Path) -> Optional[A.Module]:
    try:
        if path.stat().st_size > _MAX_ENTRY_BYTES:
            return None
        obj = _AstUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception:  # a missing, partial or foreign entry is a cache miss, whatever it holds
        return None
    return obj if isinstance(obj, A.Module) else None


def _store(path: Path, module: A.Module) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(module, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # no cache, no harm


def parse_cached(text: str, shown: str, parse: Callable[[str, str], A.Module]) -> A.Module:
    """`parse(text, shown)`, from the cache when this text was parsed before under this path."""
    where = cache_dir()
    if where is None:
        return parse(text, shown)
    entry = where / f"{key(text, shown)}.pickle"
    module = _load(entry)
    if module is not None and module.source == (text if text.endswith("\n") else text + "\n") \
            and module.path == shown:
        return module
    module = parse(text, shown)
    _store(entry, module)
    return module
