"""`r13 security blocks|unblock IP|block IP|audit` on a data dir.

Works on the data dir directly (no server, no key), so an admin whose own
address got blocked can always get back in. ``audit --verify`` checks the
audit log's hash chain (r13core/audit.py).
"""

from __future__ import annotations

import argparse
import sys

from app.cli import services
from r13core.abuse import AbuseControl
from r13core.textforms import describe_block


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("security", help="IP blocks, the audit log")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("blocks", help="clients blocked now").set_defaults(handler=blocks)
    u = actions.add_parser(
        "unblock",
        help="lift a block (an address, or an IPv6 prefix like 2001:db8::/64) and forget "
        "its strikes",
    )
    u.add_argument("ip")
    u.set_defaults(handler=unblock)
    b = actions.add_parser(
        "block",
        help="block an address (an IPv6 address blocks its prefix) or an IPv6 prefix; "
        "refuses everything, requests with a key too",
    )
    b.add_argument("ip")
    b.add_argument("--minutes", type=float, default=None, help="default: until unblocked")
    b.add_argument("--reason", default="blocked by admin")
    b.set_defaults(handler=block)
    a = actions.add_parser("audit", help="the latest audit events, or --verify the hash chain")
    a.add_argument("--verify", action="store_true", help="check every event's hash link")
    a.add_argument(
        "--head",
        default=None,
        metavar="ID:HASH",
        help="with --verify: a head printed by an earlier --verify, which must still be there",
    )
    a.add_argument("--limit", type=int, default=20, help="events to show (default 20)")
    a.set_defaults(handler=audit)


describe = describe_block


def blocks(args: argparse.Namespace) -> int:
    for record in services.blocklist(args).active():
        print(describe(record))
    return 0


def unblock(args: argparse.Namespace) -> int:
    # Its strikes are forgotten in the running server's shared table too.
    key = services.of(args).abuse.unblock(services.ACTOR, args.ip)
    print(f"unblocked {key}")
    return 0


def block(args: argparse.Namespace) -> int:
    seconds = None if args.minutes is None else args.minutes * 60
    abuse = AbuseControl(services.blocklist(args), services.audit(args))
    print(describe(abuse.block(services.ACTOR, args.ip, args.reason, seconds)))
    return 0


def _head(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    number, colon, digest = text.partition(":")
    if not colon or not number.isdigit() or len(digest) != 64:
        from app.cli import UsageError

        raise UsageError(f"--head {text!r}: expected ID:HASH as --verify prints it")
    return int(number), digest


def audit(args: argparse.Namespace) -> int:
    log = services.audit(args)
    if not args.verify:
        for event in reversed(log.page(limit=max(1, min(args.limit, 1000)))["events"]):
            print(f"{event['id']:>8} {event['time']} {event['actor']:<20} {event['action']:<18} "
                  f"{event['target']} {event['ip']}")  # fmt: skip
        return 0
    report = log.verify(head=_head(args.head))
    head = f"{report.head[0]}:{report.head[1]}" if report.head else "none (empty log)"
    if report.ok:
        print(f"audit chain holds: {report.checked} events; head {head}")
        return 0
    print(
        f"audit chain BROKEN at event {report.broken_at}: {report.reason}\n"
        f"last event that links: {head}",
        file=sys.stderr,
    )
    return 1
