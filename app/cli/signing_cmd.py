"""`r13 keys signing list|rotate|backfill`: the registry's signing keys (docs/signatures.md).

The signing keys are r13's own, in ``<data>/signing/`` (r13core/signing_keys.py),
not API keys: they sign every version r13 serves, and their public halves are
served at ``/-/npm/v1/keys``. Rotation is an identity operation: audited as
``signing.rotate`` by ``cli``, like every other key change.
"""

from __future__ import annotations

import argparse

from app.cli import services


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``signing`` under ``r13 keys``."""
    p = actions.add_parser("signing", help="the registry's signing keys (npm signatures)")
    sub = p.add_subparsers(dest="signing_action", required=True, metavar="ACTION")
    sub.add_parser("list", help="every signing key, oldest first (the last signs)").set_defaults(
        handler=list_
    )
    sub.add_parser(
        "rotate",
        help="make a new signing key; the old one stays served, expiring soon, so "
        "every signature it made still verifies",
    ).set_defaults(handler=rotate)
    sub.add_parser(
        "backfill", help="sign every stored version that has no signature yet"
    ).set_defaults(handler=backfill)


def list_(args: argparse.Namespace) -> int:
    for entry in services.of(args).signing_keys.ring():
        key = entry.public
        state = "active" if key.expires is None else f"expires {key.expires}"
        print(f"{key.keyid}  {key.keytype}  created {entry.created}  {state}")
    return 0


def rotate(args: argparse.Namespace) -> int:
    new, old = services.of(args).signing_keys.rotate(services.ACTOR)
    print(f"new signing key {new.keyid}")
    print(f"old signing key {old.keyid} expires {old.expires} (still served)")
    return 0


def backfill(args: argparse.Namespace) -> int:
    packages, versions = services.of(args).registry.sign_unsigned(actor=services.ACTOR)
    print(f"signed {versions} version(s) of {packages} package(s)")
    return 0
