"""Where keep-alive connections land among r13's gunicorn workers.

``python -m bench.worker_placement [--starts 6] [--connections 16]``

Starts r13 (DEBUG on, so every answer names its worker in ``X-R13-Worker``) ``--starts``
times; each time opens ``--connections`` connections at once, sends ``GET /-/ping`` twice
on each (keep-alive), and counts the connections each worker holds. A gthread worker keeps
every connection it accepted, so when one worker accepts the whole burst, the other one
idles for the life of those connections: a load test with few long-lived connections then
measures one worker, not two. Prints the split per start; writes a JSON report.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.load import HarnessError, parse_target
from bench.servers import REPO, exit_on_sigterm, start_r13


def split_once(data: Path, connections: int) -> list[int]:
    """Connections held per worker (largest first) after one start of r13."""
    server = start_r13(data, {"R13_FEATURE_DEBUG": "1", "R13_FEATURE_PRIVATE_REGISTRY": "0"})
    target = parse_target(server.url)
    conns = [http.client.HTTPConnection(target.host, target.port, timeout=30)
             for _ in range(connections)]  # fmt: skip
    try:
        for c in conns:
            c.connect()
        holders: Counter[str] = Counter()
        for c in conns:
            workers = set()
            for _ in range(2):
                c.request("GET", "/-/ping")
                resp = c.getresponse()
                resp.read()
                workers.add(resp.getheader("X-R13-Worker") or "?")
            if len(workers) != 1:
                raise HarnessError(f"one keep-alive connection was served by {workers}")
            holders[workers.pop()] += 1
        return sorted(holders.values(), reverse=True)
    finally:
        for c in conns:
            c.close()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_placement", description=__doc__)
    p.add_argument("--starts", type=int, default=6)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    exit_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="r13-placement-"))
    splits: list[list[int]] = []
    try:
        for n in range(args.starts):
            splits.append(split_once(root / f"data-{n}", args.connections))
            print(f"start {n + 1}: connections per worker {splits[-1]}", flush=True)
    except (HarnessError, OSError) as exc:
        print(f"bench.worker_placement: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    one = sum(1 for s in splits if len(s) == 1)
    print(f"all {args.connections} connections on one worker in {one} of {len(splits)} starts")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.json_out or REPO / "bench" / "results" / f"worker_placement-{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"bench": "worker_placement", "connections": args.connections, "splits": splits}
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
