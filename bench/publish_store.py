"""What a publish costs as the blob store fills: in process, in a store of N tarballs.

``python -m bench.publish_store [--tarballs 0,2000] [--publishes 200] [--rounds 3]
[--before REV] [--dir DIR] [--json FILE]``

For each N of ``--tarballs``: a fresh data dir under ``--dir`` (default: the system's temp
dir; file-system metadata costs differ from one directory tree to another, so point it at
the disk a registry's data dir would use), N tarballs stored through the blob store's own
``put`` (distinct bytes, as many files and directories as N publishes leave, without their
rows), then ``--publishes`` publishes of new versions by ``PUT /:pkg`` through the WSGI app
(the request bench/route_profile.py builds: app/main.py over real SQLite, blob files and
the record, with fsync), each timed; p50 and p99 in µs, and the number of directories
the store made.

``--before REV`` exports that revision (bench/revisions.py) and runs the same in its tree
(``python -P`` with ``PYTHONPATH`` naming it: its own ``app`` and ``r13core``), alternating
the two trees round by round (before, after, before, after, ...); the table gives each
side's median over the rounds and after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def child(tarballs: int, publishes: int, where: str | None) -> dict[str, Any]:
    """One measurement in the tree on ``sys.path`` (this process's own app and r13core).

    It builds the app as bench/route_profile.py's ``main`` does, from pieces every tree
    since 6f21654 has (the other tree's bench/ is the one imported here), not from a helper
    only this tree would have."""
    from app.main import create_app
    from bench.route_profile import _call, _environ
    from bench.seeding import bench_manifest, make_tarball
    from r13core.database import open_database
    from r13core.keys import KeyStore, Permission
    from r13core.npm_pack import publish_document
    from r13core.services import open_services
    from r13core.settings import Settings

    with tempfile.TemporaryDirectory(prefix="r13-publish-store-", dir=where) as tmp:
        data = Path(tmp) / "data"
        env = {
            "R13_DATA": str(data),
            "R13_FEATURE_PRIVATE_REGISTRY": "0",
            "SECURITY_RATE_LIMIT_MAX": "2147483647",
        }
        services = open_services(Settings.from_env(env))
        try:
            _, secret = KeyStore(open_database(data)).create("w", Permission.WRITE, None)
            app = create_app(services)
            auth = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
            for i in range(tarballs):
                services.blobs.put(f"a tarball already stored, number {i}".encode())

            def body(version: str) -> bytes:
                doc = publish_document(
                    bench_manifest("ps-pkg", version),
                    make_tarball("ps-pkg", version),
                    registry="http://127.0.0.1:4873",
                )
                return json.dumps(doc).encode()

            bodies = [body(f"1.{i}.0") for i in range(publishes + 1)]
            status = _call(app, _environ("PUT", "/ps-pkg", auth, bodies[0]))
            assert status.startswith("201"), status
            dirs_before = sum(len(d) for _, d, _ in os.walk(data / "blobs"))
            times: list[float] = []
            for raw in bodies[1:]:
                request = _environ("PUT", "/ps-pkg", auth, raw)
                t = time.perf_counter_ns()
                status = _call(app, request)
                times.append((time.perf_counter_ns() - t) / 1000)
                assert status.startswith("201"), status
            dirs_after = sum(len(d) for _, d, _ in os.walk(data / "blobs"))
        finally:
            services.config.close()
    times.sort()
    return {
        "p50_us": round(statistics.median(times), 1),
        "p99_us": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        "dirs_made": dirs_after - dirs_before,
    }


def run_tree(tree: Path, tarballs: int, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`child` in another process over ``tree``."""
    # Imported here: the child runs this file over the other tree, whose bench/ may not
    # have it.
    from bench.revisions import run_child

    argv = ["--tarballs", str(tarballs), "--publishes", str(args.publishes)]
    if args.dir:
        argv += ["--dir", args.dir]
    return run_child(tree, __file__, argv, "the publishes")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.publish_store", description=__doc__)
    p.add_argument("--tarballs", default="0,2000", help="tarballs in the store, comma-separated")
    p.add_argument("--publishes", type=int, default=200, help="timed publishes per run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--before", metavar="REV", help="also run in this git revision, alternated")
    p.add_argument("--dir", help="where the data dirs go (default: the system's temp dir)")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.tarballs.split(",") if n.strip()]
    if args.child:
        print(json.dumps(child(sizes[0], args.publishes, args.dir)))
        return 0
    repo = Path(__file__).resolve().parent.parent
    trees: dict[str, Path] = {"after": repo}
    with tempfile.TemporaryDirectory(prefix="r13-publish-store-before-") as tmp:
        if args.before:
            from bench.revisions import export

            trees = {"before": export(args.before, Path(tmp)), "after": repo}
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            str(n): {side: [] for side in trees} for n in sizes
        }
        for r in range(args.rounds):
            for n in sizes:
                for side, tree in trees.items():
                    got = run_tree(tree, n, args)
                    runs[str(n)][side].append(got)
                    print(f"round {r + 1} tarballs {n:>6} {side:6} p50 {got['p50_us']:8.1f} µs"
                          f"  p99 {got['p99_us']:8.1f} µs  dirs made {got['dirs_made']}",
                          flush=True)  # fmt: skip
    summary: dict[str, dict[str, Any]] = {}
    for size, by_side in runs.items():
        summary[size] = {}
        for side, results in by_side.items():
            summary[size][side] = {
                key: statistics.median(x[key] for x in results)
                for key in ("p50_us", "p99_us", "dirs_made")
            }
    head = " | ".join(f"{side} p50 µs | {side} p99 µs | {side} dirs made" for side in trees)
    print(f"\n| tarballs in the store | {head} |" + (" after/before p50 |" if args.before else ""))
    print("|---:|" + "---:|" * (3 * len(trees) + (1 if args.before else 0)))
    for size, medians in summary.items():
        cells = " | ".join(
            f"{m['p50_us']:.0f} | {m['p99_us']:.0f} | {m['dirs_made']:.0f}"
            for m in medians.values()
        )
        ratio = ""
        if args.before:
            ratio = f" {medians['after']['p50_us'] / medians['before']['p50_us']:.2f} |"
        print(f"| {size} | {cells} |{ratio}")
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        report = {"bench": "publish_store", "publishes": args.publishes, "rounds": args.rounds,
                  "before_rev": args.before, "runs": runs, "summary": summary}  # fmt: skip
        out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
