"""`r13 serve`: a real gunicorn with several workers sharing one live record."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main as r13

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
        if isinstance(body, dict) and resp.headers.get("X-R13-Worker"):
            body["_worker"] = resp.headers["X-R13-Worker"]
        return resp.status, body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    data = tmp_path / "var"
    env = {
        **os.environ,
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "R13_DATA": str(data),
        "R13_WORKERS": "2",
        "R13_FEATURE_DEBUG": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # generous: a loaded machine starts gunicorn slowly
    while True:
        try:
            get(url + "/-/ping")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "") from None
            time.sleep(0.1)
    yield url, data, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


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
    assert r13(["--data", str(data), "config", "set", "cols", "177"]) == 0
    # Fresh connections land on both workers (DEBUG names the worker).
    seen: dict[object, set[object]] = {}
    for _ in range(400):
        body = get(url + "/_api/config")[1]
        seen.setdefault(body["_worker"], set()).add(body["cols"])
        if len(seen) == 2:
            break
    assert len(seen) == 2, "both workers should have answered"
    assert all(cols == {177} for cols in seen.values())


def test_sigterm_stops_the_server_cleanly(
    server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    _, _, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
