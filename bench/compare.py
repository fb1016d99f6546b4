"""r13 vs Verdaccio in one run: start both, run the HTTP harness on each, compare.

``python -m bench.compare [--duration 10] [--concurrency 32] [--clients 2] ...``
(or ``bench/compare.sh``). Verdaccio comes from the peers directory
(``../shared/peers`` from the repo root, or ``$R13_PEERS``) and is installed once into
``var/bench/verdaccio`` (``$R13_BENCH_VERDACCIO_DIR``). r13 runs as ``.venv/bin/r13
serve`` on a free port with a fresh data dir; its token is ``--r13-token``,
``$R13_TOKEN`` or ``<data>/admin.key``. Reports go to ``bench/results/`` (git-ignored).
Everything started here is stopped here, by PID. Each registry runs alone: it is
started, measured and stopped before the next one starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import http as bh
from bench.load import HarnessError

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def log(msg: str) -> None:
    print(f"[bench.compare] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ping(url: str, alive: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with urllib.request.urlopen(url + "/-/ping", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM one process we started, then SIGKILL it if it will not go."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: poll for existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def start_verdaccio(peers: Path, workdir: Path) -> tuple[str, str, int]:
    script = peers / "verdaccio" / "start"
    if not script.exists():
        raise HarnessError(f"{script} not found (set R13_PEERS)")
    port = free_port()
    log(f"starting Verdaccio on port {port} (first run installs it with npm)")
    proc = subprocess.run(
        [str(script), str(workdir), str(port)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    fields = proc.stdout.strip().split()
    if proc.returncode != 0 or len(fields) != 3:
        raise HarnessError(f"verdaccio did not start: {proc.stderr.strip()[-500:]}")
    return fields[0], fields[1], int(fields[2])


def start_r13(data: Path, env_token: str | None) -> tuple[str, str | None, subprocess.Popen[bytes]]:
    exe = REPO / ".venv" / "bin" / "r13"
    if not exe.exists():
        raise HarnessError(f"{exe} not found: run `make build`")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        {
            "REGISTRY_HOST": "127.0.0.1",
            "REGISTRY_PORT": str(port),
            "R13_DATA": str(data),
            "R13_PUBLIC_URL": url,
            # A benchmark is not an attack: lift the request limit unless told otherwise.
            "SECURITY_RATE_LIMIT_MAX": os.environ.get("SECURITY_RATE_LIMIT_MAX", "2147483647"),
            # Like the peer's config (access: $all): anonymous reads, keyed writes. The
            # auth-full scenario measures the keyed read path.
            "R13_FEATURE_PRIVATE_REGISTRY": os.environ.get("R13_FEATURE_PRIVATE_REGISTRY", "0"),
        }
    )
    log(f"starting r13 on port {port}, data {data}")
    logf = open(data.parent / "r13.log", "wb")  # noqa: SIM115 - lives as long as r13
    proc = subprocess.Popen([str(exe), "serve"], env=env, stdout=logf, stderr=logf)
    if not wait_ping(url, lambda: proc.poll() is None, 60):
        stop_pid(proc.pid)
        raise HarnessError(f"r13 did not answer /-/ping; see {data.parent / 'r13.log'}")
    token = env_token
    key = data / "admin.key"
    deadline = time.monotonic() + 5
    while token is None and time.monotonic() < deadline:
        if key.exists() and key.read_text().strip():
            token = key.read_text().strip()
        else:
            time.sleep(0.1)
    return url, token, proc


def run_harness(label: str, url: str, token: str | None, args: argparse.Namespace) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{label}-{stamp}.json"
    cmd = [
        sys.executable, "-m", "bench.http", "--url", url, "--label", label,
        "--json", str(out), "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--concurrency", str(args.concurrency), "--clients", str(args.clients),
        "--driver", args.driver, "--small", str(args.small),
        "--big-versions", str(args.big_versions), "--scenarios", args.scenarios,
    ]  # fmt: skip
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--driver", choices=("python", "wrk", "auto"), default="python")
    p.add_argument("--small", type=int, default=200)
    p.add_argument("--big-versions", type=int, default=300)
    p.add_argument("--scenarios", default=",".join(bh.ALL_SCENARIOS))
    p.add_argument("--registries", default="r13,verdaccio", help="which to run, comma list")
    p.add_argument("--r13-token", default=os.environ.get("R13_TOKEN"))
    p.add_argument("--keep-data", action="store_true", help="keep r13's temporary data dir")
    args = p.parse_args(argv)

    peers = Path(os.environ.get("R13_PEERS") or REPO.parent / "shared" / "peers")
    vdir = Path(os.environ.get("R13_BENCH_VERDACCIO_DIR") or REPO / "var" / "bench" / "verdaccio")
    RESULTS.mkdir(parents=True, exist_ok=True)
    wanted = [r.strip() for r in args.registries.split(",") if r.strip()]
    reports: dict[str, Path] = {}
    failures: dict[str, str] = {}

    for label in wanted:
        if label == "verdaccio":
            pid: int | None = None
            try:
                vurl, vtoken, pid = start_verdaccio(peers, vdir)
                reports[label] = run_harness(label, vurl, vtoken, args)
            except (HarnessError, OSError, subprocess.TimeoutExpired) as exc:
                failures[label] = str(exc)
            finally:
                if pid is not None:
                    log(f"stopping Verdaccio (pid {pid})")
                    stop_pid(pid)
        elif label == "r13":
            tmp = Path(tempfile.mkdtemp(prefix="r13-bench-"))
            proc = None
            try:
                rurl, rtoken, proc = start_r13(tmp / "data", args.r13_token)
                if not rtoken:
                    log("no r13 token (admin.key absent, no --r13-token/R13_TOKEN)")
                reports[label] = run_harness(label, rurl, rtoken, args)
            except (HarnessError, OSError, subprocess.TimeoutExpired) as exc:
                failures[label] = str(exc)
            finally:
                if proc is not None:
                    log(f"stopping r13 (pid {proc.pid})")
                    stop_pid(proc.pid)
                if args.keep_data:
                    log(f"r13 data kept in {tmp}")
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
        else:
            failures[label] = "unknown registry (choose r13, verdaccio)"

    loaded = {k: json.loads(v.read_text()) for k, v in reports.items()}
    print()
    for report in loaded.values():
        print(bh.markdown_table(report))
    if "r13" in loaded and "verdaccio" in loaded:
        table = bh.compare_table(loaded["r13"], loaded["verdaccio"])
        print(table)
        (RESULTS / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(table)
    for label, why in failures.items():
        print(f"{label}: FAILED: {why}")
    for label, path in reports.items():
        print(f"{label}: {path.relative_to(REPO)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
