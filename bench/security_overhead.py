"""What the security layer costs a small packument GET, end to end through gunicorn.

``python -m bench.security_overhead [--rounds 3] [--duration 6] [--driver auto]``

Starts r13 (2 workers x 4 threads, access log off) on a fresh data dir, publishes one
small package, then alternates (bench/ab.py): the real app (PRIVATE_REGISTRY on, GET with
a Bearer key: client address, per-address and per-key limits, block check, key,
permission check, counters, rate-limit headers) and ``bench.bare_wsgi`` (the same app with
the layer swapped for a no-op, PRIVATE_REGISTRY off, anonymous GET). Prints req/s per
run, the medians and the layer's share of the time per request; writes a JSON report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import ab
from bench.load import HarnessError, parse_target
from bench.seeding import Client, publish
from bench.servers import exit_on_sigterm, start_r13

WORKERS = {"R13_WORKERS": "2", "R13_THREADS": "4", "R13_FEATURE_LOGGING": "0"}
BARE = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf",
        "bench.bare_wsgi:application"]  # fmt: skip


def publish_small(data: Path) -> str:
    """Publish ``small@1.0.0`` through a first start of r13; its admin key."""
    server = start_r13(data, WORKERS)
    try:
        assert server.token, "r13 made no admin key"
        client = Client(parse_target(server.url), server.token)
        status, body = publish(client, "small", "1.0.0")
        client.close()
        if status != 201:
            raise HarnessError(f"publish small: HTTP {status} {body[:200]!r}")
        return server.token
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.security_overhead", description=__doc__)
    ab.add_arguments(p, rounds=3, duration=6.0)
    args = p.parse_args(argv)
    exit_on_sigterm()

    def variants(data: Path) -> list[ab.Variant]:
        admin = publish_small(data)
        return [
            ab.Variant("with", {**WORKERS, "R13_FEATURE_PRIVATE_REGISTRY": "1"}, token=admin),
            ab.Variant("without", {**WORKERS, "R13_FEATURE_PRIVATE_REGISTRY": "0"}, argv=BARE),
        ]

    run = ab.alternate_fresh("bench.security_overhead", "/small", args, variants)
    if run is None:
        return 2
    driver, results = run
    med = ab.medians(results)
    share = 1 - med["with"] / med["without"]
    print(f"median with the layer {med['with']:.1f} req/s, without {med['without']:.1f} req/s")
    print(f"the layer's share of the time per request: {share * 100:.1f}% ({driver.describe()})")
    summary = {"median_rps": med, "layer_share": round(share, 4)}
    print(f"report: {ab.write_report('security_overhead', args, driver, results, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
