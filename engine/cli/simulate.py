"""``almarules simulate CONFIG -o OUT``: the subcommand (wired into `almarules.engine.cli.app`).

    p = sub.add_parser("simulate", help=HELP)
    add_arguments(p)
    COMMANDS["simulate"] = cmd_simulate

User errors (a bad config, an existing output without --force, an unobservable schedule)
raise `almarules.engine.cli.common.UserError` with a one-line message.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "simulate ALMA-like Measurement Sets (and their truth files) from a YAML config"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="simulation config (.yaml); see examples/sim/")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the MS to write (e.g. sim.ms); several execution blocks write OUT-stem_eb1.ms, "
                        "_eb2.ms, ... beside it; truth files <name>.truth.json next to each MS")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default: the config's 'seed')")
    p.add_argument("--no-noise", action="store_true", help="no thermal noise (WEIGHT/SIGMA stay nominal)")
    p.add_argument("--no-corruptions", action="store_true", help="no antenna gains or bandpasses")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")


def _progress(stream):
    state = {"last": 0.0, "shown": False}

    def cb(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["last"] < 0.5:
            return
        state["last"] = now
        state["shown"] = True
        stream.write(f"\rsimulating: {100.0 * done / max(total, 1):5.1f}% ({done}/{total} rows)")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return cb


def cmd_simulate(args) -> int:
    from almarules.engine.cli.common import UserError
    from almarules.engine.simulate import SimConfigError, SimError, load_sim_config, simulate

    if not Path(args.config).exists():
        raise UserError(f"no such config: {args.config}")
    try:
        cfg = load_sim_config(args.config)
    except SimConfigError as exc:
        raise UserError(str(exc)) from None
    updates = {}
    if args.no_noise:
        updates["noise"] = cfg.noise.model_copy(update={"enabled": False})
    if args.no_corruptions:
        updates["corruptions"] = cfg.corruptions.model_copy(update={"enabled": False})
    if updates:
        cfg = cfg.model_copy(update=updates)
    if args.seed is not None and args.seed < 0:
        raise UserError("--seed: must be >= 0")
    progress = None if args.quiet or not sys.stderr.isatty() else _progress(sys.stderr)
    t0 = time.perf_counter()
    try:
        result = simulate(cfg, args.output, seed=args.seed, progress=progress, overwrite=args.force)
    except (SimConfigError, SimError) as exc:
        raise UserError(f"{args.config}: {exc}" if isinstance(exc, SimError) else str(exc)) from None
    elapsed = time.perf_counter() - t0
    if not args.quiet:
        for ms, truth, eb in zip(result["ms"], result["truth_files"], result["execution_blocks"]):
            obs = eb["observation"]
            nvis = sum(obs["rows"] // len(eb["spectral_windows"]) * s["nchan"] * 2 for s in eb["spectral_windows"])
            print(f"wrote {ms}: {obs['rows']} rows, {nvis} visibilities, {len(obs['scans'])} scans, "
                  f"{obs['start_utc']} - {obs['end_utc']} UTC; truth {truth}")
        print(f"done in {elapsed:.1f} s")
    return 0
