"""dsl.parse_cache: a parsed rule file comes back equal from the cache; a tampered entry is a
miss (never code run, never a foreign object); the cache can be off or unwritable."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from almarules.dsl import parse_cache
from almarules.dsl.parser import parse_text

RULES = Path(__file__).resolve().parents[2] / "rules" / "alma" / "cycle4"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALMARULES_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c" / "ast"


def _counting():
    calls = []

    def parse(text: str, shown: str):
        calls.append(shown)
        return parse_text(text, shown)
    return parse, calls


def test_a_second_parse_comes_from_the_cache_and_equals_the_parse(cache):
    parse, calls = _counting()
    for f in sorted(RULES.glob("*.rules")):
        text, shown = f.read_text(), f"cycle4/{f.name}"
        first = parse_cache.parse_cached(text, shown, parse)
        again = parse_cache.parse_cached(text, shown, parse)
        assert again == first == parse_text(text, shown)
    assert len(calls) == len(list(RULES.glob("*.rules")))  # each parsed once
    assert len(list(cache.glob("*.pickle"))) == len(calls)


def test_the_shown_path_and_the_text_are_part_of_the_key(cache):
    parse, calls = _counting()
    text = "param a = 1\n"
    parse_cache.parse_cached(text, "x.rules", parse)
    assert parse_cache.parse_cached(text, "y.rules", parse).path == "y.rules"
    assert parse_cache.parse_cached("param a = 2\n", "x.rules", parse).decls[0].value.value == 2
    assert calls == ["x.rules", "y.rules", "x.rules"]


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/almarules-parse-cache-pwned",))


def test_a_tampered_entry_runs_nothing_and_is_parsed_again(cache, tmp_path):
    text, shown = "param a = 1\n", "x.rules"
    entry = cache / f"{parse_cache.key(text, shown)}.pickle"
    entry.parent.mkdir(parents=True)
    marker = Path("/tmp/almarules-parse-cache-pwned")
    marker.unlink(missing_ok=True)
    for payload in (pickle.dumps(_Boom()), pickle.dumps({"not": "a module"}), b"\x80\x05garbage"):
        entry.write_bytes(payload)
        parse, calls = _counting()
        module = parse_cache.parse_cached(text, shown, parse)
        assert calls == [shown] and module == parse_text(text, shown)
        assert not marker.exists()


def test_off_and_unwritable_caches_only_mean_parsing(tmp_path, monkeypatch):
    monkeypatch.setenv("ALMARULES_CACHE_DIR", "off")
    parse, calls = _counting()
    parse_cache.parse_cached("param a = 1\n", "x.rules", parse)
    parse_cache.parse_cached("param a = 1\n", "x.rules", parse)
    assert calls == ["x.rules", "x.rules"]
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("ALMARULES_CACHE_DIR", str(blocked))
    parse, calls = _counting()
    assert parse_cache.parse_cached("param a = 1\n", "x.rules", parse).decls
    assert calls == ["x.rules"]
