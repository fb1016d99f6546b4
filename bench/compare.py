"""r13 vs Verdaccio vs static nginx in one run: start each, run the HTTP harness on it,
stop it, compare.

``python -m bench.compare [--duration 10] [--concurrency 32] [--clients 2] ...``
(or ``bench/compare.sh``); ``--registries r13`` runs r13 alone (no Node needed).
``nginx-static`` is Debian's nginx serving the same packages as pre-rendered files (the
machine's limit; no publish scenario), ``gunicorn-static`` the same files from memory
under r13's own gunicorn configuration (bench/static_wsgi.py: what no WSGI app on this
stack can pass), ``r13-front`` is r13 behind its nginx front
(R13_ACCEL_REDIRECT: nginx sends tarballs); bench/static_nginx.py starts both. With
``--driver wrk`` (or auto), Debian's wrk is installed when missing.
bench/servers.py starts them: r13 as ``r13 serve`` on a free port with a fresh data dir
(its admin key is the token, or ``--r13-token`` / ``$R13_TOKEN``), Verdaccio 6.8.0 from
bench/verdaccio/ installed once into ``var/bench/verdaccio``
(``$R13_BENCH_VERDACCIO_DIR``). Reports go to ``bench/results/`` (git-ignored), or
``--out``. Each registry runs alone: started, measured and stopped before the next.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import http as bh
from bench.drivers import DRIVERS
from bench.load import HarnessError
from bench.seeding import Names, default_prefix
from bench.servers import Running, exit_on_sigterm, start_r13, start_verdaccio
from bench.static_nginx import ensure_debian, prepare_static, start_front, start_static

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def log(msg: str) -> None:
    print(f"[bench.compare] {msg}", file=sys.stderr, flush=True)


REGISTRIES = ("r13", "verdaccio", "nginx-static", "r13-front", "gunicorn-static")
STATIC = "nginx-static"
CEILING = "gunicorn-static"
# Ratios printed, in order: (numerator, denominator).
RATIOS = (
    ("r13", "verdaccio"),
    ("r13", STATIC),
    ("r13-front", STATIC),
    ("r13-front", "r13"),
    ("r13", CEILING),
    (CEILING, "verdaccio"),
)


def run_harness(
    label: str,
    url: str,
    token: str | None,
    args: argparse.Namespace,
    pid: int | None = None,
    *,
    preseeded: str | None = None,
) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) / f"{label}-{stamp}.json"
    cmd = [
        sys.executable, "-m", "bench.http", "--url", url, "--label", label,
        "--json", str(out), "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--concurrency", str(args.concurrency), "--clients", str(args.clients),
        "--driver", args.driver, "--small", str(args.small), "--requests", str(args.requests),
        "--big-versions", str(args.big_versions), "--scenarios", args.scenarios,
    ]  # fmt: skip
    if pid is not None:
        cmd += ["--server-pid", str(pid)]  # CPU time per request, whatever else loads the machine
    if preseeded is not None:
        # The files were rendered from packages named by this prefix; nothing to publish.
        # Nothing to publish, and they answer npm's Accept-Encoding with the uncompressed
        # bytes: the compressed scenarios would compare different responses.
        skipped = ("publish", *bh.COMPRESSED_SCENARIOS)
        reads = ",".join(n for n in args.scenarios.split(",") if n.strip() not in skipped)
        cmd[cmd.index("--scenarios") + 1] = reads
        cmd += ["--prefix", preseeded, "--preseeded"]
    env = dict(os.environ)
    if token:
        env["BENCH_TOKEN"] = token  # not on the command line, where ps shows it
    log(f"running the harness against {label} ({url})")
    limit = 900 + 8 * (args.duration + args.warmup + 5)
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, timeout=limit, check=False, stdout=subprocess.DEVNULL
    )
    if proc.returncode != 0 or not out.exists():
        raise HarnessError(f"harness failed against {label} (exit {proc.returncode})")
    return out


def measure(label: str, args: argparse.Namespace, static: Path | None = None) -> Path:
    """Start ``label``, run the harness on it, stop it (whatever happened)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"r13-bench-{label}-"))
    server: Running | None = None
    behind: Running | None = None
    preseeded: str | None = None
    try:
        if label == "r13":
            # Like Verdaccio's `access: $all`: anonymous reads, keyed writes. The
            # auth-full scenario measures the keyed read path.
            private = os.environ.get("R13_FEATURE_PRIVATE_REGISTRY", "0")
            server = start_r13(tmp / "data", {"R13_FEATURE_PRIVATE_REGISTRY": private})
            token = args.r13_token or server.token
        elif label == "verdaccio":
            vdir = os.environ.get("R13_BENCH_VERDACCIO_DIR") or REPO / "var/bench/verdaccio"
            log("starting Verdaccio (the first run installs it with npm ci)")
            server = start_verdaccio(Path(vdir))
            token = server.token
        elif label == STATIC:
            if static is None:
                raise HarnessError("nginx-static needs its rendered files")
            server = start_static(static, tmp / "nginx", args.nginx_workers)
            token = "static-files-ignore-this"  # auth-full runs; nginx ignores the header
            preseeded = args.prefix
        elif label == CEILING:
            if static is None:
                raise HarnessError("gunicorn-static needs its rendered files")
            argv = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf",
                    "bench.static_wsgi:application"]  # fmt: skip
            server = start_r13(tmp / "data", {"R13_BENCH_DOCROOT": str(static)}, argv=argv)
            token = "static-files-ignore-this"
            preseeded = args.prefix
        elif label == "r13-front":
            server, behind = start_front(tmp, args.nginx_workers)
            token = args.r13_token or server.token
        else:
            raise HarnessError(f"unknown registry (choose {', '.join(REGISTRIES)})")
        log(f"{label} answers on {server.url}")
        try:
            return run_harness(label, server.url, token, args, server.proc.pid, preseeded=preseeded)
        except HarnessError:
            # The servers' logs say why (a 500 names its exception there): keep them.
            kept = Path(args.out) / f"failed-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
            for found in tmp.rglob("*.log"):
                kept.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found, kept / found.name)
            log(f"{label} failed; its servers' logs are in {kept}")
            raise
    finally:
        if server is not None:
            log(f"stopping {label} (pid {server.proc.pid})")
            server.stop()
        if behind is not None:
            log(f"stopping r13 behind the front (pid {behind.proc.pid})")
            behind.stop()
        if args.keep_data:
            log(f"{label}'s files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def combine(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several rounds against one registry: per scenario, the median of
    req/s, p50 and p99 over the rounds (requests and errors summed)."""
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    scenarios: dict[str, Any] = {}
    for name in first["scenarios"]:
        runs = [r["scenarios"][name] for r in reports if name in r["scenarios"]]
        measured = [k for k in ("cpu_us_per_request", "server_cores") if all(k in r for r in runs)]
        scenarios[name] = {
            **{k: statistics.median(run[k] for run in runs) for k in ("rps", "p50_ms", "p99_ms")},
            **{k: statistics.median(run[k] for run in runs) for k in measured},
            "max_ms": max(run["max_ms"] for run in runs),
            "requests": sum(run["requests"] for run in runs),
            "errors": sum(run["errors"] for run in runs),
            "rps_runs": [run["rps"] for run in runs],
            "driver": runs[0]["driver"],
        }
    params = {**first["params"], "rounds": len(reports)}
    seeds = [r["seed"] for r in reports if "seed" in r]
    return {**first, "params": params, "scenarios": scenarios, "seed": seeds[0],
            "rounds": [r["started"] for r in reports]}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--requests", type=int, default=0, help="responses per scenario (0: duration)")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--driver", choices=DRIVERS, default="python")
    p.add_argument("--small", type=int, default=200)
    p.add_argument("--big-versions", type=int, default=300)
    p.add_argument("--scenarios", default=",".join(bh.ALL_SCENARIOS))
    p.add_argument(
        "--registries",
        default="r13,verdaccio,nginx-static",
        help=f"which to run, comma list of {', '.join(REGISTRIES)}",
    )
    p.add_argument("--nginx-workers", type=int, default=2, help="nginx worker processes")
    p.add_argument(
        "--prefix",
        default=None,
        help="package names nginx-static's files are rendered from (default: unique)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the registries in turn this many times; tables show medians",
    )
    p.add_argument("--r13-token", default=os.environ.get("R13_TOKEN"))
    p.add_argument("--out", default=str(RESULTS), help="where the JSON reports go")
    p.add_argument("--keep-data", action="store_true", help="keep the servers' temporary dirs")
    p.add_argument(
        "--reports",
        nargs="+",
        metavar="JSON",
        help="measure nothing: print the tables of these reports of one run (medians per label)",
    )
    args = p.parse_args(argv)
    exit_on_sigterm()
    if args.reports:
        by_label: dict[str, list[dict[str, Any]]] = {}
        for path in args.reports:
            report = json.loads(Path(path).read_text())
            by_label.setdefault(report.get("label") or path, []).append(report)
        saved = {label: combine(found) for label, found in by_label.items()}
        print(bh.ratio_table(saved, RATIOS))
        for a, b in RATIOS:
            if a in saved and b in saved:
                print(bh.compare_table(saved[a], saved[b]))
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [r.strip() for r in args.registries.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in REGISTRIES]
    if unknown:
        p.error(f"unknown registries {unknown} (choose from {', '.join(REGISTRIES)})")
    reports: dict[str, list[Path]] = {label: [] for label in wanted}
    failures: dict[str, str] = {}
    if args.driver in ("wrk", "auto"):
        ensure_debian(Path("/usr/bin/wrk"), "wrk")
    args.prefix = args.prefix or default_prefix()
    static: Path | None = None
    work = Path(tempfile.mkdtemp(prefix="r13-bench-static-"))
    if STATIC in wanted or CEILING in wanted:
        log("rendering the static files from packages seeded into a fresh r13")
        try:
            static = prepare_static(work, Names(args.prefix, args.small), args.big_versions)
        except (HarnessError, OSError) as exc:
            for label in (STATIC, CEILING):
                if label in wanted:
                    failures[label] = str(exc)
    # Alternate the registries round by round: the machine's load drifts, and this spreads
    # the drift over both sides instead of putting all of it on one.
    for n in range(max(1, args.rounds)):
        for label in wanted:
            if label in failures:
                continue
            if args.rounds > 1:
                log(f"round {n + 1} of {args.rounds}: {label}")
            try:
                reports[label].append(measure(label, args, static))
            except (HarnessError, OSError, subprocess.TimeoutExpired) as exc:
                failures[label] = str(exc)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    loaded: dict[str, dict[str, Any]] = {}
    for label, paths in reports.items():
        if paths:  # a registry that failed in a later round keeps its completed rounds
            loaded[label] = combine([json.loads(p.read_text()) for p in paths])
            if len(paths) > 1:
                (out / f"{label}-{stamp}-median.json").write_text(
                    json.dumps(loaded[label], indent=2) + "\n"
                )
    print()
    for report in loaded.values():
        print(bh.markdown_table(report))
    shutil.rmtree(work, ignore_errors=True)
    tables = [
        bh.compare_table(loaded[a], loaded[b]) for a, b in RATIOS if a in loaded and b in loaded
    ]
    if len(loaded) > 1:
        tables.insert(0, bh.ratio_table(loaded, RATIOS))
    if tables:
        text = "\n".join(tables)
        print(text)
        (out / f"compare-{stamp}.md").write_text(text)
    for label, why in failures.items():
        print(f"{label}: FAILED: {why}")
    for label, paths in reports.items():
        for path in paths:
            print(f"{label}: {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
