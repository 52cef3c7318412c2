"""Hostile dataset summaries, user files and ``--set`` values (issue 11): each is refused with one
line naming the file and the field path, exit code 2, in bounded time and memory; never a
traceback, an ``internal error`` (exit 3), a hang or a memory blow-up.

Bombs, FIFOs and devices run in a subprocess with a timeout and an address-space limit, so the
code as it was fails the test (timeout, MemoryError, exit 3) instead of taking the machine down.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from almarules.dsl.limits import MAX_SUMMARY_BYTES, MAX_SUMMARY_DEPTH, MAX_SUMMARY_NODES
from almarules.engine.cli.app import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "12m_single_field_tdm.yaml"
ADDRESS_SPACE = 3 * 2 ** 30  # the code as it was blows past this on a bomb or /dev/zero

# Runs the CLI and prints on stdout: exit code, seconds, peak-RSS growth (bytes) during the run.
_RUNNER = textwrap.dedent("""
    import io, json, resource, sys, time
    from contextlib import redirect_stdout
    from almarules.engine.cli.app import main
    import almarules.engine.evaluate.api, almarules.engine.evaluate.decisions, almarules.engine.evaluate.report  # imports: not timed
    import almarules.engine.cli.image, almarules.engine.cli.plan, almarules.engine.facts.summary
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        rc = main(sys.argv[1:])
    took = time.perf_counter() - t0
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(json.dumps([rc, took, grown]))
""")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_cli(args: list[str], timeout: float = 60) -> tuple[int, float, int, str]:
    """(exit code, seconds in `main`, peak-RSS growth in bytes, stderr) of the CLI in a subprocess."""
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limit_memory, cwd=ROOT)
    assert proc.stdout.strip(), proc.stderr
    rc, took, grown = json.loads(proc.stdout.strip().splitlines()[-1])
    return rc, took, grown, proc.stderr


def one_line(stderr: str) -> str:
    """The single error line (no traceback, no internal error)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().err


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- alias bombs
def _laughs(indent: str, levels: int = 9) -> str:
    """A "billion laughs": 10 ** levels strings from a few hundred bytes of YAML."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["project", "history_origins"])
def test_alias_bomb_is_refused_fast_and_small(tmp_path, where):
    if where == "project":
        text = "project:\n" + _laughs("  ")
    else:  # the bomb is a list item of ebs[0].history_origins
        body = _laughs("        ").replace("        l0:", "      - l0:", 1)
        text = f"ebs:\n  - id: x\n    history_origins:\n{body}"
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    rc, took, grown, err = run_cli(["eval", str(path)])
    line = one_line(err)
    assert rc == 2
    field = "project.l6[0]" if where == "project" else "ebs[0].history_origins[0].l6[0]"
    assert line.startswith(f"almarules: {path}: {field}: more than {MAX_SUMMARY_NODES} nodes"), line
    assert took < 2.0 and grown < 200 * 2 ** 20, (took, grown)


def test_recursive_alias_is_refused(tmp_path, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text("project: &a [x, *a]\n", encoding="utf-8")
    rc, err = cli(["eval", str(path)], capsys)
    assert rc == 2 and one_line(err) == (f"almarules: {path}: project[1]: alias *a at line 1, column 17 refers to "
                                         "a node that contains it (a summary cannot be recursive)")


def test_honest_aliases_still_load(tmp_path, capsys):
    """Aliases to scalars and to a shared list are fine: only the expansion is bounded."""
    text = (ROOT / "examples" / "7m_mosaic_multi_eb.yaml").read_text(encoding="utf-8")
    for key, value, anchor in (("dish_diameter", "7.0", "d"), ("history_origins", "[importasdm]", "h")):
        assert text.count(f"{key}: {value}") > 1
        text = text.replace(f"{key}: {value}", f"{key}: &{anchor} {value}", 1).replace(
            f"{key}: {value}", f"{key}: *{anchor}")
    path = tmp_path / "ok.yaml"
    path.write_text(text, encoding="utf-8")
    assert cli(["eval", str(path), "--only", "l80"], capsys)[0] == 0


# ---------------------------------------------------------------- deep nesting
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_deep_nesting_is_refused_with_the_depth(tmp_path, suffix):
    deep = "[" * 100_000 + "]" * 100_000
    text = f'{{"project": {deep}}}' if suffix == ".json" else f"project: {deep}\n"
    path = tmp_path / f"deep{suffix}"
    path.write_text(text, encoding="utf-8")
    rc, took, _, err = run_cli(["eval", str(path)])
    line = one_line(err)
    field = "" if suffix == ".json" else "project[0][0][0][0][0]...(58 more levels): "
    assert rc == 2, line
    assert line.startswith(f"almarules: {path}: {field}nesting deeper than {MAX_SUMMARY_DEPTH} levels"), line
    assert took < 2.0


def test_brackets_inside_json_strings_do_not_count(tmp_path, capsys):
    data = example()
    data["project"] = "[" * 1000 + '\\"{'
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert cli(["eval", str(path), "--only", "l80"], capsys)[0] == 0


# ---------------------------------------------------------------- size
def test_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as fh:  # sparse: 100 MB that take no disk
        fh.truncate(100 * 2 ** 20)
    rc, took, grown, err = run_cli(["eval", str(path)])
    line = one_line(err)
    assert rc == 2 and str(path) in line and f"more than the limit of {MAX_SUMMARY_BYTES}" in line, line
    assert took < 2.0 and grown < 50 * 2 ** 20


def test_twenty_thousand_spws_are_refused_with_the_path(tmp_path):
    data = example()
    data["spws"] = [dict(data["spws"][0], id=i) for i in range(20_000)]
    path = tmp_path / "spws.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    rc, took, grown, err = run_cli(["eval", str(path)])
    line = one_line(err)
    assert rc == 2 and line == (f"almarules: {path}: spws: 20000 items, more than the limit of 1000 "
                                "(far above real data: see 'almarules schema')"), line
    assert took < 10.0 and grown < 400 * 2 ** 20


# ---------------------------------------------------------------- not regular files
@pytest.mark.parametrize("kind", ["fifo", "zero", "urandom"])
def test_fifo_and_devices_are_refused_unopened(tmp_path, kind):
    path = tmp_path / ("s.json" if kind == "zero" else "s.yaml")
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(f"/dev/{kind}")
    rc, took, _, err = run_cli(["eval", str(path)], timeout=30)
    line = one_line(err)
    what = "a FIFO" if kind == "fifo" else "a character device"
    assert rc == 2 and line == f"almarules: {path}: not a regular file ({what}): a dataset summary must be a " \
                               "regular file", line
    assert took < 2.0


def test_intents_file_must_be_a_regular_file(tmp_path, capsys):
    fifo = tmp_path / "intents.yaml"
    os.mkfifo(fifo)
    rc, err = cli(["eval", str(EXAMPLE), "--intents", str(fifo)], capsys)
    assert rc == 2 and one_line(err) == (f"almarules: {fifo}: not a regular file (a FIFO): an intents file must "
                                         "be a regular file")


def test_contfile_must_be_a_regular_file(tmp_path, capsys):
    ms = tmp_path / "x.ms"  # looks like an MS: the cont.dat is refused before the MS is read
    ms.mkdir()
    (ms / "table.dat").write_bytes(b"")
    fifo = tmp_path / "cont.dat"
    os.mkfifo(fifo)
    rc, err = cli(["image", str(ms), "--all", "-o", str(tmp_path / "out"), "--contfile", str(fifo)], capsys)
    assert rc == 2 and one_line(err) == (f"almarules: {fifo}: not a regular file (a FIFO): a cont.dat file must "
                                         "be a regular file")


def test_corpus_names_the_entries_it_skips(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    os.mkfifo(corpus / "fifo.yaml")
    (corpus / "zero.json").symlink_to("/dev/zero")
    for command in (["plan", "--corpus", str(corpus)],
                    ["diff", "--base", "rules/alma/cycle4", "--new", "rules/alma/current", "--corpus", str(corpus)]):
        rc, _, _, err = run_cli(command, timeout=60)
        assert rc == 0, err
        assert f"almarules: skipped {corpus / 'fifo.yaml'}: not a regular file (a FIFO)" in err
        assert f"almarules: skipped {corpus / 'zero.json'}: not a regular file (a character device)" in err


def test_invalid_utf8_names_line_and_column(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"project: x\nmous_id: \"ab\xff\"\n")
    rc, err = cli(["eval", str(path)], capsys)
    assert rc == 2 and one_line(err) == (f"almarules: {path}:2:13: invalid UTF-8 (byte 0xff): a dataset summary "
                                         "must be UTF-8 text")


# ---------------------------------------------------------------- impossible facts
def _set(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


IMPOSSIBLE = [  # (where, value, the message after the path)
    (("ebs", 0, "baselines", "l80"), float("nan"), "must be a finite number (got nan)"),
    (("ebs", 0, "baselines", "l80"), -5.0, "must be at least 0 m (got -5 m)"),
    (("ebs", 0, "baselines", "l80"), 1e9, "must be at most 1.3e+07 m (got 1e+09 m)"),
    (("ebs", 0, "integration_time"), float("nan"), "must be a finite number (got nan)"),
    (("ebs", 0, "start"), -1e300, "must be at least 0 s (got -1e+300 s)"),
    (("spws", 0, "start_frequency"), "1e400 GHz", "must be a finite number (got inf)"),
    (("spws", 0, "start_frequency"), "nan Hz", "'nan Hz' is not a number with a unit: expected a frequency in Hz"),
    (("spws", 0, "nchan"), -5, "must be at least 1 (got -5)"),
    (("antennas", 0, "dish_diameter"), 0, "must be greater than 0 m (got 0 m)"),
    (("antennas", 0, "dish_diameter"), "-inf m", "'-inf m' is not a number with a unit: expected a length in m"),
    (("antennas", 0, "position"), [1e12, 0.0, 0.0], "must be at most 7e+06 m (got 1e+12 m)"),
    (("fields", 0, "dec"), 1000, "must be at most 90 deg (got 1000 deg)"),
    (("fields", 0, "ra"), 1e9, "must be at most 360 deg (got 1e+09 deg)"),
    (("fields", 0, "pointings"), [{"ra_offset": 1e15}], "must be at most 36000 arcsec (got 1e+15 arcsec)"),
    (("representative_frequency",), 1e30, "must be at most 1e+13 Hz (got 1e+30 Hz)"),
]


def _shown(where: tuple, value) -> str:
    path = ""
    for part in where:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path + (".0" if where[-1] == "position" else "") + (
        "[0].ra_offset" if where[-1] == "pointings" else "")


@pytest.mark.parametrize(("where", "value", "message"), IMPOSSIBLE, ids=lambda x: str(x)[:30])
def test_impossible_facts_are_refused_with_the_path(tmp_path, capsys, where, value, message):
    data = copy.deepcopy(example())
    _set(data, where, value)
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    rc, err = cli(["eval", str(path)], capsys)
    field = _shown(where, value).replace(".position.0", ".position[0]")
    assert rc == 2 and one_line(err) == f"almarules: {path}: {field}: {message}"


# ---------------------------------------------------------------- --set
@pytest.mark.parametrize(("assignment", "expected"), [
    ("ppb=-3", "param ppb does not accept -3: it takes a value in [1, 20]"),
    ("ppb=0.5", "param ppb does not accept 0.5: it takes a value in [1, 20]"),
    ("ppb=1e-320", "1e-320 is too small to compute with (a subnormal number"),
    ("robust=1e-320", "1e-320 is too small to compute with (a subnormal number"),
    ("max_cube_size=1e-320GB", "1e-320GB is too small to compute with (a subnormal number"),
    ("ppb=1e400", "1e400 is not a finite number"),
    ("niter=1e300", "param niter does not accept 1e300: it takes a value in [0, 100000000]"),
])
def test_set_refuses_out_of_range_non_finite_and_subnormal(capsys, assignment, expected):
    rc, err = cli(["eval", str(EXAMPLE), "--set", assignment], capsys)
    line = one_line(err)
    assert rc == 2 and line.startswith(f"almarules: --set {assignment}: {expected}"), line


def test_every_shipped_parameter_has_a_bounded_range():
    """Every parameter of the shipped rule sets says what it accepts; numbers have a finite upper end."""
    from almarules.dsl.loader import load_ruleset

    for name in ("cycle4", "current", "cycle5"):
        rs = load_ruleset([ROOT / "rules" / "alma" / name])
        for pname, decl in rs.params.items():
            assert decl.allowed is not None, f"{name}: param {pname} has no 'in' clause"
            interval = decl.allowed.interval
            if interval is not None:
                assert not interval.hi.infinite, f"{name}: param {pname} accepts {interval}: no upper end"
