"""`r13 keys create|list|revoke` on a data dir."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.main import open_storage
from r13core.keys import KeyInfo, KeyStore, Permission


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create, list or revoke API keys")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("create", help="create a key and print its secret (shown once)")
    c.add_argument("--id", required=True, help="a label, unique among keys")
    c.add_argument("--perm", required=True, choices=[p.name.lower() for p in Permission])
    c.add_argument("--expires", type=float, default=None, metavar="DAYS", help="default: never")
    c.set_defaults(handler=create)
    actions.add_parser("list", help="every key (never the secrets)").set_defaults(handler=list_)
    r = actions.add_parser("revoke", help="revoke a key at once")
    r.add_argument("id")
    r.set_defaults(handler=revoke)


def open_keys(args: argparse.Namespace) -> KeyStore:
    """The key store of ``--data`` (created if absent)."""
    return KeyStore(open_storage(Path(args.data)))


def describe(info: KeyInfo) -> str:
    """One line per key, as `r13 keys list` prints it."""
    d = info.as_dict()
    state = "revoked" if info.revoked else "active"
    expires = d["expires"] or "never"
    return (
        f"{d['id']:<24} {d['permission']:<6} {state:<8} created {d['created']}  expires {expires}"
    )


def create(args: argparse.Namespace) -> int:
    keys = open_keys(args)
    info, secret = keys.create(args.id, Permission[args.perm.upper()], args.expires)
    print(describe(info))
    print(secret)
    return 0


def list_(args: argparse.Namespace) -> int:
    for info in open_keys(args).list():
        print(describe(info))
    return 0


def revoke(args: argparse.Namespace) -> int:
    open_keys(args).revoke(args.id)
    print(f"revoked {args.id}")
    return 0
