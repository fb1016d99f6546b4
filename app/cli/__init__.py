"""The `r13` command line.

Each area is a module with ``register(subparsers)``; a handler returns the
exit status. Errors the user can fix print one line and exit 2.

``--data DIR`` is accepted before the command (``r13 --data DIR config show``) and
after it (``r13 config show --data DIR``), because people type it both ways; when
both are given, the one after the command wins.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from r13core.datadir import private_umask, secure_data_dir
from r13core.errors import R13Error

if TYPE_CHECKING:
    from r13core.services import Services

# Loaded when the parser is built, not when this package is imported: `r13 serve` first
# decides whether to monkey-patch the process for gevent (app/cli/serve_process.py
# ``patch_early``), which must come before r13's other modules load.
COMMANDS = [
    "config_cmd",
    "db_cmd",
    "keys_cmd",
    "serve_cmd",
    "users_cmd",
    "security_cmd",
    "term_cmd",
    "cache_cmd",
    "mirror_cmd",
    "backup_cmd",
    "hooks_cmd",
    "nginx_cmd",
]


def command_modules(names: Sequence[str] = COMMANDS) -> list[ModuleType]:
    """The commands' modules (each has ``register(subparsers)``)."""
    return [importlib.import_module(f"app.cli.{name}") for name in names]


class UsageError(Exception):
    """A one-line error for the user; exit status 2."""


DATA_HELP = "data dir (default: $R13_DATA or ./var)"
UNSET = None  # --data not given: the settings' data dir (R13_DATA, else ./var)


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of `r13` with ``commands`` (``COMMANDS``: every one)."""
    parser = argparse.ArgumentParser(prog="r13", description="r13, a private npm registry")
    parser.add_argument("--data", default=UNSET, metavar="DIR", help=DATA_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules(commands):
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


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (``serve`` in ``r13 --data DIR serve``), if any."""
    words = iter(argv)
    for word in words:
        if word == "--data":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """`r13` with ``argv`` (default: this process's command line).

    Only as the process's own command line (``argv`` None) does `r13 serve` run
    gunicorn in this process (app/cli/serve_process.py); called with an ``argv`` (tests,
    other programs) it leaves the caller's process as it was and execs gunicorn.
    """
    if argv is None and command_of(sys.argv[1:]) == "serve":
        from app.cli.serve_process import patch_early

        patch_early()
    # Whatever r13 creates in the data dir is its user's alone (r13core/datadir.py);
    # gunicorn's master and workers keep this umask.
    previous = private_umask()
    try:
        return _run(argv)
    finally:
        os.umask(previous)  # for callers that run commands in process (tests)


def _run(argv: Sequence[str] | None) -> int:
    # `r13 serve` loads only its own command: the server's master is this process, and
    # its workers fork from it with whatever it holds (the other commands, terminal
    # handling, getpass... ~1 MB in each worker's RSS).
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(["serve_cmd"] if command_of(words) == "serve" else COMMANDS)
    args = parser.parse_args(argv)
    from r13core.settings import Settings  # loads much of r13core: after patch_early

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
