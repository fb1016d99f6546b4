"""The HTTP harness's own load engine, its target and its statistics.

:func:`run_parallel` drives a closed loop of keep-alive connections over raw sockets
(one ``selectors`` event loop per process, requests encoded once up front), so the
harness itself costs little per request; it stops at a deadline or after a number of
responses. bench/drivers.py chooses between this engine and wrk.
"""

from __future__ import annotations

import ipaddress
import math
import multiprocessing
import selectors
import socket
import time
import urllib.parse
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FULL_ACCEPT = "application/json"
USER_AGENT = "r13-bench/1 (python)"


class HarnessError(Exception):
    """The harness cannot go on (bad URL, seeding failed, ...)."""


# --------------------------------------------------------------------------- target


@dataclass(frozen=True)
class Target:
    """Where the registry is: loopback http only unless allowed."""

    url: str  # normalised, no trailing slash
    host: str
    port: int
    base_path: str  # "" or "/prefix" when the registry lives under a path

    @property
    def hostport(self) -> str:
        default = self.port == 80
        return self.host if default else f"{self.host}:{self.port}"

    def path(self, p: str) -> str:
        return self.base_path + p


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_target(url: str, allow_remote: bool = False) -> Target:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise HarnessError(f"only http:// URLs are supported, got {url!r}")
    host = parts.hostname or ""
    if not host:
        raise HarnessError(f"no host in {url!r}")
    if not allow_remote and not is_loopback(host):
        raise HarnessError(f"{host} is not a loopback address; pass --allow-remote to load it")
    port = parts.port or 80
    base = parts.path.rstrip("/")
    norm = f"http://{parts.netloc}{base}"
    return Target(url=norm, host=host, port=port, base_path=base)


# --------------------------------------------------------------------------- load engine

NPM_ENCODING = "gzip,deflate"
"""The Accept-Encoding npm 11 sends with every packument request (seen on the wire)."""


def encode_get(
    target: Target, path: str, accept: str, token: str | None, encoding: str = "identity"
) -> bytes:
    """A GET as the harness sends it; ``encoding`` is its Accept-Encoding (``identity``:
    every server sends the same bytes; :data:`NPM_ENCODING`: what npm asks for)."""
    lines = [
        f"GET {target.path(path)} HTTP/1.1",
        f"Host: {target.hostport}",
        f"User-Agent: {USER_AGENT}",
        f"Accept: {accept}",
        f"Accept-Encoding: {encoding}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseParser:
    """Incremental HTTP/1.1 response framing: Content-Length, chunked, or until close."""

    __slots__ = ("body_start", "chunk_pos", "close", "length", "mode", "status")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.mode = 0  # 0 headers pending, 1 length, 2 chunked, 3 until close
        self.body_start = 0
        self.length = 0
        self.chunk_pos = 0
        self.close = False

    def feed(self, buf: bytearray) -> int:
        """Bytes the complete response at the start of buf takes, or -1 if incomplete."""
        if self.mode == 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return -1
            head = bytes(buf[:end]).lower()
            self.status = int(head[9:12])
            self.body_start = end + 4
            self.close = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
            i = head.find(b"\r\ncontent-length:")
            if 100 <= self.status < 200 or self.status in (204, 304):
                self.mode, self.length = 1, 0
            elif i >= 0:
                j = head.find(b"\r\n", i + 2)
                self.length = int(head[i + 17 : j if j >= 0 else len(head)].strip())
                self.mode = 1
            elif b"\r\ntransfer-encoding:" in head and b"chunked" in head:
                self.mode = 2
                self.chunk_pos = self.body_start
            else:
                self.mode = 3
                self.close = True
        if self.mode == 1:
            total = self.body_start + self.length
            return total if len(buf) >= total else -1
        if self.mode == 2:
            pos = self.chunk_pos
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    self.chunk_pos = pos
                    return -1
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    tail = eol + 2
                    if len(buf) >= tail + 2 and buf[tail : tail + 2] == b"\r\n":
                        return tail + 2
                    end = buf.find(b"\r\n\r\n", eol)
                    if end < 0:
                        self.chunk_pos = pos
                        return -1
                    return end + 4
                nxt = eol + 2 + size + 2
                if len(buf) < nxt:
                    self.chunk_pos = pos
                    return -1
                pos = nxt
        return -1  # mode 3: complete only at EOF


@dataclass
class LoadSpec:
    host: str
    port: int
    requests: list[bytes]
    connections: int
    duration: float
    warmup: float
    offset: int = 0  # where this worker starts in the request list
    connect_timeout: float = 5.0
    max_responses: int = 0  # stop after this many measured responses (0: at the deadline)


@dataclass
class LoadResult:
    count: int = 0
    errors: int = 0  # non-2xx responses and failed connections/requests
    bytes: int = 0
    elapsed: float = 0.0
    latencies_us: array[int] = field(default_factory=lambda: array("q"))
    statuses: dict[int, int] = field(default_factory=dict)

    def merge(self, other: LoadResult) -> None:
        self.count += other.count
        self.errors += other.errors
        self.bytes += other.bytes
        self.elapsed = max(self.elapsed, other.elapsed)
        self.latencies_us.extend(other.latencies_us)
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v


class _Conn:
    __slots__ = ("buf", "next_req", "parser", "sent_at", "sock")

    def __init__(self, sock: socket.socket, next_req: int) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.parser = ResponseParser()
        self.next_req = next_req
        self.sent_at = 0


def run_load(spec: LoadSpec) -> LoadResult:
    """Closed-loop load: each connection sends its next request when the last answers.

    Responses completing during warm-up are not recorded; the loop stops at the
    deadline (or once ``max_responses`` were measured) and drops requests in flight.
    """
    res = LoadResult()
    reqs = spec.requests
    nreq = len(reqs)
    sel = selectors.DefaultSelector()
    clock = time.perf_counter_ns
    t_start = clock()
    t_measure = t_start + int(spec.warmup * 1e9)
    t_end = t_measure + int(spec.duration * 1e9)
    lat = res.latencies_us
    # One receive buffer for all connections: recv(n) would allocate (and, past
    # glibc's mmap threshold, mmap and munmap) a fresh n-byte object per call.
    rbuf = bytearray(262144)
    rview = memoryview(rbuf)
    statuses = res.statuses

    def connect(idx: int) -> _Conn | None:
        try:
            s = socket.create_connection((spec.host, spec.port), timeout=spec.connect_timeout)
        except OSError:
            res.errors += 1
            return None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking, no timeout: CPython polls before every call on a socket with a
        # timeout. recv only follows readiness, and a send never blocks: each
        # connection has one small request outstanding at most.
        s.settimeout(None)
        return _Conn(s, idx)

    def send(c: _Conn) -> bool:
        c.sent_at = clock()
        try:
            c.sock.sendall(reqs[c.next_req])
        except OSError:
            return False
        c.next_req = (c.next_req + 1) % nreq
        return True

    def restart(c: _Conn) -> _Conn | None:
        sel.unregister(c.sock)
        c.sock.close()
        n = connect(c.next_req)
        if n is None:
            return None
        if not send(n):
            res.errors += 1
            n.sock.close()
            return None
        sel.register(n.sock, selectors.EVENT_READ, n)
        return n

    conns: list[_Conn] = []
    for i in range(spec.connections):
        c = connect((spec.offset + i * 7) % nreq)
        if c is not None and send(c):
            sel.register(c.sock, selectors.EVENT_READ, c)
            conns.append(c)
    cap = spec.max_responses
    try:
        while sel.get_map():
            now = clock()
            if now >= t_end or (cap and res.count >= cap):
                break
            events = sel.select(min((t_end - now) / 1e9, 0.05))
            for key, _ in events:
                c = key.data
                try:
                    got = c.sock.recv_into(rbuf)
                except OSError:
                    res.errors += 1
                    restart(c)
                    continue
                if not got:
                    # EOF: a response framed "until close" ends here; else it failed.
                    if c.parser.mode == 3:
                        done = clock()
                        if t_measure <= done <= t_end:
                            st = c.parser.status
                            res.count += 1
                            res.bytes += len(c.buf)
                            lat.append((done - c.sent_at) // 1000)
                            statuses[st] = statuses.get(st, 0) + 1
                            if not 200 <= st < 300:
                                res.errors += 1
                    else:
                        res.errors += 1
                    restart(c)
                    continue
                buf = c.buf
                buf += rview[:got]
                while True:
                    n = c.parser.feed(buf)
                    if n < 0:
                        break
                    done = clock()
                    st = c.parser.status
                    close = c.parser.close
                    if t_measure <= done <= t_end:
                        res.count += 1
                        res.bytes += n
                        lat.append((done - c.sent_at) // 1000)
                        statuses[st] = statuses.get(st, 0) + 1
                        if not 200 <= st < 300:
                            res.errors += 1
                    del buf[:n]
                    c.parser.reset()
                    if close:
                        restart(c)
                        break
                    if not send(c):
                        res.errors += 1
                        restart(c)
                        break
                    if not buf:
                        break
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
    res.elapsed = max(1e-9, (min(clock(), t_end) - t_measure) / 1e9)
    return res


def _worker(spec: LoadSpec, barrier: Any, queue: Any) -> None:
    try:
        barrier.wait(timeout=30)
        queue.put(run_load(spec))
    except BaseException as exc:  # report, never hang the parent
        queue.put(exc)


def run_parallel(specs: Sequence[LoadSpec]) -> LoadResult:
    """Run one spec per process (fork where available), all starting together."""
    if len(specs) == 1:
        return run_load(specs[0])
    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier = ctx.Barrier(len(specs))
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(s, barrier, queue), daemon=True) for s in specs]
    for p in procs:
        p.start()
    total = LoadResult()
    limit = max(s.warmup + s.duration for s in specs) + 60
    try:
        for _ in procs:
            item = queue.get(timeout=limit)
            if isinstance(item, BaseException):
                raise HarnessError(f"load worker failed: {item!r}")
            total.merge(item)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    # merge() kept the longest measured time: the deadline, or earlier when capped.
    return total


def split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# --------------------------------------------------------------------------- stats


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (p in 0..100); 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize(res: LoadResult, duration: float) -> dict[str, Any]:
    lat = sorted(res.latencies_us)
    ms = 1000.0
    return {
        "requests": res.count,
        "errors": res.errors,
        "rps": round(res.count / duration, 1) if duration > 0 else 0.0,
        "p50_ms": round(percentile(lat, 50) / ms, 3),
        "p99_ms": round(percentile(lat, 99) / ms, 3),
        "mean_ms": round(sum(lat) / len(lat) / ms, 3) if lat else 0.0,
        "max_ms": round(lat[-1] / ms, 3) if lat else 0.0,
        "mb_per_s": round(res.bytes / duration / 1e6, 2) if duration > 0 else 0.0,
        "statuses": {str(k): v for k, v in sorted(res.statuses.items())},
    }
