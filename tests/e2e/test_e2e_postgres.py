"""A real r13 over PostgreSQL: `r13 serve` (gunicorn, gevent worker, 2 workers) on a database
of the session's PostgreSQL, tarballs in the database (R13_BLOB_STORE's default there).

npm publishes through one node and installs from a second node over the same database
(its own data dir: nothing shared but PostgreSQL); the HTTP answers the registry gives
over SQLite hold over PostgreSQL (409 on a republish, 304 on a matching ETag, JSON
errors); a key revoked by the CLI is refused at once by every worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import Sandbox, Server, start_server
from tests.e2e.publish_body import publish_body, tarball
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_nodes(
    pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server, Server]]:
    """Two r13 nodes, each its own data dir and 2 workers, over one new database."""
    url = pg_server.create_database("r13_e2e")
    env = {"R13_DATABASE_URL": url}
    one = start_server(tmp_path_factory.mktemp("node1"), **env)
    two = None
    try:
        # The first admin key is made once per database: node 2 is handed node 1's,
        # and shares its keys (they are rows of the one database).
        root = tmp_path_factory.mktemp("node2")
        (root / "data").mkdir(mode=0o700)
        (root / "data" / "admin.key").write_text((one.data / "admin.key").read_text())
        (root / "data" / "admin.key").chmod(0o600)
        two = start_server(root, **env)
        two._keys = one._keys
        yield url, one, two
    finally:
        for node in (one, two):
            if node is not None:
                assert node.stop() == 0, node.log.read_text()[-3000:]
                assert "Traceback" not in node.log.read_text(), node.log.read_text()[-5000:]
        pg_server.drop_database(url)


def _sandbox(root: Path, server: Server, clients: dict[str, Path]) -> Sandbox:
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "home" / ".npmrc").write_text("")
    return Sandbox(root, server, server.key("write"), clients)


def test_npm_publishes_to_one_node_and_installs_from_another(
    pg_nodes: tuple[str, Server, Server], clients: dict[str, Path], tmp_path: Path
) -> None:
    url, one, two = pg_nodes
    publisher = _sandbox(tmp_path / "pub", one, clients)
    name = publisher.unique("pg-e2e")
    src = publisher.project("src", {"name": name, "version": "1.0.0", "main": "index.js"})
    (src / "index.js").write_text("module.exports = 'over postgres';\n")
    publisher.run("npm", "publish", cwd=src)

    installer = _sandbox(tmp_path / "inst", two, clients)
    app = installer.project("app", {"name": "app", "version": "0.0.0"})
    installer.run("npm", "install", name, cwd=app)
    assert (app / "node_modules" / name / "index.js").read_text() == (
        "module.exports = 'over postgres';\n"
    )
    lock = json.loads((app / "package-lock.json").read_text())
    entry = lock["packages"][f"node_modules/{name}"]
    assert entry["resolved"].startswith(two.url + "/")
    status, _, body = two.request("GET", f"/{name}", key=two.key("read"))
    assert status == 200
    assert json.loads(body)["versions"]["1.0.0"]["dist"]["integrity"] == entry["integrity"]
    # The bytes live in the database; neither node keeps a files store.
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM blobs").fetchone()
        assert row is not None and row[0] >= 1
    for node in (one, two):
        assert not (node.data / "blobs").exists()


def test_registry_answers_hold_over_postgres(pg_nodes: tuple[str, Server, Server]) -> None:
    _, one, two = pg_nodes
    key = one.key("write")
    data = tarball("pg-http", "1.0.0")
    status, _, _ = one.request("PUT", "/pg-http", publish_body("pg-http", "1.0.0", data), key=key)
    assert status == 201
    other = tarball("pg-http", "1.0.0", {"extra.js": b"other bytes"})
    status, _, body = two.request(
        "PUT", "/pg-http", publish_body("pg-http", "1.0.0", other), key=two.key("write")
    )
    assert status == 409 and "error" in json.loads(body)
    status, headers, _ = two.request("GET", "/pg-http", key=key)
    assert status == 200
    status, _, _ = two.request(
        "GET", "/pg-http", key=key, headers={"If-None-Match": headers["etag"]}
    )
    assert status == 304
    status, _, body = one.request("GET", "/pg-http/-/pg-http-1.0.0.tgz", key=key)
    assert status == 200 and body == data
    status, _, body = two.request("GET", "/no-such-package-here", key=key)
    assert status == 404 and "error" in json.loads(body)
    status, _, body = one.request("PUT", "/pg-http", b"{not json", key=key)
    assert status == 400 and "error" in json.loads(body)


def test_a_key_revoked_by_the_cli_is_refused_by_every_worker_at_once(
    pg_nodes: tuple[str, Server, Server],
) -> None:
    import subprocess

    from tests.e2e.conftest import R13

    _, one, _ = pg_nodes
    made = subprocess.run(
        [str(R13), "--data", str(one.data), "keys", "create", "--id", "pg-short", "--perm", "read"],
        env=one.env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    secret = made.stdout.strip().splitlines()[-1]
    for _ in range(6):  # both workers know it
        assert one.request("GET", "/-/whoami", key=secret)[0] == 200
    subprocess.run(
        [str(R13), "--data", str(one.data), "keys", "revoke", "pg-short"],
        env=one.env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    for _ in range(6):  # no worker serves it from a stale cache
        assert one.request("GET", "/-/whoami", key=secret)[0] == 401
