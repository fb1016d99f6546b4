"""Three r13 nodes over one PostgreSQL behind nginx (tests/cluster.py), one cluster per module.

What a team running r13 on several machines relies on: a publish through one node
is installable from another at once; a record change made on one node reaches the
live clients of every node; a key revoked, an IP blocked on one node holds on the
others; a node killed with SIGKILL under load loses no acknowledged publish; two
nodes publishing to one package at once leave a valid document.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, start_cluster
from tests.e2e.conftest import R13, Sandbox, Server
from tests.e2e.publish_body import publish_body, tarball
from tests.live_client import open_live
from tests.pgserver import PostgresServer


def wait_for(what: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "condition never came true"
        time.sleep(0.02)


def _status_is(url: str, key: str | None, status: int) -> bool:
    return call(url, "GET", "", key=key)[0] == status


def call(
    url: str, method: str, path: str, body: Any = None, *, key: str | None = None
) -> tuple[int, bytes]:
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("r13-cluster")
    url = pg_server.create_database()
    with start_cluster(root, url, 3) as made:
        made.keys["write"] = made.nodes[0].key("write")
        yield made
    for node in made.nodes:
        log = node.log.read_text()
        assert "Traceback" not in log, log[-5000:]


def _publish(url: str, key: str, name: str, version: str) -> tuple[int, bytes]:
    data = tarball(name, version)
    return call(
        url, "PUT", "/" + name.replace("/", "%2f"), publish_body(name, version, data), key=key
    )


def test_publish_through_one_node_and_install_from_another_at_once(
    cluster: Cluster, tmp_path: Path, clients: dict[str, Path]
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    key = cluster.keys["write"]
    # Node B has read the package before it exists: a stale cache would hide it.
    assert call(b.url, "GET", "/cluster-dep", key=key)[0] == 404
    status, _ = _publish(a.url, key, "cluster-dep", "1.0.0")
    assert status in (200, 201)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".npmrc").write_text("")
    sandbox = Sandbox(tmp_path, b, key, clients)
    project = sandbox.project("app", {"name": "app", "version": "1.0.0"})
    sandbox.run("npm", "install", "cluster-dep@1.0.0", cwd=project)
    installed = json.loads((project / "node_modules/cluster-dep/package.json").read_text())
    assert installed["version"] == "1.0.0"
    lock = json.loads((project / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/cluster-dep"]
    digest = base64.b64encode(hashlib.sha512(tarball("cluster-dep", "1.0.0")).digest()).decode()
    assert entry["integrity"] == "sha512-" + digest
    assert entry["resolved"].startswith(b.url)
    # A second version through A is in B's packument at once (no stale render cache).
    assert _publish(a.url, key, "cluster-dep", "1.1.0")[0] in (200, 201)
    status, body = call(b.url, "GET", "/cluster-dep", key=key)
    assert status == 200 and set(json.loads(body)["versions"]) == {"1.0.0", "1.1.0"}


def test_a_record_change_on_one_node_reaches_the_live_clients_of_every_node(
    cluster: Cluster,
) -> None:
    admin = cluster.admin_key
    clients = [open_live(node.url, key=admin) for node in cluster.nodes]
    try:
        for live in clients:
            live.wait_for(lambda m: m.kind == "config")
        # Rows (offset 0x0A) to 50, written through node 0's live channel.
        clients[0].send_write(0x0A, bytes([50]))
        for live in clients:
            msg = live.wait_for(lambda m: m.kind == "config" and _rows(m.fields) == 50)
            assert _rows(msg.fields) == 50
        for node in cluster.nodes:
            status, body = call(node.url, "GET", "/_api/config", key=admin)
            assert status == 200 and json.loads(body)["rows"] == 50
    finally:
        for live in clients:
            live.close()


def _rows(fields: dict[str, Any]) -> int:
    return bytes.fromhex(fields["record"])[0x0A]


def test_a_key_revoked_on_one_node_is_refused_on_every_other(cluster: Cluster) -> None:
    admin = cluster.admin_key
    status, body = call(
        cluster.nodes[0].url, "POST", "/_api/security/keys",
        {"id": "revoke-me", "permissions": "read"}, key=admin,
    )  # fmt: skip
    assert status == 201, body
    secret = json.loads(body)["key"]
    for node in cluster.nodes:  # every node has it cached as valid
        assert call(node.url, "GET", "/-/whoami", key=secret)[0] == 200
    assert (
        call(cluster.nodes[0].url, "DELETE", "/_api/security/keys/revoke-me", key=admin)[0] == 200
    )
    for node in cluster.nodes[1:]:
        wait_for(partial(_status_is, node.url + "/-/whoami", secret, 401))


def test_an_ip_blocked_on_one_node_is_blocked_on_every_other(cluster: Cluster) -> None:
    admin = cluster.admin_key
    for node in cluster.nodes:
        assert call(node.url, "GET", "/-/ping")[0] == 200
    status, body = call(
        cluster.nodes[2].url, "POST", "/_api/security/blocks",
        {"ip": "127.0.0.1", "reason": "cluster test"}, key=admin,
    )  # fmt: skip
    assert status in (200, 201), body
    try:
        for node in cluster.nodes:
            wait_for(partial(_status_is, node.url + "/-/ping", None, 403))
    finally:
        # A manual block refuses even the admin's key: lift it with the CLI on node 0's
        # data dir (the same database), as an operator locked out would.
        subprocess.run(
            [str(R13), "--data", str(cluster.nodes[0].data), "security", "unblock", "127.0.0.1"],
            env=cluster.nodes[0].env(), check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    for node in cluster.nodes:
        wait_for(partial(_status_is, node.url + "/-/ping", None, 200))


def test_two_nodes_publishing_one_package_at_once_leave_a_valid_document(cluster: Cluster) -> None:
    key = cluster.keys["write"]
    _publish(cluster.nodes[0].url, key, "race-pkg", "0.0.1")
    results: dict[str, int] = {}

    def publish(node: Server, versions: list[str]) -> None:
        for version in versions:
            results[version] = _publish(node.url, key, "race-pkg", version)[0]

    threads = [
        threading.Thread(target=publish, args=(cluster.nodes[i], [f"1.{i}.{j}" for j in range(8)]))
        for i in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results.values()) <= {200, 201, 409}, results
    ok = {v for v, s in results.items() if s in (200, 201)}
    status, body = call(cluster.url, "GET", "/race-pkg", key=key)
    assert status == 200
    doc = json.loads(body)
    assert set(doc["versions"]) == ok | {"0.0.1"}
    for version in ok:
        tar = doc["versions"][version]["dist"]["tarball"]
        path = tar.split("127.0.0.1:", 1)[1].split("/", 1)[1]
        status, data = call(cluster.url, "GET", "/" + path, key=key)
        assert status == 200 and data == tarball("race-pkg", version)


def test_the_cluster_lists_every_node_alive(cluster: Cluster) -> None:
    admin = cluster.admin_key

    def listed() -> dict[str, Any]:
        status, body = call(cluster.url, "GET", "/_api/cluster", key=admin)
        assert status == 200
        view: dict[str, Any] = json.loads(body)
        return view

    wait_for(lambda: {n["node"] for n in listed()["nodes"] if n["state"] == "alive"}
             == {"node0", "node1", "node2"})  # fmt: skip
    view = listed()
    assert view["clustered"] is True and view["total"]["alive"] == 3
    assert {n["url"] for n in view["nodes"]} == {node.url for node in cluster.nodes}


def test_sigkill_of_a_node_under_load_loses_no_acknowledged_publish(cluster: Cluster) -> None:
    """Last in the module: it kills node 2 (the balancer routes around it)."""
    key = cluster.keys["write"]
    acknowledged: list[str] = []
    stop = threading.Event()

    def publisher(worker: int) -> None:
        i = 0
        while not stop.is_set():
            version = f"{worker}.0.{i}"
            try:
                status, _ = _publish(cluster.url, key, "kill-pkg", version)
            except OSError:
                status = 0
            if status in (200, 201):
                acknowledged.append(version)
            i += 1

    def installer() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                call(cluster.url, "GET", "/kill-pkg", key=key)

    threads = [threading.Thread(target=publisher, args=(w,)) for w in (1, 2)]
    threads.append(threading.Thread(target=installer))
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acknowledged) >= 5)
        cluster.nodes[2].kill()
        before = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= before + 5)  # the survivors carry on
    finally:
        stop.set()
        for t in threads:
            t.join()
    status, body = call(cluster.url, "GET", "/kill-pkg", key=key)
    assert status == 200
    doc = json.loads(body)
    assert set(acknowledged) <= set(doc["versions"])
    for version in acknowledged:
        tar = doc["versions"][version]["dist"]["tarball"]
        path = tar.split("127.0.0.1:", 1)[1].split("/", 1)[1]
        status, data = call(cluster.url, "GET", "/" + path, key=key)
        assert status == 200 and data == tarball("kill-pkg", version), version
