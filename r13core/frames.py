"""The binary frames of the live channel (WebSocket subprotocol ``r13.v1``).

One WebSocket message is one frame: a type byte and a payload, integers
little-endian; this table is the whole wire format::

    type  name       client -> server             server -> client
    0x01  config     offset u8, bytes (1..13)     generation u32, record[13]
    0x02  feature    bit u8 (0..31), on u8 (0/1)  (never sent)
    0x03  heartbeat  sent_ns u64, seq u32         the same, echoed
    0x04  error      (never sent)                 code u16, UTF-8 message
    0x05  broadcast  (never sent)                 topic u8, UTF-8 JSON text

Each frame type is a frozen dataclass; the class says which side sends it
(:class:`Heartbeat` goes both ways). :func:`encode` and :func:`decode` run
the C codec (``csrc/frames.c``); :func:`py_encode` and :func:`py_decode` are
its pure-Python twins, kept as the oracle of the property tests and as the
baseline of ``bench/bench_frames.py``. Both pairs raise the same exceptions
with the same codes, in the same order of checks:

1. a field that does not fit its wire width (e.g. ``seq`` >= 2**32, a
   negative ``offset``, a non-integer) -> :class:`~r13core.errors.InvalidValue`
   (code ``R13_EVALUE``), before anything else;
2. empty input -> :class:`~r13core.errors.FrameError` ``R13_ETRUNC``;
3. unknown type, or a type that side never sends -> ``R13_ETYPE``;
4. more than ``FRAME_MAX`` bytes in all -> ``R13_ELONG``;
5. the payload: shorter than its type requires -> ``R13_ETRUNC``, longer ->
   ``R13_ELONG``; a config write of more than 13 bytes -> ``R13_ELONG``, of
   13 or fewer that runs past byte 13 -> ``R13_EVALUE``; feature bit > 31 or
   on > 1 -> ``R13_EVALUE``; text that is not strict UTF-8 -> ``R13_EUTF8``.

``R13_EVALUE`` comes out as :class:`~r13core.errors.InvalidValue` (that is
how :func:`r13core._ffi.raise_for` classes it), the other codes as
:class:`~r13core.errors.FrameError` with ``.code`` set. A server answers the
first with :attr:`ErrorCode.INVALID_VALUE` and the second with
:attr:`ErrorCode.MALFORMED`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum
from threading import get_native_id as _thread_id
from typing import Any, TypeAlias, TypeVar

from r13core import _ffi
from r13core._ffi import ffi, lib, raise_for

__all__ = [
    "FRAME_MAX",
    "Broadcast",
    "ConfigState",
    "ConfigWrite",
    "Direction",
    "ErrorCode",
    "ErrorFrame",
    "FeatureToggle",
    "Frame",
    "FrameType",
    "Heartbeat",
    "Topic",
    "decode",
    "encode",
    "py_decode",
    "py_encode",
]

FRAME_MAX: int = lib.R13_FRAME_MAX
"""The largest frame in bytes, type byte included."""

RECORD_SIZE: int = lib.R13_RECORD_SIZE


class FrameType(IntEnum):
    """The type byte that starts every frame."""

    CONFIG = 0x01
    FEATURE = 0x02
    HEARTBEAT = 0x03
    ERROR = 0x04
    BROADCAST = 0x05


class Direction(IntEnum):
    """Which side sent a frame (config frames have one shape per side)."""

    FROM_CLIENT = 0
    FROM_SERVER = 1


class Topic(IntEnum):
    """Topics of broadcast frames: the initial set.

    The decoder accepts any topic byte (0..255) so that a newer server can
    add topics without breaking older clients; these are the ones r13 sends
    today:

    - ``METRICS``: a periodic metrics sample (request rates, latencies).
    - ``ALERT``: an operational alert (a threshold crossed, a worker lost).
    - ``SECURITY``: a security event (failed logins, a blocked client).
    - ``PACKAGE``: a package event (publish, unpublish, dist-tag change).
    - ``CONFIG_AUDIT``: who changed the live record, when, and what.
    """

    METRICS = 1
    ALERT = 2
    SECURITY = 3
    PACKAGE = 4
    CONFIG_AUDIT = 5


class ErrorCode(IntEnum):
    """Codes the server puts in an error frame (0x04).

    - ``MALFORMED``: the frame could not be decoded (bad length, unknown or
      wrong-direction type, bad UTF-8): a :class:`~r13core.errors.FrameError`.
    - ``FORBIDDEN``: the connection's credentials do not allow this frame
      (e.g. a config write without an admin key).
    - ``INVALID_VALUE``: the frame decoded but a field is out of range (a
      feature bit above 31, a write past the record's end, a record the
      registry refuses).
    - ``UNSUPPORTED``: well formed, but this server does not act on it.
    - ``RATE_LIMITED``: too many frames; the message says when to retry.
    - ``INTERNAL``: the server failed; the frame may be retried.
    """

    MALFORMED = 1
    FORBIDDEN = 2
    INVALID_VALUE = 3
    UNSUPPORTED = 4
    RATE_LIMITED = 5
    INTERNAL = 6


@dataclass(frozen=True, slots=True)
class ConfigWrite:
    """Client -> server: write ``data`` (1..13 bytes) at ``offset`` of the record."""

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConfigState:
    """Server -> client: the whole 13-byte record at ``generation``."""

    generation: int
    record: bytes


@dataclass(frozen=True, slots=True)
class FeatureToggle:
    """Client -> server: set feature flag ``bit`` (0..31) ``on`` or off."""

    bit: int
    on: bool


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Either way: a ping (``sent_ns`` is the sender's clock), echoed unchanged."""

    sent_ns: int
    seq: int


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """Server -> client: an :class:`ErrorCode` (or any u16) and a message."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Server -> client: an event of :class:`Topic` ``topic`` as JSON text."""

    topic: int
    payload: str

    def json(self) -> Any:
        """The payload parsed as JSON (``json.JSONDecodeError`` if it is not)."""
        return json.loads(self.payload)

    @classmethod
    def of(cls, topic: int, value: Any) -> Broadcast:
        """A broadcast of ``value`` serialised as compact JSON."""
        return cls(topic, json.dumps(value, separators=(",", ":"), ensure_ascii=False))


Frame: TypeAlias = ConfigWrite | ConfigState | FeatureToggle | Heartbeat | ErrorFrame | Broadcast

_F = TypeVar("_F", bound=Frame)


def _maker(cls: type[_F]) -> Callable[[Any, Any], _F]:
    """A constructor for the two-field frame class ``cls`` for the decoders.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per
    field, which costs more than the rest of a decode (~580 ns against ~220
    ns here). The decoders' values are already checked, so they fill the
    slots directly. Same object as ``cls(a, b)``; it would skip a
    ``__post_init__``, which these classes must therefore not grow.
    """
    set_a, set_b = (getattr(cls, field.name).__set__ for field in fields(cls))
    new = object.__new__

    def make(a: Any, b: Any) -> _F:
        obj = new(cls)
        set_a(obj, a)
        set_b(obj, b)
        return obj

    return make


_config_write = _maker(ConfigWrite)
_config_state = _maker(ConfigState)
_feature_toggle = _maker(FeatureToggle)
_heartbeat = _maker(Heartbeat)
_error_frame = _maker(ErrorFrame)
_broadcast = _maker(Broadcast)

_ETRUNC: int = _ffi.ETRUNC
_ETYPE: int = _ffi.ETYPE
_ELONG: int = _ffi.ELONG
_EUTF8: int = _ffi.EUTF8
_EVALUE: int = _ffi.EVALUE
_EINVAL: int = _ffi.EINVAL

_WIDTH = "a field does not fit its wire width"

_CLIENT = Direction.FROM_CLIENT
_SERVER = Direction.FROM_SERVER

# ---- the C path ------------------------------------------------------------

# Allocating structs and buffers costs more than the C call itself, so each OS
# thread keeps one set (cffi releases the GIL around C calls: threads must not
# share them). Keyed by the OS thread's id, not by threading.local: under gevent's
# monkey-patching threading.local is per greenlet, and the live channel's greenlet
# per connection would each hold 128 KB of buffers. Greenlets of one thread may
# share a set: none can switch inside encode() or decode() (no I/O, no yield).
# The encoder's frame points at `inbuf` for good; payloads are copied in by slice
# assignment, which is cheaper than ffi.from_buffer().
_SCRATCH: dict[int, _Scratch] = {}
_SCRATCH_MAX = 1024  # thread ids are reused; a process with more threads starts over


class _Scratch:
    __slots__ = ("dec", "enc", "inbuf", "inview", "out", "outview", "written")

    def __init__(self) -> None:
        self.dec: Any = ffi.new("r13_frame *")
        self.enc: Any = ffi.new("r13_frame *")
        self.inbuf: Any = ffi.new("uint8_t[]", FRAME_MAX)
        self.inview: Any = ffi.buffer(self.inbuf)
        self.enc.data = self.inbuf
        self.out: Any = ffi.new("uint8_t[]", FRAME_MAX)
        self.outview: Any = ffi.buffer(self.out)
        self.written: Any = ffi.new("size_t *")


def _new_scratch() -> _Scratch:
    if len(_SCRATCH) >= _SCRATCH_MAX:
        _SCRATCH.clear()
    scratch = _SCRATCH[_thread_id()] = _Scratch()
    return scratch


def encode(frame: Frame) -> bytes:
    """The wire bytes of ``frame``, encoded by the C core.

    Raises :class:`~r13core.errors.FrameError` or
    :class:`~r13core.errors.InvalidValue` for a frame that would not decode
    (see the module docstring for which).
    """
    s = _SCRATCH.get(_thread_id())
    if s is None:
        s = _new_scratch()
    f = s.enc
    cls = type(frame)
    fr: Any = frame  # dispatch is on the exact class, which mypy cannot follow
    payload: bytes | None = None
    try:
        if cls is Heartbeat:
            f.type = 3
            f.sent_ns = fr.sent_ns
            f.seq = fr.seq
            direction = 0
        elif cls is ConfigState:
            f.type = 1
            f.generation = fr.generation
            payload = fr.record
            direction = 1
        elif cls is Broadcast:
            f.type = 5
            f.topic = fr.topic
            payload = fr.payload.encode("utf-8", "surrogatepass")
            direction = 1
        elif cls is ErrorFrame:
            f.type = 4
            f.code = fr.code
            payload = fr.message.encode("utf-8", "surrogatepass")
            direction = 1
        elif cls is ConfigWrite:
            f.type = 1
            f.offset = fr.offset
            payload = fr.data
            direction = 0
        elif cls is FeatureToggle:
            f.type = 2
            f.bit = fr.bit
            f.on = fr.on
            direction = 0
        else:
            raise TypeError(f"not a frame: {frame!r}")
    except (OverflowError, TypeError):
        # cffi refuses a value that does not fit the struct field.
        if cls not in _FRAME_CLASSES:
            raise
        raise_for(_EVALUE, f"encode {cls.__name__}: {_WIDTH}")
    if payload is not None:
        n = len(payload)
        if n > FRAME_MAX:  # would not fit inbuf; C would say the same
            raise_for(_ELONG, f"encode {cls.__name__}")
        s.inview[0:n] = payload
        f.data_len = n
    written = s.written
    rc = lib.r13_frame_encode(f, direction, s.out, FRAME_MAX, written)
    if rc:
        raise_for(rc, f"encode {cls.__name__}")
    return s.outview[0 : written[0]]  # type: ignore[no-any-return]


def decode(data: bytes, direction: Direction) -> Frame:
    """The frame in ``data`` as sent by ``direction``, decoded by the C core.

    Any byte string either decodes or raises :class:`~r13core.errors.FrameError`
    / :class:`~r13core.errors.InvalidValue` (see the module docstring).
    """
    if type(data) is not bytes:
        data = bytes(data)
    s = _SCRATCH.get(_thread_id())
    if s is None:
        s = _new_scratch()
    out = s.dec
    try:
        rc = lib.r13_frame_decode(data, len(data), direction, out)
    except (OverflowError, TypeError):  # a direction that is not even a C int
        rc = _EINVAL
    if rc:
        raise_for(rc, "decode")
    # C has checked every length and the UTF-8: slice the fields out here,
    # which is cheaper than reading them back through cffi.
    t = data[0]
    if t == 3:
        return _heartbeat(out.sent_ns, out.seq)
    if t == 1:
        if direction:
            return _config_state(out.generation, data[5:])
        return _config_write(data[1], data[2:])
    if t == 5:
        return _broadcast(data[1], data[2:].decode("utf-8"))
    if t == 4:
        return _error_frame(out.code, data[3:].decode("utf-8"))
    return _feature_toggle(data[1], data[2] == 1)


# ---- the pure-Python twin --------------------------------------------------

_HEARTBEAT = struct.Struct("<BQI")
_CONFIG_STATE = struct.Struct("<BI")
_ERROR_HEAD = struct.Struct("<BH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_FRAME_CLASSES = (ConfigWrite, ConfigState, FeatureToggle, Heartbeat, ErrorFrame, Broadcast)
_SENT_BY: dict[int, frozenset[int]] = {
    _CLIENT: frozenset({1, 2, 3}),
    _SERVER: frozenset({1, 3, 4, 5}),
}


def _uint(value: object, bits: int) -> bool:
    return isinstance(value, int) and 0 <= value < (1 << bits)


def _check_exact(n: int, size: int, context: str) -> None:
    if n < size:
        raise_for(_ETRUNC, context)
    if n > size:
        raise_for(_ELONG, context)


def _check_config_write(offset: int, n: int, context: str) -> None:
    if n == 0:
        raise_for(_ETRUNC, context)
    if n > RECORD_SIZE:
        raise_for(_ELONG, context)
    if offset + n > RECORD_SIZE:
        raise_for(_EVALUE, context)


def _check_text(text: bytes, head: int, context: str) -> str:
    if len(text) > FRAME_MAX - head:
        raise_for(_ELONG, context)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise_for(_EUTF8, context)


def py_encode(frame: Frame) -> bytes:
    """Pure-Python twin of :func:`encode`: same bytes, same exceptions."""
    cls = type(frame)
    context = f"encode {cls.__name__}"
    if isinstance(frame, Heartbeat):
        if not (_uint(frame.sent_ns, 64) and _uint(frame.seq, 32)):
            raise_for(_EVALUE, f"{context}: {_WIDTH}")
        return _HEARTBEAT.pack(3, frame.sent_ns, frame.seq)
    if isinstance(frame, ConfigState):
        if not _uint(frame.generation, 32):
            raise_for(_EVALUE, f"{context}: {_WIDTH}")
        _check_exact(len(frame.record), RECORD_SIZE, context)
        return _CONFIG_STATE.pack(1, frame.generation) + frame.record
    if isinstance(frame, Broadcast):
        if not _uint(frame.topic, 8):
            raise_for(_EVALUE, f"{context}: {_WIDTH}")
        text = frame.payload.encode("utf-8", "surrogatepass")
        _check_text(text, 2, context)
        return bytes((5, frame.topic)) + text
    if isinstance(frame, ErrorFrame):
        if not _uint(frame.code, 16):
            raise_for(_EVALUE, f"{context}: {_WIDTH}")
        text = frame.message.encode("utf-8", "surrogatepass")
        _check_text(text, 3, context)
        return _ERROR_HEAD.pack(4, frame.code) + text
    if isinstance(frame, ConfigWrite):
        if not _uint(frame.offset, 8):
            raise_for(_EVALUE, f"{context}: {_WIDTH}")
        _check_config_write(frame.offset, len(frame.data), context)
        return bytes((1, frame.offset)) + frame.data
    if isinstance(frame, FeatureToggle):
        if not (_uint(frame.bit, 8) and _uint(frame.on, 8)):
            raise_for(_EVALUE, f"{context}: {_WIDTH}")
        if frame.bit >= 32 or frame.on > 1:
            raise_for(_EVALUE, context)
        return bytes((2, frame.bit, int(frame.on)))
    raise TypeError(f"not a frame: {frame!r}")


def py_decode(data: bytes, direction: Direction) -> Frame:
    """Pure-Python twin of :func:`decode`: same frames, same exceptions."""
    context = "decode"
    if direction not in (0, 1):
        raise_for(_EINVAL, context)
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n == 0:
        raise_for(_ETRUNC, context)
    t = data[0]
    if t not in _SENT_BY[direction]:
        raise_for(_ETYPE, context)
    if n > FRAME_MAX:
        raise_for(_ELONG, context)
    if t == 3:
        _check_exact(n, _HEARTBEAT.size, context)
        _, sent_ns, seq = _HEARTBEAT.unpack(data)
        return _heartbeat(sent_ns, seq)
    if t == 1:
        if direction:
            _check_exact(n, _CONFIG_STATE.size + RECORD_SIZE, context)
            return _config_state(_U32.unpack_from(data, 1)[0], data[5:])
        if n < 2:
            raise_for(_ETRUNC, context)
        _check_config_write(data[1], n - 2, context)
        return _config_write(data[1], data[2:])
    if t == 2:
        _check_exact(n, 3, context)
        if data[1] >= 32 or data[2] > 1:
            raise_for(_EVALUE, context)
        return _feature_toggle(data[1], data[2] == 1)
    if t == 4:
        if n < 3:
            raise_for(_ETRUNC, context)
        return _error_frame(_U16.unpack_from(data, 1)[0], _check_text(data[3:], 3, context))
    if n < 2:
        raise_for(_ETRUNC, context)
    return _broadcast(data[1], _check_text(data[2:], 2, context))
