"""`r13 mirror FILE`: fill the uplink cache from a lockfile or a list, for offline installs.

FILE is a package-lock.json, pnpm-lock.yaml, yarn.lock, or a list of names
(``name`` or ``name@version`` a line). Runs with a progress bar (stderr),
``--concurrency`` requests at once; what is already cached is skipped, so an
interrupted run continues where it stopped when started again. Prints a summary
(``--json`` for a machine); exits 1 if anything failed. The work is
r13core/uplink/mirror.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import services
from r13core.uplink import mirror as mirroring

if TYPE_CHECKING:
    from tqdm import tqdm


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mirror", help="fill the uplink cache from a lockfile or a list of names")
    p.add_argument("file", type=Path, help="package-lock.json, pnpm-lock.yaml, yarn.lock or a list")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="requests at once (8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)


def _advance(bar: tqdm[Any], n: int) -> None:
    bar.update(n)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.concurrency <= 64:
        from app.cli import UsageError

        raise UsageError("--concurrency must be 1..64")
    wanted = mirroring.read_wanted(args.file)
    uplink = services.of(args).uplink
    from tqdm import tqdm  # on use: every other `r13` command starts without it

    bar = tqdm(
        total=mirroring.work_items(wanted),
        unit="pkg",
        disable=args.no_progress or None,
        file=sys.stderr,
        desc="mirror",
    )
    try:
        report = mirroring.mirror(
            uplink, wanted, concurrency=args.concurrency, progress=lambda n: _advance(bar, n)
        )
    finally:
        bar.close()
    summary = report.as_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['fetched']} fetched ({summary['bytes']} bytes), "
            f"{summary['already_cached']} already cached, {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed"
        )
        for line in report.skipped:
            print(f"skipped  {line}")
        for label, why in sorted(report.failed.items()):
            print(f"failed   {label}: {why}")
    return 1 if report.failed else 0
