"""The frames of the live channel as JSON objects (WebSocket subprotocol ``r13.json.v1``).

The same messages as the binary frames of r13core/frames.py, one JSON object per
WebSocket text message, for clients that cannot or would rather not pack bytes (and
for every client while BINARY_PROTOCOL is off)::

    {"type": "config", "offset": 9, "data": "02"}              client: write bytes (hex)
    {"type": "config", "generation": 7, "record": "01...00"}   server: the record (26 hex)
    {"type": "feature", "bit": 2, "on": true}                   client: toggle a flag
    {"type": "heartbeat", "sent_ns": 123, "seq": 1}             either way, echoed
    {"type": "error", "code": 3, "message": "..."}              server
    {"type": "broadcast", "topic": 2, "event": {...}}           server: topic byte + the event

:func:`decode_json` checks exactly what the binary decoder checks, with the same
exceptions and codes (it builds the frame, then runs it through the C encoder's
checks), plus the JSON's own shape: not JSON, not an object, an unknown or missing
``type``, a field missing, of the wrong JSON type, or a key too many ->
:class:`~r13core.errors.FrameError` (``R13_ETYPE`` for the type, else ``R13_ETRUNC``
when a field is missing, ``R13_EVALUE`` -> :class:`~r13core.errors.InvalidValue`
for a bad value).
"""

from __future__ import annotations

import json
from typing import Any, Final, NoReturn

from r13core import _ffi
from r13core._ffi import raise_for
from r13core.errors import FrameError
from r13core.frames import (
    Broadcast,
    ConfigState,
    ConfigWrite,
    Direction,
    ErrorFrame,
    FeatureToggle,
    Frame,
    Heartbeat,
    encode,
)

__all__ = ["decode_json", "encode_json", "frame_to_json"]

_CLIENT_FIELDS: Final[dict[str, frozenset[str]]] = {
    "config": frozenset({"type", "offset", "data"}),
    "feature": frozenset({"type", "bit", "on"}),
    "heartbeat": frozenset({"type", "sent_ns", "seq"}),
}
_MAX_TEXT: Final = 4096  # a client's JSON frame is small: a config write is the largest


def frame_to_json(frame: Frame) -> dict[str, Any]:
    """The JSON object of ``frame`` (a broadcast's payload is parsed into ``event``)."""
    if isinstance(frame, ConfigState):
        return {"type": "config", "generation": frame.generation, "record": frame.record.hex()}
    if isinstance(frame, Heartbeat):
        return {"type": "heartbeat", "sent_ns": frame.sent_ns, "seq": frame.seq}
    if isinstance(frame, Broadcast):
        return {"type": "broadcast", "topic": frame.topic, "event": frame.json()}
    if isinstance(frame, ErrorFrame):
        return {"type": "error", "code": frame.code, "message": frame.message}
    if isinstance(frame, ConfigWrite):
        return {"type": "config", "offset": frame.offset, "data": frame.data.hex()}
    if isinstance(frame, FeatureToggle):
        return {"type": "feature", "bit": frame.bit, "on": frame.on}
    raise TypeError(f"not a frame: {frame!r}")


def encode_json(frame: Frame) -> str:
    """The JSON text of ``frame`` (compact)."""
    return json.dumps(frame_to_json(frame), separators=(",", ":"), ensure_ascii=False)


def _bad(code: int, message: str) -> NoReturn:
    """FrameError with the C code ``code`` and a message about the JSON itself."""
    raise FrameError(f"decode json: {message}", code)


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise_for(_ffi.EVALUE, f"decode json: {name} must be an integer")
    return value


def decode_json(text: str, direction: Direction = Direction.FROM_CLIENT) -> Frame:
    """The client frame in JSON ``text``; FrameError / InvalidValue as the module says.

    Only the client's frames (config write, feature toggle, heartbeat) are read:
    a server never receives the others, so they are ``R13_ETYPE``.
    """
    if direction != Direction.FROM_CLIENT:
        raise ValueError("decode_json reads what clients send")
    if len(text) > _MAX_TEXT:
        _bad(_ffi.ELONG, f"a client frame is at most {_MAX_TEXT} characters")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        _bad(_ffi.ETRUNC, "not JSON")
    if not isinstance(obj, dict):
        _bad(_ffi.ETYPE, "not a JSON object")
    kind = obj.get("type")
    fields = _CLIENT_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        _bad(_ffi.ETYPE, f"a client does not send type {kind!r}")
    missing = fields - obj.keys()
    if missing:
        _bad(_ffi.ETRUNC, f"{kind} needs {', '.join(sorted(missing))}")
    if obj.keys() - fields:
        _bad(_ffi.ELONG, f"{kind} has unknown fields")
    frame: Frame
    if kind == "config":
        data = obj["data"]
        if not isinstance(data, str):
            raise_for(_ffi.EVALUE, "decode json: data must be a hex string")
        try:
            raw = bytes.fromhex(data)
        except ValueError:
            raise_for(_ffi.EVALUE, "decode json: data must be a hex string")
        frame = ConfigWrite(_int(obj, "offset"), raw)
    elif kind == "feature":
        on = obj["on"]
        if not isinstance(on, bool):
            raise_for(_ffi.EVALUE, "decode json: on must be true or false")
        frame = FeatureToggle(_int(obj, "bit"), on)
    else:
        frame = Heartbeat(_int(obj, "sent_ns"), _int(obj, "seq"))
    encode(frame)  # the binary codec's checks: widths, ranges, the record's end
    return frame
