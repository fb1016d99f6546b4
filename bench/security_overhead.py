"""What the security layer costs a small packument GET, end to end through gunicorn.

``python -m bench.security_overhead [--rounds 3] [--duration 6]``

Starts r13 (2 workers x 4 threads) on a fresh data dir, publishes one small package,
then alternates: the real app (PRIVATE_REGISTRY on, GET with a Bearer key: client
address, per-address and per-key limits, block check, key, permission check,
counters, rate-limit headers) and ``bench.bare_wsgi`` (the same app with the layer
swapped for a no-op, PRIVATE_REGISTRY off, anonymous GET). Each run is wrk
``-t2 -c16`` for ``--duration`` s. Prints req/s per run, the medians and the layer's
share of the time per request. Stops everything it starts, by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.compare import free_port
from tests.npm_builders import publish_body

REPO = Path(__file__).resolve().parents[1]
R13 = Path(sys.executable).parent / "r13"


def _env(data: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "R13_DATA": str(data),
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "R13_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "R13_WORKERS": "2",
        "R13_THREADS": "4",
        "SECURITY_RATE_LIMIT_MAX": "2147483647",
        "R13_FEATURE_LOGGING": "0",
    }


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with urllib.request.urlopen(url + "/-/ping", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer")


def _start(argv: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    _wait(url, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wrk(url: str, duration: float, header: str | None) -> float:
    argv = ["wrk", "-t2", "-c16", f"-d{max(1, round(duration))}s", url + "/small"]
    if header:
        argv[1:1] = ["-H", header]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or non2xx is not None:
        raise RuntimeError(f"wrk failed or saw errors:\n{out}")
    return float(match.group(1))


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.security_overhead")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="r13-secbench-"))
    data = root / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(data, port)
    secured = [str(R13), "serve"]
    bare = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf",
            "bench.bare_wsgi:application"]  # fmt: skip
    proc = _start(secured, env, url)
    try:
        admin = (data / "admin.key").read_text().strip()
        body = json.dumps(publish_body("small", "1.0.0")).encode()
        req = urllib.request.Request(url + "/small", data=body, method="PUT", headers={
            "Authorization": f"Bearer {admin}", "Content-Type": "application/json"})  # fmt: skip
        urllib.request.urlopen(req, timeout=30).read()
    finally:
        _stop(proc)
    results: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(args.rounds):
        for label, argv, private, header in (
            ("with", secured, "1", f"Authorization: Bearer {admin}"),
            ("without", bare, "0", None),
        ):
            proc = _start(argv, {**env, "R13_FEATURE_PRIVATE_REGISTRY": private}, url)
            try:
                _wrk(url, 1.0, header)  # warm-up
                rate = _wrk(url, args.duration, header)
            finally:
                _stop(proc)
            results[label].append(rate)
            print(f"{label:8} {rate:9.1f} req/s", flush=True)
    with_layer = statistics.median(results["with"])
    without = statistics.median(results["without"])
    share = 1 - with_layer / without
    print(f"median with the layer {with_layer:.1f} req/s, without {without:.1f} req/s")
    print(f"the layer's share of the time per request: {share * 100:.1f}%")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
