"""The background sweeper and its one-process-at-a-time lock."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from r13core.sweeper import Sweeper, sweep_once
from tests.npm_builders import files_under, open_registry


def test_sweep_once_removes_orphans(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    reg.blobs.put(b"orphan from a publish that died")
    assert sweep_once(reg, tmp_path / "sweep.lock", min_age=0) == 1
    assert files_under(tmp_path / "blobs") == []


def test_sweep_is_skipped_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    reg.blobs.put(b"orphan")
    lock = tmp_path / "sweep.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # flock locks belong to the open file description: a second open competes.
        assert sweep_once(reg, lock, min_age=0) is None
    finally:
        os.close(fd)
    assert sweep_once(reg, lock, min_age=0) == 1


class CountingRegistry:
    def __init__(self) -> None:
        self.calls = 0
        self.done = threading.Event()

    def sweep(self, *, min_age: float = 3600.0) -> int:
        self.calls += 1
        self.done.set()
        return 2


def test_sweeper_thread_sweeps_periodically_and_stops(tmp_path: Path) -> None:
    fake = CountingRegistry()
    sweeper = Sweeper(fake, tmp_path, interval=0.01, min_age=0)
    sweeper.start()
    assert fake.done.wait(10)
    sweeper.stop()
    assert fake.calls >= 1
    assert sweeper.removed >= 2
    calls = fake.calls
    threading.Event().wait(0.05)
    assert fake.calls == calls


def test_sweeper_refuses_nonsense_intervals(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Sweeper(CountingRegistry(), tmp_path, interval=0)
