"""HTTP load harness for any npm registry: seed through the publish API, then measure.

Usage::

    python -m bench.http --url http://127.0.0.1:4873 --token T [--duration 10]
        [--concurrency 32] [--clients 2] [--json out.json] [--markdown out.md]
    python -m bench.http --compare r13.json verdaccio.json

Seeding publishes, through ``PUT /:pkg`` exactly as npm does: ``--small`` unscoped
packages (default 200), one package with ``--big-versions`` versions (default 300,
sequential publishes), one scoped package ``@bench/<prefix>-scoped`` and one package
that the publish scenario adds versions to. Names start with ``--prefix`` (default:
unique per run) so re-runs against the same registry never collide.

Each read scenario runs for ``--duration`` seconds (or until ``--requests`` responses)
over ``--concurrency`` keep-alive connections spread across ``--clients`` worker
processes, driven by bench/load.py: its own Python engine, or wrk with ``--driver wrk``
(or ``auto``) when wrk is installed. Without wrk the Python engine runs; the report
says which driver ran and why.

Only loopback URLs are accepted unless ``--allow-remote`` is given. Every loop is
bounded by a deadline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.drivers import DRIVERS, Driver, choose_driver, load
from bench.load import (
    FULL_ACCEPT,
    HarnessError,
    LoadResult,
    Target,
    encode_get,
    parse_target,
    summarize,
)
from bench.seeding import (
    Client,
    Names,
    Seeded,
    default_prefix,
    packument_path,
    publish_body,
    seed,
)

ABBREVIATED = "application/vnd.npm.install-v1+json"
# Read scenarios in report order, then publish.
READ_SCENARIOS = ("small-full", "small-abbrev", "big-full", "scoped-full", "tarball", "auth-full")
ALL_SCENARIOS = (*READ_SCENARIOS, "publish")
DESCRIPTIONS = {
    "small-full": "small packument, full",
    "small-abbrev": "small packument, abbreviated (install-v1)",
    "big-full": "packument with many versions, full",
    "scoped-full": "scoped packument (@bench%2fname)",
    "tarball": "tarball GET (dist.tarball)",
    "auth-full": "small packument, full, with Bearer token",
    "publish": "publish a new version (sequential)",
}


# --------------------------------------------------------------------------- scenarios


@dataclass
class Options:
    target: Target
    token: str | None
    duration: float = 10.0
    concurrency: int = 32
    clients: int = 2
    warmup: float = 1.0
    driver: Driver = field(default_factory=lambda: Driver("python", "python"))
    requests: int = 0  # a scenario ends after this many responses (0: after duration)


def scenario_requests(opts: Options, seeded: Seeded, name: str) -> list[bytes]:
    t, n = opts.target, seeded.names
    if name == "small-full":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, None) for p in n.small]
    if name == "small-abbrev":
        return [encode_get(t, packument_path(p), ABBREVIATED, None) for p in n.small]
    if name == "big-full":
        return [encode_get(t, packument_path(n.big), FULL_ACCEPT, None)]
    if name == "scoped-full":
        return [encode_get(t, packument_path(n.scoped), FULL_ACCEPT, None)]
    if name == "tarball":
        return [encode_get(t, p, "*/*", None) for p in seeded.tarball_paths]
    if name == "auth-full":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, opts.token) for p in n.small]
    raise HarnessError(f"unknown scenario {name!r}")


def run_read(opts: Options, seeded: Seeded, name: str) -> dict[str, Any]:
    return load(
        opts.driver,
        opts.target,
        scenario_requests(opts, seeded, name),
        duration=opts.duration,
        warmup=opts.warmup,
        concurrency=opts.concurrency,
        clients=opts.clients,
        max_responses=opts.requests,
    )


def run_publish(opts: Options, seeded: Seeded) -> dict[str, Any]:
    """Sequential publishes of new versions of one package, on one keep-alive connection."""
    c = Client(opts.target, opts.token)
    lat: list[int] = []
    errors = 0
    statuses: dict[int, int] = {}
    name = seeded.names.pub
    # Build bodies ahead of time so only the request is timed.
    t0 = time.perf_counter()
    end = t0 + opts.duration
    try:
        while time.perf_counter() < end and not (opts.requests and len(lat) >= opts.requests):
            v = f"1.{seeded.pub_next}.0"
            seeded.pub_next += 1
            body, _ = publish_body(opts.target, name, v)
            s = time.perf_counter_ns()
            try:
                status, _data = c.request("PUT", packument_path(name), body=body, auth=True)
            except OSError:
                status = 0
                c.close()
            lat.append((time.perf_counter_ns() - s) // 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if not 200 <= status < 300:
                errors += 1
    finally:
        c.close()
    res = LoadResult(count=len(lat), errors=errors, latencies_us=array("q", lat))
    res.statuses = statuses
    wall = max(1e-9, time.perf_counter() - t0)
    out = summarize(res, wall)
    out["driver"] = "python"  # one connection, sequential: never wrk
    return out


# --------------------------------------------------------------------------- reports


def markdown_table(report: dict[str, Any]) -> str:
    p = report["params"]
    bound = f"{p['requests']} responses" if p.get("requests") else f"{p['duration']} s"
    if p.get("rounds", 1) > 1:
        bound += f" (medians of {p['rounds']} rounds)"
    driver = p["driver"] + (f" ({p['driver_note']})" if p.get("driver_note") else "")
    lines = [
        f"### {report.get('label') or report['url']}",
        "",
        f"{report['url']} — {bound} per scenario, {p['concurrency']} connections, "
        f"{p['clients']} client processes, driver {driver}",
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors | requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["scenarios"].items():
        lines.append(
            f"| {name} | {s['rps']:.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
            f"| {s['errors']} | {s['requests']} |"
        )
    if "seed" in report:
        sd = report["seed"]
        lines += ["", f"Seeded {sd['publishes']} publishes in {sd['seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "—"


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> str:
    la = a.get("label") or "A"
    lb = b.get("label") or "B"
    lines = [
        f"### {la} vs {lb} (ratio = {la} / {lb}; req/s higher is better, latency lower)",
        "",
        f"| scenario | {la} req/s | {lb} req/s | req/s ratio | {la} p50 | {lb} p50 | p50 ratio "
        f"| {la} p99 | {lb} p99 | p99 ratio | errors {la}/{lb} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(a["scenarios"]) + [n for n in b["scenarios"] if n not in a["scenarios"]]
    for n in names:
        sa, sb = a["scenarios"].get(n), b["scenarios"].get(n)
        if sa is None or sb is None:
            only = la if sb is None else lb
            lines.append(f"| {n} | (only in {only}) |||||||||| ")
            continue
        lines.append(
            f"| {n} | {sa['rps']:.1f} | {sb['rps']:.1f} | {_ratio(sa['rps'], sb['rps'])} "
            f"| {sa['p50_ms']:.2f} | {sb['p50_ms']:.2f} | {_ratio(sa['p50_ms'], sb['p50_ms'])} "
            f"| {sa['p99_ms']:.2f} | {sb['p99_ms']:.2f} | {_ratio(sa['p99_ms'], sb['p99_ms'])} "
            f"| {sa['errors']}/{sb['errors']} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- run


def run(
    opts: Options,
    names: Names,
    big_versions: int,
    scenarios: Iterable[str] = ALL_SCENARIOS,
    label: str = "",
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    seeded = seed(opts.target, opts.token, names, big_versions, log=log)
    log(f"seeded {seeded.publishes} publishes in {seeded.seconds:.1f} s")
    results: dict[str, Any] = {}
    for name in scenarios:
        log(f"running {name} for {opts.duration} s")
        if name == "publish":
            results[name] = run_publish(opts, seeded)
        else:
            if name == "auth-full" and not opts.token:
                continue
            results[name] = run_read(opts, seeded, name)
        s = results[name]
        log(
            f"  {name}: {s['rps']} req/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms "
            f"errors {s['errors']}"
        )
    return {
        "label": label,
        "url": opts.target.url,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "prefix": names.prefix,
        "params": {
            "duration": opts.duration,
            "concurrency": opts.concurrency,
            "clients": opts.clients,
            "warmup": opts.warmup,
            "requests": opts.requests,
            **opts.driver.as_dict(),
            "small_packages": names.small_count,
            "big_versions": big_versions,
        },
        "seed": {"publishes": seeded.publishes, "seconds": round(seeded.seconds, 2)},
        "scenarios": results,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }


def run_probe(opts: Options, path: str, label: str = "") -> dict[str, Any]:
    """One read scenario on a fixed path, no seeding: the load engine's own ceiling."""
    if not path.startswith("/"):
        raise HarnessError("--probe PATH must start with /")
    result = load(
        opts.driver,
        opts.target,
        [encode_get(opts.target, path, FULL_ACCEPT, opts.token)],
        duration=opts.duration,
        warmup=opts.warmup,
        concurrency=opts.concurrency,
        clients=opts.clients,
        max_responses=opts.requests,
    )
    return {
        "label": label,
        "url": opts.target.url,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {
            "duration": opts.duration,
            "concurrency": opts.concurrency,
            "clients": opts.clients,
            "warmup": opts.warmup,
            "requests": opts.requests,
            **opts.driver.as_dict(),
            "probe": path,
        },
        "scenarios": {f"probe {path}": result},
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n")[0])
    p.add_argument("--url", help="registry base URL, e.g. http://127.0.0.1:4873")
    p.add_argument("--token", default=os.environ.get("BENCH_TOKEN"), help="Bearer token")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    p.add_argument(
        "--requests",
        type=int,
        default=0,
        metavar="N",
        help="end each scenario after N responses instead (--duration stays the time limit)",
    )
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    p.add_argument("--clients", type=int, default=2, help="worker processes")
    p.add_argument("--prefix", default=None, help="package name prefix (default: unique)")
    p.add_argument("--small", type=int, default=200, help="small packages to seed")
    p.add_argument("--big-versions", type=int, default=300, help="versions of the big package")
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma list from {','.join(ALL_SCENARIOS)}",
    )
    p.add_argument(
        "--driver",
        choices=DRIVERS,
        default="python",
        help="read-scenario load generator; wrk and auto fall back to python without wrk",
    )
    p.add_argument(
        "--probe",
        metavar="PATH",
        help="no seeding: load GET PATH only (measures the harness or a server's ceiling)",
    )
    p.add_argument("--label", default="", help="name of this registry in reports")
    p.add_argument("--json", dest="json_out", help="write the report as JSON here")
    p.add_argument("--markdown", help="write the markdown table here")
    p.add_argument("--allow-remote", action="store_true", help="allow non-loopback URLs")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print A vs B from two reports (ratios A / B) and exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.compare:
            reports = []
            for path in args.compare:
                with open(path, encoding="utf-8") as f:
                    reports.append(json.load(f))
            table = compare_table(reports[0], reports[1])
            print(table, end="")
            if args.markdown:
                with open(args.markdown, "w", encoding="utf-8") as f:
                    f.write(table)
            return 0
        if not args.url:
            raise HarnessError("--url is required (or --compare A.json B.json)")
        target = parse_target(args.url, args.allow_remote)
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [s for s in scenarios if s not in ALL_SCENARIOS]
        if unknown:
            raise HarnessError(f"unknown scenarios: {', '.join(unknown)}")
        if args.duration <= 0 or args.duration > 3600:
            raise HarnessError("--duration must be in (0, 3600]")
        if args.requests < 0:
            raise HarnessError("--requests must be 0 (no limit) or more")
        driver = choose_driver(args.driver, counted=args.requests > 0)
        print(f"[bench.http] driver: {driver.describe()}", file=sys.stderr, flush=True)
        opts = Options(
            target=target,
            token=args.token or None,
            duration=args.duration,
            concurrency=max(1, args.concurrency),
            clients=max(1, args.clients),
            warmup=max(0.0, args.warmup),
            driver=driver,
            requests=args.requests,
        )
        names = Names(args.prefix or default_prefix(), max(1, args.small))

        def log(msg: str) -> None:
            if not args.quiet:
                print(f"[bench.http] {msg}", file=sys.stderr, flush=True)

        if args.probe:
            report = run_probe(opts, args.probe, args.label)
        else:
            report = run(opts, names, max(1, args.big_versions), scenarios, args.label, log)
    except HarnessError as exc:
        print(f"bench.http: {exc}", file=sys.stderr)
        return 2
    except (OSError, http.client.HTTPException) as exc:
        print(f"bench.http: cannot talk to the registry: {exc}", file=sys.stderr)
        return 2
    table = markdown_table(report)
    print(table, end="")
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
