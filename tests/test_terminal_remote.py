"""The WebSocket terminal (``GET /_dashboard/terminal``) on a real `r13 serve` (gunicorn's
gevent worker, 3 workers), driven by `r13 term --url` in a pseudo-terminal and by the
``websockets`` library's sync client (not r13's code).

The session that matters: enable DEBUG, save, and every client of the live channel
(``GET /_api/live``) sees the new record. Waits are for messages and output, with
generous timeouts; nothing is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from r13core.config import Config13, Feature
from tests.ports import NeverAnswered, free_port, wait_until_serving
from tests.terminal_pty import ROOT, WAIT, spawn_r13

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    data: Path
    admin: str
    reader: str
    proc: subprocess.Popen[bytes]

    @property
    def ws(self) -> str:
        return "ws" + self.url.removeprefix("http")


def r13(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "--data", str(data), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT, check=True,
    )  # fmt: skip


def new_key(data: Path, name: str, perm: str) -> str:
    return r13(data, "keys", "create", "--id", name, "--perm", perm).stdout.strip().splitlines()[-1]


def ping(url: str) -> bool:
    with urllib.request.urlopen(url + "/-/ping", timeout=WAIT) as resp:
        return bool(resp.status == 200)


def _start(tmp_path: Path) -> Server | None:
    port = free_port()
    data = tmp_path / "var"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o700)
    admin, reader = new_key(data, "root", "admin"), new_key(data, "watcher", "read")
    env = {**os.environ, "REGISTRY_HOST": "127.0.0.1", "REGISTRY_PORT": str(port),
           "R13_DATA": str(data), "R13_WORKERS": "3"}  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(proc, port, log, lambda: ping(url)):
            return None
    except NeverAnswered:
        proc.kill()
        proc.wait()
        raise
    return Server(url, data, admin, reader, proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("term-remote")
    for _ in range(5):  # another process may take the port before gunicorn binds it
        started = _start(tmp)
        if started is not None:
            break
    else:
        raise RuntimeError("every port tried was taken")
    yield started
    if started.proc.poll() is None:
        started.proc.send_signal(signal.SIGTERM)
        started.proc.wait(timeout=120)


@pytest.fixture(autouse=True)
def _fresh_record(server: Server) -> None:
    """Each test starts from DEBUG off and the terminal in line mode."""
    r13(server.data, "config", "disable", "DEBUG")
    r13(server.data, "config", "set", "terminalMode", "line")


def term(server: Server, key: str | None = None, **kw: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key or server.admin}"}
    return connect(
        server.ws + "/_dashboard/terminal", subprotocols=["r13.term.v1"],  # type: ignore[list-item]
        additional_headers=headers, open_timeout=WAIT, proxy=None, **kw,
    )  # fmt: skip


def live(server: Server) -> ClientConnection:
    return connect(
        server.ws + "/_api/live", subprotocols=["r13.json.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {server.reader}"},
        open_timeout=WAIT, proxy=None,
    )  # fmt: skip


def receive(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=WAIT))
    assert isinstance(message, dict)
    return message


def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Messages up to and including the first of type ``kind``."""
    seen = [receive(ws)]
    while seen[-1]["type"] != kind:
        seen.append(receive(ws))
    return seen


def record_on_live(ws: ClientConnection, want: Any) -> Config13:
    """Read the live channel until a record that satisfies ``want`` arrives."""
    while True:
        message = receive(ws)
        if message["type"] == "config":
            record = Config13.from_bytes(bytes.fromhex(message["record"]))
            if want(record):
                return record


def test_r13_term_over_the_network_enables_debug_and_live_clients_see_it(
    server: Server,
) -> None:
    # Clients on the live channel, spread over the workers by the kernel.
    stack = contextlib.ExitStack()
    watchers = [stack.enter_context(live(server)) for _ in range(6)]
    for ws in watchers:
        first = record_on_live(ws, lambda r: True)
        assert not first.has(Feature.DEBUG)
    child = spawn_r13("term", "--url", server.url, "--key", server.admin)
    child.expect("r13>")
    child.send("enable DEBUG\r")
    child.expect("staged: enable DEBUG")
    child.expect("r13>")
    child.send("save\r")
    child.expect("DEBUG off -> on")
    child.expect("r13>")
    for ws in watchers:
        assert record_on_live(ws, lambda r: r.has(Feature.DEBUG)).has(Feature.DEBUG)
    stack.close()
    child.send("exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # Audited as the admin's key, from the client's address.
    audit = r13(server.data, "security", "audit", "--limit", "5").stdout
    assert any("key:root" in line and "config.change" in line for line in audit.splitlines())


def test_r13_term_on_the_server_s_data_dir_reaches_the_live_channel_too(server: Server) -> None:
    with live(server) as ws:
        assert not record_on_live(ws, lambda r: True).has(Feature.DEBUG)
        child = spawn_r13("--data", str(server.data), "term")
        child.expect("r13>")
        child.send("enable DEBUG\r")
        child.expect("staged: enable DEBUG")
        child.expect("r13>")
        child.send("save\r")
        child.expect("DEBUG off -> on")
        assert record_on_live(ws, lambda r: r.has(Feature.DEBUG)).has(Feature.DEBUG)
        child.send("exit\r")
        child.expect(pexpect.EOF)
        child.close()
    audit = r13(server.data, "security", "audit", "--limit", "3").stdout.splitlines()
    assert any(" cli " in line and "config.change" in line for line in audit)


def test_raw_mode_over_the_network_echoes_and_edits_on_the_server(server: Server) -> None:
    r13(server.data, "config", "set", "terminalMode", "raw")
    child = spawn_r13("term", "--url", server.url, "--key", server.admin)
    child.expect_exact("r13> ")
    child.send("enabel\x7f\x7fle DEBUG\x01\x1b[C\x05\r")
    child.expect_exact("staged: enable DEBUG")
    child.expect_exact("r13> ")
    child.send("save\r")
    child.expect_exact("DEBUG off -> on")
    child.send("\x04")
    child.expect_exact("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert Config13.from_bytes((server.data / "config.r13").read_bytes()).has(Feature.DEBUG)


def test_the_protocol_over_websocket(server: Server) -> None:
    with term(server) as ws:
        assert ws.subprotocol == "r13.term.v1"
        hello = until(ws, "prompt")[0]
        assert hello["type"] == "hello" and hello["mode"] == "line" and hello["actor"] == "key:root"
        ws.send(json.dumps({"type": "line", "text": "status"}))
        answer = until(ws, "prompt")
        assert "acting as key:root" in answer[0]["text"]
        # Malformed messages get an error; the session goes on.
        ws.send("{not json")
        assert receive(ws)["type"] == "error"
        ws.send(b"\x00\x01")
        assert receive(ws)["type"] == "error"
        ws.send(json.dumps({"type": "keys", "data": "x"}))
        assert "line mode" in receive(ws)["text"]
        ws.send(json.dumps({"type": "line", "text": "exit"}))
        assert until(ws, "bye")[-1]["reason"] == "exit"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT)
        assert ws.close_code == 1000


def test_revoking_the_key_ends_the_session(server: Server) -> None:
    key = new_key(server.data, "temp-admin", "admin")
    with term(server, key) as ws:
        until(ws, "prompt")
        r13(server.data, "keys", "revoke", "temp-admin")
        ws.send(json.dumps({"type": "line", "text": "status"}))
        assert until(ws, "bye")[-1]["reason"] == "key revoked or expired"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=WAIT)
        assert ws.close_code == 1008


@pytest.mark.parametrize(
    ("key", "status"), [("", 401), ("r13_not_a_real_key", 401), ("reader", 403)]
)
def test_only_an_admin_key_opens_the_terminal(server: Server, key: str, status: int) -> None:
    secret = server.reader if key == "reader" else key
    with pytest.raises(InvalidStatus) as refused:
        term(server, secret) if secret else connect(
            server.ws + "/_dashboard/terminal", subprotocols=["r13.term.v1"],  # type: ignore[list-item]
            open_timeout=WAIT, proxy=None,
        )  # fmt: skip
    assert refused.value.response.status_code == status
    assert "error" in json.loads(refused.value.response.body or b"{}")


def test_terminal_mode_0_refuses_the_websocket_and_r13_term(server: Server) -> None:
    r13(server.data, "config", "set", "terminalMode", "off")
    with pytest.raises(InvalidStatus) as refused:
        term(server)
    assert refused.value.response.status_code == 403
    assert "terminalMode 0" in json.loads(refused.value.response.body)["error"]
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "term", "--url", server.url, "--key", server.admin],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "HTTP 403" in done.stderr and "terminalMode 0" in done.stderr
