"""The process walk: CPU and memory of the gunicorn process tree and of the system.

On Linux (a ``/proc``), one tick costs a few ``pread`` calls: each process of the
tree keeps its ``/proc/<pid>/stat`` (CPU time) and ``statm`` (resident pages) open,
the system figures come from open ``/proc/stat`` and ``/proc/meminfo``, and the
tree is walked again only when it may have changed: when a known process is gone,
when the root's list of children differs from the last walk, and at least every
:data:`REWALK_TICKS` ticks (a grandchild appears within that many ticks). Without
``/proc`` it falls back to psutil, imported only then.

Figures are psutil's: a process's CPU percent is its user + system time over the
wall time since the last tick (0 on its first tick), summed over the tree and
divided by the number of CPUs; RSS is resident pages times the page size; the
system CPU percent is the busy share of ``/proc/stat``'s first line (idle and
iowait are idle); the system memory percent is ``(MemTotal - MemAvailable) /
MemTotal``.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Final

REWALK_TICKS: Final = 10
"""A full walk of the tree at least every this many ticks (new grandchildren)."""
MAX_PROCESSES: Final = 4096

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


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


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _read(fd: int, size: int = 4096) -> bytes | None:
    """The file from its start (procfs regenerates it on each read); None once gone."""
    try:
        return os.pread(fd, size, 0)
    except OSError:
        return None


def parse_stat(data: bytes) -> int:
    """User + system CPU ticks from a ``/proc/<pid>/stat`` line."""
    # The command name (field 2) may hold spaces and ")": split after its last ")".
    fields = data[data.rindex(b")") + 2 :].split(None, 13)
    # fields[0] is field 3 (state): utime is field 14, stime 15.
    return int(fields[11]) + int(fields[12])


def parse_statm(data: bytes) -> int:
    """Resident pages from ``/proc/<pid>/statm`` (what psutil's RSS reads; the rss of
    ``stat`` is the kernel's per-CPU approximation)."""
    return int(data.split(None, 2)[1])


def parse_cpu_line(data: bytes) -> tuple[int, int]:
    """(busy, total) jiffies from the first line of ``/proc/stat``."""
    values = [int(v) for v in data[: data.index(b"\n")].split()[1:9]]
    values += [0] * (8 - len(values))
    total = sum(values)  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - values[3] - values[4], total


def parse_meminfo(data: bytes) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes from ``/proc/meminfo``."""
    found: dict[bytes, int] = {}
    for line in data.split(b"\n"):
        name, _, rest = line.partition(b":")
        if name in (b"MemTotal", b"MemAvailable"):
            found[name] = int(rest.split()[0]) * 1024
            if len(found) == 2:
                break
    total = found.get(b"MemTotal", 0)
    return total, found.get(b"MemAvailable", total)


class _Proc:
    """One process of the tree: its open stat and statm files, its CPU ticks at the last tick."""

    __slots__ = ("fd", "statm", "ticks")

    def __init__(self, fd: int, statm: int) -> None:
        self.fd = fd
        self.statm = statm
        self.ticks: int | None = None

    def close(self) -> None:
        for fd in (self.fd, self.statm):
            with contextlib.suppress(OSError):
                os.close(fd)


class ProcessTree:
    """CPU and memory of a process and its descendants, between calls."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self._ncpu = os.cpu_count() or 1
        self._have_proc = os.path.exists(f"/proc/{root_pid}/stat") and os.path.exists(
            f"/proc/{root_pid}/task/{root_pid}/children"
        )
        self._procs: dict[int, _Proc] = {}
        self._psutil_procs: dict[int, Any] = {}
        self._pids: list[int] = []
        self._root_children: bytes | None = None
        self._ticks_since_walk = REWALK_TICKS
        self._last: float | None = None
        self._system_cpu: tuple[int, int] | None = None
        self._stat_fd = _open("/proc/stat") if self._have_proc else None
        self._meminfo_fd = _open("/proc/meminfo") if self._have_proc else None
        self._root_children_fd = (
            _open(f"/proc/{root_pid}/task/{root_pid}/children") if self._have_proc else None
        )
        if self._stat_fd is None or self._meminfo_fd is None or self._root_children_fd is None:
            self._have_proc = False
        if self._have_proc:
            self._system_cpu_percent()  # start the system-wide interval
        else:
            import psutil

            psutil.cpu_percent(None)

    def started(self) -> float:
        """When the root process started (Unix time; now if it cannot be read)."""
        if self._have_proc:
            # As psutil computes it: boot time + the process's start in clock ticks.
            try:
                with open(f"/proc/{self.root_pid}/stat", "rb") as f:
                    stat = f.read()
                with open("/proc/stat", "rb") as f:
                    btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
                start_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])  # field 22
                return btime + start_ticks / _CLK_TCK
            except (OSError, ValueError, IndexError, StopIteration):
                return time.time()
        import psutil

        try:
            return float(psutil.Process(self.root_pid).create_time())
        except psutil.Error:
            return time.time()

    def pids(self) -> list[int]:
        """The root and every descendant alive now (a full walk)."""
        if not self._have_proc:
            import psutil

            try:
                root = psutil.Process(self.root_pid)
                return [self.root_pid, *(p.pid for p in root.children(recursive=True))]
            except psutil.Error:
                return []
        seen = [self.root_pid]
        i = 0
        while i < len(seen) and len(seen) < MAX_PROCESSES:
            seen.extend(_children(seen[i]))
            i += 1
        return seen

    def _tree(self) -> list[int]:
        """The pids to sample this tick: the last walk's, unless the tree may have changed."""
        assert self._root_children_fd is not None
        children = _read(self._root_children_fd)
        self._ticks_since_walk += 1
        if (
            children != self._root_children
            or self._ticks_since_walk >= REWALK_TICKS
            or len(self._procs) != len(self._pids)
        ):
            self._pids = self.pids()
            self._root_children = children
            self._ticks_since_walk = 0
        return self._pids

    def sample(self) -> dict[str, Any]:
        """CPU since the last call (percent of all cores) and resident memory."""
        if not self._have_proc:
            return self._sample_psutil()
        now = time.monotonic()
        elapsed = now - self._last if self._last is not None else 0.0
        self._last = now
        ticks_used = 0
        rss = 0
        procs = self._procs
        alive: dict[int, _Proc] = {}
        for pid in self._tree():
            proc = procs.pop(pid, None)
            if proc is None:
                fd, statm = _open(f"/proc/{pid}/stat"), _open(f"/proc/{pid}/statm")
                if fd is None or statm is None:
                    for opened in (fd, statm):
                        if opened is not None:
                            os.close(opened)
                    continue
                proc = _Proc(fd, statm)
            data, mem = _read(proc.fd), _read(proc.statm, 256)
            if data is None or mem is None:  # gone since the walk: the next tick walks again
                proc.close()
                continue
            ticks, pages = parse_stat(data), parse_statm(mem)
            if proc.ticks is not None:
                ticks_used += max(0, ticks - proc.ticks)
            proc.ticks = ticks
            rss += pages * _PAGE
            alive[pid] = proc
        for gone in procs.values():
            gone.close()
        self._procs = alive
        if len(alive) != len(self._pids):
            self._ticks_since_walk = REWALK_TICKS  # someone left: walk again next tick
        cpu = 100.0 * ticks_used / _CLK_TCK / elapsed if elapsed > 0 else 0.0
        assert self._meminfo_fd is not None
        total, available = parse_meminfo(_read(self._meminfo_fd) or b"")
        return {
            "cpu_percent": round(cpu / self._ncpu, 2),
            "memory_rss_bytes": rss,
            "memory_percent": round(100.0 * rss / total, 3) if total else 0.0,
            "processes": len(alive),
            "system_cpu_percent": round(self._system_cpu_percent(), 2),
            "system_memory_percent": round(100.0 * (total - available) / total, 2)
            if total
            else 0.0,
            "master_pid": self.root_pid,
        }

    def _system_cpu_percent(self) -> float:
        assert self._stat_fd is not None
        data = _read(self._stat_fd)
        if not data:
            return 0.0
        busy, total = parse_cpu_line(data)
        before, self._system_cpu = self._system_cpu, (busy, total)
        if before is None or total <= before[1]:
            return 0.0
        return min(100.0, max(0.0, 100.0 * (busy - before[0]) / (total - before[1])))

    def _sample_psutil(self) -> dict[str, Any]:
        import psutil

        cpu = 0.0
        rss = 0
        alive: dict[int, Any] = {}
        for pid in self.pids():
            proc = self._psutil_procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                alive[pid] = proc
            except psutil.Error:
                continue
        self._psutil_procs = alive
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

    def close(self) -> None:
        """Close the open /proc files (also done when collected)."""
        for proc in getattr(self, "_procs", {}).values():
            proc.close()
        fds = []
        for name in ("_stat_fd", "_meminfo_fd", "_root_children_fd"):
            fds.append(getattr(self, name, None))
        self._procs = {}
        self._stat_fd = self._meminfo_fd = self._root_children_fd = None
        self._have_proc = False
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __del__(self) -> None:
        self.close()
