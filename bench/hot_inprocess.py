"""CPU time of a hot read inside r13's WSGI app: no gunicorn, no sockets, no load generator.

``python -m bench.hot_inprocess [--requests 5000] [--repeat 5] [--before REV] [--versions 300]
[--json FILE]``

Builds the app as a worker does (``open_services`` + ``create_app`` + app/wsgi.py's
wrappers) over a fresh data dir (PRIVATE_REGISTRY off, access log and metrics on, the
rate limit lifted), publishes ``small`` (1 version), ``@bench/scoped`` and ``big`` (``--versions``,
300), creates a read key, then calls the app ``--requests`` times per case and
divides the process's CPU time (``time.process_time``) by the calls; the median of
``--repeat`` loops. What it leaves out (gunicorn's parser and writer, the kernel's socket
work) bench/profile_hot.py shows under load; what it keeps is the part r13's own code
decides, measured in a way other jobs on the machine disturb little.

``--before REV`` exports that revision (bench/revisions.py), runs the same cases in it
(``python -P`` with ``PYTHONPATH`` naming the tree: its own ``app`` and ``r13core``) and
prints before, after and after/before. ``--profile CASE`` prints cProfile's top entries
for one case instead.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ABBREVIATED = "application/vnd.npm.install-v1+json"
CASES = ("small", "abbreviated", "scoped", "big", "with-key", "not-modified", "gzip", "tarball")


def _environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path.replace("%2f", "/"), "RAW_URI": path,
        "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "4873",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:4873", "HTTP_USER_AGENT": "r13-bench",
    }  # fmt: skip
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def build(
    data: Path, versions: int = 300
) -> tuple[Callable[..., Any], dict[str, Callable[[], None]]]:
    """The app over ``data`` and one request function per case (each checks its status)."""
    os.environ.update(
        {
            "R13_DATA": str(data),
            "R13_PUBLIC_URL": "http://127.0.0.1:4873",
            "R13_FEATURE_PRIVATE_REGISTRY": "0",
            "SECURITY_RATE_LIMIT_MAX": "2147483647",
        }
    )
    from app.live.websocket import serve_upgrades
    from app.main import create_app
    from app.slow_clients import BodyDeadline
    from r13core.audit import Actor
    from r13core.keys import Permission
    from r13core.names import PackageName
    from r13core.services import open_services
    from r13core.settings import Settings
    from tests.npm_builders import publish_body

    services = open_services(Settings.from_env())
    inner = create_app(services)
    app = serve_upgrades(BodyDeadline(inner, 30.0))
    try:  # as app/wsgi.py: the hot reads in front (a tree from before them has none)
        from app.hot_reads import in_front

        app = in_front(inner, app)
    except ImportError:
        pass
    admin = Actor("admin")
    put = services.registry.put_package
    put(PackageName.parse("small"), publish_body("small", "1.0.0"), actor=admin)
    put(PackageName.parse("@bench/scoped"), publish_body("@bench/scoped", "1.0.0"), actor=admin)
    big = PackageName.parse("big")
    for i in range(versions):
        put(big, publish_body("big", f"1.0.{i}"), actor=admin)
    _, secret = services.identity.create_key(admin, "bench-reader", Permission.READ, 30)
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        status[:] = [s]

    def case(path: str, want: str, **headers: str) -> Callable[[], None]:
        def one() -> None:
            body = app(_environ(path, headers), start_response)
            b"".join(body)
            if hasattr(body, "close"):
                body.close()
            if not status[0].startswith(want):
                raise SystemExit(f"{path}: {status[0]}, not {want}")

        return one

    first = case("/small", "200", Accept="application/json")
    first()
    etag = ""

    def grab(s: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        nonlocal etag
        etag = dict((k.lower(), v) for k, v in headers).get("etag", "")

    b"".join(app(_environ("/small", {"Accept": "application/json"}), grab))
    cases = {
        "small": first,
        "abbreviated": case("/small", "200", Accept=ABBREVIATED),
        "scoped": case("/@bench%2fscoped", "200", Accept="application/json"),
        "big": case("/big", "200", Accept="application/json"),
        "with-key": case("/small", "200", Accept="application/json",
                         Authorization=f"Bearer {secret}"),
        "not-modified": case("/small", "304", Accept="application/json", **{"If-None-Match": etag}),
        "gzip": case("/small", "200", Accept="application/json", **{"Accept-Encoding": "gzip"}),
        "tarball": case("/small/-/small-1.0.0.tgz", "200"),
    }  # fmt: skip
    return app, cases


def measure(cases: dict[str, Callable[[], None]], requests: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, one in cases.items():
        for _ in range(min(500, requests)):
            one()  # warm: caches, the key, the limiter's slot
        loops = []
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(requests):
                one()
            loops.append((time.process_time() - t0) / requests * 1e6)
        out[name] = {"cpu_us": round(statistics.median(loops), 1), "loops_us": [
            round(x, 1) for x in loops]}  # fmt: skip
    return out


def child(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="r13-inproc-") as tmp:
        _, cases = build(Path(tmp) / "data", args.versions)
        if args.profile:
            import cProfile
            import pstats

            one = cases[args.profile]
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.requests):
                one()
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return {}
        return measure(cases, args.requests, args.repeat)


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """These cases inside another tree of r13 (its own app and r13core)."""
    # Imported here: the child runs this file over the other tree, whose bench/ may not
    # have it.
    from bench.revisions import run_child

    argv = ["--requests", str(args.requests), "--repeat", str(args.repeat),
            "--versions", str(args.versions)]  # fmt: skip
    return run_child(tree, __file__, argv, "the cases")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hot_inprocess", description=__doc__)
    p.add_argument("--requests", type=int, default=5000, help="calls per loop and case")
    p.add_argument("--repeat", type=int, default=5, help="loops per case (median)")
    p.add_argument("--versions", type=int, default=300, help="versions of the big package")
    p.add_argument("--before", metavar="REV", help="also run the cases in this git revision")
    p.add_argument("--profile", choices=CASES, help="cProfile one case instead")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child or args.profile:
        result = child(args)
        if args.child:
            print(json.dumps(result))
        return 0
    repo = Path(__file__).resolve().parent.parent
    after = run_tree(repo, args)
    report: dict[str, Any] = {"bench": "hot_inprocess", "requests": args.requests,
                              "repeat": args.repeat, "after": after}  # fmt: skip
    if args.before:
        from bench.revisions import export

        with tempfile.TemporaryDirectory(prefix="r13-inproc-before-") as tmp:
            report["before"] = run_tree(export(args.before, Path(tmp)), args)
        report["before_rev"] = args.before
    print("| case | " + ("before µs | " if args.before else "") + "CPU µs per request | "
          + ("after/before |" if args.before else ""))  # fmt: skip
    print("|---|" + ("---:|" * (3 if args.before else 1)))
    for name, r in after.items():
        row = f"| {name} | "
        if args.before:
            b = report["before"][name]["cpu_us"]
            row += f"{b:.1f} | {r['cpu_us']:.1f} | {r['cpu_us'] / b:.2f} |"
        else:
            row += f"{r['cpu_us']:.1f} |"
        print(row)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
