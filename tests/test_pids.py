"""r13core/pids.py: the pid without a system call, right in a forked child."""

from __future__ import annotations

import os
from pathlib import Path

from r13core import pids
from r13core.storage.signals import FileChangeSignal


def test_current_is_the_pid_here_and_in_a_forked_child(tmp_path: Path) -> None:
    assert pids.current() == os.getpid()
    signal = FileChangeSignal(tmp_path / "signal")
    signal.bump()
    seen = signal.version()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its own pid, and the signal mapped again in it
        ok = pids.current() == os.getpid() != 0
        try:
            signal.bump()
            ok = ok and signal.version() == seen + 1 and signal._pid == os.getpid()
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(child, 0)
    assert answer == b"1"
    assert pids.current() == os.getpid() != child
    assert signal.version() == seen + 1  # the child's bump, seen through the parent's map
