"""`r13 cache stats | prune [--older-than D] | verify` and `r13 uplink ...` on a data dir.

The uplink cache (docs/uplinks.md): what it holds, forgetting what is old, and
re-hashing every cached tarball. `r13 uplink` shows the uplink's state, closes
its circuit breaker, and manages the names an admin allowed to be published
although the upstream has them. The work is r13core/uplink/maintenance.py's.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.cli import services
from r13core.names import PackageName
from r13core.uplink import maintenance


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cache", help="the uplink cache: stats, prune, verify")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = actions.add_parser("stats", help="what the cache holds")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=stats)
    pr = actions.add_parser("prune", help="forget cached packuments and tarballs")
    pr.add_argument(
        "--older-than",
        metavar="AGE",
        help="only what was fetched at least AGE ago (30d, 12h, 90m, 3600s); default: all",
    )
    pr.set_defaults(handler=prune)
    v = actions.add_parser("verify", help="re-hash every cached tarball; remove bad ones")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(handler=verify)

    u = sub.add_parser("uplink", help="the upstream registry: status, breaker, overrides")
    ua = u.add_subparsers(dest="action", required=True, metavar="ACTION")
    ua.add_parser("status", help="flags, breaker, cache (JSON)").set_defaults(handler=status)
    ua.add_parser("reset", help="close the circuit breaker now").set_defaults(handler=reset)
    al = ua.add_parser("allow", help="let NAME be published here although the upstream has it")
    al.add_argument("name")
    al.set_defaults(handler=allow)
    dis = ua.add_parser("disallow", help="withdraw `allow`")
    dis.add_argument("name")
    dis.set_defaults(handler=disallow)
    ua.add_parser("overrides", help="the names allowed").set_defaults(handler=overrides)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def stats(args: argparse.Namespace) -> int:
    opened = services.of(args)
    data = maintenance.stats(opened.storage)
    data["hit_rate_note"] = "live hit rate: /_api/performance/summary, /metrics"
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"packuments  {data['packuments']:>8}  {_size(data['packument_bytes'])}")
    print(f"tarballs    {data['tarballs']:>8}  {_size(data['tarball_bytes'])}")
    if data["oldest_ms"] is not None:
        age_s = max(0, (opened.uplink.clock() - data["oldest_ms"]) // 1000)
        print(f"oldest      {age_s // 86400}d {age_s % 86400 // 3600}h ago")
    return 0


def prune(args: argparse.Namespace) -> int:
    opened = services.of(args)
    older = maintenance.parse_duration_ms(args.older_than) if args.older_than else None
    report = maintenance.prune(
        opened.storage, opened.blobs, older_than_ms=older, now_ms=opened.uplink.clock()
    )
    print(
        f"pruned {report.packuments} packuments, {report.tarballs} tarballs "
        f"({report.files} files, {_size(report.bytes)})"
    )
    return 0


def verify(args: argparse.Namespace) -> int:
    opened = services.of(args)
    from tqdm import tqdm  # on use: every other `r13` command starts without it

    bar = tqdm(total=0, unit="file", disable=args.no_progress or None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    try:
        report = maintenance.verify(opened.storage, opened.blobs, progress=progress)
    finally:
        bar.close()
    print(f"checked {report.checked} files")
    for label in report.corrupt:
        print(f"corrupt  {label}: removed (fetched again on next use)")
    for label in report.missing:
        print(f"missing  {label}: forgotten (fetched again on next use)")
    return 1 if report.corrupt or report.missing else 0


def status(args: argparse.Namespace) -> int:
    print(json.dumps(services.of(args).uplink.status(), indent=2))
    return 0


def reset(args: argparse.Namespace) -> int:
    uplink = services.of(args).uplink
    uplink.reset_breaker(actor=services.ACTOR)
    print(f"breaker {uplink.breaker.state().state}")
    return 0


def allow(args: argparse.Namespace) -> int:
    name = PackageName.parse(args.name)
    added = services.of(args).uplink.allow_publish(name, actor=services.ACTOR)
    print(f"{name} may be published here{'' if added else ' (already allowed)'}")
    return 0


def disallow(args: argparse.Namespace) -> int:
    name = PackageName.parse(args.name)
    if not services.of(args).uplink.disallow_publish(name, actor=services.ACTOR):
        print(f"r13: {name} was not allowed", file=sys.stderr)
        return 1
    print(f"{name}: override withdrawn")
    return 0


def overrides(args: argparse.Namespace) -> int:
    for row in services.of(args).uplink.overrides():
        print(f"{row['name']:<40} by {row['by']}")
    return 0
