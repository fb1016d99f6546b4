"""The whole storage contract: :class:`Storage`, every concern in one object.

Storage is split by concern, each a protocol in its own module with its own
contract suite under tests/storage_contracts/ (docs/storage.md):

* packages (r13core/storage/packages.py): documents and their rev, the write
  transaction, tarball rows, used-version tombstones, summaries, renders;
* identity (r13core/storage/identity.py): keys, users, names, web logins, blocks;
* audit (r13core/storage/audit.py): the append-only, hash-chained log;
* advisories (r13core/storage/advisories.py);
* counters (r13core/storage/counters.py): shared security counters;
* usage (r13core/storage/usage.py): per-package daily counts;
* uplink cache (r13core/storage/uplink_cache.py): what r13 keeps of the upstream;
* hooks (r13core/storage/hooks.py): webhooks, their durable queue and delivery log.

A backend is one object implementing all of them (:class:`Storage`), opened
from a URL (r13core/storage/backends.py); code that needs one concern types
its dependency with that concern alone. Tarball bytes live apart, in a
:class:`~r13core.storage.blobs.BlobStore`.

The records and concerns are importable from here too, so code that needs
the whole contract has one import.
"""

from __future__ import annotations

from typing import Protocol

from r13core.storage.advisories import AdvisoryRecord, AdvisoryStorage
from r13core.storage.audit import AUDIT_GENESIS, AuditLink, AuditRecord, AuditStorage, audit_hash
from r13core.storage.blobs import BlobInfo, BlobStore
from r13core.storage.counters import CountersStorage, CountRow
from r13core.storage.hooks import HookStorage
from r13core.storage.identity import (
    BlockRecord,
    IdentityStorage,
    KeyRecord,
    NameHolder,
    UserRecord,
    WebLoginRecord,
)
from r13core.storage.packages import (
    JSONDict,
    PackageRecord,
    PackageStorage,
    RenderRecord,
    TarballRecord,
    WriteTxn,
)
from r13core.storage.signals import ChangeSignal
from r13core.storage.uplink_cache import (
    CacheCounts,
    CachedPackument,
    CachedTarball,
    DistRecord,
    UplinkCacheStorage,
)
from r13core.storage.usage import UsageStorage


class Storage(
    PackageStorage,
    IdentityStorage,
    AuditStorage,
    AdvisoryStorage,
    CountersStorage,
    UsageStorage,
    UplinkCacheStorage,
    HookStorage,
    Protocol,
):
    """Every storage concern in one object: what a backend implements."""

    def close(self) -> None:
        """Release connections held by this process (optional)."""
        return None

    def schema_version(self) -> tuple[int, int]:
        """(the database's schema version, the version this code knows); ``r13 db status``."""
        return (0, 0)

    def migrate(self) -> list[int]:
        """Apply pending schema migrations now; the versions applied (``r13 db migrate``).

        A schema newer than the code is refused (r13core.errors.SchemaTooNew).
        """
        return []


__all__ = [
    "AUDIT_GENESIS",
    "AdvisoryRecord",
    "AdvisoryStorage",
    "AuditLink",
    "AuditRecord",
    "AuditStorage",
    "BlobInfo",
    "BlobStore",
    "BlockRecord",
    "CacheCounts",
    "CachedPackument",
    "CachedTarball",
    "ChangeSignal",
    "CountRow",
    "CountersStorage",
    "DistRecord",
    "HookStorage",
    "IdentityStorage",
    "JSONDict",
    "KeyRecord",
    "NameHolder",
    "PackageRecord",
    "PackageStorage",
    "RenderRecord",
    "Storage",
    "TarballRecord",
    "UplinkCacheStorage",
    "UsageStorage",
    "UserRecord",
    "WebLoginRecord",
    "WriteTxn",
    "audit_hash",
]
