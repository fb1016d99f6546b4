"""`r13 serve`: a real gunicorn with several workers sharing one live record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main as r13
from tests.ports import NeverAnswered, free_port, wait_until_serving
from tests.workers import until_answered_by

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, dict[str, object]]:
    """A GET on a fresh connection (generous timeout: a loaded machine answers slowly)."""
    with urllib.request.urlopen(url, timeout=60) as resp:
        body = json.loads(resp.read())
        if isinstance(body, dict) and resp.headers.get("X-R13-Worker"):
            body["_worker"] = resp.headers["X-R13-Worker"]
        return resp.status, body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    for _ in range(5):  # another process may take the port before gunicorn binds it
        started = _start(tmp_path)
        if started is not None:
            break
    else:
        raise RuntimeError("every port tried was taken")
    url, data, proc = started
    yield url, data, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def _start(tmp_path: Path) -> tuple[str, Path, subprocess.Popen[bytes]] | None:
    """`r13 serve` on a fresh data dir, once it answers; None if its port was taken."""
    port = free_port()
    data = tmp_path / "var"
    shutil.rmtree(data, ignore_errors=True)  # left by a start whose port was taken
    env = {
        **os.environ,
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "R13_DATA": str(data),
        "R13_WORKERS": "2",
        "R13_FEATURE_DEBUG": "1",
    }
    # Its output goes to a file: DEBUG logs a line per request, and a pipe nobody reads
    # fills up after a few hundred of them and blocks the workers.
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(proc, port, log, lambda: get(url + "/-/ping")[0] == 200):
            return None
    except NeverAnswered:
        proc.kill()
        proc.wait()
        raise
    return url, data, proc


def test_serve_answers_ping_and_config(server: tuple[str, Path, subprocess.Popen[bytes]]) -> None:
    url, data, _ = server
    status, body = get(url + "/-/ping")
    assert status == 200 and set(body) <= {"_worker"}
    status, body = get(url + "/_api/config")
    assert status == 200
    assert body["version"] == 1
    assert body["hex"] == (data / "config.r13").read_bytes().hex()
    features = body["features"]
    assert isinstance(features, dict)
    assert features["DEBUG"] is True  # R13_FEATURE_DEBUG=1 applied at start


def test_a_change_reaches_every_worker_on_the_next_request(
    server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    url, data, _ = server

    def config() -> dict[str, object]:
        return get(url + "/_api/config")[1]  # a fresh connection each (DEBUG names the worker)

    # Both workers answer with the old value first: each has read the record before.
    before = until_answered_by(2, config, lambda body: str(body.get("_worker", "")))
    workers = {body["_worker"] for body in before}
    assert {body["cols"] for body in before} == {80}
    assert r13(["--data", str(data), "config", "set", "cols", "177"]) == 0
    # Then every answer, from each of those same workers, has the new one.
    after = until_answered_by(2, config, lambda body: str(body.get("_worker", "")))
    assert {body["_worker"] for body in after} == workers
    assert [body["cols"] for body in after] == [177] * len(after)


def test_sigterm_stops_the_server_cleanly(
    server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    _, _, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
