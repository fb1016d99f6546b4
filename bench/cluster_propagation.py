"""Across nodes: a record change until every node's live clients have it, and read scaling.

``python -m bench.cluster_propagation [--nodes 3] [--changes 200] [--duration 6]``

Starts a real PostgreSQL (tests/pgserver.py) and ``--nodes`` real r13 nodes (gunicorn,
gevent, 2 workers each) behind a real nginx (tests/cluster.py), then:

1. **propagation**: one live-channel client (JSON subprotocol, the websockets library)
   per node, each read by a thread that stamps every record frame on arrival. An admin
   writes ``rows`` through node 0's client ``--changes`` times; for each change and each
   OTHER node, the time from the send on node 0 until that node's client received the
   new record. The send-to-commit part is included (an upper bound of commit-to-client);
   p50/p99 over every (change, node) pair, and the same for node 0's own client (the
   single-machine path, as a baseline on the same loaded machine);
2. **read scaling**: ``GET`` of a small packument through the balancer with wrk
   (``-t2 -c32 --duration``) in front of all nodes, then in front of node 0 alone
   (nginx reconfigured); the ratio. On a 2-core machine the nodes share the same two
   cores with PostgreSQL, nginx and wrk: expect no gain there; the figure shows the
   cost of the balancer and the cluster, not scaling.

Prints a JSON report. Needs nginx and PostgreSQL (``python -m tests.pgserver``) and wrk.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests import pgserver
from tests.cluster import Balancer, Cluster, start_cluster
from tests.e2e.publish_body import publish_body, tarball
from tests.live_client import Live, open_live


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Stamper(threading.Thread):
    """Reads one client; remembers when each ``rows`` value first arrived."""

    def __init__(self, live: Live) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()

    def run(self) -> None:
        try:
            while True:
                msg = self.live.recv(timeout=600)
                now = time.perf_counter()
                if msg.kind == "heartbeat":
                    self.live.echo(msg)
                elif msg.kind == "config":
                    rows = bytes.fromhex(msg.fields["record"])[0x0A]
                    with self.cond:
                        self.seen.setdefault(rows, now)
                        self.cond.notify_all()
        except Exception:
            return

    def wait(self, rows: int, after: float, timeout: float = 30) -> float:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.seen.get(rows, 0) > after, timeout)
            assert ok, f"rows={rows} never arrived"
            return self.seen[rows]


def propagation(cluster: Cluster, changes: int) -> dict[str, Any]:
    lives = [open_live(node.url, key=cluster.admin_key) for node in cluster.nodes]
    stampers = [_Stamper(live) for live in lives]
    for s in stampers:
        s.start()
    latencies: list[float] = []
    local: list[float] = []
    try:
        for i in range(changes):
            rows = 30 + i % 200
            with stampers[0].cond:
                for s in stampers:
                    s.seen.pop(rows, None)
            sent = time.perf_counter()
            lives[0].send_write(0x0A, bytes([rows]))
            local.append((stampers[0].wait(rows, sent) - sent) * 1000)
            for s in stampers[1:]:
                latencies.append((s.wait(rows, sent) - sent) * 1000)
    finally:
        for live in lives:
            live.close()
    return {
        "changes": changes,
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_quantile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "same_node_p50_ms": round(statistics.median(local), 2),
        "same_node_p99_ms": round(_quantile(local, 0.99), 2),
    }


def _wrk(url: str, duration: int, key: str) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{duration}s", "-H", f"Authorization: Bearer {key}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def read_scaling(cluster: Cluster, duration: int, root: Path) -> dict[str, Any]:
    key = cluster.admin_key
    data = tarball("scale-pkg", "1.0.0")
    body = json.dumps(publish_body("scale-pkg", "1.0.0", data)).encode()
    import urllib.request

    req = urllib.request.Request(
        cluster.url + "/scale-pkg", data=body, method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    urllib.request.urlopen(req, timeout=60).read()
    every = _wrk(cluster.url + "/scale-pkg", duration, key)
    alone = Balancer(root / "nginx-one", cluster.balancer.port + 0)
    cluster.balancer.stop()
    alone.port = cluster.balancer.port
    alone.start([cluster.nodes[0].port])
    try:
        one = _wrk(alone.url + "/scale-pkg", duration, key)
    finally:
        alone.stop()
    return {
        "nodes": len(cluster.nodes),
        "all_nodes_rps": round(every),
        "one_node_rps": round(one),
        "ratio": round(every / one, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="r13-cluster-bench-"))
    env = {"SECURITY_RATE_LIMIT_MAX": "2147483647", "R13_LOGGING": "0"}
    report: dict[str, Any] = {}
    try:
        with pgserver.running() as pg:
            url = pg.create_database()
            with start_cluster(root, url, args.nodes, env=env) as cluster:
                report["propagation"] = propagation(cluster, args.changes)
                if not args.no_scaling and shutil.which("wrk"):
                    report["read_scaling"] = read_scaling(cluster, args.duration, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    print()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
