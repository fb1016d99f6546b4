"""The process walk: CPU and memory of the gunicorn process tree and of the system (psutil)."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc (much cheaper than psutil's scan)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


class ProcessTree:
    """CPU and memory of a process and its descendants, between calls."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self._procs: dict[int, psutil.Process] = {}
        self._ncpu = psutil.cpu_count() or 1
        self._have_proc_children = os.path.exists(f"/proc/{root_pid}/task/{root_pid}/children")
        psutil.cpu_percent(None)  # start the system-wide interval

    def started(self) -> float:
        """When the root process started (Unix time; now if it cannot be read)."""
        try:
            return float(psutil.Process(self.root_pid).create_time())
        except psutil.Error:
            return time.time()

    def pids(self) -> list[int]:
        """The root and every descendant alive now."""
        if not self._have_proc_children:
            try:
                root = psutil.Process(self.root_pid)
                return [self.root_pid, *(p.pid for p in root.children(recursive=True))]
            except psutil.Error:
                return []
        seen = [self.root_pid]
        i = 0
        while i < len(seen) and len(seen) < 4096:
            seen.extend(_children(seen[i]))
            i += 1
        return seen

    def sample(self) -> dict[str, Any]:
        """CPU since the last call (percent of all cores) and resident memory."""
        cpu = 0.0
        rss = 0
        alive: dict[int, psutil.Process] = {}
        for pid in self.pids():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                alive[pid] = proc
            except psutil.Error:
                continue
        self._procs = alive
        vm = psutil.virtual_memory()
        return {
            "cpu_percent": round(cpu / self._ncpu, 2),
            "memory_rss_bytes": rss,
            "memory_percent": round(100.0 * rss / vm.total, 3) if vm.total else 0.0,
            "processes": len(alive),
            "system_cpu_percent": round(psutil.cpu_percent(None), 2),
            "system_memory_percent": round(vm.percent, 2),
            "master_pid": self.root_pid,
        }
