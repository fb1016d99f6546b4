"""gunicorn's gevent worker against its gthread worker, same r13, one run.

``python -m bench.worker_classes [--paths /small,/-/ping] [--rounds 3] [--duration 6]``

For each path, alternates (bench/ab.py) r13 with ``R13_WORKER_CLASS=gevent`` (the
default) and ``R13_WORKER_CLASS=gthread`` (the server model before; ``R13_THREADS``
8) on one data dir, r13's defaults otherwise (2 workers). ``small@1.0.0`` is published
first and every GET carries the admin key (PRIVATE_REGISTRY on, the default). Prints
req/s and p99 per run, the medians and gevent/gthread per path; writes a JSON report.
The figure to read is the ratio within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import ab
from bench.security_overhead import publish_small
from bench.servers import exit_on_sigterm

CLASSES = ("gevent", "gthread")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_classes", description=__doc__)
    ab.add_arguments(p, rounds=3, duration=6.0)
    p.add_argument("--paths", default="/small,/-/ping", help="comma-separated GET paths")
    args = p.parse_args(argv)
    exit_on_sigterm()

    def variants(data: Path) -> list[ab.Variant]:
        admin = publish_small(data)
        return [ab.Variant(c, {"R13_WORKER_CLASS": c}, token=admin) for c in CLASSES]

    summary: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    driver = None
    for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
        run = ab.alternate_fresh("bench.worker_classes", path, args, variants)
        if run is None:
            return 2
        driver, results = run
        med = ab.medians(results)
        p99 = {
            k: statistics.median(r["p99_ms"] for r in rs if r.get("p99_ms") is not None)
            for k, rs in results.items()
            if any(r.get("p99_ms") is not None for r in rs)
        }
        ratio = med["gevent"] / med["gthread"]
        print(f"{path}: median req/s gevent {med['gevent']:.1f}, gthread {med['gthread']:.1f}, "
              f"gevent/gthread {ratio:.3f}; median p99 ms {p99}")  # fmt: skip
        summary[path] = {"median_rps": med, "gevent_over_gthread": round(ratio, 4),
                         "median_p99_ms": p99}  # fmt: skip
        for label, rs in results.items():
            runs[f"{path} {label}"] = rs
    assert driver is not None
    print(f"driver: {driver.describe()}")
    print(f"report: {ab.write_report('worker_classes', args, driver, runs, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
