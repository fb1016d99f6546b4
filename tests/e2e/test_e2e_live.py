"""The live channel (GET /_api/live) on a real gunicorn with 3 gevent workers.

Clients are the ``websockets`` library and raw sockets (tests/live_client.py), never
r13's own WebSocket code. Every wait is for a condition, bounded by a generous time.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.broadcasts import SCHEMAS
from r13core.events import EventLog
from tests.e2e.conftest import R13, Server, start_server
from tests.e2e.publish_body import publish_body, tarball
from tests.live_client import (
    BINARY,
    JSON,
    Live,
    Msg,
    client_frame,
    close_code_of,
    conforms,
    open_live,
    raw_handshake,
    read_server_frames,
    refusal,
)
from tests.workers import until_answered_by

pytestmark = pytest.mark.slow

WORKERS = 3
BINARY_BIT = 4
PREMIUM_BIT = 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("live"),
        R13_WORKERS=str(WORKERS),
        R13_FEATURE_DEBUG="1",  # X-R13-Worker names the worker of each connection
        R13_LIVE_HEARTBEAT_INTERVAL="200",
        METRICS_COLLECTION_INTERVAL="200",
        # The topics test names its own client address (X-Forwarded-For): the security
        # events of one client are folded for 10 s per worker, and other tests fail keys too.
        R13_TRUSTED_PROXIES="127.0.0.1/32",
    )
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()[-5000:]


def on_every_worker(server: Server, key: str, **kw: Any) -> list[Live]:
    """Connections until every worker holds at least one (all of them, kept open)."""
    return until_answered_by(WORKERS, lambda: open_live(server.url, key=key, **kw), _worker)


def _worker(live: Live) -> str:
    return live.worker


def make_key(server: Server, key_id: str, perm: str, **extra: Any) -> str:
    status, _, body = server.request(
        "POST",
        "/_api/security/keys",
        {"id": key_id, "permissions": perm, **extra},
        key=server.admin_key,
    )
    assert status == 201, body
    return str(json.loads(body)["key"])


def record_of(msg: Msg) -> bytes:
    assert msg.kind == "config", msg
    return bytes.fromhex(msg.fields["record"])


def flags(record: bytes) -> int:
    return int(struct.unpack_from("<I", record, 5)[0])


def set_flag(server: Server, bit: int, on: bool) -> bytes:
    """Set one flag through an admin connection; the record once the change came back."""
    admin = open_live(server.url, key=server.admin_key)
    try:
        first = record_of(admin.wait_for(lambda m: m.kind == "config"))
        if bool(flags(first) >> bit & 1) == on:
            return first
        admin.send_feature(bit, on)
        msg = admin.wait_for(
            lambda m: m.kind == "config" and bool(flags(record_of(m)) >> bit & 1) == on
        )
        return record_of(msg)
    finally:
        admin.close()


# -- reaching every worker ------------------------------------------------------------------


def test_a_change_sent_on_one_connection_reaches_connections_on_every_worker(
    server: Server,
) -> None:
    set_flag(server, BINARY_BIT, True)  # so both subprotocols can be held at once
    binaries = on_every_worker(server, server.admin_key, protocols=(BINARY,))
    jsons = on_every_worker(server, server.admin_key, protocols=(JSON,))
    clients = binaries + jsons
    try:
        assert all(c.binary for c in binaries) and not any(c.binary for c in jsons)
        firsts = [record_of(c.wait_for(lambda m: m.kind == "config")) for c in clients]
        start = firsts[-1]
        want_on = not bool(flags(start) >> PREMIUM_BIT & 1)
        clients[0].send_feature(PREMIUM_BIT, want_on)
        for c in clients:  # every connection of every worker, in either subprotocol
            got = c.wait_for(
                lambda m: (
                    m.kind == "config" and bool(flags(record_of(m)) >> PREMIUM_BIT & 1) == want_on
                )
            )
            assert record_of(got)[9:] == start[9:]  # only the flag moved
        assert {c.worker for c in clients} == {c.worker for c in binaries}
        assert len({c.worker for c in clients}) == WORKERS
        # And a byte written at an offset on a binary connection reaches the JSON ones.
        rows = (start[10] % 200) + 20
        binaries[-1].send_write(10, bytes([rows]))
        for c in jsons:
            c.wait_for(lambda m: m.kind == "config" and record_of(m)[10] == rows)
    finally:
        for c in clients:
            c.close()
        set_flag(server, BINARY_BIT, False)


def test_a_change_made_by_the_cli_reaches_connections_on_every_worker(server: Server) -> None:
    clients = on_every_worker(server, server.admin_key)
    try:
        start = record_of(clients[-1].wait_for(lambda m: m.kind == "config"))
        for c in clients[:-1]:
            c.wait_for(lambda m: m.kind == "config")
        on = not bool(flags(start) >> PREMIUM_BIT & 1)
        subprocess.run(
            [str(R13), "--data", str(server.data), "config",
             "enable" if on else "disable", "PREMIUM_TYPES"],
            env=server.env(), check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        for c in clients:
            c.wait_for(
                lambda m: m.kind == "config" and bool(flags(record_of(m)) >> PREMIUM_BIT & 1) == on
            )
    finally:
        for c in clients:
            c.close()


def test_the_http_api_sees_a_change_made_on_the_channel(server: Server) -> None:
    record = set_flag(server, PREMIUM_BIT, True)
    status, _, body = server.request("GET", "/_api/config", key=server.admin_key)
    assert status == 200
    assert json.loads(body)["hex"] == record.hex()


# -- subprotocols ---------------------------------------------------------------------------


def test_with_binary_protocol_off_only_json_is_offered(server: Server) -> None:
    set_flag(server, BINARY_BIT, False)
    status, body = refusal(server.url, key=server.admin_key, protocols=(BINARY,))
    assert status == 400 and "r13.json.v1" in body["error"]
    live = open_live(server.url, key=server.admin_key, protocols=(BINARY, JSON))
    assert live.conn.subprotocol == JSON
    live.close()


def test_with_binary_protocol_on_the_client_s_first_choice_wins(server: Server) -> None:
    set_flag(server, BINARY_BIT, True)
    try:
        for offer in ((BINARY, JSON), (JSON, BINARY)):
            live = open_live(server.url, key=server.admin_key, protocols=offer)
            assert live.conn.subprotocol == offer[0]
            msg = live.wait_for(lambda m: m.kind == "config")
            assert len(record_of(msg)) == 13
            live.close()
    finally:
        set_flag(server, BINARY_BIT, False)


@pytest.mark.parametrize("offer", [("r13.v2",), ("chat", "superchat"), ()])
def test_an_unknown_or_missing_subprotocol_is_refused(
    server: Server, offer: tuple[str, ...]
) -> None:
    status, body = refusal(server.url, key=server.admin_key, protocols=offer)
    assert status == 400
    assert "subprotocol" in body["error"]


def test_both_subprotocols_echo_heartbeats_and_answer_errors(server: Server) -> None:
    set_flag(server, BINARY_BIT, True)
    try:
        b = open_live(server.url, key=server.admin_key, protocols=(BINARY,))
        j = open_live(server.url, key=server.admin_key, protocols=(JSON,))
        assert record_of(b.wait_for(lambda m: m.kind == "config")) == record_of(
            j.wait_for(lambda m: m.kind == "config")
        )
        b.conn.send(struct.pack("<BQI", 3, 2**64 - 1, 77))
        got = b.wait_for(lambda m: m.kind == "heartbeat" and m.fields["seq"] == 77)
        assert got.fields["sent_ns"] == 2**64 - 1
        j.conn.send(json.dumps({"type": "heartbeat", "sent_ns": 12, "seq": 78}))
        got = j.wait_for(lambda m: m.kind == "heartbeat" and m.fields["seq"] == 78)
        assert got.fields["sent_ns"] == 12
        # Well framed but not a valid r13 frame: an error frame, and the connection stays.
        b.conn.send(bytes([2, 40, 1]))  # feature bit 40
        assert b.wait_for(lambda m: m.kind == "error").fields["code"] == 3
        j.conn.send(json.dumps({"type": "feature", "bit": 1}))
        assert j.wait_for(lambda m: m.kind == "error").fields["code"] == 1
        b.conn.send("text on the binary subprotocol")
        assert b.wait_for(lambda m: m.kind == "error").fields["code"] == 1
        j.conn.send(b"\x03")
        assert j.wait_for(lambda m: m.kind == "error").fields["code"] == 1
        for live, seq in ((b, 79), (j, 80)):
            live.echo(Msg("heartbeat", {"sent_ns": 1, "seq": seq}))

            def echoed(m: Msg, seq: int = seq) -> bool:
                return m.kind == "heartbeat" and m.fields["seq"] == seq

            live.wait_for(echoed)
            live.close()
    finally:
        set_flag(server, BINARY_BIT, False)


# -- who may connect ------------------------------------------------------------------------


def test_a_key_is_needed_to_subscribe(server: Server) -> None:
    assert refusal(server.url)[0] == 401
    assert refusal(server.url, key="r13_not_a_real_key_at_all_000000000000")[0] == 401


def test_a_read_key_subscribes_but_cannot_write(server: Server) -> None:
    for perm in ("read", "write"):
        key = make_key(server, f"live-{perm}-only", perm)
        live = open_live(server.url, key=key)
        before = record_of(live.wait_for(lambda m: m.kind == "config"))
        live.send_feature(PREMIUM_BIT, not bool(flags(before) >> PREMIUM_BIT & 1))
        error = live.wait_for(lambda m: m.kind in ("error", "config"))
        assert error.kind == "error" and error.fields["code"] == 2, error
        live.close()
        _, _, body = server.request("GET", "/_api/config", key=server.admin_key)
        assert json.loads(body)["hex"] == before.hex()


def test_a_page_of_another_site_is_refused_and_r13_s_own_is_not(server: Server) -> None:
    status, body = refusal(
        server.url, key=server.admin_key, headers={"Origin": "https://evil.example"}
    )
    assert status == 403 and "Origin" in body["error"]
    live = open_live(server.url, key=server.admin_key, headers={"Origin": server.url})
    live.wait_for(lambda m: m.kind == "config")
    live.close()


def test_revoking_a_key_closes_its_sockets_on_every_worker(server: Server) -> None:
    key = make_key(server, "live-revoked", "read")
    clients = on_every_worker(server, key)
    other = open_live(server.url, key=server.admin_key)
    for c in clients:
        c.wait_for(lambda m: m.kind == "config")
    status, _, _ = server.request(
        "DELETE", "/_api/security/keys/live-revoked", key=server.admin_key
    )
    assert status == 200
    assert [c.closed_code() for c in clients] == [1008] * len(clients)
    # Another key's connection is untouched.
    other.echo(Msg("heartbeat", {"sent_ns": 5, "seq": 5}))
    other.wait_for(lambda m: m.kind == "heartbeat" and m.fields["seq"] == 5)
    other.close()
    assert refusal(server.url, key=key)[0] == 401


def test_a_key_that_expires_closes_its_socket(server: Server) -> None:
    key = make_key(server, "live-expiring", "read", expiresIn="3s")
    live = open_live(server.url, key=key)
    live.wait_for(lambda m: m.kind == "config")
    assert live.closed_code() == 1008


# -- topics ---------------------------------------------------------------------------------


def broadcasts(live: Live, topic: str, until: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Broadcast events of ``topic`` until one satisfies ``until`` (all of them)."""
    seen: list[dict[str, Any]] = []

    def want(m: Msg) -> bool:
        if m.kind != "broadcast" or m.fields["event"]["topic"] != topic:
            return False
        seen.append(m.fields["event"])
        return bool(until(m.fields["event"]))

    live.wait_for(want, timeout)
    return seen


def test_each_topic_reaches_who_may_see_it_with_its_schema(server: Server) -> None:
    reader_key = make_key(server, "live-topics-reader", "read")
    admins = on_every_worker(server, server.admin_key)
    reader = open_live(server.url, key=reader_key)
    for c in [*admins, reader]:
        c.wait_for(lambda m: m.kind == "config")

    # metrics: every interval, to readers too.
    for c in [admins[0], reader]:
        sample = broadcasts(c, "metrics", lambda e: True)[-1]
        assert conforms(sample["data"], SCHEMAS["metrics"]), sample
        assert {"seq", "ts", "topic", "data"} <= sample.keys()

    # package: a publish reaches every worker's clients, readers included.
    name = "live-topic-pkg"
    status, _, body = server.request(
        "PUT", f"/{name}", publish_body(name, "1.0.0", tarball(name, "1.0.0")), key=server.admin_key
    )
    assert status in (200, 201), body
    for c in [*admins, reader]:
        ev = broadcasts(c, "package", lambda e: e["data"]["package"] == name)[-1]
        assert ev["data"]["event"] == "publish" and ev["data"]["versions"] == ["1.0.0"]
        assert conforms(ev["data"], SCHEMAS["package"]), ev

    # security (admins only): a request with a bad key is an auth failure.
    client = f"198.51.100.{random.randrange(1, 250)}"
    server.request(
        "GET", "/-/whoami", key="r13_bad_key_for_the_live_test_0000000000",
        headers={"X-Forwarded-For": client},
    )  # fmt: skip

    def failed_here(e: dict[str, Any]) -> bool:
        return bool(e["data"]["event"] == "auth_failure" and e["data"]["ip"] == client)

    for c in admins:
        ev = broadcasts(c, "security", failed_here)[-1]
        assert ev["data"]["who"] == "r13"
        assert conforms(ev["data"], SCHEMAS["security"]), ev

    # config (admins only): who changed the record, old -> new bytes.
    record = set_flag(server, PREMIUM_BIT, False)
    record = set_flag(server, PREMIUM_BIT, True)
    for c in admins:
        ev = broadcasts(c, "config", lambda e: e["data"]["new"] == record.hex())[-1]
        assert ev["data"]["who"] == "key:admin" and ev["data"]["old"] != ev["data"]["new"]
        assert conforms(ev["data"], SCHEMAS["config"]), ev

    # alert (admins only): what the sampler appends to the events log reaches every worker.
    alert = {"event": "raised", "rule": "cpu", "metric": "cpu_percent", "threshold": 80.0,
             "value": 99.0, "peak": 99.0, "started": time.time()}  # fmt: skip
    assert conforms(alert, SCHEMAS["alert"])
    EventLog(server.data).append("alert", alert)
    for c in admins:
        ev = broadcasts(c, "alert", lambda e: e["data"]["rule"] == "cpu")[-1]
        assert ev["data"] == alert

    # The reader saw none of the admin topics: a last package event closes its stream.
    server.request("PUT", f"/{name}", publish_body(name, "1.0.1", tarball(name, "1.0.1")),
                   key=server.admin_key)  # fmt: skip
    seen = broadcasts(reader, "package", lambda e: e["data"].get("versions") == ["1.0.1"])
    assert seen
    for c in [*admins, reader]:
        c.close()


def test_a_reader_limited_to_some_packages_sees_only_their_events(server: Server) -> None:
    key = make_key(server, "live-scoped-reader", "read", packages=["@seen/*"])
    live = open_live(server.url, key=key)
    live.wait_for(lambda m: m.kind == "config")
    for name in ("live-hidden", "@seen/shown"):
        status, _, _ = server.request(
            "PUT", f"/{name.replace('/', '%2f')}",
            publish_body(name, "1.0.0", tarball(name, "1.0.0")), key=server.admin_key,
        )  # fmt: skip
        assert status in (200, 201)
    packages = [e["data"]["package"] for e in broadcasts(
        live, "package", lambda e: e["data"]["package"] == "@seen/shown")]  # fmt: skip
    assert packages == ["@seen/shown"]
    live.close()


# -- the monitor ----------------------------------------------------------------------------


def test_the_monitor_counts_connections_messages_and_heartbeat_latency(server: Server) -> None:
    live = open_live(server.url, key=server.admin_key)
    deadline = time.monotonic() + 120
    sample: dict[str, Any] = {}
    while time.monotonic() < deadline:
        # Answering the server's heartbeats (every 200 ms here) gives it round trips.
        msg = live.recv()
        if msg.kind == "heartbeat":
            live.echo(msg)
        if msg.kind == "broadcast" and msg.fields["event"]["topic"] == "metrics":
            sample = msg.fields["event"]["data"]
            if (
                sample["ws_connections"] >= 1
                and sample["ws_messages_per_s"] > 0
                and sample.get("ws_heartbeat_ms") is not None
            ):
                break
    assert sample.get("ws_connections", 0) >= 1, sample
    assert sample["ws_messages_per_s"] > 0 and sample["ws_heartbeat_ms"] is not None, sample
    status, _, body = server.request("GET", "/metrics", key=server.admin_key)
    assert status == 200
    text = body.decode()
    gauge = [ln for ln in text.splitlines() if ln.startswith("r13_websocket_connections ")]
    assert gauge and float(gauge[0].split()[1]) >= 1, gauge
    live.close()


# -- bad input ------------------------------------------------------------------------------


def _valid_heartbeat(message: str | bytes) -> tuple[int, int] | None:
    """(sent_ns, seq) if ``message`` is a valid client heartbeat (docs/live.md), else None."""
    if isinstance(message, bytes):
        if len(message) == 13 and message[0] == 3:
            sent_ns, seq = struct.unpack_from("<QI", message, 1)
            return int(sent_ns), int(seq)
        return None
    try:
        obj = json.loads(message)
    except ValueError:
        return None
    if (
        not isinstance(obj, dict)
        or obj.get("type") != "heartbeat"
        or set(obj) != {"type", "sent_ns", "seq"}
    ):
        return None
    ns, seq = obj["sent_ns"], obj["seq"]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in (ns, seq)):
        return None
    return (ns, seq) if 0 <= ns < 2**64 and 0 <= seq < 2**32 else None


def _fuzz_message(rng: random.Random, protocol: str, i: int) -> str | bytes:
    n = rng.choice([0, 1, 2, 3, 12, 13, 20, rng.randrange(0, 300)])
    raw = bytes([rng.choice([0, 1, 2, 3, 4, 5, 9, 255])]) + rng.randbytes(n)
    if protocol == BINARY:
        return raw
    return rng.choice([
        raw.decode("latin-1"),
        json.dumps({"type": rng.choice(["config", "feature", "heartbeat", "error", "x", 3]),
                    "bit": rng.randrange(-5, 70), "on": rng.choice([True, 1, None]),
                    "offset": rng.randrange(-2, 20), "data": raw.hex()[: rng.randrange(40)],
                    "sent_ns": rng.randrange(-1, 2**65), "seq": rng.randrange(-1, 2**33)}),
        json.dumps({"type": "feature", "bit": rng.randrange(-1, 40), "on": rng.random() < 0.5}),
        json.dumps({"type": "config", "offset": rng.randrange(-1, 15), "data": raw.hex()[:30]}),
        json.dumps({"type": "heartbeat", "sent_ns": rng.randrange(-1, 2**64 + 2),
                    "seq": rng.randrange(-1, 2**32 + 2)}),
        "[]", "null", "{", "",
    ])  # fmt: skip


def test_fuzzed_messages_each_get_one_answer_and_the_connection_stays(server: Server) -> None:
    set_flag(server, BINARY_BIT, True)
    key = make_key(server, "live-fuzz", "read")  # valid config writes are refused, not applied
    rng = random.Random(1313)
    try:
        for protocol in (BINARY, JSON):
            live = open_live(server.url, key=key, protocols=(protocol,))
            live.wait_for(lambda m: m.kind == "config")
            for i in range(150):
                message = _fuzz_message(rng, protocol, i)
                live.conn.send(message)
                echo = _valid_heartbeat(message)
                while True:  # exactly one answer: the echo, or an error frame
                    reply = live.recv()
                    if reply.kind in ("broadcast", "config"):  # samples, others' changes
                        continue
                    if reply.kind == "heartbeat":
                        got = (reply.fields["sent_ns"], reply.fields["seq"])
                        if echo is not None and got == echo:
                            break
                        live.echo(reply)  # the server's own heartbeat
                        continue
                    assert reply.kind == "error" and echo is None, (message, reply)
                    assert reply.fields["code"] in (1, 2, 3), reply
                    break
            live.echo(Msg("heartbeat", {"sent_ns": 7, "seq": 4242}))
            live.wait_for(lambda m: m.kind == "heartbeat" and m.fields["seq"] == 4242)
            live.close()
    finally:
        set_flag(server, BINARY_BIT, False)


BROKEN = [
    ("unmasked frame", client_frame(0x2, b"\x03" + b"\0" * 12, mask=False), 1002),
    ("reserved bit", client_frame(0x2, b"\x03", rsv=4), 1002),
    ("unknown opcode", client_frame(0x3, b"x"), 1002),
    ("long ping", client_frame(0x9, b"p" * 126), 1002),
    ("fragmented ping", client_frame(0x9, b"p", fin=False), 1002),
    ("lone continuation", client_frame(0x0, b"x"), 1002),
    ("bad close code", client_frame(0x8, struct.pack("!H", 999)), 1002),
    ("text not utf-8", client_frame(0x1, b"\xff\xfe{}"), 1007),
    ("message too big", client_frame(0x2, b"\x05" * 65537), 1009),
    ("fragments too big", b"".join(
        [client_frame(0x2, b"a" * 40000, fin=False), client_frame(0x0, b"b" * 40000)]), 1009),
]  # fmt: skip


@pytest.mark.parametrize(("what", "data", "code"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_framing_closes_with_the_rfc_code(
    server: Server, what: str, data: bytes, code: int
) -> None:
    s, rest = raw_handshake(server.port, server.admin_key)
    try:
        s.sendall(data)
        frames = read_server_frames(s, rest)
    finally:
        s.close()
    assert close_code_of(frames) == code, (what, frames)
    assert server.request("GET", "/-/ping")[0] == 200


def test_random_bytes_on_the_socket_end_every_connection_and_crash_nothing(
    server: Server,
) -> None:
    rng = random.Random(4873)
    for _ in range(40):
        s, rest = raw_handshake(server.port, server.admin_key)
        try:
            s.sendall(rng.randbytes(rng.randrange(1, 2000)))
            # A masked close after the garbage: whatever the garbage did, the server ends
            # the connection (close frame or cut) within the generous wait, never hangs.
            s.sendall(client_frame(0x8, struct.pack("!H", 1000)))
            read_server_frames(s, rest)
        finally:
            s.close()
    assert server.request("GET", "/-/ping")[0] == 200
    live = open_live(server.url, key=server.admin_key)
    live.wait_for(lambda m: m.kind == "config")
    live.close()
    assert "Traceback" not in server.log.read_text()


# -- many sockets ---------------------------------------------------------------------------


def test_http_keeps_answering_while_500_sockets_are_open(server: Server) -> None:
    sockets: list[socket.socket] = []
    try:
        for _ in range(500):
            sockets.append(raw_handshake(server.port, server.admin_key)[0])
        for _ in range(20):
            assert server.request("GET", "/-/ping")[0] == 200
        status, _, _ = server.request("GET", "/live-topic-pkg", key=server.admin_key)
        assert status == 200
        # Every socket is still open: a heartbeat on each is echoed.
        for i, s in enumerate(sockets):
            s.sendall(
                client_frame(
                    0x1, json.dumps({"type": "heartbeat", "sent_ns": i, "seq": i}).encode()
                )
            )
        for i, s in enumerate(sockets):
            s.settimeout(60)
            buf = b""
            needle = f'"sent_ns":{i},"seq":{i}'.encode()
            while needle not in buf:
                chunk = s.recv(65536)
                assert chunk, f"socket {i} was closed"
                buf += chunk
    finally:
        for s in sockets:
            s.close()


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_closes_every_socket_with_1001(tmp_path: Path) -> None:
    srv = start_server(tmp_path, R13_WORKERS=str(WORKERS), R13_FEATURE_DEBUG="1")
    try:
        clients = on_every_worker(srv, srv.admin_key)
        for c in clients:
            c.wait_for(lambda m: m.kind == "config")
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        assert [c.closed_code() for c in clients] == [1001] * len(clients)
        assert srv.proc.wait(timeout=120) == 0
    finally:
        srv.stop()


# -- keepalive ------------------------------------------------------------------------------


def test_a_silent_client_is_pinged_then_closed_and_one_that_answers_stays(
    tmp_path: Path,
) -> None:
    srv = start_server(
        tmp_path,
        R13_WORKERS="1",
        R13_LIVE_PING_INTERVAL="200",
        R13_LIVE_IDLE_TIMEOUT="1000",
        R13_LIVE_HEARTBEAT_INTERVAL="3600000",  # only WebSocket pings in this test
        R13_FEATURE_METRICS="0",  # no samples on the channel either
    )
    try:
        silent, rest = raw_handshake(srv.port, srv.admin_key)
        frames = read_server_frames(silent, rest)
        silent.close()
        assert any(op == 0x9 for op, _ in frames), frames  # pinged first
        assert close_code_of(frames) == 1011

        talker, rest = raw_handshake(srv.port, srv.admin_key)
        talker.settimeout(60)
        buf, pings = bytearray(rest), 0
        while pings < 8:  # 8 pings at 200 ms is past the 1 s idle limit: answered, it stays
            chunk = talker.recv(4096)
            assert chunk, "the server closed a connection that answered its pings"
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
                opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
                payload = bytes(buf[2 : 2 + n])
                del buf[: 2 + n]
                assert opcode != 0x8, payload
                if opcode == 0x9:
                    pings += 1
                    talker.sendall(client_frame(0xA, payload))
        talker.close()
    finally:
        srv.stop()
