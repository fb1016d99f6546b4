"""Where a hot read spends its time: py-spy samples r13's workers while wrk loads one GET.

``python -m bench.profile_hot [--path small] [--duration 10] [--rate 200] [--auth]
[--accept abbreviated] [--versions 1] [--out bench/results/profile]``

Starts ``r13 serve`` (2 gevent workers, PRIVATE_REGISTRY off unless ``--auth``: anonymous
reads, as in bench/compare.py) on a fresh data dir, publishes the package ``--path``
(``--versions`` versions), loads ``GET /<path>`` with the harness's driver (wrk when
installed, ``--concurrency 32 --clients 2``) and meanwhile runs ``py-spy record
--subprocesses`` on the gunicorn master: every worker is sampled ``--rate`` times a second,
idle stacks left out (a worker waiting in the hub for the next request is not the path).

The summary puts every sample in one bucket: walking the stack from its innermost frame
outwards, the first frame that belongs to a bucket of :data:`BUCKETS` (gunicorn's parser,
falcon's routing, each middleware, the limiter, the key cache, the monitor, the response,
...) takes it. So the percentages add up to 100 and each says what that part itself costs
(what it calls in the standard library or in C counts as its own; what it calls in another
bucket counts there). It prints a markdown table and writes ``profile-<stamp>.txt`` (the
raw collapsed stacks, one ``frame;frame;... count`` a line: what flame graph tools such as
flamegraph.pl read) and ``.json`` (the table). ``--summarize RAW`` prints the table of a
raw file again.

The sampler pauses a worker for each sample (we run as root; ``--nonblocking`` otherwise):
the req/s printed under profiling is lower than without it, and is not a figure to compare.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.drivers import choose_driver, load
from bench.load import FULL_ACCEPT, HarnessError, encode_get, parse_target
from bench.seeding import Client, publish
from bench.servers import REPO, exit_on_sigterm, start_r13

RESULTS = REPO / "bench" / "results" / "profile"
ABBREVIATED = "application/vnd.npm.install-v1+json"

# (bucket, file pattern, function pattern or None for any). Matched against each frame
# from the innermost outwards; the first frame that matches a row names the sample's bucket.
# Order matters only among rows that match the same frame.
BUCKETS: list[tuple[str, str, str | None]] = [
    ("socket send (syscalls)", r"gevent/_socket", r"send"),
    ("socket recv (syscalls)", r"gevent/_socket", r"recv"),
    ("limiter (r13core/ratelimit.py + C)", r"r13core/ratelimit\.py", None),
    ("key cache (authenticate)", r"r13core/(keys|identity)\.py", None),
    ("blocks and change signal", r"r13core/(abuse|storage/signals?|storage/.*signal)", None),
    ("security counters", r"r13core/(security_counters|counters)\.py", None),
    ("monitor counters (C)", r"r13core/metrics\.py", None),
    ("record read (13 bytes)", r"r13core/config\.py", None),
    ("access log", r"app/monitoring/logs\.py", None),
    ("access log", r"app/monitoring/middleware\.py", r"process_response"),
    ("monitor middleware", r"app/monitoring/", None),
    ("security middleware", r"app/security_middleware\.py", None),
    ("access decision (Guard, Policy)", r"app/auth\.py|r13core/access\.py|r13core/patterns", None),
    ("render cache (r13core/registry)", r"r13core/registry/", None),
    ("SQLite (package rev, counters flush)", r"r13core/storage/|sqlite3", None),
    ("package resource (parse, ETag, gzip)", r"app/resources/packages\.py|app/http\.py", None),
    ("package resource (parse, ETag, gzip)", r"app/hosts\.py|r13core/names\.py", None),
    ("hot reads (app/hot_reads.py)", r"app/(hot_reads|main)\.py", None),
    ("falcon routing", r"falcon/routing/", None),
    ("falcon request/response objects", r"falcon/(request|response|request_helpers|util)", None),
    ("falcon app (dispatch, middleware loop)", r"falcon/", None),
    ("WSGI wrappers (upgrades, body deadline)", r"app/(live/websocket|slow_clients)\.py", None),
    ("gunicorn post_request (yield to the hub)", r"app/gunicorn_conf\.py", None),
    ("r13's gunicorn response + request set-up", r"app/gunicorn_(response|request)\.py", None),
    ("gunicorn request parser", r"gunicorn/http/(parser|message|unreader|body)\.py", None),
    ("gunicorn environ + response", r"gunicorn/http/wsgi\.py", None),
    ("gunicorn worker loop", r"gunicorn/", None),
    ("gevent hub + sockets", r"gevent/", None),
]
_COMPILED = [(name, re.compile(f), re.compile(fn) if fn else None) for name, f, fn in BUCKETS]
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def bucket_of(stack: list[str]) -> str:
    """The bucket of one sample (frames root first, as py-spy writes them)."""
    for frame in reversed(stack):
        m = _FRAME.match(frame)
        func, file = (m["func"], m["file"]) if m else (frame, "")
        for name, file_re, func_re in _COMPILED:
            if file_re.search(file) and (func_re is None or func_re.search(func)):
                return name
    return "other"


def summarize(collapsed: str) -> dict[str, Any]:
    """Per bucket: samples and percent of all (non-idle) samples of the workers, largest
    first. The master's samples (the arbiter, its control socket) and each worker's other
    threads are left out: only what runs in a worker's main thread serves requests."""
    counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        # --subprocesses: "process <master>:...;process <worker>:...;frames"
        processes = sum(1 for f in frames[:2] if f.startswith("process "))
        frames = frames[processes:]
        if processes == 1 or any("threading.py" in f for f in frames[:2]):
            continue
        counts[bucket_of(frames)] += int(n)
        total += int(n)
    rows = [
        {"bucket": name, "samples": c, "percent": round(100 * c / total, 1) if total else 0.0}
        for name, c in counts.most_common()
    ]
    return {"samples": total, "buckets": rows}


def markdown(summary: dict[str, Any], title: str) -> str:
    lines = [f"| {title} | samples | % |", "|---|---:|---:|"]
    for row in summary["buckets"]:
        lines.append(f"| {row['bucket']} | {row['samples']} | {row['percent']} |")
    lines.append(f"| total (non-idle) | {summary['samples']} | 100 |")
    return "\n".join(lines) + "\n"


def _workers(master: int) -> list[int]:
    return [c.pid for c in psutil.Process(master).children()]


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise HarnessError("py-spy is not installed (it is in r13's dev extra: make build)")
    return found


def profile(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="r13-profile-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env = {"R13_WORKERS": "2", "R13_FEATURE_PRIVATE_REGISTRY": "1" if args.auth else "0"}
    server = start_r13(root / "data", env)
    try:
        target = parse_target(server.url)
        client = Client(target, server.token)
        name = args.path.lstrip("/")
        for i in range(args.versions):
            status, body = publish(client, name, f"1.0.{i}")
            if status != 201:
                raise HarnessError(f"publish {name}: HTTP {status} {body[:200]!r}")
        client.close()
        accept = ABBREVIATED if args.accept == "abbreviated" else FULL_ACCEPT
        path = "/" + name.replace("/", "%2f")
        request = [encode_get(target, path, accept, server.token if args.auth else None)]
        driver = choose_driver(args.driver)
        common = {"concurrency": args.concurrency, "clients": args.clients}
        load(driver, target, request, duration=1.0, warmup=0, **common)  # warm both workers
        raw = out / f"profile-{stamp}.txt"
        cmd = [py_spy(), "record", "--subprocesses", "-p", str(server.proc.pid),
               "-d", str(round(args.duration)), "-r", str(args.rate), "-f", "raw",
               "-o", str(raw)]  # fmt: skip
        if args.nonblocking:
            cmd.append("--nonblocking")
        result: dict[str, Any] = {}

        def drive() -> None:
            time.sleep(0.5)  # py-spy attaches first
            result.update(load(driver, target, request, duration=args.duration - 1, warmup=0,
                               **common))  # fmt: skip

        loader = threading.Thread(target=drive)
        loader.start()
        spy = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120,
                             check=False)  # fmt: skip
        loader.join()
        if spy.returncode != 0 or not raw.exists():
            raise HarnessError(f"py-spy failed: {spy.stderr.strip()[-500:]}")
        summary = summarize(raw.read_text())
        summary.update(
            path=path,
            accept=accept,
            auth=args.auth,
            versions=args.versions,
            rate=args.rate,
            duration=args.duration,
            load={k: result.get(k) for k in ("rps", "p50_ms", "p99_ms", "errors", "driver")},
            workers=_workers(server.proc.pid),
            raw=str(raw),
        )
        (out / f"profile-{stamp}.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_hot", description=__doc__)
    p.add_argument("--path", default="small", help="the package to publish and GET")
    p.add_argument("--versions", type=int, default=1, help="versions to publish")
    p.add_argument("--accept", choices=("full", "abbreviated"), default="full")
    p.add_argument("--auth", action="store_true", help="PRIVATE_REGISTRY on, GET with the key")
    p.add_argument("--duration", type=float, default=10.0, help="seconds sampled")
    p.add_argument("--rate", type=int, default=200, help="samples per second per worker")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--driver", default="auto", choices=("python", "wrk", "auto"))
    p.add_argument("--nonblocking", action="store_true", help="py-spy --nonblocking")
    p.add_argument("--summarize", metavar="RAW", help="only summarize a raw profile and exit")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.summarize:
        print(markdown(summarize(Path(args.summarize).read_text()), args.summarize), end="")
        return 0
    if args.duration < 2:
        p.error("--duration must be at least 2 s")
    exit_on_sigterm()
    try:
        summary = profile(args)
    except HarnessError as exc:
        print(f"bench.profile_hot: {exc}", file=sys.stderr)
        return 2
    title = f"GET {summary['path']} ({'key' if args.auth else 'anonymous'})"
    print(markdown(summary, title), end="")
    print(f"under the profiler: {summary['load']}")
    print(f"raw stacks: {summary['raw']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
