"""The change-signal contract: a cheap version every process reads and any process bumps.

A backend's test class mixes in :class:`ChangeSignalContract` and provides an
``open_signal`` fixture: a function that opens a new handle on one fresh
signal each time it is called (as another thread or process would). A
networked backend may deliver bumps a little later, so readers wait for them
(:func:`wait_until`) instead of expecting them at once.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable

import pytest

from r13core.storage.signals import ChangeSignal

OpenSignal = Callable[[], ChangeSignal]
_WRAP = 2**64


def wait_until(condition: Callable[[], bool], *, timeout: float = 120.0) -> None:
    """Return once ``condition()`` holds; fail after a generous ``timeout`` (seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {condition}")
        time.sleep(0.005)


def _moved(signal: ChangeSignal, start: int, by: int) -> Callable[[], bool]:
    return lambda: signal.version() == (start + by) % _WRAP


def _bump_in_child(open_signal: OpenSignal, inherited: ChangeSignal) -> None:
    inherited.bump()  # a handle opened before the fork, as a preloaded app holds one
    fresh = open_signal()
    fresh.bump()
    fresh.bump()
    os._exit(0)


class ChangeSignalContract:
    """Behaviour of :class:`r13core.storage.signals.ChangeSignal`."""

    @pytest.fixture
    def open_signal(self) -> OpenSignal:
        raise NotImplementedError("a backend's test class provides this fixture")

    def test_the_version_stays_put_until_a_bump(self, open_signal: OpenSignal) -> None:
        signal = open_signal()
        start = signal.version()
        assert [signal.version() for _ in range(100)] == [start] * 100
        assert open_signal().version() == start

    def test_a_bump_moves_every_handle_on_by_one(self, open_signal: OpenSignal) -> None:
        one, two = open_signal(), open_signal()
        start = one.version()
        wait_until(lambda: two.version() == start)
        one.bump()
        assert one.version() == (start + 1) % _WRAP
        wait_until(_moved(two, start, 1))
        two.bump()
        wait_until(_moved(one, start, 2))

    def test_concurrent_bumps_from_many_handles_are_all_counted(
        self, open_signal: OpenSignal
    ) -> None:
        reader = open_signal()
        start = reader.version()

        def bump() -> None:
            mine = open_signal()
            for _ in range(50):
                mine.bump()

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(_moved(reader, start, 200))

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_bumps_made_in_another_process_are_seen(self, open_signal: OpenSignal) -> None:
        signal = open_signal()
        start = signal.version()
        child = multiprocessing.get_context("fork").Process(
            target=_bump_in_child, args=(open_signal, signal)
        )
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        wait_until(_moved(signal, start, 3))
