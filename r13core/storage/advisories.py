"""The advisories concern of storage: security advisories as an admin entered them.

r13core/registry/advisories.py validates them and answers npm's audit requests from
them. tests/storage_contracts/advisories.py is the contract.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol

from r13core.storage.packages import JSONDict


@dataclass(frozen=True)
class AdvisoryRecord:
    """A security advisory as an admin entered it (``data`` holds its fields)."""

    id: int
    package: str
    data: JSONDict


class AdvisoryStorage(Protocol):
    """Advisories by id and by package. Safe across threads and (after fork) processes."""

    @abc.abstractmethod
    def add_advisory(self, package: str, data: JSONDict) -> int:
        """Store an advisory; returns its new id (ids only grow)."""

    @abc.abstractmethod
    def advisories(self, packages: list[str] | None = None) -> list[AdvisoryRecord]:
        """Advisories for ``packages`` (all when None), by id."""

    @abc.abstractmethod
    def remove_advisory(self, advisory_id: int) -> bool:
        """Delete an advisory; False if there was none with that id."""
