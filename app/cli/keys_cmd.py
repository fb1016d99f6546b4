"""`r13 keys create|list|revoke|rotate` on a data dir (and `r13 keys signing`, signing_cmd.py)."""

from __future__ import annotations

import argparse

from app.cli import services, signing_cmd
from r13core.keys import KeyInfo, Permission


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create, list or revoke API keys")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("create", help="create a key and print its secret (shown once)")
    c.add_argument("--id", required=True, help="a label, unique among keys")
    c.add_argument("--perm", required=True, choices=[p.name.lower() for p in Permission])
    c.add_argument("--expires", type=float, default=None, metavar="DAYS", help="default: never")
    c.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="its own requests per SECURITY_RATE_LIMIT_WINDOW (default: the global)",
    )
    c.add_argument(
        "--cidr",
        action="append",
        default=[],
        metavar="BLOCK",
        help="allowed client addresses, e.g. 10.0.0.0/8 (repeatable)",
    )
    c.add_argument(
        "--packages",
        action="append",
        default=[],
        metavar="PATTERN",
        help="packages it may touch, e.g. '@mycompany/*' (repeatable)",
    )
    c.add_argument("--owner", default=None, help="make it a token of this user")
    c.set_defaults(handler=create)
    actions.add_parser("list", help="every key (never the secrets)").set_defaults(handler=list_)
    r = actions.add_parser("revoke", help="revoke a key at once")
    r.add_argument("id")
    r.set_defaults(handler=revoke)
    o = actions.add_parser("rotate", help="a new secret for a key (the old one stops at once)")
    o.add_argument("id")
    o.set_defaults(handler=rotate)
    signing_cmd.register(actions)


def describe(info: KeyInfo) -> str:
    """One line per key, as `r13 keys list` prints it."""
    d = info.as_dict()
    state = "revoked" if info.revoked else "active"
    expires = d["expires"] or "never"
    line = (
        f"{d['id']:<24} {d['permission']:<6} {state:<8} created {d['created']}  expires {expires}"
    )
    extras = [f"owner {info.owner}"] if info.owner else []
    if info.rate_limit:
        extras.append(f"limit {info.rate_limit}")
    if info.cidr:
        extras.append("cidr " + ",".join(str(n) for n in info.cidr))
    if info.packages:
        extras.append("packages " + ",".join(info.packages))
    return "  ".join([line, *extras])


def create(args: argparse.Namespace) -> int:
    info, secret = services.identity(args).create_key(
        services.ACTOR,
        args.id,
        Permission[args.perm.upper()],
        args.expires,
        owner=args.owner,
        rate_limit=args.rate_limit,
        cidr=args.cidr,
        packages=args.packages,
    )
    print(describe(info))
    print(secret)
    return 0


def list_(args: argparse.Namespace) -> int:
    for info in services.identity(args).keys.list():
        print(describe(info))
    return 0


def revoke(args: argparse.Namespace) -> int:
    services.identity(args).revoke_key(services.ACTOR, args.id)
    print(f"revoked {args.id}")
    return 0


def rotate(args: argparse.Namespace) -> int:
    info, secret = services.identity(args).rotate_key(services.ACTOR, args.id)
    print(describe(info))
    print(secret)
    return 0
