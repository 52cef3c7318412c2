"""Run fuzz cases through the real CLI (``engine.cli.main``) in subprocess workers, each with a
memory limit (RLIMIT_AS) and its cwd in a fresh temp directory; the parent kills a worker that
exceeds the per-input time limit and restarts it. Outcomes are classified (see ``classify``).

Run as a script with ``--worker BASE`` it is a worker: JSON lines in on stdin, results out on the
original stdout (fd 1 itself is pointed at /dev/null so C-level prints cannot corrupt the channel).

Writes outside the temp dir: every path a case names is inside the worker's temp directory (the
shipped rules and examples are copied there at start, the parse cache is pointed there), so the
checkable part is the repository: ``untracked_files`` before/after a campaign (new untracked files
whose names a case could have produced are reported). Writes elsewhere under /tmp are not checked."""

from __future__ import annotations

import base64
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("accepted", "user_error", "internal", "unlocated", "hang", "memory", "crash")
FAILURES = ("internal", "unlocated", "hang", "memory", "crash")
RULE_LOC = re.compile(r":\d+:\d+")


# ---------------------------------------------------------------- worker side

def _worker_setup(base: Path, mem_gb: float) -> None:
    import resource

    if mem_gb > 0:
        limit = int(mem_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    shutil.copytree(REPO / "rules" / "alma", base / "shipped" / "alma")
    shutil.copytree(REPO / "examples", base / "shipped" / "ex", ignore=shutil.ignore_patterns("sim", "intents"))
    os.mkfifo(base / "fifo")
    os.environ["ALMARULES_CACHE_DIR"] = str(base / "cache")


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    from almarules.engine.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # noqa: BLE001 - anything escaping main is itself a finding
            import traceback

            traceback.print_exc()
            rc = -100
            if isinstance(exc, MemoryError):
                err.write("MemoryError escaped main\n")
    return rc, out.getvalue(), err.getvalue()


def _prepare(base: Path, case: dict, n: int) -> Path:
    work = base / f"case{n}"
    shutil.copytree(base / "shipped", work, symlinks=True)
    for rel, b64 in case["files"].items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(base64.b64decode(b64).replace(b"{FIFO}", str(base / "fifo").encode()))
    return work


def _execute(base: Path, case: dict, n: int) -> dict:
    import resource

    work = _prepare(base, case, n)
    argv = [a.replace("{FIFO}", str(base / "fifo")) for a in case["argv"]]
    os.chdir(work)
    t0 = time.perf_counter()
    try:
        rc, out, err = _run_main(argv)
        frame = ""
        if rc == 3 or "Traceback" in err:
            frame = _debug_frame(argv)
    finally:
        os.chdir(base)
        shutil.rmtree(work, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rc": rc, "out": out[:4000], "err": err[:4000], "secs": time.perf_counter() - t0,
            "rss_kb": rss, "frame": frame}


def _debug_frame(argv: list[str]) -> str:
    """Rerun with --debug; the innermost traceback frame inside the project (for grouping)."""
    _, _, err = _run_main(["--debug"] + argv)
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', err)
    ours = [f for f in frames if "/almarules/" in f[0] or str(REPO) in f[0]] or frames
    if not ours:
        return ""
    path, line, func = ours[-1]
    return f"{Path(path).name}:{line} in {func}"


def worker_main(base: str, mem_gb: float) -> None:
    """Worker loop: one JSON case per stdin line, one JSON result per line on the protocol fd."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    root = Path(base)
    _worker_setup(root, mem_gb)
    import almarules.engine.cli.app  # noqa: F401 - import before serving, so startup is not timed
    proto.write(json.dumps({"ready": True}) + "\n")
    for n, line in enumerate(sys.stdin):
        try:
            result = _execute(root, json.loads(line), n)
        except MemoryError:
            result = {"rc": -101, "out": "", "err": "MemoryError in worker", "secs": 0, "rss_kb": 0, "frame": ""}
        proto.write(json.dumps(result) + "\n")


# ---------------------------------------------------------------- parent side

@dataclass
class Worker:
    """One subprocess worker and its pending case."""
    base: Path
    mem_gb: float
    proc: Optional[subprocess.Popen] = None
    buf: bytes = b""
    case: Optional[dict] = None
    deadline: float = 0.0
    peak_rss_kb: int = 0

    def start(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONHASHSEED": "0", "ALMARULES_CACHE_DIR": str(self.base / "cache")}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(self.base), str(self.mem_gb)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self.base, env=env)
        self.buf = b""
        self._read_line(time.monotonic() + 120)

    def _read_line(self, deadline: float) -> Optional[dict]:
        while b"\n" not in self.buf:
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(max(0.0, deadline - time.monotonic()))
            sel.close()
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                return {"dead": self.proc.wait()}
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def submit(self, case: dict, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        wire = {**case, "files": {k: base64.b64encode(v).decode() for k, v in case["files"].items()}}
        self.case, self.deadline = case, time.monotonic() + timeout
        self.proc.stdin.write(json.dumps(wire).encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)


#: a case that times out runs once more with this many times the time limit before it is a hang
RETRY_FACTOR = 3.0


def classify(case: dict, res: dict) -> str:
    """accepted | user_error | internal | unlocated | hang | memory | crash."""
    if res.get("hang"):
        return "hang"
    if "dead" in res:
        return "memory" if res["dead"] in (-9,) else "crash"
    rc, out, err = res["rc"], res["out"], res["err"]
    if "MemoryError" in err or rc == -101:
        return "memory"
    if rc == 3 or rc < 0 or rc not in (0, 1, 2) or "Traceback" in err or "internal error" in err:
        return "internal"
    if rc == 2:
        return "user_error" if located(case, err, out) else "unlocated"
    if rc == 1 and case["command"] == "check" and not RULE_LOC.search(out + err):
        return "unlocated"
    return "accepted"


def located(case: dict, err: str, out: str = "") -> bool:
    """Rules: ``file:line:col`` on the first line of stderr (or somewhere in stdout when stderr says
    the problems are "listed above", as ``test`` does). Summaries: every line names the file (one line per problem).
    ``--set``: one line naming the ``--set`` spec or the parameter."""
    lines = [x for x in err.splitlines() if x.strip()]
    if not lines:
        return False
    if case["kind"] == "rules":
        return bool(RULE_LOC.search(lines[0]) or ("listed above" in lines[0] and RULE_LOC.search(out)))
    if case["kind"] == "summary":
        return all(any(name in x for name in case["files"]) for x in lines)
    if len(lines) != 1:
        return False
    spec = case["argv"][-1]
    name = spec.split("=", 1)[0].split(".")[-1]
    return "--set" in lines[0] or (bool(name) and name in lines[0])


def signature(case: dict, cls: str, res: dict) -> str:
    """Group key of a failure: class, kind, command, exception type and innermost frame."""
    m = re.search(r"internal error: (\w+)", res.get("err", "")) or re.search(r"^(\w+Error)\b", res.get("err", ""), re.M)
    exc = m.group(1) if m else ""
    where = res.get("frame", "")
    if cls == "unlocated":
        first = (res.get("err", "").strip().splitlines() or [""])[0]
        exc = re.sub(r"\d+(\.\d+)?", "N", first)[:80]
    return f"{cls} | {case['kind']} {case['command']} | {exc} | {where}"


@dataclass
class Outcome:
    """One classified case."""
    case: dict
    cls: str
    res: dict


@dataclass
class Pool:
    """A pool of ``jobs`` workers under ``root``; ``run`` yields an Outcome per case."""
    root: Path
    jobs: int = 2
    timeout: float = 10.0
    mem_gb: float = 2.0
    workers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workers = [Worker(self.root / f"w{i}", self.mem_gb) for i in range(self.jobs)]

    def run(self, cases: Iterable[dict]) -> Iterator[Outcome]:
        it = iter(cases)
        busy: list[Worker] = []
        for w in self.workers:
            case = next(it, None)
            if case is None:
                break
            w.submit(case, self.timeout)
            busy.append(w)
        while busy:
            w, res = self._wait(busy)
            if res.get("hang") and not w.case.get("retried"):
                # a time-out on a busy machine is not yet a hang: once more, with RETRY_FACTOR x the time
                w.submit({**w.case, "retried": True}, self.timeout * RETRY_FACTOR)
                continue
            yield Outcome(w.case, classify(w.case, res), res)
            w.peak_rss_kb = max(w.peak_rss_kb, res.get("rss_kb", 0))
            case = next(it, None)
            if case is None:
                busy.remove(w)
            else:
                w.submit(case, self.timeout)

    def _wait(self, busy: list[Worker]) -> tuple[Worker, dict]:
        sel = selectors.DefaultSelector()
        for w in busy:
            if b"\n" in w.buf:
                return w, w._read_line(0)
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        try:
            while True:
                first = min(busy, key=lambda x: x.deadline)
                ready = sel.select(max(0.0, first.deadline - time.monotonic()))
                for key, _ in ready:
                    w = key.data
                    res = w._read_line(w.deadline)
                    if res is None:
                        continue
                    if "dead" in res:
                        w.proc = None
                    return w, res
                if time.monotonic() >= first.deadline:
                    first.kill()
                    return first, {"hang": True, "rc": None, "out": "", "err": "", "secs": self.timeout}
        finally:
            sel.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()


def untracked_files() -> set[str]:
    """Untracked (not ignored) files of the repository, for the before/after write check."""
    out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
                         capture_output=True, text=True, check=False).stdout
    return {line[3:] for line in out.splitlines() if line.startswith("??")}


def suspicious_writes(before: set[str], after: set[str]) -> list[str]:
    """New untracked repository files a campaign could have written (case file names, fifo, cache)."""
    names = {"s.yaml", "s.json", "fifo", "plan.html", "cache"}
    return sorted(p for p in after - before if Path(p).name in names or p.startswith(("rules/", "examples/"))
                  or "case" in Path(p).parts[0])


@dataclass
class Report:
    """Counts per class and per command, failures grouped by signature, throughput and peak RSS."""
    counts: dict = field(default_factory=dict)
    per_command: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    n: int = 0
    secs: float = 0.0
    peak_rss_kb: int = 0

    def add(self, o: Outcome) -> None:
        self.n += 1
        self.counts[o.cls] = self.counts.get(o.cls, 0) + 1
        key = f"{o.case['kind']} {o.case['command']}"
        row = self.per_command.setdefault(key, {})
        row[o.cls] = row.get(o.cls, 0) + 1
        if o.cls in FAILURES:
            self.groups.setdefault(signature(o.case, o.cls, o.res), []).append(o)

    def failures(self, per_class: int = 5) -> str:
        """The first few failing inputs of every group, readable."""
        lines = []
        for sig, outs in sorted(self.groups.items()):
            lines.append(f"{sig}  ({len(outs)} inputs)")
            for o in outs[:per_class]:
                err = (o.res.get("err") or "").strip().splitlines()
                lines.append(f"    case {o.case['id']}: {' '.join(o.case['argv'])[:100]}  [{o.case['label'][:160]}]")
                lines.append(f"        -> rc={o.res.get('rc')} {(err[0] if err else '')[:200]}")
        return "\n".join(lines)


def run_campaign(seed: int, n: int, root: Path, jobs: int = 2, timeout: float = 10.0, mem_gb: float = 2.0,
                 on_outcome=None) -> Report:
    """Build cases ``seed:0 .. seed:n-1`` and run them; ``on_outcome`` sees each Outcome."""
    from .mutators import make_case

    report, pool = Report(), Pool(root, jobs, timeout, mem_gb)
    t0 = time.perf_counter()
    try:
        for o in pool.run(make_case(seed, i) for i in range(n)):
            report.add(o)
            if on_outcome:
                on_outcome(o)
    finally:
        report.peak_rss_kb = max(w.peak_rss_kb for w in pool.workers)
        pool.close()
    report.secs = time.perf_counter() - t0
    return report


def main_worker(argv: list[str]) -> None:
    worker_main(argv[0], float(argv[1]))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(REPO.parent)) if str(REPO.parent) not in sys.path else None
        main_worker(sys.argv[2:])
