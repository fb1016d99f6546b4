"""What the registry needs of storage: packages, advisories, identities and the audit log.

The audit log because every write records itself; identities because a package's new
maintainer must be an existing user or key (r13core/registry/metadata.py). The concerns
are defined in r13core/storage/.
"""

from __future__ import annotations

from typing import Protocol

from r13core.storage.advisories import AdvisoryStorage
from r13core.storage.audit import AuditStorage
from r13core.storage.identity import IdentityStorage
from r13core.storage.packages import PackageStorage


class RegistryStorage(PackageStorage, AdvisoryStorage, IdentityStorage, AuditStorage, Protocol):
    """Packages, advisories, keys and users (as maintainers), and the audit log."""
