"""The 13-byte record across nodes: a row in PostgreSQL is the truth, each node's
shared-memory record (r13core/config.py) its live copy.

A change made on any node (:class:`r13core.config_changes.ConfigChanges`: the CLI,
the terminal, the live channel, the dashboard) is applied to the row inside one
transaction (``SELECT … FOR UPDATE``, the edit, ``version + 1``, ``pg_notify``):
the database orders concurrent changes, and each one edits the bytes the last
commit left, so no change overwrites another's bits. After the commit this node
writes the new bytes into its own live record; every other node's listener
(r13core/cluster/listener.py) gets the NOTIFY and does the same — without a
second audit event (the change was audited once, where it was made).

Each node remembers the version its live record holds (``<data>/run/cluster-record.version``,
under an flock): a version is applied only if it is newer, so a NOTIFY that
arrives after this node's own later change cannot undo it. A node starting
loads the row (the first node seeds it with its own record).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from r13core import locks
from r13core.cluster.database import ClusterDB
from r13core.config import RECORD_SIZE, Config13, ConfigStore
from r13core.datadir import make_private_dirs, open_private
from r13core.errors import InvalidValue

log = logging.getLogger("r13.cluster")

CHANNEL: Final = "r13_record"
"""NOTIFY channel of record changes; payload ``<version>:<26 hex digits>``."""
VERSION_FILE: Final = "run/cluster-record.version"


def parse_payload(payload: str) -> tuple[int, bytes]:
    """(version, raw) of a record NOTIFY; InvalidValue if it is not one."""
    version, _, hexed = payload.partition(":")
    try:
        raw = bytes.fromhex(hexed)
        number = int(version)
    except ValueError:
        raise InvalidValue(f"not a record notification: {payload[:64]!r}") from None
    Config13.from_bytes(raw)
    return number, raw


class SharedRecord:
    """The record's row in the cluster's database and this node's copy of it."""

    def __init__(self, db: ClusterDB, store: ConfigStore, data_dir: str | os.PathLike[str]) -> None:
        self.db = db
        self.store = store
        self.version_path = Path(data_dir) / VERSION_FILE

    # -- this node's copy ---------------------------------------------------------------

    def _locked_version(self) -> int:
        make_private_dirs(self.version_path.parent)
        return open_private(self.version_path)

    def applied_version(self) -> int:
        """The version of the row this node's live record holds (0: none yet)."""
        fd = self._locked_version()
        try:
            raw = os.pread(fd, 8, 0)
            return int.from_bytes(raw, "little") if len(raw) == 8 else 0
        finally:
            os.close(fd)

    def apply(self, version: int, raw: bytes, *, force: bool = False) -> bool:
        """Write version ``version`` of the record into the live record if it is newer
        than the one applied (or ``force``); whether it wrote. No audit event: the
        change was audited where it was made."""
        value = Config13.from_bytes(raw)  # InvalidValue: never a bad record in memory
        fd = self._locked_version()
        try:
            locks.flock(fd, fcntl.LOCK_EX)
            current = os.pread(fd, 8, 0)
            have = int.from_bytes(current, "little") if len(current) == 8 else 0
            if version <= have and not force:
                return False
            if self.store.read_bytes() != raw:
                # No fsync here: the database holds the record durably and a node loads
                # it at start; a local change is made durable by ConfigChanges after.
                self.store.replace(value)
            os.pwrite(fd, version.to_bytes(8, "little"), 0)
            return True
        finally:
            os.close(fd)  # drops the flock

    # -- the row --------------------------------------------------------------------------

    def load(self) -> Config13:
        """At start: seed the row from this node's record if there is none (the first
        node), else bring this node's record to the row. The record as it is now."""
        local = self.store.read_bytes()
        with self.db.use() as conn:
            row = conn.execute(
                "INSERT INTO r13_record (id, raw, version) VALUES (1, %s, 1) "
                "ON CONFLICT (id) DO NOTHING RETURNING version",
                (local,),
            ).fetchone()
            if row is not None:
                version, raw = 1, local
            else:
                got = conn.execute("SELECT version, raw FROM r13_record WHERE id = 1").fetchone()
                assert got is not None
                version, raw = int(got[0]), bytes(got[1])
        # A database younger than this data dir (restored, recreated) wins too.
        self.apply(version, raw, force=version < self.applied_version())
        return self.store.read()

    def fetch(self) -> tuple[int, bytes] | None:
        """(version, raw) of the row, or None before a node seeded it."""
        with self.db.use() as conn:
            got = conn.execute("SELECT version, raw FROM r13_record WHERE id = 1").fetchone()
        return None if got is None else (int(got[0]), bytes(got[1]))

    def change(self, edit: Callable[[bytes], bytes]) -> tuple[bytes, bytes]:
        """Apply ``edit`` (old bytes -> new bytes, raising InvalidValue for a bad edit)
        to the row in one transaction, NOTIFY the other nodes at commit, then write the
        result into this node's record. (old, new) as the database ordered them."""
        with self.db.use() as conn, conn.transaction():
            got = conn.execute(
                "SELECT version, raw FROM r13_record WHERE id = 1 FOR UPDATE"
            ).fetchone()
            if got is None:  # no node seeded it (a CLI before the first server): ours
                old, version = self.store.read_bytes(), 0
                conn.execute("INSERT INTO r13_record (id, raw, version) VALUES (1, %s, 0)", (old,))
            else:
                version, old = int(got[0]), bytes(got[1])
            new = edit(old)
            if len(new) != RECORD_SIZE:
                raise InvalidValue(f"a record is {RECORD_SIZE} bytes, not {len(new)}")
            Config13.from_bytes(new)
            if new == old:
                version_now = version
            else:
                version_now = version + 1
                conn.execute(
                    "UPDATE r13_record SET raw = %s, version = %s, updated = now() WHERE id = 1",
                    (new, version_now),
                )
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{version_now}:{new.hex()}"))
        self.apply(version_now, new)
        return old, new
