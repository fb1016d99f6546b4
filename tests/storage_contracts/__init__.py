"""Storage contract suites: one mixin per concern that every backend's tests run.

A backend's test module subclasses the mixins and provides their fixtures
(``storage``: a fresh, empty store; ``twin``: a second handle on it;
``blobs``: a fresh blob store; ``open_signal``: opens handles on one fresh
change signal). :class:`StorageContract` is every metadata concern at once, for
a backend that is one object (r13core.storage.Storage).
tests/test_storage_sqlite.py runs them all against SQLite and files.
"""

from tests.storage_contracts.advisories import AdvisoryStorageContract
from tests.storage_contracts.audit import AuditStorageContract
from tests.storage_contracts.blobs import BlobStoreContract, age_file
from tests.storage_contracts.counters import CountersStorageContract
from tests.storage_contracts.identity import IdentityStorageContract
from tests.storage_contracts.packages import PackageStorageContract
from tests.storage_contracts.signals import ChangeSignalContract, wait_until
from tests.storage_contracts.usage import UsageStorageContract


class StorageContract(
    PackageStorageContract,
    IdentityStorageContract,
    AuditStorageContract,
    AdvisoryStorageContract,
    CountersStorageContract,
    UsageStorageContract,
):
    """Every metadata concern's contract, for a backend that is one object."""


CONCERNS: tuple[type, ...] = StorageContract.__bases__
"""The contract of each metadata concern, in the order of r13core.storage.Storage's bases."""


__all__ = [
    "CONCERNS",
    "AdvisoryStorageContract",
    "AuditStorageContract",
    "BlobStoreContract",
    "ChangeSignalContract",
    "CountersStorageContract",
    "IdentityStorageContract",
    "PackageStorageContract",
    "StorageContract",
    "UsageStorageContract",
    "age_file",
    "wait_until",
]
