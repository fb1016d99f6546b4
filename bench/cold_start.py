"""Cold start and idle memory: `r13 serve` from nothing to its first 200, and what its
workers hold once idle.

``python -m bench.cold_start [--rounds 5] [--workers 2] [--json out.json]``

Each round starts ``r13 serve`` (gunicorn, R13_WORKERS workers, loopback, a free port)
twice: on a fresh data dir (the first start: data dir, database, signing key and admin
key made) and again on that data dir (a restart). The time is from spawning the process
to the first ``GET /-/ping`` answered 200, polled every 5 ms, and the CPU time (user +
system) the server's processes had used by then (the figure a busy machine disturbs
least: the seconds grow with the load, the CPU much less). After the first start the
bench waits until every worker is up and its memory stands still (two readings 0.25 s
apart within 1 %: idle), then reads each worker's memory with psutil's
``memory_full_info()``: RSS (resident, shared pages counted in full), PSS (shared pages
split among the processes sharing them: the fair share, what adds up across workers) and
USS (pages only that worker holds: what stopping it would free). The master is reported
apart. Printed and written as medians over the rounds; bench/RESULTS.md explains which
figure the issue's "RSS of 2 idle workers" target is read against.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.load import HarnessError
from bench.servers import R13, REPO, exit_on_sigterm, free_port, r13_env

MB = 1024 * 1024


def first_200(port: int, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Poll ``GET /-/ping`` every 5 ms until it answers 200; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"r13 serve exited with status {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/-/ping")
            if conn.getresponse().status == 200:
                return time.monotonic()
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    raise HarnessError(f"no 200 from /-/ping within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children so far (`r13 serve` runs
    gunicorn's master in its own process, so this is the whole start's CPU)."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def start_once(
    data: Path, workers: int, log: Path, timeout: float, pythonpath: str | None = None
) -> tuple[float, float, Any]:
    """Start `r13 serve`; (seconds to the first 200, CPU seconds spent by then, the
    running process)."""
    port = free_port()
    env = r13_env(data, port, R13_WORKERS=str(workers))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with log.open("ab") as out:
        t0 = time.monotonic()
        # In the other checkout: `python -m gunicorn` (an exec'ing r13) puts its working
        # directory first on sys.path, ahead of PYTHONPATH.
        proc = subprocess.Popen(
            [str(R13), "serve"], env=env, cwd=pythonpath or REPO, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        seconds = first_200(port, proc, timeout) - t0
        return seconds, cpu_seconds(proc.pid), proc
    except BaseException:
        _stop(proc)
        raise


def _workers(master: int, count: int, timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids: list[psutil.Process] = psutil.Process(master).children()
        if len(kids) >= count:
            return kids[:count]
        time.sleep(0.05)
    raise HarnessError(f"gunicorn did not start {count} workers within {timeout} s")


def idle_memory(master: int, count: int, timeout: float = 60.0) -> dict[str, float]:
    """Memory of the master's workers once it stands still (MB, summed over workers)."""
    workers = _workers(master, count, timeout)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        now = [w.memory_full_info() for w in workers]
        uss = sum(m.uss for m in now)
        if last is not None and abs(uss - last) <= 0.01 * last:
            master_rss = psutil.Process(master).memory_info().rss
            return {
                "workers_rss_mb": sum(m.rss for m in now) / MB,
                "workers_pss_mb": sum(m.pss for m in now) / MB,
                "workers_uss_mb": uss / MB,
                "per_worker_rss_mb": max(m.rss for m in now) / MB,
                "master_rss_mb": master_rss / MB,
            }
        last = uss
        time.sleep(0.25)
    raise HarnessError("the workers' memory did not settle")


def one_round(
    workdir: Path, workers: int, timeout: float, pythonpath: str | None = None
) -> dict[str, float]:
    data = workdir / "data"
    log = workdir / "r13.log"
    first, first_cpu, proc = start_once(data, workers, log, timeout, pythonpath)
    try:
        memory = idle_memory(proc.pid, workers)
    finally:
        _stop(proc)
    restart, restart_cpu, proc = start_once(data, workers, log, timeout, pythonpath)
    _stop(proc)
    return {
        "first_start_s": first,
        "restart_s": restart,
        "first_start_cpu_s": first_cpu,
        "restart_cpu_s": restart_cpu,
        **memory,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to the first 200")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--pythonpath",
        default=None,
        help="serve the r13 of another checkout (its root, built in place): before/after",
    )
    args = p.parse_args(argv)
    exit_on_sigterm()
    if not R13.exists():
        raise HarnessError(f"{R13} not found: run `make build`")
    rounds = []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="r13-cold-") as tmp:
            figures = one_round(Path(tmp), args.workers, args.timeout, args.pythonpath)
        rounds.append(figures)
        print(f"round {n + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"\nmedians of {args.rounds} rounds, {args.workers} workers (gunicorn, `r13 serve`):")
    for key, value in medians.items():
        print(f"  {key:22} {value:9.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"workers": args.workers, "rounds": rounds, "medians": medians}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
