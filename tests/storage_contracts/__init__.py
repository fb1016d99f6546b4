"""Storage contract suites: one mixin per concern that every backend's tests run.

A backend's test module subclasses the mixins and provides their fixtures
(``storage``: a fresh, empty store; ``twin``: a second handle on it;
``blobs``: a fresh blob store; ``open_signal``: opens handles on one fresh
change signal). :class:`StorageContract` is every metadata concern at once, for
a backend that is one object (r13core.storage.Storage).
tests/test_storage_sqlite.py runs them all against SQLite and files.
"""

from typing import Any

from r13core.storage.uplink_cache import CachedTarball
from tests.storage_contracts.advisories import AdvisoryStorageContract
from tests.storage_contracts.audit import AuditStorageContract
from tests.storage_contracts.blobs import BlobStoreContract, age_file
from tests.storage_contracts.counters import CountersStorageContract
from tests.storage_contracts.hooks import HookStorageContract
from tests.storage_contracts.identity import IdentityStorageContract
from tests.storage_contracts.packages import PackageStorageContract
from tests.storage_contracts.signals import ChangeSignalContract, wait_until
from tests.storage_contracts.uplink_cache import UplinkCacheStorageContract
from tests.storage_contracts.usage import UsageStorageContract


class StorageContract(
    PackageStorageContract,
    IdentityStorageContract,
    AuditStorageContract,
    AdvisoryStorageContract,
    CountersStorageContract,
    UsageStorageContract,
    UplinkCacheStorageContract,
    HookStorageContract,
):
    """Every metadata concern's contract, for a backend that is one object."""

    def test_cached_upstream_tarballs_count_as_blob_references(self, storage: Any) -> None:
        # The sweep and the deletion at unpublish must never take a cached tarball's file.
        sha = "e" * 128
        storage.save_tarball(CachedTarball("up", "1.0.0", sha, 3, 1))
        assert sha in storage.blob_refs()
        assert storage.blobs_in_use([sha, "f" * 128]) == {sha}


CONCERNS: tuple[type, ...] = StorageContract.__bases__
"""The contract of each metadata concern, in the order of r13core.storage.Storage's bases."""


__all__ = [
    "CONCERNS",
    "AdvisoryStorageContract",
    "AuditStorageContract",
    "BlobStoreContract",
    "ChangeSignalContract",
    "CountersStorageContract",
    "HookStorageContract",
    "IdentityStorageContract",
    "PackageStorageContract",
    "StorageContract",
    "UplinkCacheStorageContract",
    "UsageStorageContract",
    "age_file",
    "wait_until",
]
