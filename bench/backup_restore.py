"""Backup and restore throughput (MB/s) for each backend, over a few hundred tarballs.

Run: .venv/bin/python -m bench.backup_restore [--tarballs 300] [--size 65536] [--rounds 3]
         [--backends sqlite,postgresql] [--json FILE]

Seeds a registry (through r13core's publish, like a client would) with ``--tarballs``
versions of ``--size`` random bytes each, then times ``r13 backup``'s work
(r13core.backup.create_backup: snapshot, tarballs staged under the hold, copied and
hashed, table digests, manifest) and ``r13 restore``'s (every file copied and verified,
every table digest checked, the rename) ``--rounds`` times each, into fresh directories
(and, with PostgreSQL, fresh databases). MB/s is the tarballs' bytes in MB (10^6 bytes:
the payload, comparable across backends) divided by the median time; the backup's own
size (database or dump + tarballs + other files) is reported beside it. The PostgreSQL run starts
its own server (tests/pgserver.py) and needs the PostgreSQL backend (R13_DATABASE_URL);
with tarballs in the database (R13_BLOB_STORE=database) they travel inside the dump.
No server runs meanwhile: this is the cost of the work itself, not of contention.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from r13core import npm_pack
from r13core.audit import Actor
from r13core.backup import create_backup, restore_backup
from r13core.backup.service import source_of
from r13core.names import PackageName
from r13core.services import open_services
from r13core.settings import Settings


def seed(settings: Settings, tarballs: int, size: int) -> None:
    with open_services(settings) as sv:
        for i in range(tarballs):
            name, version = f"bench-{i // 10}", f"1.0.{i % 10}"
            data = npm_pack.package_tarball(
                {"name": name, "version": version}, {"blob.bin": os.urandom(size)},
                compresslevel=1,
            )  # fmt: skip
            body = npm_pack.publish_document({"name": name, "version": version}, data)
            sv.registry.put_package(PackageName.parse(name), body, actor=Actor.cli())


@contextlib.contextmanager
def databases(backend: str) -> Iterator[Any]:
    """A function giving a new empty database URL per call (None for SQLite's own file)."""
    if backend == "sqlite":
        yield lambda: None
        return
    from tests import pgserver

    with pgserver.running() as server:
        yield server.create_database


def run_backend(backend: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    with databases(backend) as new_db:
        env: dict[str, str] = {"R13_DATA": str(root / "data"), "R13_PUBLIC_URL": "http://b:1"}
        url = new_db()
        if url is not None:
            env["R13_DATABASE_URL"] = url
            if args.blob_store:
                env["R13_BLOB_STORE"] = args.blob_store
        settings = Settings.from_env(env)
        seed(settings, args.tarballs, args.size)
        backup_s, restore_s, size, payload = [], [], 0, 0
        with open_services(settings) as sv:
            for r in range(args.rounds):
                dest = root / f"backup{r}"
                started = time.perf_counter()
                result = create_backup(source_of(sv), dest)
                backup_s.append(time.perf_counter() - started)
                size, payload = result.bytes, result.manifest.tarball_bytes
                target = root / f"restored{r}"
                target_url = new_db()
                started = time.perf_counter()
                restore_backup(dest, target, target_url)
                restore_s.append(time.perf_counter() - started)
                shutil.rmtree(target)
                if r:
                    shutil.rmtree(dest)
        mb = payload / 1e6
        b, r_ = statistics.median(backup_s), statistics.median(restore_s)
        return {
            "backend": backend,
            "tarballs": args.tarballs,
            "tarball_size": args.size,
            "tarball_bytes": payload,
            "backup_bytes": size,
            "backup_s": backup_s,
            "restore_s": restore_s,
            "backup_mb_s": round(mb / b, 1),
            "restore_mb_s": round(mb / r_, 1),
        }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.backup_restore", description=__doc__)
    p.add_argument("--tarballs", type=int, default=300)
    p.add_argument("--size", type=int, default=65536, help="random bytes in each tarball")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backends", default="sqlite", help="comma-separated: sqlite,postgresql")
    p.add_argument("--blob-store", default="", help="R13_BLOB_STORE for postgresql")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="r13-bench-backup-") as tmp:
            res = run_backend(backend.strip(), args, Path(tmp))
        results.append(res)
        b, r = statistics.median(res["backup_s"]), statistics.median(res["restore_s"])
        print(f"{res['backend']:>10}: {res['tarballs']} tarballs, "
              f"{res['tarball_bytes'] / 1e6:.1f} MB (backup {res['backup_bytes'] / 1e6:.1f} MB)"
              f" - backup {res['backup_mb_s']} MB/s "
              f"(median {b:.2f} s), restore {res['restore_mb_s']} MB/s "
              f"(median {r:.2f} s)")  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
