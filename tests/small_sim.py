"""The small simulated execution block the `image` tests share, and a CLI runner."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from almarules.engine.cli.app import main
from almarules.engine.simulate import parse_sim_config, simulate

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "examples" / "sim" / "alma_12m_band6_small.yaml"


def small_ms(root: Path) -> Path:
    """The small simulated EB without corruptions, 8 channels in the cube spw (quick cubes),
    written under `root`; its path."""
    data = copy.deepcopy(yaml.safe_load(SMALL.read_text()))
    data["corruptions"] = {"enabled": False}
    data["spws"][1]["nchan"] = 8
    data["spws"][1]["channel_width"] = "31.25 MHz"
    return Path(simulate(parse_sim_config(data, "test"), root / "small.ms")["ms"][0])


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`almarules ARGV` in this process: (exit code, stdout, stderr)."""
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err
