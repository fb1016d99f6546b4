"""Backup under load on a real server, restore, and npm installs the same lockfile.

For each backend (SQLite + files; PostgreSQL + tarballs in the database, from
tests/pgserver.py): one server (`r13 serve`, gunicorn, three gevent workers)
while a client keeps publishing: `r13 backup` twice under that load; each backup
restored into a fresh data dir (and a new empty database) holds every publish
acknowledged before it began, and the restore's own checks (every row's tarball
present and verified) pass. Then the original stops and a server on the restored
data dir takes its port: `npm ci` of the lockfile made against the original
installs the same packages with the same integrity from a cold cache, and the
packuments and the signing keys are the same bytes. The SQLite server also makes
automatic backups every second (one process does; the newest two are kept);
PostgreSQL's cluster lock for them is tested in tests/test_backup_postgres.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from r13core import npm_pack
from r13core.backup import Manifest
from r13core.backup.auto import backups_in
from r13core.backup.create import LOCK_FILE
from r13core.services import open_services
from r13core.settings import Settings
from tests.e2e.clients import npm as machine_npm
from tests.e2e.conftest import R13, Server
from tests.e2e.publish_body import publish_body, tarball
from tests.ports import free_port

pytestmark = pytest.mark.slow

LOAD_MAX = 400  # the load client stops by itself after this many publishes


def publish(server: Server, key: str, name: str, version: str,
            deps: dict[str, str] | None = None) -> int:  # fmt: skip
    manifest: dict[str, Any] = {"name": name, "version": version}
    if deps:
        manifest["dependencies"] = deps
    data = npm_pack.package_tarball(manifest, {"index.js": f"module.exports = {version!r}"})
    body = npm_pack.publish_document(manifest, data)
    status, _, _ = server.request("PUT", "/" + name.replace("/", "%2f"), body, key=key)
    return status


class Publisher(threading.Thread):
    """Publishes new packages and versions until stopped (or LOAD_MAX); records each ack."""

    def __init__(self, server: Server, key: str) -> None:
        super().__init__(daemon=True)
        self.server, self.key = server, key
        self.stop = threading.Event()
        self.acked: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        for i in range(LOAD_MAX):
            if self.stop.is_set():
                return
            name, version = (f"load-{i}", "1.0.0") if i % 2 else ("load-multi", f"1.0.{i}")
            body = publish_body(name, version, tarball(name, version))
            status, _, _ = self.server.request("PUT", f"/{name}", body, key=self.key)
            if status in (200, 201):
                with self.lock:
                    self.acked.append((name, version))

    def acknowledged(self) -> set[tuple[str, str]]:
        with self.lock:
            return set(self.acked)


def versions_in(data: Path, db: dict[str, str]) -> set[tuple[str, str]]:
    """Every (package, version) with a tarball row in the registry at ``data``."""
    settings = Settings.from_env({"R13_DATA": str(data), **db})
    with open_services(settings) as sv:
        out: set[tuple[str, str]] = set()
        for record in sv.storage.packages():
            out.update((record.name, v) for v in record.doc.get("versions", {}))
        return out


def npm_env(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir(exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    return {**keep, "HOME": str(home), "npm_config_userconfig": str(home / ".npmrc"),
            "npm_config_update_notifier": "false", "npm_config_fund": "false",
            "npm_config_audit": "false", "CI": "true"}  # fmt: skip


def npm(root: Path, cwd: Path, *args: str) -> str:
    out = subprocess.run([str(machine_npm()), *args], cwd=cwd, env=npm_env(root),
                         capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, f"npm {args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Callable[[], dict[str, str]]]:
    """A maker of fresh databases as environment entries ({} for SQLite's own file)."""
    if request.param == "sqlite":
        yield dict
        return
    server = request.getfixturevalue("pg_server")
    made: list[str] = []

    def new() -> dict[str, str]:
        made.append(server.create_database())
        return {"R13_DATABASE_URL": made[-1]}

    yield new
    for url in made:
        server.drop_database(url)


def test_backup_under_load_then_restore_and_npm_ci_installs_the_same(
    tmp_path: Path, backend: Callable[[], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = tmp_path / "auto"
    db = backend()
    automatic = not db  # SQLite's run also makes automatic backups
    srv = Server(data=tmp_path / "data", port=free_port(), log=tmp_path / "server.log")
    srv.extra_env = {"R13_WORKERS": "3", **db}
    if automatic:
        srv.extra_env.update(
            {"R13_BACKUP_EVERY": "1s", "R13_BACKUP_KEEP": "2", "R13_BACKUP_DIR": str(auto)}
        )
    srv.start()
    restored_srv: Server | None = None
    try:
        write = srv.key("write")
        # The app's dependencies, published before the load: a -> b, and a scoped one.
        assert publish(srv, write, "bk-b", "1.0.0") in (200, 201)
        assert publish(srv, write, "bk-a", "1.0.0", {"bk-b": "^1.0.0"}) in (200, 201)
        assert publish(srv, write, "@bk/c", "2.0.0") in (200, 201)
        app = tmp_path / "app"
        app.mkdir()
        (app / "package.json").write_text(json.dumps(
            {"name": "app", "version": "1.0.0", "private": True,
             "dependencies": {"bk-a": "^1.0.0", "@bk/c": "^2.0.0"}}))  # fmt: skip
        host = f"127.0.0.1:{srv.port}"
        (app / ".npmrc").write_text(f"registry={srv.url}/\n//{host}/:_authToken={write}\n")
        npm(tmp_path, app, "install", "--cache", str(tmp_path / "cache1"))
        lock = (app / "package-lock.json").read_text()
        originals = {p: srv.request("GET", p, key=write)[2]
                     for p in ("/bk-a", "/bk-b", "/@bk%2fc", "/-/npm/v1/keys")}  # fmt: skip

        load = Publisher(srv, write)
        load.start()
        backups: list[tuple[Path, set[tuple[str, str]]]] = []
        for n in range(2):
            while len(load.acknowledged()) < 20 * (n + 1) and load.is_alive():
                load.join(0.05)
            before = load.acknowledged()
            dest = tmp_path / f"backup{n}"
            out = subprocess.run([str(R13), "--data", str(srv.data), "backup", str(dest)],
                                 env=srv.env(), capture_output=True, text=True, timeout=300,
                                 check=False)  # fmt: skip
            assert out.returncode == 0, out.stderr
            backups.append((dest, before))
        during = len(load.acknowledged())
        load.stop.set()
        load.join(120)
        assert len(load.acknowledged()) > during or not load.is_alive()

        # Automatic backups ran meanwhile, by one process; the newest two are kept.
        def audited(action: str) -> list[dict[str, Any]]:
            _, _, body = srv.request("GET", f"/_api/security/audit?action={action}&limit=100",
                                     key=srv.admin_key)  # fmt: skip
            events: list[dict[str, Any]] = json.loads(body)["events"]
            return events

        if automatic:
            deadline_hits = 0
            # The prune is audited just after the third backup's own event: wait for both.
            while len(
                [e for e in audited("backup.create") if e["actor"] == "r13"]
            ) < 3 or not audited("backup.prune"):
                deadline_hits += 1
                assert deadline_hits < 600, "no third automatic backup, or no prune after it"
                time.sleep(0.2)  # the load thread has ended: join() would not wait
            assert "[r13.backup] automatic backup" in srv.log.read_text()
        assert srv.stop() == 0
        if automatic:
            with open(srv.data / LOCK_FILE) as held:  # wait for an automatic backup still going
                fcntl.flock(held, fcntl.LOCK_EX)
            kept = backups_in(auto)
            assert len(kept) == 2 and all(Manifest.read(p).backend == "sqlite" for _, p in kept)
        manual = [e for e in audited_from(srv.data, db) if e["actor"] == "cli"]
        assert len(manual) == 2

        # Every backup is consistent and holds every publish acknowledged before it began.
        restored_db: dict[str, str] = {}
        for i, (dest, acked_before) in enumerate(backups):
            target = tmp_path / f"restored{i}"
            restored_db = backend()
            for k, v in restored_db.items():
                monkeypatch.setenv(k, v)
            assert main(["--data", str(target), "restore", str(dest), "--quiet"]) == 0
            have = versions_in(target, restored_db)
            assert acked_before <= have, sorted(acked_before - have)[:5]
            assert {("bk-a", "1.0.0"), ("bk-b", "1.0.0"), ("@bk/c", "2.0.0")} <= have

        # A server on the last restored data dir takes the original's place.
        shutil.rmtree(app / "node_modules")
        restored_srv = Server(data=tmp_path / "restored1", port=srv.port,
                              log=tmp_path / "restored.log")  # fmt: skip
        restored_srv.extra_env = dict(restored_db)
        restored_srv.start()
        for path, body in originals.items():
            assert restored_srv.request("GET", path, key=write)[2] == body, path
        npm(tmp_path, app, "ci", "--cache", str(tmp_path / "cache2"))
        assert (app / "package-lock.json").read_text() == lock
        installed = json.loads((app / "node_modules" / "bk-b" / "package.json").read_text())
        assert installed["version"] == "1.0.0"
        assert (app / "node_modules" / "@bk" / "c" / "package.json").is_file()
        for name, version in sorted(backups[1][1])[:10]:
            status, _, _ = restored_srv.request("GET", f"/{name}/-/{name}-{version}.tgz", key=write)
            assert status == 200, (name, version)
    finally:
        srv.stop()
        if restored_srv is not None:
            assert restored_srv.stop() == 0
            assert "Traceback" not in restored_srv.log.read_text()


def audited_from(data: Path, db: dict[str, str]) -> list[dict[str, Any]]:
    """The backup.create events in the audit log of the (stopped) registry at ``data``."""
    with open_services(Settings.from_env({"R13_DATA": str(data), **db})) as sv:
        events: list[dict[str, Any]] = sv.audit.page(limit=500, action="backup.create")["events"]
        return events
