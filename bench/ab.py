"""A/B runs through real gunicorn: variants of the server, one after the other, in rounds.

Used by bench/security_overhead.py and bench/flags_overhead.py. Each round starts every
variant in turn on the same port and data dir, loads one path with the chosen driver
(bench/drivers.py: wrk, or the Python engine when wrk is absent) for ``--duration`` s
after ``--warmup`` s, and stops it. Alternating rounds spread the machine's noise over
both sides; the figures to read are the medians and their ratio within one run. A run
that sees a non-2xx answer fails: a figure never comes from errors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.drivers import DRIVERS, Driver, choose_driver, load
from bench.load import FULL_ACCEPT, HarnessError, encode_get, parse_target
from bench.servers import REPO, free_port, start_r13

RESULTS = REPO / "bench" / "results"


@dataclass(frozen=True)
class Variant:
    """One side: how to start the server and how to ask it."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] | None = None  # None: `r13 serve`
    token: str | None = None
    cwd: Path = REPO  # the server's working directory (gunicorn imports from it first)


def add_arguments(p: argparse.ArgumentParser, rounds: int, duration: float) -> None:
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--duration", type=float, default=duration, help="measured s per run")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured s before each run")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--clients", type=int, default=2, help="load processes (wrk threads)")
    p.add_argument("--driver", choices=DRIVERS, default="auto")
    p.add_argument("--json", dest="json_out", help="report path (default: bench/results/)")


def alternate(
    data: Path,
    variants: list[Variant],
    path: str,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> tuple[Driver, dict[str, list[dict[str, Any]]]]:
    """Every variant once per round; the driver that ran and each run's result."""
    driver = choose_driver(args.driver)
    log(f"driver: {driver.describe()}")
    port = free_port()
    target = parse_target(f"http://127.0.0.1:{port}")
    results: dict[str, list[dict[str, Any]]] = {v.label: [] for v in variants}
    for n in range(args.rounds):
        for v in variants:
            server = start_r13(data, v.env, argv=v.argv, port=port, cwd=v.cwd)
            try:
                result = load(
                    driver,
                    target,
                    [encode_get(target, path, FULL_ACCEPT, v.token)],
                    duration=args.duration,
                    warmup=args.warmup,
                    concurrency=args.concurrency,
                    clients=args.clients,
                )
            finally:
                server.stop()
            if result["errors"] or not result["requests"]:
                raise HarnessError(f"{v.label}: {result['errors']} errors: {result}")
            results[v.label].append(result)
            log(f"round {n + 1} {v.label:>8}: {result['rps']:9.1f} req/s")
    return driver, results


def alternate_fresh(
    prog: str,
    path: str,
    args: argparse.Namespace,
    variants: Callable[[Path], list[Variant]],
) -> tuple[Driver, dict[str, list[dict[str, Any]]]] | None:
    """:func:`alternate` on a new data dir in a temporary directory, removed afterwards.

    ``variants(data)`` may prepare the data dir first (publish a package). None
    after a HarnessError, which is printed as ``prog: message``.
    """
    root = Path(tempfile.mkdtemp(prefix="r13-ab-"))
    try:
        data = root / "data"
        return alternate(data, variants(data), path, args, log)
    except HarnessError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def medians(results: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    return {k: statistics.median(r["rps"] for r in runs) for k, runs in results.items()}


def write_report(
    name: str,
    args: argparse.Namespace,
    driver: Driver,
    results: dict[str, list[dict[str, Any]]],
    summary: dict[str, Any],
) -> Path:
    out = Path(args.json_out or RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "bench": name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "clients": args.clients,
            **driver.as_dict(),
        },
        "runs": results,
        "summary": summary,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
