"""`r13 db status | migrate`: the metadata database's schema version, and applying migrations.

Both backends number their migrations (r13core/storage/sqlite/migrations.py,
r13core/storage/postgres/migrations.py). ``status`` says where the database
is and what this r13 knows (exit 0 when up to date, 1 when a migration is
pending); ``migrate`` applies the pending ones (PostgreSQL: under an advisory
lock, so several nodes never migrate twice). A database newer than this r13 is
refused with both versions named (exit 2). ``r13 serve`` migrates at start
unless R13_AUTO_MIGRATE=0 (docs/storage.md).
"""

from __future__ import annotations

import argparse
import json

from app.cli import services
from r13core.services import migrate_database, schema_status


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="the metadata database: schema status, migrate")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    st = actions.add_parser("status", help="the schema version and what is pending")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(handler=status)
    actions.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        handler=migrate
    )


def status(args: argparse.Namespace) -> int:
    current, latest = schema_status(services.settings(args))
    pending = max(0, latest - current)
    if args.json:
        print(json.dumps({"version": current, "latest": latest, "pending": pending}))
    elif current > latest:
        print(f"schema version {current}: NEWER than this r13 knows ({latest}); upgrade r13")
    elif pending:
        print(f"schema version {current} of {latest}: {pending} migration(s) pending "
              "(run `r13 db migrate`)")  # fmt: skip
    else:
        print(f"schema version {current}: up to date")
    if current > latest:
        return 2
    return 1 if pending else 0


def migrate(args: argparse.Namespace) -> int:
    applied, current = migrate_database(services.settings(args))
    if applied:
        print(f"applied migration(s) {', '.join(map(str, applied))}; schema version {current}")
    else:
        print(f"nothing to migrate; schema version {current}")
    return 0
