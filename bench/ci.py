"""Every benchmark in a short mode, so none of them rots: what `make test` runs after pytest.

``python -m bench.ci [--out bench/results/ci]``

Runs the micro benches (pytest-benchmark with ``--quick``: a few rounds, short loops) and
each benchmark command of bench/ for a second or two against a real server (r13 alone:
no Verdaccio needed), each writing its JSON report into ``--out`` (emptied first; under
bench/results/, which git ignores). It fails when a benchmark errors — a non-zero exit,
a missing report, an HTTP error counted in a report — and never because of a speed: the
figures of a short run on a shared machine are not for reading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import exit_on_sigterm

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
SHORT = ["--duration", "1", "--warmup", "0.3"]


@dataclass(frozen=True)
class Step:
    """One benchmark command and the report it must leave in the output dir."""

    name: str
    args: list[str]  # after ``python``; "{out}" stands for the output dir
    report: str  # a file (or a directory of reports) in the output dir
    check: Callable[[Any], list[str]] = lambda report: []
    also: tuple[str, ...] = ()  # bench commands it runs underneath (tests/test_bench_ci.py)

    def commands(self) -> set[str]:
        """The bench modules this step runs as commands (``python -m bench.x``)."""
        return {a for a in self.args if a.startswith("bench.")} | set(self.also)

    def argv(self, out: Path) -> list[str]:
        return [PY, *(a.replace("{out}", str(out)) for a in self.args)]


def _http_errors(report: Any) -> list[str]:
    return [f"{name}: {s['errors']} errors" for name, s in report["scenarios"].items()
            if s["errors"] or not s["requests"]]  # fmt: skip


MICRO = sorted(f"bench/{p.name}" for p in (REPO / "bench").glob("bench_*.py"))


def _micro_ran(report: Any) -> list[str]:
    files = {b["fullname"].split("::")[0] for b in report.get("benchmarks", [])}
    return [f"no benchmark ran from {m}" for m in sorted(set(MICRO) - files)]


def _profiled(report: Any) -> list[str]:
    problems = [] if report.get("samples") else ["py-spy took no sample of a worker"]
    errors = (report.get("load") or {}).get("errors")
    return problems + ([f"{errors} HTTP errors under the profiler"] if errors else [])


STEPS = [
    Step(
        "micro benches (pytest-benchmark, --quick)",
        ["-m", "pytest", *MICRO, "--quick", "-q", "--benchmark-only",
         "--benchmark-columns=median,rounds",
         "--benchmark-min-rounds=1", "--benchmark-max-time=0.002", "--benchmark-warmup=off",
         "--benchmark-json={out}/micro.json"],
        "micro.json",
        _micro_ran,
    ),
    Step(
        "HTTP harness: r13, static nginx, r13 behind its nginx front, the stack's ceiling",
        ["-m", "bench.compare", "--registries", "r13,nginx-static,r13-front,gunicorn-static",
         *SHORT, "--small", "20",
         "--big-versions", "30", "--clients", "1", "--concurrency", "8", "--out", "{out}/http"],
        "http",
        also=("bench.http",),
    ),
    Step(
        "a tarball GET and a publish inside r13, and the fsync floor",
        ["-m", "bench.route_profile", "--n", "50", "--json", "{out}/route_profile.json"],
        "route_profile.json",
    ),
    Step(
        "publishes into a fresh store and a store of tarballs, HEAD vs the working tree",
        ["-m", "bench.publish_store", "--tarballs", "0,40", "--publishes", "5",
         "--rounds", "1", "--before", "HEAD", "--json", "{out}/publish_store.json"],
        "publish_store.json",
    ),
    Step(
        "harness ceiling (trivial server)",
        ["-m", "bench.harness_ceiling", *SHORT, "--clients", "1",
         "--json", "{out}/harness_ceiling.json"],
        "harness_ceiling.json",
        also=("bench.trivial_server",),
    ),
    Step(
        "security layer through gunicorn, with vs without",
        ["-m", "bench.security_overhead", "--rounds", "1", *SHORT,
         "--json", "{out}/security_overhead.json"],
        "security_overhead.json",
    ),
    Step(
        "hot reads on vs off through gunicorn",
        ["-m", "bench.hot_reads_ab", "--rounds", "1", *SHORT,
         "--json", "{out}/hot_reads_ab.json"],
        "hot_reads_ab.json",
    ),
    Step(
        "METRICS + LOGGING on vs off through gunicorn",
        ["-m", "bench.flags_overhead", "--rounds", "1", *SHORT,
         "--json", "{out}/flags_overhead.json"],
        "flags_overhead.json",
    ),
    Step(
        "where keep-alive connections land among the workers",
        ["-m", "bench.worker_placement", "--starts", "1", "--connections", "4",
         "--json", "{out}/worker_placement.json"],
        "worker_placement.json",
    ),
    Step(
        "hot paths by timeit",
        ["-m", "bench.timeit_paths", "--repeat", "2", "--number", "2000",
         "--json", "{out}/timeit_paths.json"],
        "timeit_paths.json",
    ),
    Step(
        "prometheus_client multiprocess vs r13's counters",
        ["-m", "bench.prometheus_multiprocess", "--repeat", "2", "--number", "500",
         "--json", "{out}/prometheus_multiprocess.json"],
        "prometheus_multiprocess.json",
    ),
    Step(
        "two revisions through gunicorn (HEAD vs the working tree)",
        ["-m", "bench.revisions", "--before", "HEAD", "--paths", "/small", "--rounds", "1",
         *SHORT, "--clients", "1", "--json", "{out}/revisions.json"],
        "revisions.json",
    ),
    Step(
        "gevent worker vs gthread worker through gunicorn",
        ["-m", "bench.worker_classes", "--paths", "/-/ping", "--rounds", "1", *SHORT,
         "--clients", "1", "--json", "{out}/worker_classes.json"],
        "worker_classes.json",
    ),
    Step(
        "ping while slow clients trickle headers, gevent vs gthread",
        ["-m", "bench.slow_clients", "--connections", "8", "--duration", "1",
         "--ping-timeout", "2", "--json", "{out}/slow_clients.json"],
        "slow_clients.json",
    ),
    Step(
        "the live channel: heartbeats, a change to every client, broadcasts, memory",
        ["-m", "bench.live", "--clients", "40", "--heartbeats", "100", "--changes", "3",
         "--broadcast-clients", "5", "--events", "50", "--rounds", "1",
         "--idle-cpu-window", "0.5", *SHORT,
         "--json", "{out}/live.json"],
        "live.json",
    ),
    Step(
        "npm install through r13's uplink vs from its upstream, cold and warm",
        ["-m", "bench.uplink_install", "--packages", "3", "--rounds", "1",
         "--json", "{out}/uplink_install.json"],
        "uplink_install.json",
    ),
    Step(
        "the dashboard: TTFB, first chart, page weight, FPS (Chromium)",
        ["-m", "bench.dashboard", "--rounds", "1", "--ttfb-requests", "100",
         "--fps-samples", "10", "--json", "{out}/dashboard.json"],
        "dashboard.json",
    ),
    Step(
        "backup and restore MB/s (SQLite)",
        ["-m", "bench.backup_restore", "--tarballs", "20", "--size", "4096", "--rounds", "1",
         "--json", "{out}/backup_restore.json"],
        "backup_restore.json",
    ),
    Step(
        "one node over PostgreSQL vs SQLite; blobs in the database vs files",
        ["-m", "bench.postgres_backend", "--rounds", "1", *SHORT, "--small", "10",
         "--big-versions", "5", "--json", "{out}/postgres_backend.json"],
        "postgres_backend.json",
        also=("bench.http",),
    ),
    Step(
        "cold start to the first 200 and the idle workers' memory",
        ["-m", "bench.cold_start", "--rounds", "1", "--json", "{out}/cold_start.json"],
        "cold_start.json",
    ),
    Step(
        "what each import costs at start (python -X importtime)",
        ["-m", "bench.import_costs", "--repeat", "1", "--top", "5",
         "--json", "{out}/import_costs.json"],
        "import_costs.json",
    ),
    Step(
        "the hot read path under py-spy (samples by part)",
        ["-m", "bench.profile_hot", "--duration", "2", "--rate", "50", "--concurrency", "4",
         "--clients", "1", "--out", "{out}/profile"],
        "profile",
        _profiled,
    ),
    Step(
        "hot reads inside the WSGI app: CPU per request, HEAD vs the working tree",
        ["-m", "bench.hot_inprocess", "--requests", "50", "--repeat", "1", "--versions", "5",
         "--before", "HEAD", "--json", "{out}/hot_inprocess.json"],
        "hot_inprocess.json",
    ),
    Step(
        "package patterns: the old regex vs the automaton, one call each",
        ["-m", "bench.bench_patterns", "--max-repeat", "3",
         "--json", "{out}/bench_patterns.json"],
        "bench_patterns.json",
    ),
    Step(
        "several nodes: a record change across nodes, reads through nginx (PostgreSQL)",
        ["-m", "bench.cluster_propagation", "--nodes", "2", "--changes", "5",
         "--duration", "1", "--json", "{out}/cluster_propagation.json"],
        "cluster_propagation.json",
    ),
    Step(
        "cluster-wide rate limits: one check, and GET /-/ping through a node",
        ["-m", "bench.cluster_ratelimit", "--checks", "200", "--duration", "1",
         "--rounds", "1", "--json", "{out}/cluster_ratelimit.json"],
        "cluster_ratelimit.json",
    ),
]  # fmt: skip


def run_step(step: Step, out: Path) -> list[str]:
    """Run one step; the reasons it failed (none when it ran and left a clean report)."""
    with subprocess.Popen(step.argv(out), cwd=REPO) as proc:
        try:
            status = proc.wait(timeout=900)
        except BaseException:
            # SIGTERM first: the bench stops the servers it started, then goes.
            proc.terminate()
            proc.wait(timeout=60)
            raise
    if status != 0:
        return [f"exit status {status}"]
    path = out / step.report
    reports = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not reports or not all(p.is_file() for p in reports):
        return [f"no report at {path}"]
    problems: list[str] = []
    for report in reports:
        data = json.loads(report.read_text())
        problems += step.check(data)
        if "scenarios" in data:
            problems += _http_errors(data)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ci", description=__doc__)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "ci"))
    args = p.parse_args(argv)
    exit_on_sigterm()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    failed: dict[str, list[str]] = {}
    for step in STEPS:
        print(f"\n== bench.ci: {step.name}", flush=True)
        started = time.monotonic()
        try:
            problems = run_step(step, out)
        except (subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
            problems = [repr(exc)]
        if problems:
            failed[step.name] = problems
        state = "FAILED: " + "; ".join(problems) if problems else "ok"
        print(f"== bench.ci: {step.name}: {state} ({time.monotonic() - started:.0f} s)")
    print(f"\nbench.ci: reports in {out}")
    for name, problems in failed.items():
        print(f"bench.ci: FAILED {name}: {'; '.join(problems)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
