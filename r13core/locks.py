"""File locks that coordinate the processes of one data dir (``flock(2)``).

Two jobs, both built on the kernel dropping a lock when its holder dies:

* :class:`Leader` — exactly one process does a periodic job (the monitor's
  sampler, the blob sweeper). Every worker runs a thread that polls for an
  exclusive lock on the job's lock file; the holder leads until it stops or
  dies, and then another worker's thread takes over within a poll period.
  :class:`LeaderJob` is the base of such a job (start, stop, ``leading``)
  and :func:`every` its usual loop. Nothing else in r13 elects a leader.
* :class:`InstanceLock` — who is running on this data dir. Every process of a
  running server holds ``<data>/.r13-instance.lock`` shared; ``r13 serve``
  does its start-up work that is only safe alone (removing every file no
  committed row refers to, whatever its age) only if it gets the lock
  exclusively, i.e. when no other server process of the data dir is alive.

And one helper every other flock of r13 goes through: :func:`flock` waits for a
contended lock without blocking gevent's hub (r13core/cooperative.py says why).

flock locks belong to an open file description, not to a process or a
thread: two opens of the same file compete even inside one process, and a
description shared through ``fork`` or ``exec`` keeps its lock for every
process that has it. Both classes open their own description.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from r13core import cooperative
from r13core.datadir import open_private

log = logging.getLogger("r13.locks")

INSTANCE_LOCK: Final = ".r13-instance.lock"
FIRST_PAUSE: Final = 0.001
"""Seconds between the first two attempts of a contended :func:`flock` under gevent."""
LONGEST_PAUSE: Final = 0.05
"""The pause doubles up to this, so a lock freed after a long hold is noticed within it."""


def flock(fd: int, operation: int) -> None:
    """``fcntl.flock(fd, operation)`` (LOCK_SH or LOCK_EX) without blocking gevent's hub.

    An uncontended lock costs one non-blocking attempt, as a blocking call would.
    A contended one, under gevent, is retried after a cooperative sleep (other
    greenlets run meanwhile, maybe the one holding the lock through another
    descriptor of this process); in plain threads it waits in the kernel.
    """
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if not cooperative.patched():
        fcntl.flock(fd, operation)
        return
    pause = FIRST_PAUSE
    while True:
        time.sleep(pause)  # patched: a turn of the hub
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pause = min(pause * 2, LONGEST_PAUSE)


class Leader:
    """Runs ``lead(stop)`` in a daemon thread while holding an exclusive flock on ``path``.

    ``lead`` must return soon after the ``stop`` event is set (wait on it
    rather than sleeping). The thread polls for the lock every ``poll``
    seconds, so :meth:`stop` works while waiting and a dead leader is replaced
    within ``poll`` seconds. An exception escaping ``lead`` is logged and ends
    the leadership (the lock is released, so another process may take over).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        lead: Callable[[threading.Event], None],
        *,
        name: str,
        poll: float = 0.2,
    ) -> None:
        if poll <= 0:
            raise ValueError("poll must be > 0")
        self.path = Path(path)
        self.name = name
        self._lead = lead
        self._poll = poll
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False

    @property
    def leading(self) -> bool:
        """Whether this process holds the lock and runs the job right now."""
        return self._leading

    def start(self) -> None:
        """Start the election thread (call it in each worker after fork)."""
        if self._thread is None:
            self.stop_event.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end (releasing the lock if held) and wait for it."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_private(self.path)
        try:
            while not self.stop_event.is_set():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self.stop_event.wait(self._poll)
            else:
                return
            self._leading = True
            log.info("%s leads in pid %d", self.name, os.getpid())
            self._lead(self.stop_event)
        except Exception:
            log.exception("%s failed", self.name)
        finally:
            self._leading = False
            os.close(fd)  # drops the lock


class LeaderJob:
    """A job that one process of the data dir runs while it holds ``lock_path``.

    Subclasses implement :meth:`lead`; every process calls :meth:`start`
    (after fork), and only the one that wins the election runs ``lead``.
    """

    def __init__(self, lock_path: str | os.PathLike[str], *, name: str, poll: float = 0.2) -> None:
        self._leader = Leader(lock_path, self.lead, name=name, poll=poll)

    def lead(self, stop: threading.Event) -> None:
        """The job, run while this process leads; return soon after ``stop`` is set."""
        raise NotImplementedError

    @property
    def leading(self) -> bool:
        """Whether this process holds the lock and runs the job."""
        return self._leader.leading

    def start(self) -> None:
        """Start the election thread (call it in each worker after fork)."""
        self._leader.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the job (releasing the lock if held) and wait for its thread."""
        self._leader.stop(timeout)


def every(stop: threading.Event, interval: float, turn: Callable[[], object], *, what: str) -> None:
    """Call ``turn`` every ``interval`` seconds until ``stop`` is set.

    The period is kept from a deadline, so the time a turn takes does not
    stretch it; after a turn that overran a whole period the schedule starts
    again from now instead of running the missed turns back to back. An
    exception in a turn is logged (as "``what`` failed") and the loop goes
    on: a periodic job must never kill its worker.
    """
    deadline = time.monotonic() + interval
    while not stop.wait(max(0.0, deadline - time.monotonic())):
        deadline += interval
        if deadline < time.monotonic():
            deadline = time.monotonic() + interval
        try:
            turn()
        except Exception:
            log.exception("%s failed", what)


class InstanceLock:
    """``<data>/.r13-instance.lock``: shared by every running server process of a data dir.

    One object holds at most one lock through one descriptor. Converting a
    held lock (exclusive to shared) is not atomic in flock: for a moment no
    lock is held, which is harmless here (a second ``r13 serve`` that slips
    in can only run its start-up sweep before this server accepts a publish).
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / INSTANCE_LOCK
        self._fd = -1

    @property
    def held(self) -> bool:
        """Whether this object holds a lock (shared or exclusive)."""
        return self._fd >= 0

    def _open(self) -> int:
        if self._fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = open_private(self.path)
        return self._fd

    def open(self) -> None:
        """Open the lock's descriptor without locking: a child forked now locks through the
        same open file, so a lock it takes stays this process's after it exits (flock)."""
        self._open()

    def try_exclusive(self) -> bool:
        """Take the lock exclusively if no other process holds it; never waits."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            return False
        return True

    def shared(self) -> None:
        """Hold the lock shared (waits while another process holds it exclusively).

        ``r13 serve`` holds it exclusively for its start-up sweep: a worker waits on
        gevent's hub then, not in the kernel (r13core/cooperative.py).
        """
        flock(self._open(), fcntl.LOCK_SH)

    def keep_across_exec(self) -> None:
        """Let a program this process execs (gunicorn) inherit the descriptor, and the lock."""
        os.set_inheritable(self._open(), True)

    def release(self) -> None:
        """Drop the lock (closing the descriptor)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
