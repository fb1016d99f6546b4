"""HTTP load harness for any npm registry: seed through the publish API, then measure.

Usage::

    python -m bench.http --url http://127.0.0.1:4873 --token T [--duration 10]
        [--concurrency 32] [--clients 2] [--json out.json] [--markdown out.md]
    python -m bench.http --compare r13.json verdaccio.json

Seeding publishes, through ``PUT /:pkg`` exactly as npm does: ``--small`` unscoped
packages (default 200), one package with ``--big-versions`` versions (default 300,
sequential publishes), one scoped package ``@bench/<prefix>-scoped`` and one package
that the publish scenario adds versions to. Names start with ``--prefix`` (default:
unique per run) so re-runs against the same registry never collide.

Each read scenario runs for ``--duration`` seconds over ``--concurrency`` keep-alive
connections spread across ``--clients`` worker processes. The load engine is a small
HTTP/1.1 client on raw sockets driven by ``selectors`` (one event loop per process,
requests encoded once up front), so the harness itself costs little per request.
``--driver wrk`` uses wrk for the read scenarios when it is installed.

Only loopback URLs are accepted unless ``--allow-remote`` is given. Every loop is
bounded by a deadline.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.client
import io
import ipaddress
import json
import math
import multiprocessing
import os
import platform
import selectors
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

ABBREVIATED = "application/vnd.npm.install-v1+json"
FULL_ACCEPT = "application/json"
USER_AGENT = "r13-bench/1 (python)"
SCOPE = "@bench"

# Read scenarios in report order, then publish.
READ_SCENARIOS = ("small-full", "small-abbrev", "big-full", "scoped-full", "tarball", "auth-full")
ALL_SCENARIOS = (*READ_SCENARIOS, "publish")
DESCRIPTIONS = {
    "small-full": "small packument, full",
    "small-abbrev": "small packument, abbreviated (install-v1)",
    "big-full": "packument with many versions, full",
    "scoped-full": "scoped packument (@bench%2fname)",
    "tarball": "tarball GET (dist.tarball)",
    "auth-full": "small packument, full, with Bearer token",
    "publish": "publish a new version (sequential)",
}


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


# --------------------------------------------------------------------------- packages


def bare_name(name: str) -> str:
    return name.split("/", 1)[1] if name.startswith("@") else name


def packument_path(name: str) -> str:
    """URL path of a packument; scoped names are escaped as npm does (``@s%2fn``)."""
    if name.startswith("@"):
        scope, rest = name.split("/", 1)
        return f"/{scope}%2f{rest}"
    return f"/{name}"


def make_tarball(name: str, version: str) -> bytes:
    """A real npm tarball: gzip'd tar with package/package.json and package/index.js."""
    manifest = {
        "name": name,
        "version": version,
        "description": "r13 benchmark package",
        "main": "index.js",
        "license": "MIT",
    }
    files = {
        "package/package.json": json.dumps(manifest, indent=2).encode() + b"\n",
        "package/index.js": f"module.exports = {json.dumps(name + '@' + version)};\n".encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 499162500  # npm's fixed date (1985-10-26)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def publish_body(target: Target, name: str, version: str) -> tuple[bytes, bytes]:
    """(JSON body of the npm publish request, the tarball bytes)."""
    tgz = make_tarball(name, version)
    bare = bare_name(name)
    filename = f"{bare}-{version}.tgz"
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": "r13 benchmark package",
        "main": "index.js",
        "license": "MIT",
        "_id": f"{name}@{version}",
        "dist": {
            "integrity": integrity_of(tgz),
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "tarball": f"{target.url}/{name}/-/{filename}",
        },
    }
    body = {
        "_id": name,
        "name": name,
        "description": "r13 benchmark package",
        "dist-tags": {"latest": version},
        "versions": {version: manifest},
        "access": "public",
        "_attachments": {
            filename: {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tgz).decode(),
                "length": len(tgz),
            }
        },
    }
    return json.dumps(body).encode(), tgz


@dataclass(frozen=True)
class Names:
    prefix: str
    small_count: int

    @property
    def small(self) -> list[str]:
        return [f"{self.prefix}-s{i:03d}" for i in range(self.small_count)]

    @property
    def big(self) -> str:
        return f"{self.prefix}-big"

    @property
    def scoped(self) -> str:
        return f"{SCOPE}/{self.prefix}-scoped"

    @property
    def pub(self) -> str:
        return f"{self.prefix}-pub"


def default_prefix() -> str:
    return f"r13b-{int(time.time() * 1000) % 10**11:011d}-{os.getpid() % 1000:03d}"


# --------------------------------------------------------------------------- simple client


class Client:
    """One keep-alive http.client connection (seeding, setup and publish timing)."""

    def __init__(self, target: Target, token: str | None, timeout: float = 30.0) -> None:
        self.target = target
        self.token = token
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = False,
    ) -> tuple[int, bytes]:
        h = {"User-Agent": USER_AGENT, "Accept": FULL_ACCEPT}
        if body is not None:
            h["Content-Type"] = "application/json"
        if auth and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=self.timeout
                )
            try:
                self.conn.request(method, self.target.path(path), body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                # A keep-alive connection the server closed: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def publish(client: Client, name: str, version: str) -> tuple[int, bytes]:
    body, _ = publish_body(client.target, name, version)
    return client.request("PUT", packument_path(name), body=body, auth=True)


def _check(status: int, data: bytes, what: str) -> None:
    if not 200 <= status < 300:
        excerpt = data[:300].decode("utf-8", "replace")
        raise HarnessError(f"{what}: HTTP {status}: {excerpt}")


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    names: Names
    big_versions: int
    tarball_paths: list[str]
    publishes: int
    seconds: float
    pub_next: int = 1  # next minor version for the publish scenario


def seed(
    target: Target,
    token: str | None,
    names: Names,
    big_versions: int,
    threads: int = 8,
    log: Callable[[str], None] = lambda s: None,
    deadline_s: float = 900.0,
) -> Seeded:
    """Publish everything the scenarios read, then check it reads back."""
    if not token:
        raise HarnessError("seeding publishes packages: a token is required (--token)")
    t0 = time.perf_counter()
    deadline = t0 + deadline_s

    def one(name: str) -> None:
        c = Client(target, token)
        try:
            if time.perf_counter() > deadline:
                raise HarnessError("seeding deadline passed")
            status, data = publish(c, name, "1.0.0")
            _check(status, data, f"publish {name}@1.0.0")
        finally:
            c.close()

    log(f"seeding {len(names.small)} small packages + {names.scoped} + {names.pub}")
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(one, [*names.small, names.scoped, names.pub]))

    log(f"seeding {names.big} with {big_versions} sequential versions")
    c = Client(target, token)
    try:
        for i in range(big_versions):
            if time.perf_counter() > deadline:
                raise HarnessError("seeding deadline passed")
            v = f"1.{i // 100}.{i % 100}"
            status, data = publish(c, names.big, v)
            _check(status, data, f"publish {names.big}@{v}")
    finally:
        c.close()
    publishes = len(names.small) + 2 + big_versions

    # Read back: every small packument gives its tarball URL; check counts.
    def tarball_of(name: str) -> str:
        c = Client(target, token)
        try:
            status, data = c.request("GET", packument_path(name))
            _check(status, data, f"GET {name}")
            doc = json.loads(data)
            v = doc.get("dist-tags", {}).get("latest")
            if v != "1.0.0" or "1.0.0" not in doc.get("versions", {}):
                raise HarnessError(f"GET {name}: version 1.0.0 missing after publish")
            url = str(doc["versions"]["1.0.0"]["dist"]["tarball"])
            return tarball_path(target, url)
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        tarballs = list(pool.map(tarball_of, names.small))

    c = Client(target, token)
    try:
        status, data = c.request("GET", packument_path(names.big))
        _check(status, data, f"GET {names.big}")
        n = len(json.loads(data).get("versions", {}))
        if n != big_versions:
            raise HarnessError(f"{names.big} has {n} versions, expected {big_versions}")
        status, data = c.request("GET", packument_path(names.scoped))
        _check(status, data, f"GET {names.scoped}")
        # One tarball must match the integrity the harness published.
        status, data = c.request("GET", tarballs[0], headers={"Accept": "*/*"})
        _check(status, data, f"GET {tarballs[0]}")
        expected = make_tarball(names.small[0], "1.0.0")
        if integrity_of(data) != integrity_of(expected):
            raise HarnessError(f"tarball {tarballs[0]} does not match what was published")
    finally:
        c.close()
    return Seeded(names, big_versions, tarballs, publishes, time.perf_counter() - t0)


def tarball_path(target: Target, url: str) -> str:
    """The path (relative to the target) of a dist.tarball URL.

    Registries put their own idea of their address in dist.tarball; the harness
    always loads the target it was given, so only the path is kept.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if target.base_path and path.startswith(target.base_path + "/"):
        path = path[len(target.base_path) :]
    if parts.query:
        path += "?" + parts.query
    return path


# --------------------------------------------------------------------------- load engine


def encode_get(target: Target, path: str, accept: str, token: str | None) -> bytes:
    lines = [
        f"GET {target.path(path)} HTTP/1.1",
        f"Host: {target.hostport}",
        f"User-Agent: {USER_AGENT}",
        f"Accept: {accept}",
        "Accept-Encoding: identity",
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
    deadline and drops requests still in flight.
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
    try:
        while sel.get_map():
            now = clock()
            if now >= t_end:
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
    total.elapsed = max(s.duration for s in specs)
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


# --------------------------------------------------------------------------- scenarios


@dataclass
class Options:
    target: Target
    token: str | None
    duration: float = 10.0
    concurrency: int = 32
    clients: int = 2
    warmup: float = 1.0
    driver: str = "python"
    publish_max: int = 100_000


def scenario_requests(opts: Options, seeded: Seeded, name: str) -> list[bytes]:
    t, n = opts.target, seeded.names
    if name == "small-full":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, None) for p in n.small]
    if name == "small-abbrev":
        return [encode_get(t, packument_path(p), ABBREVIATED, None) for p in n.small]
    if name == "big-full":
        return [encode_get(t, packument_path(n.big), FULL_ACCEPT, None)]
    if name == "scoped-full":
        return [encode_get(t, packument_path(n.scoped), FULL_ACCEPT, None)]
    if name == "tarball":
        return [encode_get(t, p, "*/*", None) for p in seeded.tarball_paths]
    if name == "auth-full":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, opts.token) for p in n.small]
    raise HarnessError(f"unknown scenario {name!r}")


def run_read(opts: Options, seeded: Seeded, name: str) -> dict[str, Any]:
    reqs = scenario_requests(opts, seeded, name)
    if opts.driver == "wrk":
        out = run_wrk(opts, reqs, name)
        out["driver"] = "wrk"
        return out
    conns = split(opts.concurrency, opts.clients)
    specs = [
        LoadSpec(
            opts.target.host,
            opts.target.port,
            reqs,
            c,
            opts.duration,
            opts.warmup,
            offset=sum(conns[:i]) * 7,
        )
        for i, c in enumerate(conns)
    ]
    out = summarize(run_parallel(specs), opts.duration)
    out["driver"] = "python"
    return out


def run_publish(opts: Options, seeded: Seeded) -> dict[str, Any]:
    """Sequential publishes of new versions of one package, on one keep-alive connection."""
    c = Client(opts.target, opts.token)
    lat: list[int] = []
    errors = 0
    statuses: dict[int, int] = {}
    name = seeded.names.pub
    # Build bodies ahead of time so only the request is timed.
    t0 = time.perf_counter()
    end = t0 + opts.duration
    try:
        while time.perf_counter() < end and len(lat) < opts.publish_max:
            v = f"1.{seeded.pub_next}.0"
            seeded.pub_next += 1
            body, _ = publish_body(opts.target, name, v)
            s = time.perf_counter_ns()
            try:
                status, _data = c.request("PUT", packument_path(name), body=body, auth=True)
            except OSError:
                status = 0
                c.close()
            lat.append((time.perf_counter_ns() - s) // 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if not 200 <= status < 300:
                errors += 1
    finally:
        c.close()
    res = LoadResult(count=len(lat), errors=errors, latencies_us=array("q", lat))
    res.statuses = statuses
    wall = max(1e-9, time.perf_counter() - t0)
    out = summarize(res, wall)
    out["driver"] = "python"
    return out


# --------------------------------------------------------------------------- wrk driver

WRK_LUA = """
local paths = {%(paths)s}
local i = %(start)d
wrk.method = "GET"
wrk.headers["Accept"] = %(accept)s
wrk.headers["User-Agent"] = "r13-bench/1 (wrk)"
%(auth)s
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format(nil, paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "R13BENCH {\\"requests\\": %%d, \\"status_errors\\": %%d, \\"socket_errors\\": %%d, " ..
    "\\"p50_us\\": %%d, \\"p99_us\\": %%d, \\"mean_us\\": %%.1f, \\"max_us\\": %%d, " ..
    "\\"bytes\\": %%d, \\"duration_us\\": %%d}\\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    summary.bytes, summary.duration))
end
"""


def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal here


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(opts: Options, reqs: list[bytes], name: str) -> dict[str, Any]:
    """Drive one read scenario with wrk; same paths and headers as the Python engine."""
    paths: list[str] = []
    accept = FULL_ACCEPT
    auth = ""
    for r in reqs:
        lines = r.decode("latin-1").split("\r\n")
        paths.append(lines[0].split(" ")[1])
        for line in lines[1:]:
            if line.startswith("Accept: "):
                accept = line[8:]
            if line.startswith("Authorization: "):
                auth = f'wrk.headers["Authorization"] = {_lua_str(line[15:])}'
    script = WRK_LUA % {
        "paths": ", ".join(_lua_str(p) for p in paths),
        "start": 0,
        "accept": _lua_str(accept),
        "auth": auth,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    try:
        threads = max(1, min(opts.clients, opts.concurrency))
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{opts.concurrency}",
            f"-d{max(1, round(opts.duration))}s",
            "--timeout",
            "10s",
            "-s",
            lua,
            opts.target.url + "/",
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=opts.duration + 60, check=False
        )
    finally:
        os.unlink(lua)
    for line in proc.stdout.splitlines():
        if line.startswith("R13BENCH "):
            d = json.loads(line[9:])
            dur = d["duration_us"] / 1e6 or opts.duration
            return {
                "requests": d["requests"],
                "errors": d["status_errors"] + d["socket_errors"],
                "rps": round(d["requests"] / dur, 1),
                "p50_ms": round(d["p50_us"] / 1000, 3),
                "p99_ms": round(d["p99_us"] / 1000, 3),
                "mean_ms": round(d["mean_us"] / 1000, 3),
                "max_ms": round(d["max_us"] / 1000, 3),
                "mb_per_s": round(d["bytes"] / dur / 1e6, 2),
                "statuses": {},
            }
    raise HarnessError(f"wrk gave no result for {name}: {proc.stderr.strip()[:300]}")


# --------------------------------------------------------------------------- reports


def markdown_table(report: dict[str, Any]) -> str:
    p = report["params"]
    lines = [
        f"### {report.get('label') or report['url']}",
        "",
        f"{report['url']} — {p['duration']} s per scenario, {p['concurrency']} connections, "
        f"{p['clients']} client processes, driver {p['driver']}",
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors | requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["scenarios"].items():
        lines.append(
            f"| {name} | {s['rps']:.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
            f"| {s['errors']} | {s['requests']} |"
        )
    if "seed" in report:
        sd = report["seed"]
        lines += ["", f"Seeded {sd['publishes']} publishes in {sd['seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "—"


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> str:
    la = a.get("label") or "A"
    lb = b.get("label") or "B"
    lines = [
        f"### {la} vs {lb} (ratio = {la} / {lb}; req/s higher is better, latency lower)",
        "",
        f"| scenario | {la} req/s | {lb} req/s | req/s ratio | {la} p50 | {lb} p50 | p50 ratio "
        f"| {la} p99 | {lb} p99 | p99 ratio | errors {la}/{lb} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(a["scenarios"]) + [n for n in b["scenarios"] if n not in a["scenarios"]]
    for n in names:
        sa, sb = a["scenarios"].get(n), b["scenarios"].get(n)
        if sa is None or sb is None:
            only = la if sb is None else lb
            lines.append(f"| {n} | (only in {only}) |||||||||| ")
            continue
        lines.append(
            f"| {n} | {sa['rps']:.1f} | {sb['rps']:.1f} | {_ratio(sa['rps'], sb['rps'])} "
            f"| {sa['p50_ms']:.2f} | {sb['p50_ms']:.2f} | {_ratio(sa['p50_ms'], sb['p50_ms'])} "
            f"| {sa['p99_ms']:.2f} | {sb['p99_ms']:.2f} | {_ratio(sa['p99_ms'], sb['p99_ms'])} "
            f"| {sa['errors']}/{sb['errors']} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- run


def run(
    opts: Options,
    names: Names,
    big_versions: int,
    scenarios: Iterable[str] = ALL_SCENARIOS,
    label: str = "",
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    seeded = seed(opts.target, opts.token, names, big_versions, log=log)
    log(f"seeded {seeded.publishes} publishes in {seeded.seconds:.1f} s")
    results: dict[str, Any] = {}
    for name in scenarios:
        log(f"running {name} for {opts.duration} s")
        if name == "publish":
            results[name] = run_publish(opts, seeded)
        else:
            if name == "auth-full" and not opts.token:
                continue
            results[name] = run_read(opts, seeded, name)
        s = results[name]
        log(
            f"  {name}: {s['rps']} req/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms "
            f"errors {s['errors']}"
        )
    return {
        "label": label,
        "url": opts.target.url,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "prefix": names.prefix,
        "params": {
            "duration": opts.duration,
            "concurrency": opts.concurrency,
            "clients": opts.clients,
            "warmup": opts.warmup,
            "driver": opts.driver,
            "small_packages": names.small_count,
            "big_versions": big_versions,
        },
        "seed": {"publishes": seeded.publishes, "seconds": round(seeded.seconds, 2)},
        "scenarios": results,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }


def run_probe(opts: Options, path: str, label: str = "") -> dict[str, Any]:
    """One read scenario on a fixed path, no seeding: the load engine's own ceiling."""
    if not path.startswith("/"):
        raise HarnessError("--probe PATH must start with /")
    reqs = [encode_get(opts.target, path, FULL_ACCEPT, opts.token)]
    if opts.driver == "wrk":
        result = run_wrk(opts, reqs, "probe")
        result["driver"] = "wrk"
    else:
        conns = split(opts.concurrency, opts.clients)
        specs = [
            LoadSpec(opts.target.host, opts.target.port, reqs, c, opts.duration, opts.warmup)
            for c in conns
        ]
        result = summarize(run_parallel(specs), opts.duration)
        result["driver"] = "python"
    return {
        "label": label,
        "url": opts.target.url,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {
            "duration": opts.duration,
            "concurrency": opts.concurrency,
            "clients": opts.clients,
            "warmup": opts.warmup,
            "driver": opts.driver,
            "probe": path,
        },
        "scenarios": {f"probe {path}": result},
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n")[0])
    p.add_argument("--url", help="registry base URL, e.g. http://127.0.0.1:4873")
    p.add_argument("--token", default=os.environ.get("BENCH_TOKEN"), help="Bearer token")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    p.add_argument("--clients", type=int, default=2, help="worker processes")
    p.add_argument("--prefix", default=None, help="package name prefix (default: unique)")
    p.add_argument("--small", type=int, default=200, help="small packages to seed")
    p.add_argument("--big-versions", type=int, default=300, help="versions of the big package")
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma list from {','.join(ALL_SCENARIOS)}",
    )
    p.add_argument(
        "--driver",
        choices=("python", "wrk", "auto"),
        default="python",
        help="read-scenario load generator; auto = wrk when installed",
    )
    p.add_argument(
        "--probe",
        metavar="PATH",
        help="no seeding: load GET PATH only (measures the harness or a server's ceiling)",
    )
    p.add_argument("--label", default="", help="name of this registry in reports")
    p.add_argument("--json", dest="json_out", help="write the report as JSON here")
    p.add_argument("--markdown", help="write the markdown table here")
    p.add_argument("--allow-remote", action="store_true", help="allow non-loopback URLs")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print A vs B from two reports (ratios A / B) and exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.compare:
            reports = []
            for path in args.compare:
                with open(path, encoding="utf-8") as f:
                    reports.append(json.load(f))
            table = compare_table(reports[0], reports[1])
            print(table, end="")
            if args.markdown:
                with open(args.markdown, "w", encoding="utf-8") as f:
                    f.write(table)
            return 0
        if not args.url:
            raise HarnessError("--url is required (or --compare A.json B.json)")
        target = parse_target(args.url, args.allow_remote)
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [s for s in scenarios if s not in ALL_SCENARIOS]
        if unknown:
            raise HarnessError(f"unknown scenarios: {', '.join(unknown)}")
        driver = args.driver
        if driver == "auto":
            driver = "wrk" if wrk_available() else "python"
        elif driver == "wrk" and not wrk_available():
            raise HarnessError("--driver wrk: wrk is not installed")
        if args.duration <= 0 or args.duration > 3600:
            raise HarnessError("--duration must be in (0, 3600]")
        opts = Options(
            target=target,
            token=args.token or None,
            duration=args.duration,
            concurrency=max(1, args.concurrency),
            clients=max(1, args.clients),
            warmup=max(0.0, args.warmup),
            driver=driver,
        )
        names = Names(args.prefix or default_prefix(), max(1, args.small))

        def log(msg: str) -> None:
            if not args.quiet:
                print(f"[bench.http] {msg}", file=sys.stderr, flush=True)

        if args.probe:
            report = run_probe(opts, args.probe, args.label)
        else:
            report = run(opts, names, max(1, args.big_versions), scenarios, args.label, log)
    except HarnessError as exc:
        print(f"bench.http: {exc}", file=sys.stderr)
        return 2
    except (OSError, http.client.HTTPException) as exc:
        print(f"bench.http: cannot talk to the registry: {exc}", file=sys.stderr)
        return 2
    table = markdown_table(report)
    print(table, end="")
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
