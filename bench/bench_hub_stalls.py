"""How long the calls that hold gevent's hub take: flock, fsync, a SQLite commit, a blob put.

Run: .venv/bin/python -m pytest bench/bench_hub_stalls.py --benchmark-only

Under the gevent worker (app/gunicorn_conf.py) a call that waits in the kernel stops
every greenlet of its worker for as long as it takes. r13 never waits in the kernel for
a lock another process may hold for long (r13core/locks.flock polls cooperatively when
contended; r13core/storage/sqlite/connection.py begins writes cooperatively), but some
calls still run to completion while the hub waits. These are their costs, uncontended:

- ``flock`` taken and dropped (r13core/locks.flock: one non-blocking attempt);
- a change signal bump (flock + an 8-byte add in a shared map: every key or block change);
- ``fsync`` of a 13-byte pwrite (the record's durable save);
- one SQLite write transaction (WAL, synchronous=FULL: the commit fsyncs the WAL);
- a 16 KiB blob put (temp, fsync, verify, rename, fsync the directory): a publish's file;
- a sampler tick is in bench/bench_metrics.py (``one tick``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core import locks
from r13core.storage.blobs import FileBlobStore
from r13core.storage.signals import FileChangeSignal
from r13core.storage.sqlite import SQLiteStorage


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    descriptor = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    yield descriptor
    os.close(descriptor)


def test_flock_taken_and_dropped(benchmark: Any, fd: int) -> None:
    benchmark.group = "hub stalls: locks"

    def once() -> None:
        locks.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)

    benchmark(once)


def test_change_signal_bump(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "hub stalls: locks"
    signal = FileChangeSignal(tmp_path / "signal")
    signal.bump()  # mapped
    benchmark(signal.bump)


def test_fsync_of_a_13_byte_write(benchmark: Any, fd: int) -> None:
    benchmark.group = "hub stalls: durability"

    def once() -> None:
        os.pwrite(fd, b"\x01" * 13, 0)
        os.fsync(fd)

    benchmark(once)


def test_sqlite_write_transaction(benchmark: Any, tmp_path: Path, rounds: Any) -> None:
    benchmark.group = "hub stalls: durability"
    storage = SQLiteStorage(tmp_path / "registry.sqlite3")
    with storage._transaction() as conn:
        conn.execute("CREATE TABLE bench (n INTEGER)")

    def once() -> None:
        with storage._transaction() as conn:
            conn.execute("INSERT INTO bench VALUES (1)")

    benchmark.pedantic(once, rounds=rounds(200), iterations=1, warmup_rounds=1)


def test_blob_put_16_kib(benchmark: Any, tmp_path: Path, rounds: Any) -> None:
    benchmark.group = "hub stalls: durability"
    blobs = FileBlobStore(tmp_path / "blobs")
    counter = iter(range(10**9))

    def once() -> None:
        data = next(counter).to_bytes(8, "little") * 2048  # a new file each time
        blobs.put(data)

    benchmark.pedantic(once, rounds=rounds(100), iterations=1, warmup_rounds=1)
