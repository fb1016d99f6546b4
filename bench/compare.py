"""r13 vs Verdaccio in one run: start each, run the HTTP harness on it, stop it, compare.

``python -m bench.compare [--duration 10] [--concurrency 32] [--clients 2] ...``
(or ``bench/compare.sh``); ``--registries r13`` runs r13 alone (no Node needed).
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
from bench.servers import Running, exit_on_sigterm, start_r13, start_verdaccio

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def log(msg: str) -> None:
    print(f"[bench.compare] {msg}", file=sys.stderr, flush=True)


def run_harness(
    label: str, url: str, token: str | None, args: argparse.Namespace, pid: int | None = None
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


def measure(label: str, args: argparse.Namespace) -> Path:
    """Start ``label``, run the harness on it, stop it (whatever happened)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"r13-bench-{label}-"))
    server: Running | None = None
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
        else:
            raise HarnessError("unknown registry (choose r13, verdaccio)")
        log(f"{label} answers on {server.url}")
        return run_harness(label, server.url, token, args, server.proc.pid)
    finally:
        if server is not None:
            log(f"stopping {label} (pid {server.proc.pid})")
            server.stop()
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
    p.add_argument("--registries", default="r13,verdaccio", help="which to run, comma list")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the registries in turn this many times; tables show medians",
    )
    p.add_argument("--r13-token", default=os.environ.get("R13_TOKEN"))
    p.add_argument("--out", default=str(RESULTS), help="where the JSON reports go")
    p.add_argument("--keep-data", action="store_true", help="keep the servers' temporary dirs")
    args = p.parse_args(argv)
    exit_on_sigterm()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [r.strip() for r in args.registries.split(",") if r.strip()]
    reports: dict[str, list[Path]] = {label: [] for label in wanted}
    failures: dict[str, str] = {}
    # Alternate the registries round by round: the machine's load drifts, and this spreads
    # the drift over both sides instead of putting all of it on one.
    for n in range(max(1, args.rounds)):
        for label in wanted:
            if label in failures:
                continue
            if args.rounds > 1:
                log(f"round {n + 1} of {args.rounds}: {label}")
            try:
                reports[label].append(measure(label, args))
            except (HarnessError, OSError, subprocess.TimeoutExpired) as exc:
                failures[label] = str(exc)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    loaded: dict[str, dict[str, Any]] = {}
    for label, paths in reports.items():
        if paths and label not in failures:
            loaded[label] = combine([json.loads(p.read_text()) for p in paths])
            if len(paths) > 1:
                (out / f"{label}-{stamp}-median.json").write_text(
                    json.dumps(loaded[label], indent=2) + "\n"
                )
    print()
    for report in loaded.values():
        print(bh.markdown_table(report))
    if "r13" in loaded and "verdaccio" in loaded:
        table = bh.compare_table(loaded["r13"], loaded["verdaccio"])
        print(table)
        (out / f"compare-{stamp}.md").write_text(table)
    for label, why in failures.items():
        print(f"{label}: FAILED: {why}")
    for label, paths in reports.items():
        for path in paths:
            print(f"{label}: {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
