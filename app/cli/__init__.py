"""The `r13` command line.

Each area is a module with ``register(subparsers)``; a handler returns the
exit status. Errors the user can fix print one line and exit 2.

``--data DIR`` is accepted before the command (``r13 --data DIR config show``) and
after it (``r13 config show --data DIR``), because people type it both ways; when
both are given, the one after the command wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from app.cli import (
    backup_cmd,
    cache_cmd,
    config_cmd,
    db_cmd,
    hooks_cmd,
    keys_cmd,
    mirror_cmd,
    nginx_cmd,
    security_cmd,
    serve_cmd,
    term_cmd,
    users_cmd,
)
from r13core.datadir import private_umask, secure_data_dir
from r13core.errors import R13Error
from r13core.services import Services
from r13core.settings import Settings

MODULES = [
    config_cmd,
    db_cmd,
    keys_cmd,
    serve_cmd,
    users_cmd,
    security_cmd,
    term_cmd,
    cache_cmd,
    mirror_cmd,
    backup_cmd,
    hooks_cmd,
    nginx_cmd,
]


class UsageError(Exception):
    """A one-line error for the user; exit status 2."""


DATA_HELP = "data dir (default: $R13_DATA or ./var)"
UNSET = None  # --data not given: the settings' data dir (R13_DATA, else ./var)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r13", description="r13, a private npm registry")
    parser.add_argument("--data", default=UNSET, metavar="DIR", help=DATA_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.register(sub)
    for leaf in leaf_parsers(parser):
        # SUPPRESS: when absent after the command, the value parsed before it stays.
        leaf.add_argument("--data", default=argparse.SUPPRESS, metavar="DIR", help=DATA_HELP)
    return parser


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every runnable command (``config show``, ``serve``, ...)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    found: list[argparse.ArgumentParser] = []
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
            found += leaf_parsers(child)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever r13 creates in the data dir is its user's alone (r13core/datadir.py);
    # `r13 serve` execs gunicorn with this umask, so its workers keep it.
    previous = private_umask()
    try:
        return _run(argv)
    finally:
        os.umask(previous)  # for callers that run commands in process (tests)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # The one settings reader (r13core/settings.py); a bad variable stops here, named.
        settings = Settings.from_env()
        if args.data is UNSET:
            args.data = settings.data_dir
        args.data = Path(args.data)
        args.settings = settings.with_data_dir(args.data)
        for change in secure_data_dir(args.data):
            print(f"r13: {change}", file=sys.stderr)
        status = int(args.handler(args))
    except (UsageError, R13Error, OSError) as exc:
        print(f"r13: {exc}", file=sys.stderr)
        return 2
    finally:
        opened: Services | None = getattr(args, "services", None)
        if opened is not None:
            opened.close()
    return status
