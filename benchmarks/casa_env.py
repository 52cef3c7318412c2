"""The CASA virtual environment of `compare_casa.py`: built once, cached, configured for offline use.

Building (only when ``<venv>/bin/python`` is missing): ``python -m venv <venv>``, then
``pip install casatasks casatools casadata`` from the package registry. Configuration: CASA reads
its user configuration from ``~/.casa/config.py`` unless the process is given
``--configfile PATH`` on its command line (casaconfig parses sys.argv for it, and for
``--nositeconfig``). So the comparison never touches a user's ~/.casa: it writes
``<venv>/almarules-casa-config.py`` with ``measurespath`` and ``datapath`` at the casadata package's
data directory and automatic updates off, and starts every CASA process with
``--configfile <that file> --nositeconfig``.

Nothing here imports casatools: the CASA packages are only ever run in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "almarules" / "casa-venv"
#: six: casatasks 6.7.0 imports it without declaring it
PACKAGES = ("casatasks", "casatools", "casadata", "six")
CONFIG_NAME = "almarules-casa-config.py"


def python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


def build(venv: Path, base_python: str = sys.executable, say: Callable[[str], None] = print) -> None:
    """Create the venv and install the CASA packages (minutes; once)."""
    say(f"building the CASA venv {venv} (once): python -m venv, pip install {' '.join(PACKAGES)}")
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python(venv)), "-m", "pip", "install", "--quiet", *PACKAGES], check=True)


def casadata_dir(venv: Path) -> Path:
    """The casadata package's data directory (the one holding ``geodetic``) in `venv`."""
    out = subprocess.run([str(python(venv)), "-c", "import casadata; print(casadata.datapath)"],
                         check=True, capture_output=True, text=True)
    path = Path(out.stdout.strip())
    if not (path / "geodetic").is_dir():
        raise RuntimeError(f"casadata's data directory {path} holds no 'geodetic' folder")
    return path


def write_config(venv: Path) -> Path:
    """Write (or refresh) the offline configuration file of `venv`; its path."""
    data = casadata_dir(venv)
    cfg = Path(venv) / CONFIG_NAME
    text = ("# written by almarules benchmarks/casa_env.py: offline CASA for compare_casa.py\n"
            f"measurespath = {str(data)!r}\n"
            f"datapath = [{str(data)!r}]\n"
            "measures_auto_update = False\n"
            "data_auto_update = False\n"
            "nologfile = False\n")
    if not cfg.exists() or cfg.read_text() != text:
        cfg.write_text(text)
    return cfg


def ensure(venv: Path, say: Callable[[str], None] = print) -> tuple[Path, Path]:
    """(the venv's python, its config file): builds the venv when it has no python yet."""
    venv = Path(venv).expanduser().resolve()
    if not python(venv).exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        build(venv, say=say)
    return python(venv), write_config(venv)


def command(py: Path, config: Path, script: Path, *args: str) -> list[str]:
    """The command line that runs `script` in the CASA venv with the offline configuration."""
    return [str(py), str(script), *args, "--configfile", str(config), "--nositeconfig"]


def version(py: Path, config: Path, cwd: Path) -> str:
    """casatools' version string (runs a CASA process in `cwd`, where its log file goes)."""
    out = subprocess.run([str(py), "-c", "import casatools; print(casatools.version_string())",
                          "--configfile", str(config), "--nositeconfig"],
                         capture_output=True, text=True, check=True, cwd=cwd)
    return out.stdout.strip().splitlines()[-1]
