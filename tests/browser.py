"""A tiny helper around headless Chromium's command line (Debian's `chromium` package), for tests
that render HTML pages (the plan's HTML, the weblog).

Each call starts a fresh browser with its own `--user-data-dir` in a temporary directory and a
timeout; nothing is shared between calls. Pages are opened as `file://` URLs.

    chromium_path() -> str | None           the binary, or None when absent
    requires_chromium                       pytest skip marker (with the reason) when absent
    dump_dom(html_path) -> str              the DOM after scripts ran (`--dump-dom`)
    screenshot(html_path, png_path, width=1400, height=1000) -> None
    console_errors(html_path) -> list[str]  console messages, uncaught errors and failed loads
    is_blank(png_path) -> bool              < 1 % of pixels differ from the background colour
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Union
from urllib.parse import unquote, urlparse

import pytest

PathLike = Union[str, "os.PathLike[str]"]
TIMEOUT_S = 120.0  # one page load, generous for a busy 2-core machine
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
_CONSOLE = re.compile(r":INFO:CONSOLE[^\]]*\]\s*(.*)$")
_FILE_LOAD = re.compile(r"FileURLLoader::Start: (file://\S+)")
_REMOTE_LOAD = re.compile(r"NotifyBeforeURLRequest: (https?://\S+)")
# Chromium's own background requests (clock, component updater, accounts, dictionaries): not the page's
_BROWSER_HOSTS = ("google.com", "googleapis.com", "gvt1.com", "gstatic.com")


def chromium_path() -> Optional[str]:
    """Path of the Chromium binary ($ALMARULES_CHROMIUM, /usr/bin/chromium or on PATH), or None."""
    env = os.environ.get("ALMARULES_CHROMIUM")
    if env and os.access(env, os.X_OK):
        return env
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


requires_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="headless Chromium not found (install Debian's `chromium` package or set ALMARULES_CHROMIUM)")


def _url(html_path: PathLike) -> str:
    return Path(html_path).resolve().as_uri()


def _run(html_path: PathLike, extra: list[str], width: int = 1400, height: int = 1000,
         verbose: int = 0) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on the page; raises RuntimeError if it is absent or fails."""
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("headless Chromium not found")
    with tempfile.TemporaryDirectory(prefix="almarules-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               "--enable-logging=stderr", f"--v={verbose}", *extra, _url(html_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def dump_dom(html_path: PathLike, width: int = 1400, height: int = 1000) -> str:
    """The page's DOM, serialised after its scripts ran, at a window of width x height px."""
    return _run(html_path, ["--dump-dom"], width, height).stdout


def screenshot(html_path: PathLike, png_path: PathLike, width: int = 1400, height: int = 1000) -> None:
    """A PNG screenshot of the page's first width x height px (the viewport) at `png_path`."""
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    _run(html_path, [f"--screenshot={png}"], width, height)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot at {png}")


def _failed_file_load(url: str, page: str) -> bool:
    if url.split("#")[0] == page:
        return False
    return not Path(unquote(urlparse(url).path)).exists()


def _browser_own(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return any(host == h or host.endswith("." + h) for h in _BROWSER_HOSTS)


def console_errors(html_path: PathLike) -> list[str]:
    """Everything that went wrong while loading the page: console messages (a page of ours logs
    nothing, so any message counts, including uncaught exceptions), local files that do not
    exist, and any attempt to load an http(s) URL (Chromium's own background requests aside)."""
    page = _url(html_path)
    proc = _run(html_path, ["--dump-dom"], verbose=1)
    errors: list[str] = []
    for line in proc.stderr.splitlines():
        if (m := _CONSOLE.search(line)) is not None:
            errors.append("console: " + m.group(1))
        elif (m := _FILE_LOAD.search(line)) is not None and _failed_file_load(m.group(1), page):
            errors.append("missing file: " + m.group(1))
        elif (m := _REMOTE_LOAD.search(line)) is not None and not _browser_own(m.group(1)):
            errors.append("remote load: " + m.group(1))
    return errors


def is_blank(png_path: PathLike, threshold: float = 0.01) -> bool:
    """True when fewer than `threshold` (a fraction) of the pixels differ from the most common
    colour (the background) by more than 2 % in any channel."""
    import matplotlib.image as mpimg
    import numpy as np

    img = np.asarray(mpimg.imread(str(png_path)), dtype=float)
    if img.ndim == 2:
        img = img[..., None]
    pixels = img[..., :3].reshape(-1, min(img.shape[-1], 3))
    q = np.round(pixels * 255).astype(np.int64)
    codes = (q[:, 0] << 16) | ((q[:, 1] if q.shape[1] > 1 else q[:, 0]) << 8) | (q[:, 2] if q.shape[1] > 2 else q[:, 0])
    values, counts = np.unique(codes, return_counts=True)
    background = pixels[codes == values[np.argmax(counts)]][0]
    differs = np.any(np.abs(pixels - background) > 0.02, axis=1)
    return float(differs.mean()) < threshold
