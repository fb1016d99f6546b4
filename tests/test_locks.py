"""The data dir's locks (r13core/locks.py), with real processes where processes matter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from r13core.locks import InstanceLock, Leader, LeaderJob, every


def wait_for(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_leader_that_fails_lets_another_take_over(tmp_path: Path) -> None:
    ran: list[str] = []

    def failing(stop: threading.Event) -> None:
        ran.append("failing")
        raise RuntimeError("the job broke")

    def steady(stop: threading.Event) -> None:
        ran.append("steady")
        stop.wait()

    a = Leader(tmp_path / "job.lock", failing, name="a", poll=0.01)
    a.start()
    wait_for(lambda: ran == ["failing"] and not a.leading)
    b = Leader(tmp_path / "job.lock", steady, name="b", poll=0.01)
    b.start()
    wait_for(lambda: b.leading)  # the failed leader released the lock
    c = Leader(tmp_path / "job.lock", steady, name="c", poll=0.01)
    c.start()
    wait_for(lambda: c._thread is not None and c._thread.is_alive())
    assert not c.leading
    b.stop()
    wait_for(lambda: c.leading)
    c.stop()
    a.stop()
    assert ran == ["failing", "steady", "steady"]


def test_a_leader_refuses_a_nonsense_poll(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Leader(tmp_path / "x.lock", lambda stop: None, name="x", poll=0)


class Counting(LeaderJob):
    """A job that counts its turns while it leads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, name="counting", poll=0.01)
        self.turns = 0

    def lead(self, stop: threading.Event) -> None:
        every(stop, 0.01, self.turn, what="counting")

    def turn(self) -> None:
        self.turns += 1


def test_a_leader_job_runs_in_one_process_of_the_data_dir_at_a_time(tmp_path: Path) -> None:
    a, b = Counting(tmp_path / "job.lock"), Counting(tmp_path / "job.lock")
    a.start()
    wait_for(lambda: a.leading and a.turns >= 3)
    b.start()
    seen = a.turns
    wait_for(lambda: a.turns >= seen + 3)  # b had every chance to take the lock meanwhile
    assert not b.leading and b.turns == 0
    a.stop()
    assert not a.leading
    wait_for(lambda: b.leading and b.turns >= 3)
    b.stop()


def test_every_survives_a_failing_turn_and_stops_when_asked(tmp_path: Path) -> None:
    stop = threading.Event()
    turns: list[int] = []

    def turn() -> None:
        turns.append(len(turns))
        if len(turns) == 2:
            raise RuntimeError("one bad turn")
        if len(turns) == 4:
            stop.set()

    loop = threading.Thread(target=every, args=(stop, 0.001, turn), kwargs={"what": "t"})
    loop.start()
    loop.join(60)
    assert not loop.is_alive() and turns == [0, 1, 2, 3]


def test_exclusive_only_while_no_one_holds_it_shared(tmp_path: Path) -> None:
    server = InstanceLock(tmp_path)
    server.shared()
    with InstanceLock(tmp_path) as starting:
        assert not starting.try_exclusive()
        assert not starting.held
    server.release()
    with InstanceLock(tmp_path) as starting:
        assert starting.try_exclusive()
        assert not InstanceLock(tmp_path).try_exclusive()


def test_the_lock_survives_an_exec_when_kept(tmp_path: Path) -> None:
    """What `r13 serve` relies on: its lock, taken before exec, is held by gunicorn."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from r13core.locks import InstanceLock
        lock = InstanceLock({str(tmp_path)!r})
        assert lock.try_exclusive()
        lock.shared()
        lock.keep_across_exec()
        # Become another program that knows nothing of the lock; it waits for stdin to close.
        os.execv(sys.executable, [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"])
        """  # noqa: E501
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        assert not InstanceLock(tmp_path).try_exclusive()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(60)
    with InstanceLock(tmp_path) as after:
        assert after.try_exclusive()  # the kernel dropped it with the process


def test_nothing_but_the_locks_module_elects_a_leader() -> None:
    # An election is a non-blocking exclusive flock; everything else asks r13core/locks.py.
    root = Path(__file__).resolve().parents[1]
    electing = sorted(
        path.relative_to(root).as_posix()
        for folder in ("r13core", "app")
        for path in (root / folder).rglob("*.py")
        if "LOCK_NB" in path.read_text()
    )
    assert electing == ["r13core/locks.py"]
