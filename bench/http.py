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

The harness by part: bench/seeding.py is the fixture (publishes and checks the
packages), bench/load.py the load engine and bench/drivers.py its drivers (Python or
wrk), bench/scenarios.py what each scenario loads and a whole run, bench/report.py the
JSON report and its tables, and this module the command line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from collections.abc import Sequence

from bench.drivers import DRIVERS, choose_driver
from bench.load import HarnessError, parse_target
from bench.report import compare_table, markdown_table, ratio_table
from bench.scenarios import ALL_SCENARIOS, COMPRESSED_SCENARIOS, Options, run, run_probe
from bench.seeding import Names, default_prefix

__all__ = [
    "ALL_SCENARIOS",
    "COMPRESSED_SCENARIOS",
    "build_parser",
    "compare_table",
    "main",
    "markdown_table",
    "ratio_table",
]


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
    p.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="the server's root process: report its CPU time per request (with descendants)",
    )
    p.add_argument(
        "--preseeded",
        action="store_true",
        help="the packages named by --prefix are there already (a static server): read "
        "them back instead of publishing; the publish scenario cannot run",
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
            server_pid=args.server_pid,
        )
        names = Names(args.prefix or default_prefix(), max(1, args.small))

        def log(msg: str) -> None:
            if not args.quiet:
                print(f"[bench.http] {msg}", file=sys.stderr, flush=True)

        if args.probe:
            report = run_probe(opts, args.probe, args.label)
        else:
            if args.preseeded and "publish" in scenarios:
                raise HarnessError("--preseeded: the publish scenario needs a registry")
            report = run(
                opts,
                names,
                max(1, args.big_versions),
                scenarios,
                args.label,
                log,
                preseeded=args.preseeded,
            )
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
