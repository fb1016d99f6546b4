"""SIGKILL the whole server during a publish: before, during and after the commit.

A 24 MB tarball (random, so gzip cannot shrink it) is PUT to a real r13
(gunicorn, 2 workers); the master and every worker are SIGKILLed together at
a point chosen by observed progress, never by a sleep:

* ``before`` — after sending half of the request body (the server cannot have
  the whole document);
* ``during`` — the moment the publish's temp file (or its final blob) appears
  in the blob store: the server is writing the tarball and has not committed;
* ``after`` — the moment the version's row is visible in the database (the
  commit point), whether or not the answer has left.

Where each kill landed is read from the dead server's data dir (before the
restart, whose start-up sweep would clean it): a committed row means *after*;
no row but a temp file or the blob means *during*; neither means *before*. A
fast machine can turn a *during* attempt into an *after*, so the schedule
repeats (bounded) until every class has been hit at least once.

After each restart the invariants hold: the package is absent (packument and
tarball 404) or complete (the packument is valid JSON and the tarball's bytes
match its integrity) — complete exactly when the kill came after the commit;
every row has its blob; no file in the blob store is unreferenced (the
start-up sweep ran); and publishing again succeeds.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server
from tests.e2e.publish_body import publish_body, tarball
from tests.ports import free_port

pytestmark = pytest.mark.slow

CLASSES = ("before", "during", "after")
MAX_ROUNDS = 6  # of the three-kill schedule, until each class is hit


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("r13-crash")
    srv = Server(data=root / "data", port=free_port(), log=root / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(24 * 1024 * 1024)


class Publish:
    """One big publish: its body, the blob it will write, and how to watch it land."""

    def __init__(self, srv: Server, name: str, payload: bytes) -> None:
        self.srv = srv
        self.name = name
        self.tgz = tarball(name, "1.0.0", {"blob.bin": payload})
        self.sha512 = hashlib.sha512(self.tgz).hexdigest()
        self.body = json.dumps(publish_body(name, "1.0.0", self.tgz)).encode()
        self.key = srv.key("write")
        blobs = srv.data / "blobs"
        self.final = blobs / "objects" / self.sha512[:2] / self.sha512
        self.tmp = blobs / "tmp"

    def head(self) -> bytes:
        return (
            f"PUT /{self.name} HTTP/1.1\r\nHost: 127.0.0.1:{self.srv.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
            f"Authorization: Bearer {self.key}\r\n\r\n"
        ).encode()

    def send_in_background(self) -> threading.Thread:
        def send() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=120)
            try:
                headers = {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {self.key}",
                }
                conn.request("PUT", f"/{self.name}", body=self.body, headers=headers)
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass  # the server died under us: expected
            finally:
                conn.close()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        return sender

    def writing(self) -> bool:
        """The publish has started writing its tarball (temp file or final blob)."""
        prefix = self.sha512[:16]
        try:
            if any(n.startswith(prefix) for n in os.listdir(self.tmp)):
                return True
        except FileNotFoundError:
            pass
        return self.final.exists()

    def committed(self) -> bool:
        """The version's tarball row is committed (the publish point)."""
        db = sqlite3.connect(self.srv.data / "registry.sqlite3", timeout=30)
        try:
            row = db.execute(
                "SELECT 1 FROM tarballs WHERE name = ? AND version = '1.0.0'", (self.name,)
            ).fetchone()
        finally:
            db.close()
        return row is not None


def watch_until(cond: Callable[[], bool], sender: threading.Thread) -> None:
    """Poll ``cond`` as fast as possible while the publish is in flight.

    If the publish ends first (a machine faster than the polling), the kill
    comes after it, and lands where it lands: the classification says where.
    """
    deadline = time.monotonic() + 120
    while not cond() and sender.is_alive():
        assert time.monotonic() < deadline, "the publish never reached the kill point"


def kill_at(target: str, pub: Publish) -> None:
    srv = pub.srv
    if target == "before":
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        try:
            sock.sendall(pub.head() + pub.body[: len(pub.body) // 2])
            srv.kill()
        finally:
            sock.close()
        return
    sender = pub.send_in_background()
    watch_until(pub.writing if target == "during" else pub.committed, sender)
    srv.kill()
    sender.join(timeout=120)


def landed(pub: Publish) -> str:
    """Where the kill landed, read from the dead server's files."""
    if pub.committed():
        return "after"
    return "during" if pub.writing() else "before"


def blob_files(data: Path) -> set[Path]:
    return {p for p in (data / "blobs").rglob("*") if p.is_file() or p.is_symlink()}


def check_consistent(srv: Server) -> None:
    """Every row has its blob with the right bytes; no other file in the blob store."""
    db = sqlite3.connect(srv.data / "registry.sqlite3", timeout=30)
    try:
        rows = db.execute("SELECT name, version, sha512, size FROM tarballs").fetchall()
    finally:
        db.close()
    expected = set()
    for name, version, sha512, size in rows:
        path = srv.data / "blobs" / "objects" / sha512[:2] / sha512
        assert path.is_file(), f"row {name}@{version} without its blob"
        data = path.read_bytes()
        assert len(data) == size and hashlib.sha512(data).hexdigest() == sha512
        expected.add(path)
    assert blob_files(srv.data) == expected, "unreferenced files after the start-up sweep"


def package_state(pub: Publish) -> str:
    """'absent' or 'complete' — anything in between fails here."""
    srv = pub.srv
    key = srv.key("read")
    status, _, body = srv.request("GET", f"/{pub.name}", key=key)
    tar_status, _, tar = srv.request("GET", f"/{pub.name}/-/{pub.name}-1.0.0.tgz", key=key)
    if status == 404:
        assert tar_status == 404, "a tarball is served for a package that does not exist"
        return "absent"
    assert status == 200, body
    doc = json.loads(body)  # never broken JSON
    assert doc["dist-tags"]["latest"] == "1.0.0"
    dist = doc["versions"]["1.0.0"]["dist"]
    assert tar_status == 200
    assert "sha512-" + base64.b64encode(hashlib.sha512(tar).digest()).decode() == dist["integrity"]
    assert tar == pub.tgz
    return "complete"


def test_sigkill_before_during_and_after_the_commit_is_all_or_nothing(
    crash_server: Server, payload: bytes
) -> None:
    srv = crash_server
    hits: Counter[str] = Counter()
    log: list[str] = []
    for round_ in range(MAX_ROUNDS):
        if all(hits[c] for c in CLASSES):
            break
        for target in CLASSES:
            pub = Publish(srv, f"crash-{target}-{round_}", payload)
            kill_at(target, pub)
            where = landed(pub)
            hits[where] += 1
            srv.start()  # the start-up sweep runs alone: nothing else is alive
            state = package_state(pub)
            log.append(f"aimed {target}, landed {where}: {state}")
            assert state == ("complete" if where == "after" else "absent"), log
            check_consistent(srv)
            status, _, answer = srv.request("PUT", f"/{pub.name}", pub.body, key=pub.key)
            assert status in (200, 201), answer
            assert package_state(pub) == "complete"
            check_consistent(srv)
    print("\n".join(log))
    assert all(hits[c] for c in CLASSES), f"not every class was hit: {dict(hits)}; {log}"
