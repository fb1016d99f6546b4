"""A live-channel client for tests, independent of r13's code.

The WebSocket side is the ``websockets`` library (its sync client); r13's frames are
read and written here with ``struct`` straight from the table in docs/live.md, not
through r13core/frames.py, so a test of the channel does not take the server's codec
on trust. Raw-socket helpers speak broken WebSocket framing on purpose.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

BINARY = "r13.v1"
JSON = "r13.json.v1"
WAIT = 60.0  # generous: a loaded machine can be slow; never a timing assertion


@dataclass(frozen=True)
class Msg:
    """One server message, decoded: ``kind`` is config|heartbeat|error|broadcast."""

    kind: str
    fields: dict[str, Any]


def parse_binary(data: bytes) -> Msg:
    """A server frame of r13.v1, read with struct (docs/live.md's table)."""
    t = data[0]
    if t == 1:
        (generation,) = struct.unpack_from("<I", data, 1)
        assert len(data) == 18, data.hex()
        return Msg("config", {"generation": generation, "record": data[5:].hex()})
    if t == 3:
        sent_ns, seq = struct.unpack_from("<QI", data, 1)
        assert len(data) == 13
        return Msg("heartbeat", {"sent_ns": sent_ns, "seq": seq})
    if t == 4:
        (code,) = struct.unpack_from("<H", data, 1)
        return Msg("error", {"code": code, "message": data[3:].decode("utf-8")})
    if t == 5:
        return Msg("broadcast", {"topic": data[1], "event": json.loads(data[2:].decode("utf-8"))})
    raise AssertionError(f"unknown server frame {data.hex()}")


def parse_json(text: str) -> Msg:
    """A server message of r13.json.v1."""
    obj = json.loads(text)
    kind = obj.pop("type")
    return Msg(kind, obj)


def config_write(offset: int, data: bytes) -> bytes:
    return bytes([1, offset]) + data


def feature(bit: int, on: bool) -> bytes:
    return bytes([2, bit, int(on)])


def heartbeat(sent_ns: int, seq: int) -> bytes:
    return struct.pack("<BQI", 3, sent_ns, seq)


class Live:
    """One open connection to ``/_api/live`` and a typed view of what it receives."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.binary = conn.subprotocol == BINARY
        self.worker = conn.response.headers.get("X-R13-Worker", "") if conn.response else ""

    def recv(self, timeout: float = WAIT) -> Msg:
        data = self.conn.recv(timeout=timeout)
        if self.binary:
            assert isinstance(data, bytes), data
            return parse_binary(data)
        assert isinstance(data, str), data
        return parse_json(data)

    def wait_for(
        self, want: Callable[[Msg], bool], timeout: float = WAIT, *, skip_heartbeats: bool = True
    ) -> Msg:
        """The first message ``want`` accepts (others are read and dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the expected message never came"
            msg = self.recv(left)
            if msg.kind == "heartbeat" and skip_heartbeats and not want(msg):
                self.echo(msg)  # answer the server's heartbeat like a real client
                continue
            if want(msg):
                return msg

    def echo(self, msg: Msg) -> None:
        f = msg.fields
        if self.binary:
            self.conn.send(heartbeat(f["sent_ns"], f["seq"]))
        else:
            self.conn.send(json.dumps({"type": "heartbeat", **f}))

    def send_write(self, offset: int, data: bytes) -> None:
        if self.binary:
            self.conn.send(config_write(offset, data))
        else:
            self.conn.send(json.dumps({"type": "config", "offset": offset, "data": data.hex()}))

    def send_feature(self, bit: int, on: bool) -> None:
        if self.binary:
            self.conn.send(feature(bit, on))
        else:
            self.conn.send(json.dumps({"type": "feature", "bit": bit, "on": on}))

    def closed_code(self, timeout: float = WAIT) -> int | None:
        """Read until the server closes; the close code it sent (None: no close frame)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.conn.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
        raise AssertionError("the server did not close the connection")

    def close(self) -> None:
        self.conn.close()


def open_live(
    url: str,
    *,
    key: str | None = None,
    protocols: tuple[str, ...] = (JSON,),
    headers: dict[str, str] | None = None,
) -> Live:
    """Connect to ``url`` (http://...) + /_api/live; raises InvalidStatus on a refusal."""
    hdrs = dict(headers or {})
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    ws_url = url.replace("http://", "ws://", 1) + "/_api/live"
    conn = connect(
        ws_url,
        subprotocols=[Subprotocol(p) for p in protocols],
        additional_headers=hdrs,
        open_timeout=WAIT,
        ping_interval=None,
        max_size=1 << 20,
        legacy=True,  # a connection the test closes itself, not a context manager
    )
    return Live(conn)


def refusal(url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of a refused handshake."""
    try:
        live = open_live(url, **kw)
    except InvalidStatus as exc:
        body = bytes(exc.response.body or b"")
        return exc.response.status_code, json.loads(body) if body else {}
    live.close()
    raise AssertionError("the handshake was accepted")


# -- raw sockets: broken framing on purpose ---------------------------------------------


def raw_handshake(
    port: int, key: str, protocol: str = JSON, *, timeout: float = WAIT
) -> tuple[socket.socket, bytes]:
    """A socket past the handshake; (socket, bytes read after the 101's headers)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    nonce = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /_api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n"
            f"Authorization: Bearer {key}\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"closed during the handshake: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """One client frame, masked unless asked not to (RFC 6455 5.2)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, (0x80 if mask else 0) | n])
    elif n < 65536:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_server_frames(
    s: socket.socket, initial: bytes = b"", *, timeout: float = WAIT
) -> list[tuple[int, bytes]]:
    """Every frame the server sends until it closes TCP: (opcode, payload) pairs."""
    s.settimeout(timeout)
    buf = bytearray(initial)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    out = []
    i = 0
    while i + 2 <= len(buf):
        opcode = buf[i] & 0x0F
        n = buf[i + 1] & 0x7F
        i += 2
        if n == 126:
            (n,) = struct.unpack_from("!H", buf, i)
            i += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", buf, i)
            i += 8
        out.append((opcode, bytes(buf[i : i + n])))
        i += n
    return out


def close_code_of(frames: list[tuple[int, bytes]]) -> int | None:
    """The code of the server's close frame among ``frames`` (None if it sent none)."""
    for opcode, payload in frames:
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """The subset of JSON Schema r13core/broadcasts.py uses: type, required, enum, pattern."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        py: dict[str, Any] = {
            "object": dict,
            "array": list,
            "string": str,
            "number": (int, float),
            "integer": int,
            "null": type(None),
        }
        if not any(isinstance(value, py[k]) for k in allowed) or isinstance(value, bool):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        return False
    if isinstance(value, dict):
        if any(k not in value for k in schema.get("required", [])):
            return False
        props = schema.get("properties", {})
        return all(conforms(v, props[k]) for k, v in value.items() if k in props)
    if isinstance(value, list) and "items" in schema:
        return all(conforms(v, schema["items"]) for v in value)
    return True
