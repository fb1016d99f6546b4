"""The monitor's process walk (r13core/monitor/processes.py) on a real process tree.

A child Python process is the root; on commands over its stdin it starts or
stops grandchildren (reaping them, as gunicorn's master does) or burns CPU for a
fixed amount of work, and answers each command with a line once it is done.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from r13core.monitor.processes import (
    REWALK_TICKS,
    ProcessTree,
    parse_cpu_line,
    parse_meminfo,
    parse_stat,
    parse_statm,
)

ROOT = r"""
import subprocess, sys
kids = []
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "spawn":
        kids.append(subprocess.Popen(
            [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        kids[-1].stdout.readline()  # started: its memory stands still from here
        print(kids[-1].pid, flush=True)
    elif cmd[0] == "stop":
        kid = kids.pop()
        kid.kill()
        kid.wait()
        print(kid.pid, flush=True)
    elif cmd[0] == "burn":
        n = 0
        for i in range(int(cmd[1])):
            n += i * i
        print(n, flush=True)
for kid in kids:
    kid.kill()
    kid.wait()
"""


class Root:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ROOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, command: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())


@pytest.fixture
def root() -> Iterator[Root]:
    r = Root()
    yield r
    assert r.proc.stdin is not None
    r.proc.stdin.close()
    r.proc.wait(timeout=60)


def _rss(pids: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


def test_the_tree_counts_every_process_and_their_resident_memory(root: Root) -> None:
    kids = [root.ask("spawn"), root.ask("spawn")]
    tree = ProcessTree(root.proc.pid)
    sample = tree.sample()
    assert sample["processes"] == 3
    assert sorted(tree.pids()) == sorted([root.proc.pid, *kids])
    # The same counter psutil reads (statm), for processes that sleep meanwhile.
    assert sample["memory_rss_bytes"] == _rss([root.proc.pid, *kids])
    assert 0 < sample["memory_percent"] < 100
    assert 0 <= sample["system_cpu_percent"] <= 100
    assert 0 < sample["system_memory_percent"] <= 100
    assert sample["master_pid"] == root.proc.pid
    tree.close()


def test_processes_that_come_and_go_are_seen_at_the_next_tick(root: Root) -> None:
    first = root.ask("spawn")
    tree = ProcessTree(root.proc.pid)
    assert tree.sample()["processes"] == 2
    second = root.ask("spawn")  # a new child of the root: its list of children changed
    assert tree.sample()["processes"] == 3
    assert root.ask("stop") == second
    assert tree.sample()["processes"] == 2
    assert tree.sample()["memory_rss_bytes"] == _rss([root.proc.pid, first])
    tree.close()


def test_the_tree_is_walked_again_only_when_it_may_have_changed(
    root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    root.ask("spawn")
    tree = ProcessTree(root.proc.pid)
    walks: list[int] = []
    walk = tree.pids

    def counted() -> list[int]:
        walks.append(1)
        return walk()

    monkeypatch.setattr(tree, "pids", counted)
    for _ in range(REWALK_TICKS * 2):
        assert tree.sample()["processes"] == 2
    assert len(walks) == 2  # the first tick, then once per REWALK_TICKS
    root.ask("spawn")
    assert tree.sample()["processes"] == 3
    assert len(walks) == 3
    tree.close()


def test_cpu_used_between_two_ticks_is_counted(root: Root) -> None:
    tree = ProcessTree(root.proc.pid)
    assert tree.sample()["cpu_percent"] == 0.0  # the first tick only starts the interval
    before = psutil.Process(root.proc.pid).cpu_times()
    root.ask("burn 3000000")
    after = psutil.Process(root.proc.pid).cpu_times()
    assert after.user + after.system > before.user + before.system
    assert tree.sample()["cpu_percent"] > 0
    tree.close()


def test_the_root_start_time_is_psutils(root: Root) -> None:
    tree = ProcessTree(root.proc.pid)
    assert abs(tree.started() - psutil.Process(root.proc.pid).create_time()) < 0.02
    tree.close()


def test_the_psutil_fallback_gives_the_same_tree(root: Root) -> None:
    kids = [root.ask("spawn"), root.ask("spawn")]
    tree = ProcessTree(root.proc.pid)
    proc = tree.sample()
    tree.close()  # without its /proc files it samples through psutil
    fallback = tree.sample()
    assert fallback["processes"] == proc["processes"] == 3
    assert fallback["memory_rss_bytes"] == proc["memory_rss_bytes"] == _rss([root.proc.pid, *kids])


def test_a_root_that_is_gone_gives_an_empty_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    tree = ProcessTree(child.pid)
    sample = tree.sample()
    assert sample["processes"] == 0 and sample["memory_rss_bytes"] == 0


def test_stat_lines_are_parsed_after_the_last_parenthesis() -> None:
    fields = " ".join(str(n) for n in range(3, 53))
    line = f"1234 (a) (b c) {fields}\n".encode()
    assert parse_stat(line) == 14 + 15  # utime is field 14, stime 15 (numbered from 1)
    assert parse_statm(b"765 408 380 5 0 123 0\n") == 408


def test_system_cpu_and_memory_lines_are_parsed() -> None:
    stat = b"cpu  10 1 5 100 4 1 1 2 7 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n"
    assert parse_cpu_line(stat) == (10 + 1 + 5 + 1 + 1 + 2, 124)
    meminfo = b"MemTotal:       2000 kB\nMemFree:  100 kB\nMemAvailable:    500 kB\n"
    assert parse_meminfo(meminfo) == (2000 * 1024, 500 * 1024)
    assert parse_meminfo(b"MemTotal: 10 kB\n") == (10 * 1024, 10 * 1024)
