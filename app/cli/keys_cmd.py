"""`r13 keys create|list|revoke|rotate` on a data dir (and `r13 keys signing`, signing_cmd.py)."""

from __future__ import annotations

import argparse

from app.cli import services, signing_cmd
from r13core.errors import InvalidValue
from r13core.keys import MAX_BATCH, Permission
from r13core.textforms import add_key_options, describe_key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create, list or revoke API keys")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("create", help="create a key and print its secret (shown once)")
    c.add_argument("--id", required=True, help="a label, unique among keys")
    c.add_argument("--perm", required=True, choices=[p.name.lower() for p in Permission])
    c.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help=f"make N keys alike, <id>-1 .. <id>-N, in one change (1..{MAX_BATCH})",
    )
    add_key_options(c)
    c.set_defaults(handler=create)
    actions.add_parser("list", help="every key (never the secrets)").set_defaults(handler=list_)
    r = actions.add_parser("revoke", help="revoke a key at once")
    r.add_argument("id")
    r.set_defaults(handler=revoke)
    o = actions.add_parser("rotate", help="a new secret for a key (the old one stops at once)")
    o.add_argument("id")
    o.set_defaults(handler=rotate)
    signing_cmd.register(actions)


describe = describe_key


def create(args: argparse.Namespace) -> int:
    if args.count is not None:
        return create_many(args)
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


def create_many(args: argparse.Namespace) -> int:
    """`--count N`: N keys in one commit, each printed like one `keys create` (info, secret)."""
    if not 1 <= args.count <= MAX_BATCH:
        raise InvalidValue(f"--count must be 1..{MAX_BATCH}, not {args.count}")
    made = services.identity(args).create_keys(
        services.ACTOR,
        [f"{args.id}-{n}" for n in range(1, args.count + 1)],
        Permission[args.perm.upper()],
        args.expires,
        owner=args.owner,
        rate_limit=args.rate_limit,
        cidr=args.cidr,
        packages=args.packages,
    )
    for info, secret in made:
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
