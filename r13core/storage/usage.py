"""The usage concern of storage: per-package daily counts (downloads, publishes, unpublishes).

Rows are ``(day, package, kind) -> count`` where ``day`` is a UTC date
``YYYY-MM-DD`` and ``kind`` one of :data:`KINDS`. Writers add deltas in
batches (each worker buffers its counts, see :mod:`r13core.usage`); readers
ask for a package's daily series, the totals per day over every package, or
the top packages of a range. Counts outlive the packages they count: an
unpublished package keeps its history.
"""

from __future__ import annotations

import abc
from typing import Final, Protocol

KINDS: Final = ("downloads", "publishes", "unpublishes")

Delta = tuple[str, str, str, int]
"""(day ``YYYY-MM-DD``, package, kind, count to add)."""


class UsageStorage(Protocol):
    """Per-package daily counters (tests/storage_contracts/usage.py is the contract)."""

    @abc.abstractmethod
    def add_usage(self, deltas: list[Delta]) -> None:
        """Add every delta in one transaction (all or none)."""

    @abc.abstractmethod
    def usage_days(
        self, kind: str, first: str, last: str, package: str | None = None
    ) -> list[tuple[str, int]]:
        """``(day, count)`` for days ``first..last`` (inclusive) that have counts, by day.

        For one ``package``, or summed over every package when None.
        """

    @abc.abstractmethod
    def usage_top(self, kind: str, first: str, last: str, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` packages with the highest counts over ``first..last``.

        ``(package, count)``, highest first, ties by name; packages without counts absent.
        """
