"""The counters concern of storage: named counts shared by every process (security metrics).

Workers add deltas in batches (r13core/abuse.py ``SecurityCounters``); any
process reads the totals. tests/storage_contracts/counters.py is the contract.
"""

from __future__ import annotations

import abc
from typing import Protocol

CountRow = tuple[str, str, int]
"""(kind, label, count): e.g. ``("auth_failure", "192.0.2.1", 3)``."""


class CountersStorage(Protocol):
    """Shared counters keyed by (kind, label). Safe across threads and processes."""

    @abc.abstractmethod
    def add_counters(self, deltas: list[CountRow]) -> None:
        """Add every (kind, label, delta) in one transaction (all or none)."""

    @abc.abstractmethod
    def counters(self) -> list[CountRow]:
        """Every (kind, label, count), by kind then label."""
