"""The command line: outputs, exit codes, one-line errors, --debug tracebacks, atomic output."""

from __future__ import annotations

import re

import json
import subprocess
import sys

import pytest

from almarules.engine.cli.app import main

from conftest import REPO

EXAMPLE = str(REPO / "examples" / "12m_single_field_tdm.yaml")
CYCLE4 = str(REPO / "rules" / "alma" / "cycle4")


def test_eval_table(capsys):
    assert main(["eval", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert re.search(r"max_cube_size +30 GB", out)
    assert "image[Elias_29.TARGET.17.mfs]" in out
    assert re.search(r"threshold +0.4 mJy/beam", out)
    assert "Cascade productsize: not needed" in out


def test_eval_json_has_provenance_and_is_valid(capsys):
    assert main(["eval", EXAMPLE, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    v = next(v for v in data["values"] if v["path"] == "image[Elias_29.TARGET.17.mfs].threshold")
    assert v["value"] == pytest.approx(0.4)
    assert v["unit"] == "mJy/beam" and v["rule"] == "derive image.threshold"
    assert v["formula"] and v["inputs"]
    assert len(data["rules_sha256"]) == 64


def test_eval_output_file_written_atomically(tmp_path, capsys):
    target = tmp_path / "out.json"
    assert main(["eval", EXAMPLE, "--json", "-o", str(target)]) == 0
    assert json.loads(target.read_text())["facts"] == EXAMPLE
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left behind


def test_eval_two_runs_byte_identical(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    main(["eval", EXAMPLE, "--json", "-o", str(a)])
    main(["eval", EXAMPLE, "--json", "-o", str(b)])
    assert a.read_bytes() == b.read_bytes()


def test_explain_tree_goes_down_to_facts(capsys):
    assert main(["explain", EXAMPLE, "--value", "image[Elias_29.TARGET.17.mfs].threshold"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("image[Elias_29.TARGET.17.mfs].threshold = 0.4 mJy/beam   [derive image.threshold, ")
    assert "= tlimit * image.sensitivity * image.dr_correction" in out
    assert "param tlimit = 4   [default; declared " in out
    assert "table dr_correction_12m: row (50, 100] -> 2.0" in out
    assert "measurement[Elias_29.TARGET.17.mfs].dirty_dr = 80   [fact measurements[" in out


def test_explain_unknown_value_suggests(capsys):
    assert main(["explain", EXAMPLE, "--value", "image[Elias_29.TARGET.17.mfs].treshold"]) == 2
    err = capsys.readouterr().err
    assert "no value 'image[Elias_29.TARGET.17.mfs].treshold'" in err
    assert "did you mean image[Elias_29.TARGET.17.mfs].threshold" in err


def test_set_from_command_line(capsys):
    assert main(["eval", EXAMPLE, "--set", "imaging.max_cube_size=40GB", "--only", "largest_cube"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"40 GB +--set imaging.max_cube_size=40GB", out)


@pytest.mark.parametrize("argv, message", [
    (["eval", "nowhere.yaml"], "almarules: no such dataset: nowhere.yaml"),
    (["eval", EXAMPLE, "--rules", "nowhere"], "almarules: no such rule file or directory: nowhere"),
    (["eval", EXAMPLE, "--set", "tlimit=3 GB"], "tlimit is in plain numbers, got GB"),
    (["check", "/nonexistent/rules"], "almarules: no such file or directory: /nonexistent/rules"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_facts_name_the_field_path(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spws:\n  - {id: 0, nchan: many}\n")
    assert main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "spws[0].nchan" in err and "Traceback" not in err


def test_broken_rules_given_to_eval_exit_2_with_locations(tmp_path, capsys):
    rules = tmp_path / "r.rules"
    rules.write_text("derive dataset.x = dataset.arrey\n")
    assert main(["eval", EXAMPLE, "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert "r.rules:1:20: error[unknown-attribute]: dataset has no attribute 'arrey'" in err
    assert "did you mean 'array'?" in err


def test_debug_shows_the_traceback(capsys):
    assert main(["--debug", "eval", "nowhere.yaml"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_check_shipped_rules_clean(capsys):
    assert main(["check", str(REPO / "rules")]) == 0
    assert "no findings" in capsys.readouterr().out


def test_schema_is_json_with_units(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "properties" in schema and '"unit": "Hz"' in json.dumps(schema)


def test_fmt_check_on_shipped_rules(capsys):
    assert main(["fmt", "--check", CYCLE4]) == 0


def test_fmt_check_passes_on_every_shipped_rule_file(capsys):
    """Every shipped rule set (cycle4, cycle5, current) is in canonical layout."""
    assert main(["fmt", "--check", str(REPO / "rules")]) == 0
    assert capsys.readouterr().out.endswith(" files already formatted\n")


def test_fmt_rewrites_in_place(tmp_path, capsys):
    f = tmp_path / "x.rules"
    f.write_text("param   a=3  GB   # size\nderive dataset.y=a*2\n")
    assert main(["fmt", "--check", str(f)]) == 1
    assert main(["fmt", str(f)]) == 0
    text = f.read_text()
    assert "# size" in text
    assert main(["fmt", "--check", str(f)]) == 0


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "almarules", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("almarules ")



def test_a_reader_that_goes_away_is_not_an_error(monkeypatch, capsys):
    # `almarules eval ... | head -1`: the pipe closes early; no traceback, no "Broken pipe" line
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["eval", EXAMPLE, "--json"]) == 141
    assert capsys.readouterr().err == ""
