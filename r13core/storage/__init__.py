"""Storage backends: metadata (:class:`Storage`) and tarball files (:class:`BlobStore`).

The abstract contract is in :mod:`r13core.storage.base`; the embedded default
is SQLite (:mod:`r13core.storage.sqlite`) plus content-addressed files
(:mod:`r13core.storage.blobs`). Every backend passes tests/storage_contract.py.
"""

from r13core.storage.base import (
    BlobInfo,
    BlobStore,
    KeyRecord,
    PackageRecord,
    RenderRecord,
    Storage,
    TarballRecord,
    WriteTxn,
)

__all__ = [
    "BlobInfo",
    "BlobStore",
    "KeyRecord",
    "PackageRecord",
    "RenderRecord",
    "Storage",
    "TarballRecord",
    "WriteTxn",
]
