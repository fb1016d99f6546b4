"""The dashboard's figures: time to first byte of the page, time to the first chart with
data, page weight, frames per second while samples stream in.

``python -m bench.dashboard [--rounds 5] [--ttfb-requests 2000] [--fps-samples 60]
[--json FILE]``

Starts ``r13 serve`` (gevent workers) on loopback with the monitor sampling every
``--interval-ms`` (50: the fastest the sampler allows, so 60 samples stream in ~3 s), then:

- **TTFB**: ``GET /_dashboard`` over one keep-alive connection, ``--ttfb-requests`` times;
  the time from sending the request to its first byte (median, p95) and the whole
  answer's size, plain and gzip.
- In Debian's Chromium (Playwright, a fresh browser per round, nothing cached), signed in
  by ``POST /_api/session``: **first chart** is the ``r13-first-chart`` performance mark
  (set by app/static/dashboard/js/sections/performance.js when the charts hold the
  history), measured from navigation start; **page weight** is the sum of
  ``transferSize`` (compressed bytes on the wire, headers included) of the page and every
  resource it loaded by then (the live channel's WebSocket is not a resource).
- **FPS**: animation frames counted in the page while ``--fps-samples`` metrics samples
  arrive over the live channel and are drawn into seven charts; also the longest gap
  between two frames.

Medians over ``--rounds``. Loopback only; every server it starts is stopped.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.servers import exit_on_sigterm, start_r13

ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CHROMIUM = "/usr/bin/chromium"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ttfb(url: str, requests: int, *, gzip: bool) -> dict[str, float]:
    """First-byte times of ``GET /_dashboard`` on one keep-alive connection (ms)."""
    host, port = url.removeprefix("http://").split(":")
    extra = "Accept-Encoding: gzip\r\n" if gzip else ""
    request = f"GET /_dashboard HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
    times: list[float] = []
    size = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            start = time.perf_counter_ns()
            sock.sendall(request)
            data = sock.recv(65536)
            times.append((time.perf_counter_ns() - start) / 1e6)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            while len(body) < length:
                body += sock.recv(65536)
            size = len(data.partition(b"\r\n\r\n")[0]) + 4 + length
    return {
        "median_ms": statistics.median(times),
        "p95_ms": _pct(times, 0.95),
        "bytes": size,
        "requests": requests,
    }


def browser_round(url: str, key: str, fps_samples: int) -> dict[str, float]:
    """One fresh browser: first chart, page weight, then FPS while samples stream."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(120_000)
            answer = context.request.post(f"{url}/_api/session", data={"key": key})
            if answer.status != 201:
                raise RuntimeError(f"sign-in refused: {answer.status} {answer.text()}")
            page = context.new_page()
            page.goto(f"{url}/_dashboard#performance")
            page.wait_for_function(
                "() => performance.getEntriesByName('r13-first-chart').length > 0"
            )
            first = page.evaluate(
                "() => performance.getEntriesByName('r13-first-chart')[0].startTime"
            )
            weight = page.evaluate(
                """() => performance.getEntriesByType('navigation')
                    .concat(performance.getEntriesByType('resource'))
                    .reduce((sum, e) => sum + e.transferSize, 0)"""
            )
            start_seq = int(page.get_attribute("#section", "data-last-seq") or "0")
            page.wait_for_function(
                "(s) => Number(document.getElementById('section').dataset.lastSeq) > s",
                arg=start_seq,
            )
            fps = page.evaluate(
                """(want) => new Promise((resolve) => {
                    const section = document.getElementById('section');
                    const from = Number(section.dataset.lastSeq);
                    let frames = 0, last = performance.now(), worst = 0;
                    const started = last;
                    function tick(now) {
                        frames += 1; worst = Math.max(worst, now - last); last = now;
                        if (Number(section.dataset.lastSeq) - from >= want) {
                            const seconds = (now - started) / 1000;
                            resolve([frames / seconds, worst, seconds]);
                        } else requestAnimationFrame(tick);
                    }
                    requestAnimationFrame(tick);
                })""",
                fps_samples,
            )
            return {
                "first_chart_ms": float(first),
                "page_weight_bytes": float(weight),
                "fps": float(fps[0]),
                "worst_frame_ms": float(fps[1]),
                "stream_s": float(fps[2]),
            }
        finally:
            browser.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--ttfb-requests", type=int, default=2000)
    p.add_argument("--fps-samples", type=int, default=60)
    p.add_argument("--interval-ms", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="r13-bench-dash-") as tmp:
        data = Path(tmp) / "data"
        env = {
            "R13_WORKERS": str(args.workers),
            "METRICS_COLLECTION_INTERVAL": str(args.interval_ms),
            "R13_AUTH_RATE_LIMIT_MAX": "2147483647",
        }
        server = start_r13(data, env)
        try:
            assert server.token is not None
            with urllib.request.urlopen(f"{server.url}/_dashboard") as r:
                r.read()
            plain = [ttfb(server.url, args.ttfb_requests, gzip=False) for _ in range(args.rounds)]
            packed = [ttfb(server.url, args.ttfb_requests, gzip=True) for _ in range(args.rounds)]
            rounds = [
                browser_round(server.url, server.token, args.fps_samples)
                for _ in range(args.rounds)
            ]
        finally:
            status = server.stop()
    med = statistics.median
    report: dict[str, Any] = {
        "rounds": args.rounds,
        "ttfb_ms": {"median": med(r["median_ms"] for r in plain),
                    "p95": med(r["p95_ms"] for r in plain),
                    "bytes": plain[0]["bytes"], "requests": args.ttfb_requests},
        "ttfb_gzip_ms": {"median": med(r["median_ms"] for r in packed),
                         "p95": med(r["p95_ms"] for r in packed), "bytes": packed[0]["bytes"]},
        "first_chart_ms": med(r["first_chart_ms"] for r in rounds),
        "page_weight_kb": med(r["page_weight_bytes"] for r in rounds) / 1024,
        "fps": med(r["fps"] for r in rounds),
        "worst_frame_ms": med(r["worst_frame_ms"] for r in rounds),
        "fps_samples": args.fps_samples,
        "interval_ms": args.interval_ms,
        "browser_rounds": rounds,
        "server_exit": status,
    }  # fmt: skip
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
