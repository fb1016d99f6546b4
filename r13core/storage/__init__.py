"""Storage: metadata by concern (:class:`Storage`) and tarball bytes (:class:`BlobStore`).

Open one with :func:`open_storage` from a URL (``sqlite:///path/registry.sqlite3``;
r13core/storage/backends.py). The contract is split by concern, one protocol
per module (packages, identity, audit, advisories, counters, usage; composed in
r13core/storage/base.py), each with its contract suite under
tests/storage_contracts/. The embedded default is SQLite
(r13core/storage/sqlite/) plus content-addressed files
(r13core/storage/blobs.py). docs/storage.md explains the whole.

Only r13core imports this package; the web app reaches storage through the
domain modules (tests/test_layout.py).
"""

from r13core.storage.backends import open_storage, parse_url, sqlite_url
from r13core.storage.base import (
    AdvisoryStorage,
    AuditStorage,
    BlobInfo,
    BlobStore,
    ChangeSignal,
    CountersStorage,
    IdentityStorage,
    KeyRecord,
    PackageRecord,
    PackageStorage,
    RenderRecord,
    Storage,
    TarballRecord,
    UsageStorage,
    WriteTxn,
)

__all__ = [
    "AdvisoryStorage",
    "AuditStorage",
    "BlobInfo",
    "BlobStore",
    "ChangeSignal",
    "CountersStorage",
    "IdentityStorage",
    "KeyRecord",
    "PackageRecord",
    "PackageStorage",
    "RenderRecord",
    "Storage",
    "TarballRecord",
    "UsageStorage",
    "WriteTxn",
    "open_storage",
    "parse_url",
    "sqlite_url",
]
