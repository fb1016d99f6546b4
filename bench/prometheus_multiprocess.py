"""Why r13 counts requests in C: the same per-request updates through prometheus_client.

``python -m bench.prometheus_multiprocess [--repeat 7] [--number 20000] [--json FILE]``

Per request the monitor updates an in-flight gauge (+1, -1), a counter labelled by route
and status, a latency histogram labelled by route, and bytes in and out. This times those
updates (timeit, median of ``--repeat`` loops of ``--number`` requests, ns per request):

- ``prometheus_client, multiprocess mode``: what gunicorn workers would need to share
  counts (``PROMETHEUS_MULTIPROC_DIR``: every update goes to a per-process mmap file);
- ``prometheus_client, one process``: its default in-memory values (cannot be shared);
- ``r13 C counters``: ``Metrics.request_start`` + ``request_end`` (shared memory, what
  app/monitoring/middleware.py does).

prometheus_client picks its mode when it is first imported, so each of its two modes
runs in a child process of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MODES = ("multiprocess", "single")


def _median_ns(fn: Callable[[], object], repeat: int, number: int) -> float:
    loops = timeit.repeat(fn, repeat=repeat, number=number)
    return round(statistics.median(t / number * 1e9 for t in loops), 1)


def prometheus_request(repeat: int, number: int) -> float:
    """Time one request's updates with prometheus_client as imported in this process."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    reg = CollectorRegistry()
    in_flight = Gauge("r13_in_flight", "in flight", registry=reg, multiprocess_mode="livesum")
    requests = Counter("r13_http_requests", "requests", ["route", "status"], registry=reg)
    latency = Histogram("r13_http_request_duration_seconds", "latency", ["route"], registry=reg)
    bytes_in = Counter("r13_http_bytes_in", "bytes in", registry=reg)
    bytes_out = Counter("r13_http_bytes_out", "bytes out", registry=reg)

    def one() -> None:
        in_flight.inc()
        requests.labels("GET /-/ping", "200").inc()
        latency.labels("GET /-/ping").observe(0.000123)
        bytes_in.inc(0)
        bytes_out.inc(2)
        in_flight.dec()

    ns = _median_ns(one, repeat, number)
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if shared and not any(Path(shared).glob("*.db")):
        raise RuntimeError("prometheus_client did not write per-process files: not multiprocess")
    return ns


def r13_request(repeat: int, number: int) -> float:
    from r13core.metrics import Metrics

    with tempfile.TemporaryDirectory(prefix="r13-prom-") as tmp:
        metrics = Metrics(Path(tmp))
        rid = metrics.route_id("GET /-/ping")
        start, end = metrics.request_start, metrics.request_end

        def one() -> None:
            start()
            end(rid, 200, 0, 2, 123_000)

        try:
            return _median_ns(one, repeat, number)
        finally:
            metrics.close()


def _child(mode: str, repeat: int, number: int) -> float:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory(prefix="r13-prom-mp-") as tmp:
        if mode == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = tmp
        out = subprocess.run(
            [sys.executable, "-m", "bench.prometheus_multiprocess", "--child", mode,
             "--repeat", str(repeat), "--number", str(number)],
            env=env, capture_output=True, text=True, check=True, timeout=600,
        ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.prometheus_multiprocess", description=__doc__)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--number", type=int, default=20_000)
    p.add_argument("--json", dest="json_out")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(prometheus_request(args.repeat, args.number))
        return 0
    results: dict[str, Any] = {
        "prometheus_client, multiprocess mode": _child("multiprocess", args.repeat, args.number),
        "prometheus_client, one process": _child("single", args.repeat, args.number),
        "r13 C counters": r13_request(args.repeat, args.number),
    }
    for name, ns in results.items():
        print(f"{name:38} {ns / 1000:8.2f} us per request (median)")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        report = {"bench": "prometheus_multiprocess", "repeat": args.repeat, "number": args.number}
        Path(args.json_out).write_text(json.dumps({**report, "median_ns": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
