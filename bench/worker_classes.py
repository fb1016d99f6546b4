"""gunicorn's gevent worker against its gthread worker, same r13, one run.

``python -m bench.worker_classes [--paths /small,/-/ping] [--rounds 3] [--duration 6]``

For each path, alternates (bench/ab.py) r13 with ``R13_WORKER_CLASS=gevent`` (the
default) and ``R13_WORKER_CLASS=gthread`` (the server model before; ``R13_THREADS``
8) on one data dir, r13's defaults otherwise (2 workers). ``small@1.0.0`` is published
first and every GET carries the admin key (PRIVATE_REGISTRY on, the default). Prints
req/s, p99 and the workers' CPU time per request per run, the medians and
gevent/gthread per path; writes a JSON report. The figures to read are the ratios within
one run; on a machine other jobs load, CPU per request (user + system time of the worker
processes over the measured run, divided by its requests) moves least, and the CPU the
workers got (cores: that time over the run's duration) and the time their threads spent
runnable but waiting for a CPU (``queued``, from /proc/<pid>/task/*/schedstat) show how
the scheduler shared the machine with the other jobs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench import ab
from bench.drivers import choose_driver, load
from bench.load import FULL_ACCEPT, HarnessError, encode_get, parse_target
from bench.security_overhead import publish_small
from bench.servers import exit_on_sigterm, free_port, start_r13

CLASSES = ("gevent", "gthread")


def _workers_cpu(master: int) -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU) of the master's children (the
    workers) so far, summed over their threads (Linux ``/proc/<pid>/task/*/schedstat``)."""
    run = wait = 0
    for child in psutil.Process(master).children():
        for stat in Path(f"/proc/{child.pid}/task").glob("*/schedstat"):
            try:
                on_cpu, queued, _ = stat.read_text().split()
            except (OSError, ValueError):
                continue  # a thread that just ended
            run, wait = run + int(on_cpu), wait + int(queued)
    return run / 1e9, wait / 1e9


def alternate(
    data: Path, variants: list[ab.Variant], path: str, args: argparse.Namespace
) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """bench/ab.py's alternation, plus the workers' CPU seconds per request of each run."""
    driver = choose_driver(args.driver)
    ab.log(f"driver: {driver.describe()}")
    port = free_port()
    target = parse_target(f"http://127.0.0.1:{port}")
    results: dict[str, list[dict[str, Any]]] = {v.label: [] for v in variants}
    for n in range(args.rounds):
        for v in variants:
            server = start_r13(data, v.env, argv=v.argv, port=port)
            try:
                request = [encode_get(target, path, FULL_ACCEPT, v.token)]
                common = {"concurrency": args.concurrency, "clients": args.clients}
                if args.warmup > 0:  # outside the CPU count
                    load(driver, target, request, duration=args.warmup, warmup=0, **common)
                cpu0, queued0 = _workers_cpu(server.proc.pid)
                result = load(driver, target, request, duration=args.duration, warmup=0, **common)
                cpu1, queued1 = _workers_cpu(server.proc.pid)
                cpu, queued = cpu1 - cpu0, queued1 - queued0
            finally:
                server.stop()
            if result["errors"] or not result["requests"]:
                raise HarnessError(f"{v.label}: {result['errors']} errors: {result}")
            result["cpu_us_per_request"] = round(cpu * 1e6 / result["requests"], 1)
            result["cpu_cores"] = round(cpu / args.duration, 3)  # the CPU the workers got
            result["queued_s"] = round(queued, 3)  # runnable, waiting for a CPU
            results[v.label].append(result)
            ab.log(f"round {n + 1} {v.label:>8}: {result['rps']:9.1f} req/s, "
                   f"{result['cpu_us_per_request']:7.1f} us CPU/request, "
                   f"{result['cpu_cores']:.2f} cores, {queued:.1f} s queued")  # fmt: skip
    return driver, results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker_classes", description=__doc__)
    ab.add_arguments(p, rounds=3, duration=6.0)
    p.add_argument("--paths", default="/small,/-/ping", help="comma-separated GET paths")
    p.add_argument("--classes", default=",".join(CLASSES), help="the order within a round")
    args = p.parse_args(argv)
    exit_on_sigterm()

    def variants(data: Path) -> list[ab.Variant]:
        admin = publish_small(data)
        order = [c.strip() for c in args.classes.split(",")]
        if sorted(order) != sorted(CLASSES):
            raise HarnessError(f"--classes must name {', '.join(CLASSES)} once each")
        return [ab.Variant(c, {"R13_WORKER_CLASS": c}, token=admin) for c in order]

    summary: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    driver = None
    for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
        root = Path(tempfile.mkdtemp(prefix="r13-classes-"))
        try:
            driver, results = alternate(root / "data", variants(root / "data"), path, args)
        except HarnessError as exc:
            print(f"bench.worker_classes: {exc}", file=sys.stderr)
            return 2
        finally:
            shutil.rmtree(root, ignore_errors=True)
        med = ab.medians(results)
        cpu = {
            k: statistics.median(r["cpu_us_per_request"] for r in rs) for k, rs in results.items()
        }
        p99 = {
            k: statistics.median(r["p99_ms"] for r in rs if r.get("p99_ms") is not None)
            for k, rs in results.items()
            if any(r.get("p99_ms") is not None for r in rs)
        }
        ratio = med["gevent"] / med["gthread"]
        print(f"{path}: median req/s gevent {med['gevent']:.1f}, gthread {med['gthread']:.1f}, "
              f"gevent/gthread {ratio:.3f}; median p99 ms {p99}; "
              f"median worker CPU us/request {cpu}")  # fmt: skip
        summary[path] = {"median_rps": med, "gevent_over_gthread": round(ratio, 4),
                         "median_p99_ms": p99, "median_cpu_us_per_request": cpu}  # fmt: skip
        for label, rs in results.items():
            runs[f"{path} {label}"] = rs
    assert driver is not None
    print(f"driver: {driver.describe()}")
    print(f"report: {ab.write_report('worker_classes', args, driver, runs, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
