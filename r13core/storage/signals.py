"""Change signals: a cross-process "something changed" counter that is cheap to read.

Each worker caches keys, users and blocks (r13core/keys.py, r13core/abuse.py)
and compares the identity storage's signal on every request; every committed
change to them bumps it, in whichever process the change is made (a worker, the
CLI), so the next lookup anywhere reloads. A backend supplies its own signal:
SQLite uses :class:`FileChangeSignal`, a counter in a file beside the database
mapped into every process; a backend shared by several machines would count the
notifications its database pushes (PostgreSQL: LISTEN/NOTIFY, docs/storage.md).
tests/storage_contracts/signals.py is the contract.
"""

from __future__ import annotations

import abc
import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path
from typing import Final, Protocol

from r13core import locks, pids
from r13core.datadir import open_private


class ChangeSignal(Protocol):
    """A version every process can read cheaply and any process can move on."""

    @abc.abstractmethod
    def version(self) -> int:
        """A count of bumps; callers only compare it with one they read before.

        A bump made through any handle of the same signal, in any process, moves
        every handle's version on by one (at once, or soon for a networked backend).
        """

    @abc.abstractmethod
    def bump(self) -> None:
        """Announce a change; called after the change is committed, never before."""


_U64: Final = struct.Struct("<Q")


class FileChangeSignal(ChangeSignal):
    """An 8-byte counter in a file, mapped shared into every process that opens it.

    Bumped under ``flock``, so concurrent bumps from several processes are never
    lost; read with one 8-byte load from the mapping, well under a microsecond.
    Readers only compare versions for equality: a torn read can only cause a
    spurious cache flush, never a missed change. The file is private (0600,
    r13core/datadir.py): whoever could write it could hide a revocation from
    every cache.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._pid = -1
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    def _open(self) -> mmap.mmap:
        with self._lock:
            if self._pid != pids.current() or self._map is None:
                # After fork, an inherited descriptor would share its flock with the parent.
                fd = open_private(self.path)
                locks.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_size < _U64.size:
                        os.ftruncate(fd, _U64.size)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                self._map = mmap.mmap(fd, _U64.size, mmap.MAP_SHARED)
                self._fd = fd
                self._pid = pids.current()
            return self._map

    def version(self) -> int:
        """The counter, read from the shared mapping (opened on first use in each process)."""
        mapped = self._map if self._pid == pids.current() else None
        if mapped is None:
            mapped = self._open()
        return int(_U64.unpack_from(mapped)[0])

    def bump(self) -> None:
        """Add one to the counter (wrapping at 2**64) under an exclusive lock."""
        mapped = self._open()
        locks.flock(self._fd, fcntl.LOCK_EX)  # held for one 8-byte add
        try:
            _U64.pack_into(mapped, 0, (_U64.unpack_from(mapped)[0] + 1) & (2**64 - 1))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
