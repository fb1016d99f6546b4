"""What one tarball GET and one publish PUT cost inside r13, without the network.

``python -m bench.route_profile [--route tarball,publish] [--n 2000] [--profile 25]
[--versions N] [--json FILE]``

The WSGI app of app/main.py over real services (SQLite, blob files, the record) in a temp
data dir, called directly with a WSGI environ, as gunicorn would call it: the tarball's
body goes to ``wsgi.file_wrapper`` (sendfile under gunicorn; here it is not read), so the
figure is r13's own work per request. Prints the median and p99 per route in µs, then
(``--profile N``) cProfile's N most expensive functions by cumulative time.

``--versions N`` also times publishes onto a package that already has N versions
(``publish@N``; seeded straight into storage in one transaction: the same rows N real
publishes leave, without N fsyncs), so the cost at 1 and at N versions is side by side.

For a publish, the durability floor is measured in the same run: what the three
fsyncs a publish must make cost on this disk (the tarball file, its directory, the SQLite
commit with ``synchronous=FULL``), so the rest — r13's own work — can be told apart.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from app.main import create_app
from bench.seeding import bench_manifest, make_tarball
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.npm_pack import publish_document
from r13core.registry.search import summarize
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage import Storage
from r13core.storage.packages import TarballRecord

ROUTES = ("tarball", "publish")  # and publish@N with --versions N


class _Wrapper:
    """gunicorn's wsgi.file_wrapper stand-in: holds the file (sendfile would send it)."""

    def __init__(self, f: Any, blksize: int = 8192) -> None:
        self.f = f

    def __iter__(self) -> Iterable[bytes]:
        return iter(())

    def close(self) -> None:
        self.f.close()


def _environ(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "RAW_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "4873",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:4873",
        "HTTP_USER_AGENT": "npm/11.0.0 node/v20.0.0 linux x64",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": _Wrapper,
    }
    for k, v in headers.items():
        key = k.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = v
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    return env


def _call(app: Any, env: dict[str, Any]) -> str:
    status: list[str] = []

    def start_response(s: str, h: list[tuple[str, str]], exc: Any = None) -> None:
        status.append(s)

    result = app(env, start_response)
    for _ in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return status[0]


def _summary(us: list[float]) -> dict[str, float]:
    s = sorted(us)
    return {
        "p50_us": round(statistics.median(s), 1),
        "p99_us": round(s[min(len(s) - 1, int(len(s) * 0.99))], 1),
        "n": len(s),
    }


def _timed(n: int, one: Callable[[int], None]) -> list[float]:
    out: list[float] = []
    for i in range(n):
        t = time.perf_counter_ns()
        one(i)
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def fsync_floor(root: Path, n: int) -> dict[str, dict[str, float]]:
    """The three fsyncs of a publish, alone: a 1 KiB file, its directory, a SQLite commit;
    and, apart, what creating a file costs the file system without any fsync (a publish
    creates its temp file), so that the metadata work can be told from the syncs."""
    d = root / "floor"
    d.mkdir()
    db = sqlite3.connect(d / "x.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    files: list[float] = []
    dirs: list[float] = []
    commits: list[float] = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fd = os.open(d / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x" * 1024)
        os.fsync(fd)
        os.close(fd)
        t1 = time.perf_counter_ns()
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        os.close(dfd)
        t2 = time.perf_counter_ns()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", (b"y" * 2048,))
        db.execute("COMMIT")
        t3 = time.perf_counter_ns()
        files.append((t1 - t0) / 1000)
        dirs.append((t2 - t1) / 1000)
        commits.append((t3 - t2) / 1000)
    db.close()
    creates: list[float] = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        os.close(os.open(d / f"c{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        creates.append((time.perf_counter_ns() - t0) / 1000)
    total = [a + b + c for a, b, c in zip(files, dirs, commits, strict=True)]
    return {
        "create an empty file (no fsync)": _summary(creates),
        "file write+fsync": _summary(files),
        "dir fsync": _summary(dirs),
        "SQLite commit (WAL, synchronous=FULL)": _summary(commits),
        "the three together": _summary(total),
    }


def seed_versions(app: Any, storage: Storage, first: dict[str, Any], n: int) -> None:
    """Publish ``first`` (one real version), then add ``n - 1`` more of the same shape
    (``0.<i>.0``: manifest, time, tarball row, tombstone) in one transaction."""
    assert _call(app, first).startswith("201")
    name = first["PATH_INFO"].lstrip("/")
    record = storage.package(name)
    assert record is not None
    doc = record.doc
    (only,) = doc["versions"].values()
    tarball = storage.tarball(name, only["version"])
    assert tarball is not None
    with storage.write() as tx:
        for i in range(n - 1):
            version = f"0.{i}.0"
            doc["versions"][version] = {**only, "version": version, "_id": f"{name}@{version}"}
            doc["time"][version] = doc["modified"]
            tx.add_tarball(TarballRecord(name, version, tarball.sha512, tarball.size))
            tx.mark_used(name, version, tarball.sha512)
        tx.save_package(name, doc, summary=summarize(name, doc))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.route_profile", description=__doc__)
    p.add_argument("--route", default=",".join(ROUTES))
    p.add_argument("--n", type=int, default=2000, help="requests per route")
    p.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    p.add_argument(
        "--versions", type=int, default=0, help="also publish onto a package of N versions"
    )
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    routes = [r.strip() for r in args.route.split(",") if r.strip()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="r13-route-") as tmp:
        root = Path(tmp)
        env = {
            "R13_DATA": str(root / "data"),
            "R13_FEATURE_PRIVATE_REGISTRY": "0",
            "SECURITY_RATE_LIMIT_MAX": "2147483647",
        }
        services = open_services(Settings.from_env(env))
        try:
            _, secret = KeyStore(open_database(root / "data")).create("w", Permission.WRITE, None)
            app = create_app(services)
            auth = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

            def publish_env(name: str, version: str) -> dict[str, Any]:
                doc = publish_document(
                    bench_manifest(name, version),
                    make_tarball(name, version),
                    registry="http://127.0.0.1:4873",
                )
                return _environ("PUT", f"/{name}", auth, json.dumps(doc).encode())

            status = _call(app, publish_env("rp-tgz", "1.0.0"))
            assert status.startswith("201"), status
            get = _environ("GET", "/rp-tgz/-/rp-tgz-1.0.0.tgz", {"Accept": "*/*"})
            jobs: dict[str, Callable[[int], None]] = {}
            bodies = [publish_env("rp-pub", f"1.{i}.0") for i in range(args.n + 1)]

            def tarball(i: int) -> None:
                s = _call(app, dict(get))
                assert s.startswith("200"), s

            def publish(i: int) -> None:
                s = _call(app, bodies[i])
                assert s.startswith(("200", "201")), s

            jobs = {"tarball": tarball, "publish": publish}
            if args.versions and "publish" in routes:
                routes.append(f"publish@{args.versions}")
                big = [publish_env("rp-big", f"3.{i}.0") for i in range(args.n)]
                seed_versions(app, services.storage, publish_env("rp-big", "1.0.0"), args.versions)

                def publish_big(i: int) -> None:
                    s = _call(app, big[i])
                    assert s.startswith("201"), s

                jobs[routes[-1]] = publish_big
            for route in routes:
                if route not in jobs:
                    p.error(f"unknown route {route!r}")
                _timed(min(50, args.n), tarball) if route == "tarball" else None
                results[route] = _summary(_timed(args.n, jobs[route]))
                r = results[route]
                print(f"{route:10} p50 {r['p50_us']:8.1f} µs  p99 {r['p99_us']:8.1f} µs")
            if "publish" in routes:
                results["fsync floor"] = fsync_floor(root, min(args.n, 500))
                for what, r in results["fsync floor"].items():
                    print(f"  floor: {what:40} p50 {r['p50_us']:8.1f} µs  p99 {r['p99_us']:8.1f}")
            if args.profile:
                for route in routes:
                    if route not in ("tarball", "publish"):
                        continue
                    prof = cProfile.Profile()
                    start = args.n + 1 if route == "publish" else 0
                    more = [publish_env("rp-pub", f"2.{i}.0") for i in range(300)]
                    prof.enable()
                    for i in range(300):
                        if route == "publish":
                            _call(app, more[i])
                        else:
                            tarball(start + i)
                    prof.disable()
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(
                        args.profile
                    )
                    print(f"--- {route}: 300 requests, by cumulative time")
                    print(out.getvalue())
        finally:
            services.config.close()
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(
            json.dumps({"bench": "route_profile", "n": args.n, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
