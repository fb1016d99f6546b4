"""`r13 security blocks|unblock IP|block IP` on a data dir.

Works on the data dir directly (no server, no key), so an admin whose own
address got blocked can always get back in.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from app.main import open_storage
from r13core.audit import AuditLog
from r13core.errors import NotFound
from r13core.ratelimit import RateLimiter
from r13core.security import STRIKE_KINDS, Blocklist, normalize_ip
from r13core.storage.base import BlockRecord


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("security", help="IP blocks")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("blocks", help="addresses blocked now").set_defaults(handler=blocks)
    u = actions.add_parser("unblock", help="lift an address's block (and forget its strikes)")
    u.add_argument("ip")
    u.set_defaults(handler=unblock)
    b = actions.add_parser("block", help="block an address")
    b.add_argument("ip")
    b.add_argument("--minutes", type=float, default=None, help="default: until unblocked")
    b.add_argument("--reason", default="blocked by admin")
    b.set_defaults(handler=block)


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(record: BlockRecord) -> str:
    """One line per block."""
    return f"{record.ip:<40} until {_when(record.expires):<22} {record.reason}"


def blocks(args: argparse.Namespace) -> int:
    for record in Blocklist(open_storage(Path(args.data))).active():
        print(describe(record))
    return 0


def unblock(args: argparse.Namespace) -> int:
    storage = open_storage(Path(args.data))
    ip = normalize_ip(args.ip)
    if not Blocklist(storage).unblock(ip):
        raise NotFound(f"{ip} is not blocked")
    # Forget its strikes in the running server's shared table too.
    with RateLimiter(Path(args.data), "security") as limiter:
        for kind in STRIKE_KINDS:
            limiter.reset(f"strike:{kind}:{ip}")
    AuditLog(storage).record("cli", "ip.unblock", ip)
    print(f"unblocked {ip}")
    return 0


def block(args: argparse.Namespace) -> int:
    storage = open_storage(Path(args.data))
    seconds = None if args.minutes is None else args.minutes * 60
    record = Blocklist(storage).block(args.ip, args.reason, seconds)
    AuditLog(storage).record("cli", "ip.block", record.ip, reason=args.reason)
    print(describe(record))
    return 0
