"""The embedded metadata store: one SQLite file, split by concern like the contract.

* r13core/storage/sqlite/connection.py: connections (one per process and
  thread, WAL, ``synchronous=FULL``) and the one write-transaction helper;
* r13core/storage/sqlite/migrations.py: the schema, as numbered migrations;
* one module per concern: packages.py, identity.py, audit.py, advisories.py,
  counters.py, usage.py, uplink_cache.py, hooks.py, each a class usable alone over the same file.

:class:`SQLiteStorage` composes them: the whole :class:`~r13core.storage.Storage`
in one object over one file. Open it through :func:`r13core.storage.open_storage`
(``sqlite:///path/registry.sqlite3``).
"""

from __future__ import annotations

from r13core.storage.base import Storage
from r13core.storage.sqlite.advisories import SQLiteAdvisories
from r13core.storage.sqlite.audit import SQLiteAudit
from r13core.storage.sqlite.connection import SQLiteDatabase
from r13core.storage.sqlite.counters import SQLiteCounters
from r13core.storage.sqlite.hooks import SQLiteHooks
from r13core.storage.sqlite.identity import SQLiteIdentity
from r13core.storage.sqlite.packages import SQLitePackages
from r13core.storage.sqlite.uplink_cache import SQLiteUplinkCache
from r13core.storage.sqlite.usage import SQLiteUsage


class SQLiteStorage(
    SQLitePackages,
    SQLiteIdentity,
    SQLiteAudit,
    SQLiteAdvisories,
    SQLiteCounters,
    SQLiteUsage,
    SQLiteUplinkCache,
    SQLiteHooks,
    Storage,
):
    """Metadata in one SQLite file at ``path`` (created and migrated on first use)."""


__all__ = [
    "SQLiteAdvisories",
    "SQLiteAudit",
    "SQLiteCounters",
    "SQLiteDatabase",
    "SQLiteHooks",
    "SQLiteIdentity",
    "SQLitePackages",
    "SQLiteStorage",
    "SQLiteUplinkCache",
    "SQLiteUsage",
]
