"""SIGKILL the whole server at several moments of a publish: all or nothing, and a retry works.

A 24 MB tarball (random, so gzip cannot shrink it) is PUT with a raw HTTP
client; after N ms the master and every worker are SIGKILLed together. The kill
moments are fractions of one measured publish, so they cover the whole
request on a fast or a slow machine. After a
restart the package is either absent (packument and tarball 404) or fully there
(the tarball's bytes match the packument's integrity), and publishing again
succeeds and leaves it fully there.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, free_port
from tests.e2e.publish_body import publish_body, tarball

pytestmark = pytest.mark.slow

# Moments to kill, as fractions of how long one publish takes on this machine.
KILL_AT = [0.0, 0.1, 0.3, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0, 1.1]
OUTCOMES: dict[float, str] = {}


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


@pytest.fixture(scope="module")
def publish_seconds(crash_server: Server, payload: bytes) -> float:
    """How long one uninterrupted publish of this size takes here."""
    name = "crash-warmup"
    body = json.dumps(publish_body(name, "1.0.0", tarball(name, "1.0.0", {"b": payload})))
    started = time.monotonic()
    status, _, answer = crash_server.request(
        "PUT", f"/{name}", body.encode(), key=crash_server.key("write")
    )
    assert status == 201, answer
    return time.monotonic() - started


def send_publish(srv: Server, name: str, body: bytes, key: str) -> None:
    """PUT the document; any outcome (answer, reset, timeout) is fine here."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(
            "PUT",
            f"/{name}",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()


def state(srv: Server, name: str, key: str, data: bytes) -> str:
    """'absent' or 'present' — and 'present' means every byte checks out."""
    status, _, body = srv.request("GET", f"/{name}", key=key)
    tar_status, _, tar = srv.request("GET", f"/{name}/-/{name}-1.0.0.tgz", key=key)
    if status == 404:
        assert tar_status == 404, "a tarball is served for a package that does not exist"
        return "absent"
    assert status == 200, body
    doc = json.loads(body)
    dist = doc["versions"]["1.0.0"]["dist"]
    assert doc["dist-tags"]["latest"] == "1.0.0"
    assert tar_status == 200
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tar).digest()).decode()
    assert digest == dist["integrity"]
    assert tar == data
    return "present"


@pytest.mark.parametrize("kill_at", KILL_AT)
def test_sigkill_during_publish_is_all_or_nothing(
    crash_server: Server, payload: bytes, publish_seconds: float, kill_at: float
) -> None:
    srv = crash_server
    key = srv.key("write")
    name = f"crash-{int(kill_at * 100)}"
    big_tarball = tarball(name, "1.0.0", {"blob.bin": payload})
    doc = publish_body(name, "1.0.0", big_tarball)
    body = json.dumps(doc).encode()

    sender = threading.Thread(target=send_publish, args=(srv, name, body, key))
    sender.start()
    time.sleep(kill_at * publish_seconds)
    srv.kill()
    sender.join(timeout=60)
    srv.start()

    before = state(srv, name, key, big_tarball)
    OUTCOMES[kill_at] = before
    print(f"killed at {kill_at:.2f} x {publish_seconds:.2f} s: {before}")

    status, _, answer = srv.request("PUT", f"/{name}", body, key=key)
    assert status in (200, 201), answer
    assert state(srv, name, key, big_tarball) == "present"
