"""`GET /-/ping` while slow clients trickle header bytes: gevent worker vs gthread worker.

``python -m bench.slow_clients [--connections 64] [--duration 6] [--classes gevent,gthread]``

For each worker class, starts r13 (2 workers, defaults otherwise; R13_HEADER_TIMEOUT
10 s), opens ``--connections`` connections that send a request line and then one header
line every ``--pause`` s, never ending the header (a connection the server drops is
opened again at once, as an attacker would), and for ``--duration`` s sends `GET
/-/ping` on a fresh connection after another, each with a ``--ping-timeout``. Prints,
per class, how many pings were answered or timed out and the latency p50/p99/max of the
answered ones; writes a JSON report. The measurement the issue quotes: under gthread
every ping timed out, under gevent they answered in 1-3 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.ab import RESULTS
from bench.servers import exit_on_sigterm, start_r13

REQUEST_LINE = b"GET /-/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"
PING = b"GET /-/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


class Tricklers:
    """``n`` connections sending one header line every ``pause`` s, reconnecting when dropped."""

    def __init__(self, port: int, n: int, pause: float) -> None:
        self.port, self.pause = port, pause
        self.socks = [self._open() for _ in range(n)]
        self.dropped = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(REQUEST_LINE)
        return s

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            for i, s in enumerate(self.socks):
                try:
                    readable, _, _ = select.select([s], [], [], 0)
                    if readable and not s.recv(4096):
                        raise ConnectionResetError
                    s.sendall(f"X-Slow-{n}: {i}\r\n".encode())
                except OSError:
                    self.dropped += 1
                    s.close()
                    with contextlib.suppress(OSError):
                        self.socks[i] = self._open()
            n += 1
            self.rounds += 1
            self._stop.wait(self.pause)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for s in self.socks:
            s.close()


def ping(port: int, timeout: float) -> float | None:
    """Milliseconds until a whole `200` answer to a ping on a new connection; None: timed out."""
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.001, timeout - (time.perf_counter() - start)))
            s.sendall(PING)
            got = b""
            while chunk := s.recv(4096):
                got += chunk
    except TimeoutError:
        return None
    if not got.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"ping answered {got[:80]!r}")
    return (time.perf_counter() - start) * 1000


def measure(worker_class: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    data = root / worker_class
    server = start_r13(data, {"R13_WORKER_CLASS": worker_class, "R13_WORKERS": "2"})
    port = int(server.url.rsplit(":", 1)[1])
    try:
        slow = Tricklers(port, args.connections, args.pause)
        try:
            while slow.rounds < 1:
                time.sleep(0.01)
            latencies: list[float] = []
            timeouts = 0
            deadline = time.monotonic() + args.duration
            while time.monotonic() < deadline:
                ms = ping(port, args.ping_timeout)
                if ms is None:
                    timeouts += 1
                else:
                    latencies.append(ms)
            dropped = slow.dropped
        finally:
            slow.close()
    finally:
        server.stop()
    latencies.sort()
    result: dict[str, Any] = {
        "pings": len(latencies) + timeouts,
        "answered": len(latencies),
        "timeouts": timeouts,
        "dropped_by_server": dropped,
    }
    if latencies:
        result.update(
            p50_ms=round(statistics.median(latencies), 3),
            p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
            max_ms=round(latencies[-1], 3),
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    p.add_argument("--classes", default="gevent,gthread")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=6.0, help="s of pinging per class")
    p.add_argument("--pause", type=float, default=1.0, help="s between two header lines")
    p.add_argument("--ping-timeout", type=float, default=5.0)
    p.add_argument("--json", dest="json_out", help="report path (default: bench/results/)")
    args = p.parse_args(argv)
    exit_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="r13-slow-"))
    results: dict[str, Any] = {}
    try:
        for worker_class in [c.strip() for c in args.classes.split(",") if c.strip()]:
            results[worker_class] = r = measure(worker_class, args, root)
            print(f"{worker_class}: {r['answered']} of {r['pings']} pings answered, "
                  f"{r['timeouts']} timed out ({args.ping_timeout:g} s); p50 "
                  f"{r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms, max {r.get('max_ms')} ms; "
                  f"{r['dropped_by_server']} slow connections dropped by the server")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = Path(args.json_out or RESULTS / f"slow_clients-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "bench": "slow_clients",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {k: v for k, v in vars(args).items() if k != "json_out"},
        "results": results,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
