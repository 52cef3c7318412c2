"""Units: the table of known units is astropy's decomposition, and the shipped rules need no other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import astropy.units as u
import pytest

from almarules.dsl.known_units import KNOWN, NAMES
from almarules.dsl.units import DIMENSIONLESS, UnitError, parse_quantity, parse_unit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", NAMES)
def test_known_units_are_astropys_decompositions(text):
    spelled = {"sec": "s"}.get(text, text)
    dec = u.Unit(spelled, format="generic").decompose()
    scale, powers = KNOWN[text]
    assert scale == pytest.approx(float(dec.scale), rel=1e-14)
    assert dict(powers) == {b.name: p for b, p in zip(dec.bases, dec.powers, strict=True)}


def test_table_and_names_agree():
    assert set(KNOWN) == set(NAMES)


def test_a_unit_outside_the_table_comes_from_astropy():
    scale, dim = parse_unit("kpc")
    assert scale == pytest.approx(3.0856775814913673e19, rel=1e-12)
    assert dim == parse_unit("m")[1]
    assert parse_quantity("2 pc")[0] == pytest.approx(2 * 3.0856775814913673e16, rel=1e-12)


def test_dimension_arithmetic_and_spelling():
    jy_beam, jy, beam = parse_unit("Jy/beam")[1], parse_unit("Jy")[1], parse_unit("beam")[1]
    assert jy / beam == jy_beam
    assert jy_beam * beam == jy
    assert (jy ** 2) ** 0.5 == jy
    assert jy / jy == DIMENSIONLESS and DIMENSIONLESS.is_dimensionless
    assert str(parse_unit("m/s")[1]) == "m / s"
    assert str(jy_beam ** -2) == u.Unit("kg-2 s4 beam2").to_string()
    assert parse_unit("uJy")[0] == pytest.approx(1e-32) and parse_unit("Jy/b") == parse_unit("Jy/beam")
    with pytest.raises(UnitError, match="unknown unit 'furlongs'"):
        parse_unit("furlongs")


def test_shipped_rules_and_facts_need_no_astropy_units():
    """`plan` and `check` on shipped examples: every unit they parse is in the table."""
    code = (
        "import sys, io, contextlib\n"
        "from almarules.engine.cli.app import main\n"
        "for argv in (['plan', 'examples/12m_long_baseline_cascade.yaml'], ['check', 'rules/'],\n"
        "             ['plan', 'examples/7m_mosaic_multi_eb.yaml', '--rules', 'rules/alma/current']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as e:\n"
        "            assert not e.code, (argv, e.code)\n"
        "print('astropy.units' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
