"""The cost of cluster-wide rate limits (R13_RATE_LIMIT_SCOPE=cluster) per check.

``python -m bench.cluster_ratelimit [--checks 3000] [--duration 5] [--rounds 2]``

Starts a real PostgreSQL (tests/pgserver.py) with the cluster's tables, then times
``--checks`` limiter checks (a few hundred keys, like the clients of a busy node) with
the node's shared-memory C limiter (r13core/ratelimit.py) and with the cluster's
(r13core/cluster/ratelimit.py: one upsert per check over a loopback connection).
A request makes one check per client, plus one per key when it carries a key, so the
per-request cost of cluster scope is one to two of these round trips.
Prints p50/p99 in microseconds for each, as JSON.

Then the same through HTTP: one real node (gunicorn, gevent, 2 workers) over the
database, ``GET /-/ping`` with wrk (``-t2 -c16``) for ``--duration`` s, with
R13_RATE_LIMIT_SCOPE=node and =cluster, alternated ``--rounds`` times (a new node on a
new database each time); the medians of req/s and their ratio. Skipped without wrk.
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from r13core.cluster.database import ClusterDB
from r13core.cluster.ratelimit import ClusterRateLimiter
from r13core.cluster.schema import ensure_schema
from r13core.ratelimit import RateLimiter, monotonic_ns
from tests import pgserver
from tests.e2e.conftest import Server
from tests.ports import free_port


def _ping_rps(root: Path, url: str, scope: str, duration: int) -> float:
    node = Server(data=root / f"node-{scope}", port=free_port(), log=root / f"{scope}.log")
    node.extra_env = {
        "R13_DATABASE_URL": url,
        "R13_RATE_LIMIT_SCOPE": scope,
        "SECURITY_RATE_LIMIT_MAX": "2147483647",
    }
    try:
        node.start()
        out = subprocess.run(
            ["wrk", "-t2", "-c16", f"-d{duration}s", node.url + "/-/ping"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        node.stop()
        shutil.rmtree(node.data, ignore_errors=True)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def _time(check: Callable[[str], object], checks: int) -> dict[str, float]:
    for i in range(200):  # warm up: connections, plans, table pages
        check(f"ip:warm{i % 50}")
    took = []
    for i in range(checks):
        key = f"ip:198.51.100.{i % 250}"
        start = time.perf_counter_ns()
        check(key)
        took.append((time.perf_counter_ns() - start) / 1000)
    took.sort()
    return {
        "p50_us": round(statistics.median(took), 1),
        "p99_us": round(took[min(len(took) - 1, int(0.99 * len(took)))], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=3000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"checks": args.checks}
    with tempfile.TemporaryDirectory() as tmp:
        local = RateLimiter(Path(tmp), "bench", 65536)
        try:
            report["node_c_limiter"] = _time(
                lambda k: local.check(k, 1000, 900_000, now_ns=monotonic_ns()), args.checks
            )
        finally:
            local.close()
    with pgserver.running() as pg:
        url = pg.create_database()
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_schema(conn)
        db = ClusterDB(url)
        cluster = ClusterRateLimiter(db, 65536)
        report["cluster_postgres"] = _time(lambda k: cluster.check(k, 1000, 900_000), args.checks)
        db.close()
        if shutil.which("wrk") and args.rounds > 0:
            rates: dict[str, list[float]] = {"node": [], "cluster": []}
            with tempfile.TemporaryDirectory() as tmp:
                for _ in range(args.rounds):
                    for scope in ("node", "cluster"):
                        fresh = pg.create_database()  # each node its own first admin key
                        rates[scope].append(_ping_rps(Path(tmp), fresh, scope, args.duration))
            node_rps = statistics.median(rates["node"])
            cluster_rps = statistics.median(rates["cluster"])
            report["http_ping"] = {
                "node_scope_rps": round(node_rps),
                "cluster_scope_rps": round(cluster_rps),
                "ratio": round(cluster_rps / node_rps, 2),
                "rounds": rates,
            }
    report["ratio_p50"] = round(
        report["cluster_postgres"]["p50_us"] / max(0.01, report["node_c_limiter"]["p50_us"]), 1
    )
    json.dump(report, sys.stdout, indent=2)
    print()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
