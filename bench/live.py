"""The live channel through a real r13 (``r13 serve``, gevent workers): five figures.

``python -m bench.live [--clients 500] [--heartbeats 2000] [--changes 30] [--duration 6]``

1. **heartbeat round trip**: one binary client sends a heartbeat (0x03) and waits for
   its echo, ``--heartbeats`` times; p50/p99 of the round trip seen by the client;
2. **a record change until all clients have it**: ``--clients`` binary clients (raw
   sockets in one selector loop) and one admin that flips PREMIUM_TYPES (0x02),
   ``--changes`` times; per change, the time from the send until the last client read
   the new record, and every client's own latency. The client reads the sockets one by
   one, so the figure includes its own reading of ``--clients`` messages: the "reader
   floor" (the same reads when every message is already waiting) is measured and shown;
3. **broadcast messages/s**: ``--broadcast-clients`` admin clients, ``--events`` alert
   events appended to the events log as fast as the bench can: messages delivered
   (events x clients) per second until every client had every event;
4. **memory per open connection**: unique memory (USS) of every worker before and after
   ``--clients`` connections are opened, divided by their number;
5. **small-packument req/s with ``--clients`` idle sockets open vs none**, in one run:
   ``--rounds`` times none then open, alternated; the ratio of the medians.

Raw sockets rather than a WebSocket library on the client side: the figures are the
server's, and a library's threads would dominate them. Writes a JSON report.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.drivers import choose_driver, load
from bench.load import FULL_ACCEPT, HarnessError, encode_get, parse_target, percentile
from bench.servers import Running, exit_on_sigterm, start_r13
from r13core import npm_pack
from r13core.events import EventLog

RESULTS = Path(__file__).resolve().parent / "results"
PREMIUM_BIT = 0


class RawLive:
    """A minimal client of ``/_api/live`` on a raw socket (masked frames, no library)."""

    def __init__(self, port: int, token: str, protocol: str = "r13.v1") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /_api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HarnessError(f"handshake refused: {buf[:300]!r}")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise HarnessError(f"handshake refused: {head[:300]!r}")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(rest)
        self.mask = os.urandom(4)

    def send(self, payload: bytes, opcode: int = 0x2) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode, 0x80 | n]) if n < 126 else None
        if head is None:
            head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
        m = self.mask
        self.sock.sendall(head + m + bytes(b ^ m[i & 3] for i, b in enumerate(payload)))

    def frames(self) -> list[bytes]:
        """Whole data messages now in the buffer (control frames dropped)."""
        out = []
        buf = self.buf
        while len(buf) >= 2:
            n, i = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, i = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, i = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < i + n:
                break
            if buf[0] & 0x0F in (1, 2):
                out.append(bytes(buf[i : i + n]))
            del buf[: i + n]
        return out

    def read(self) -> list[bytes]:
        """One recv (blocking per the socket's timeout) and the whole messages it completed."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise HarnessError("the server closed a live connection")
        self.buf += chunk
        return self.frames()

    def next(self, want: Any) -> bytes:
        while True:
            for message in self.frames() or self.read():
                if want(message):
                    return message

    def close(self) -> None:
        self.sock.close()


def is_config(message: bytes) -> bool:
    return message[0] == 1 and len(message) == 18


def premium(message: bytes) -> bool:
    return bool(struct.unpack_from("<I", message, 5 + 5)[0] >> PREMIUM_BIT & 1)


def heartbeat_rtt(port: int, token: str, n: int) -> dict[str, Any]:
    client = RawLive(port, token)
    client.next(is_config)
    rtts: list[float] = []
    try:
        for seq in range(n + n // 10):
            sent = time.perf_counter_ns()
            client.send(struct.pack("<BQI", 3, sent, seq))
            echo = struct.pack("<BQI", 3, sent, seq)
            client.next(lambda m, e=echo: m == e)
            if seq >= n // 10:  # the first tenth warms up
                rtts.append((time.perf_counter_ns() - sent) / 1e6)
    finally:
        client.close()
    rtts.sort()
    return {
        "n": len(rtts),
        "p50_ms": round(percentile(rtts, 50), 4),
        "p99_ms": round(percentile(rtts, 99), 4),
        "mean_ms": round(statistics.fmean(rtts), 4),
    }


def open_clients(port: int, token: str, n: int) -> list[RawLive]:
    clients = []
    for _ in range(n):
        c = RawLive(port, token)
        c.next(is_config)
        c.sock.setblocking(False)
        clients.append(c)
    return clients


def change_fanout(port: int, token: str, clients: list[RawLive], changes: int) -> dict[str, Any]:
    admin = RawLive(port, token)
    state = premium(admin.next(is_config))
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    all_ms: list[float] = []
    each_ms: list[float] = []
    floors: list[float] = []
    try:
        for _ in range(changes):
            state = not state
            waiting = set(range(len(clients)))
            index = {id(c): i for i, c in enumerate(clients)}
            t0 = time.perf_counter_ns()
            admin.send(bytes([2, PREMIUM_BIT, int(state)]))
            deadline = time.monotonic() + 60
            while waiting:
                if time.monotonic() > deadline:
                    raise HarnessError(f"{len(waiting)} clients never got the change")
                for key, _ in sel.select(timeout=1):
                    c = key.data
                    try:
                        messages = c.read()
                    except BlockingIOError:
                        continue
                    i = index[id(c)]
                    if i in waiting and any(is_config(m) and premium(m) == state for m in messages):
                        waiting.discard(i)
                        each_ms.append((time.perf_counter_ns() - t0) / 1e6)
            all_ms.append((time.perf_counter_ns() - t0) / 1e6)
            admin.next(lambda m, s=state: is_config(m) and premium(m) == s)
            floors.append(_reader_floor(clients, admin, not state))
            state = not state
            time.sleep(0.05)
    finally:
        sel.close()
        admin.close()
    all_ms.sort()
    each_ms.sort()
    floors.sort()
    return {
        "clients": len(clients),
        "changes": changes,
        "all_have_it_p50_ms": round(percentile(all_ms, 50), 3),
        "all_have_it_p99_ms": round(percentile(all_ms, 99), 3),
        "each_client_p50_ms": round(percentile(each_ms, 50), 3),
        "each_client_p99_ms": round(percentile(each_ms, 99), 3),
        "reader_floor_p50_ms": round(percentile(floors, 50), 3),
    }


def _reader_floor(clients: list[RawLive], admin: RawLive, state: bool) -> float:
    """Flip the flag back, let every message arrive, then time reading them all."""
    admin.send(bytes([2, PREMIUM_BIT, int(state)]))
    admin.next(lambda m: is_config(m) and premium(m) == state)
    time.sleep(0.2)  # the server has written to every socket long before this
    t0 = time.perf_counter_ns()
    for c in clients:
        while True:
            try:
                messages = c.read()
            except BlockingIOError:
                continue
            if any(is_config(m) and premium(m) == state for m in messages):
                break
    return (time.perf_counter_ns() - t0) / 1e6


def broadcast_rate(
    port: int, token: str, data: Path, n_clients: int, events: int
) -> dict[str, Any]:
    clients = open_clients(port, token, n_clients)
    log = EventLog(data)
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    got = {id(c): 0 for c in clients}
    try:
        t0 = time.perf_counter_ns()
        for i in range(events):
            log.append("alert", {"event": "raised", "rule": "cpu", "bench": i})
        appended_ms = (time.perf_counter_ns() - t0) / 1e6
        done = 0
        deadline = time.monotonic() + 120
        while done < len(clients):
            if time.monotonic() > deadline:
                raise HarnessError("broadcasts never all arrived")
            for key, _ in sel.select(timeout=1):
                c = key.data
                try:
                    messages = c.read()
                except BlockingIOError:
                    continue
                before = got[id(c)]
                got[id(c)] += sum(1 for m in messages if m[0] == 5 and m[1] == 2)
                if before < events <= got[id(c)]:
                    done += 1
        elapsed = (time.perf_counter_ns() - t0) / 1e9
    finally:
        sel.close()
        for c in clients:
            c.close()
    delivered = events * n_clients
    return {
        "clients": n_clients,
        "events": events,
        "append_ms": round(appended_ms, 1),
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(delivered / elapsed, 1),
    }


def workers_uss(server: Running) -> int:
    master = psutil.Process(server.proc.pid)
    # r13 serve execs gunicorn: the master is the process started; workers are its children.
    return sum(p.memory_full_info().uss for p in master.children(recursive=True))


def workers_cpu(server: Running, window: float) -> float:
    """CPU (user + system) of every worker over ``window`` s, in % of one core."""
    workers = psutil.Process(server.proc.pid).children(recursive=True)

    def total() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in workers)

    t0, c0 = time.monotonic(), total()
    time.sleep(window)
    return (total() - c0) / (time.monotonic() - t0) * 100


def small_packument_rps(
    server: Running, path: str, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    driver = choose_driver(args.driver)
    target = parse_target(server.url)
    return load(
        driver,
        target,
        [encode_get(target, path, FULL_ACCEPT, token)],
        duration=args.duration,
        warmup=args.warmup,
        concurrency=args.concurrency,
        clients=args.load_clients,
    )


def publish_small(server: Running, token: str) -> str:
    name = "live-bench-small"
    body = npm_pack.publish_document(
        {"name": name, "version": "1.0.0"},
        npm_pack.package_tarball({"name": name, "version": "1.0.0"}),
    )
    req = urllib.request.Request(
        f"{server.url}/{name}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        if r.status not in (200, 201):
            raise HarnessError(f"publish failed: {r.status}")
    return "/" + name


def _memory_and_change(
    server: Running, port: int, token: str, args: argparse.Namespace, report: dict[str, Any]
) -> None:
    idle = RawLive(port, token)  # the hub runs from here on: count it in "before"
    idle.next(is_config)
    time.sleep(0.5)
    before = workers_uss(server)
    clients = open_clients(port, token, args.clients)
    time.sleep(0.5)
    after = workers_uss(server)
    report["memory"] = {
        "clients": args.clients,
        "uss_before_bytes": before,
        "uss_after_bytes": after,
        "per_connection_kb": round((after - before) / args.clients / 1024, 2),
    }
    print(f"memory: {report['memory']}", flush=True)
    report["change"] = change_fanout(port, token, clients, args.changes)
    print(f"record change to every client: {report['change']}", flush=True)
    for c in clients:
        c.close()
    idle.close()
    time.sleep(0.5)


def _idle_sockets(
    server: Running,
    port: int,
    token: str,
    path: str,
    args: argparse.Namespace,
    report: dict[str, Any],
) -> None:
    runs: dict[str, list[dict[str, Any]]] = {"none": [], "open": []}
    idle_cpu: dict[str, list[float]] = {"none": [], "open": []}
    for _ in range(args.rounds):  # alternated, so load from elsewhere hits both alike
        idle_cpu["none"].append(workers_cpu(server, args.idle_cpu_window))
        runs["none"].append(small_packument_rps(server, path, token, args))
        sockets = open_clients(port, token, args.clients)
        idle_cpu["open"].append(workers_cpu(server, args.idle_cpu_window))
        runs["open"].append(small_packument_rps(server, path, token, args))
        for c in sockets:
            c.close()
        time.sleep(0.5)
    none = statistics.median(r["rps"] for r in runs["none"])
    opened = statistics.median(r["rps"] for r in runs["open"])
    report["idle_sockets"] = {
        "clients": args.clients,
        "rounds": args.rounds,
        "rps_none": [r["rps"] for r in runs["none"]],
        "rps_open": [r["rps"] for r in runs["open"]],
        "median_none": none,
        "median_open": opened,
        "ratio_open_over_none": round(opened / none, 3) if none else None,
        # CPU the workers burn with no requests at all, % of one core: what holding the
        # sockets costs by itself (their heartbeats and monitor samples included).
        "idle_cpu_percent_none": round(statistics.median(idle_cpu["none"]), 2),
        "idle_cpu_percent_open": round(statistics.median(idle_cpu["open"]), 2),
    }
    report["scenarios"] = {
        f"{label}-{i}": run for label, rs in runs.items() for i, run in enumerate(rs)
    }
    print(f"small packument with idle sockets: {report['idle_sockets']}", flush=True)


PARTS = ("heartbeat", "memory", "change", "broadcast", "idle")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__)
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--heartbeats", type=int, default=2000)
    p.add_argument("--changes", type=int, default=30)
    p.add_argument("--broadcast-clients", type=int, default=100)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--duration", type=float, default=6.0, help="measured s per req/s run")
    p.add_argument("--rounds", type=int, default=3, help="req/s runs with and without")
    p.add_argument("--idle-cpu-window", type=float, default=3.0, help="s of idle CPU per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--load-clients", type=int, default=1, help="load processes")
    p.add_argument("--driver", choices=("auto", "python", "wrk"), default="auto")
    p.add_argument("--parts", default=",".join(PARTS), help="which figures (comma list)")
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        p.error(f"--parts: choose among {', '.join(PARTS)}")
    exit_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="r13-live-"))
    data = root / "data"
    env = {
        "R13_WORKERS": str(args.workers),
        "R13_FEATURE_BINARY_PROTOCOL": "1",
        "R13_LIVE_MAX_CONNECTIONS": "100000",
    }
    report: dict[str, Any] = {"bench": "live", "params": vars(args)}
    server = start_r13(data, env)
    port = parse_target(server.url).port
    try:
        token = server.token or ""
        path = publish_small(server, token)
        if "heartbeat" in parts:
            report["heartbeat"] = heartbeat_rtt(port, token, args.heartbeats)
            print(f"heartbeat round trip: {report['heartbeat']}", flush=True)
        if parts & {"memory", "change"}:
            _memory_and_change(server, port, token, args, report)
        if "broadcast" in parts:
            report["broadcast"] = broadcast_rate(
                port, token, data, args.broadcast_clients, args.events
            )
            print(f"broadcast: {report['broadcast']}", flush=True)
        if "idle" in parts:
            _idle_sockets(server, port, token, path, args, report)
    except HarnessError as exc:
        print(f"bench.live: {exc}", file=sys.stderr)
        return 2
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    out = Path(args.json_out or RESULTS / f"live-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
