"""One r13 node over PostgreSQL against the SQLite default, and the two blob stores, in one run.

``python -m bench.postgres_backend [--rounds 3] [--duration 6] [--variants sqlite,pg,pg-files]``

Starts a throwaway PostgreSQL (tests/pgserver.py, ``fsync`` on: it pays for durability
as SQLite does with ``synchronous=FULL``), then, round by round, each variant on a fresh
data dir (and a fresh database) under ``r13 serve`` (2 gevent workers, the defaults):

* ``sqlite``: the embedded default, SQLite + content-addressed files;
* ``pg``: ``R13_DATABASE_URL=postgresql://...``, tarballs in the database (the default
  there: chunked rows, each node serving a verified local copy after its first read);
* ``pg-files``: the same database, ``R13_BLOB_STORE=files`` (tarballs as files, e.g. on a
  directory every node mounts).

Each runs the HTTP harness (bench/http.py, via bench/compare.py's ``run_harness``) on
``small-full``, ``small-abbrev``, ``tarball`` and ``publish`` (anonymous reads, keyed
publishes), then is stopped. Prints a table of medians over the rounds (req/s, p50 and
p99 ms; publish p50/p99 from the sequential publish loop) and writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.compare import run_harness
from bench.drivers import DRIVERS
from bench.load import HarnessError
from bench.servers import Running, exit_on_sigterm, start_r13
from tests import pgserver

VARIANTS = ("sqlite", "pg", "pg-files")
SCENARIOS = "small-full,small-abbrev,tarball,publish"


def log(msg: str) -> None:
    print(f"[bench.postgres_backend] {msg}", file=sys.stderr, flush=True)


def _env(variant: str, pg: pgserver.PostgresServer | None) -> dict[str, str]:
    env = {"R13_FEATURE_PRIVATE_REGISTRY": "0"}  # anonymous reads, keyed publishes
    if variant == "sqlite":
        return env
    assert pg is not None
    env["R13_DATABASE_URL"] = pg.create_database("r13_bench")
    if variant == "pg-files":
        env["R13_BLOB_STORE"] = "files"
    return env


def measure(variant: str, pg: pgserver.PostgresServer | None, args: argparse.Namespace) -> Any:
    tmp = Path(tempfile.mkdtemp(prefix=f"r13-bench-{variant}-"))
    server: Running | None = None
    env = _env(variant, pg)
    try:
        server = start_r13(tmp / "data", env)
        log(f"{variant} answers on {server.url}")
        path = run_harness(variant, server.url, server.token, args)
        return json.loads(path.read_text())
    except HarnessError:
        for server_log in tmp.glob("r13-*.log"):  # why, before the dir goes
            log(f"{variant}'s log ends:\n{server_log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if pg is not None and "R13_DATABASE_URL" in env:
            pg.drop_database(env["R13_DATABASE_URL"])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.postgres_backend", description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--requests", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--driver", choices=DRIVERS, default="python")
    p.add_argument("--small", type=int, default=50)
    p.add_argument("--big-versions", type=int, default=30)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list, in round order")
    p.add_argument("--json", dest="json_out", help="write the report here")
    args = p.parse_args(argv)
    args.scenarios = SCENARIOS
    exit_on_sigterm()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - set(VARIANTS):
        print(f"--variants: choose among {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    args.out = tempfile.mkdtemp(prefix="r13-bench-pg-reports-")
    runs: dict[str, list[Any]] = {v: [] for v in variants}
    try:
        with pgserver.running(fsync=True) as pg:
            for n in range(max(1, args.rounds)):
                for variant in variants:  # alternated: the machine's load drifts
                    log(f"round {n + 1} of {args.rounds}: {variant}")
                    runs[variant].append(measure(variant, pg, args))
    except (HarnessError, OSError, subprocess.TimeoutExpired, RuntimeError) as exc:
        print(f"bench.postgres_backend: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(args.out, ignore_errors=True)

    summary: dict[str, Any] = {}
    scenarios: dict[str, Any] = {}
    for variant, reports in runs.items():
        summary[variant] = {}
        for name in SCENARIOS.split(","):
            got = [r["scenarios"][name] for r in reports]
            summary[variant][name] = {
                k: statistics.median(g[k] for g in got) for k in ("rps", "p50_ms", "p99_ms")
            }
        scenarios[variant] = {  # bench/ci.py checks every report's errors here
            "requests": sum(
                r["scenarios"][s]["requests"] for r in reports for s in SCENARIOS.split(",")
            ),
            "errors": sum(
                r["scenarios"][s]["errors"] for r in reports for s in SCENARIOS.split(",")
            ),
        }
    print("| variant | small-full req/s | small-abbrev req/s | tarball req/s | tarball p99 ms "
          "| publish p50 ms | publish p99 ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for variant, s in summary.items():
        print(f"| {variant} | {s['small-full']['rps']:.0f} | {s['small-abbrev']['rps']:.0f} "
              f"| {s['tarball']['rps']:.0f} | {s['tarball']['p99_ms']:.1f} "
              f"| {s['publish']['p50_ms']:.1f} | {s['publish']['p99_ms']:.1f} |")  # fmt: skip
    report = {
        "bench": "postgres_backend",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "params": {
            k: getattr(args, k)
            for k in ("rounds", "duration", "warmup", "concurrency", "clients", "driver", "small")
        },
        "median": summary,
        "scenarios": scenarios,
        "runs": runs,
    }
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
