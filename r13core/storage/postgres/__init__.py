"""The scale-out metadata store: PostgreSQL, split by concern like the contract.

* r13core/storage/postgres/connection.py: :class:`PgDatabase`, a psycopg 3
  connection pool per process (after fork), the write-transaction helper
  :meth:`PgDatabase.transaction` (bumps a change signal after the commit),
  read helpers, advisory-lock classes;
* r13core/storage/postgres/migrations.py: the schema as versioned steps,
  applied under an advisory lock; a newer schema is refused;
* r13core/storage/postgres/signals.py: :class:`NotifyingSignal`, a node-local
  counter file plus ``NOTIFY r13_signal`` (``auth_changes``, ``package_changes``);
* one module per concern: packages.py, identity.py, audit.py, advisories.py,
  counters.py, usage.py, uplink_cache.py, hooks.py;
* r13core/storage/postgres/blobs.py: tarballs in the database, chunked.

:class:`PostgresStorage` composes the concerns into one
:class:`~r13core.storage.Storage`. Open it through
:func:`r13core.storage.open_storage` (``postgresql://user@host/db``, with the
node's data dir for the signal files). Needs the ``postgres`` extra:
``pip install 'r13[postgres]'``.
"""

from __future__ import annotations

from r13core.storage.base import Storage
from r13core.storage.postgres.advisories import PgAdvisories
from r13core.storage.postgres.audit import PgAudit
from r13core.storage.postgres.connection import PgDatabase, PgTxn
from r13core.storage.postgres.counters import PgCounters
from r13core.storage.postgres.hooks import PgHooks
from r13core.storage.postgres.identity import PgIdentity
from r13core.storage.postgres.packages import PgPackages
from r13core.storage.postgres.signals import NotifyingSignal
from r13core.storage.postgres.uplink_cache import PgUplinkCache
from r13core.storage.postgres.usage import PgUsage


class PostgresStorage(
    PgPackages,
    PgIdentity,
    PgAudit,
    PgAdvisories,
    PgCounters,
    PgUsage,
    PgUplinkCache,
    PgHooks,
    Storage,
):
    """Metadata in the PostgreSQL database at ``url`` (migrated on first use in each process)."""


__all__ = [
    "NotifyingSignal",
    "PgAdvisories",
    "PgAudit",
    "PgCounters",
    "PgDatabase",
    "PgHooks",
    "PgIdentity",
    "PgPackages",
    "PgTxn",
    "PgUplinkCache",
    "PgUsage",
    "PostgresStorage",
]
