"""The live channel's frame codec: the C path and its pure-Python twin.

Every test that checks behaviour runs against both paths (the ``codec``
fixture); the property tests then check that the two agree on any input.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import FrozenInstanceError, fields
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from r13core import _ffi, frames
from r13core.errors import FrameError, InvalidValue, R13Error
from r13core.frames import (
    FRAME_MAX,
    Broadcast,
    ConfigState,
    ConfigWrite,
    Direction,
    ErrorCode,
    ErrorFrame,
    FeatureToggle,
    Frame,
    FrameType,
    Heartbeat,
    Topic,
)

CLIENT = Direction.FROM_CLIENT
SERVER = Direction.FROM_SERVER
RECORD = bytes.fromhex("01deadbeef0500000001183c00")


class Codec(NamedTuple):
    encode: Callable[[Frame], bytes]
    decode: Callable[[bytes, Direction], Frame]


CODECS = {
    "c": Codec(frames.encode, frames.decode),
    "python": Codec(frames.py_encode, frames.py_decode),
}


@pytest.fixture(params=list(CODECS))
def codec(request: pytest.FixtureRequest) -> Codec:
    return CODECS[request.param]


def sender(frame: Frame) -> Direction:
    """The side that sends this frame class (heartbeats: either; say server)."""
    return CLIENT if isinstance(frame, ConfigWrite | FeatureToggle) else SERVER


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """('ok', value) or (exception class name, code) — comparable across paths."""
    try:
        return ("ok", fn())
    except FrameError as exc:
        return ("FrameError", exc.code)
    except InvalidValue as exc:
        return ("InvalidValue", str(exc))


# ---- round trips -------------------------------------------------------------

VALID: list[tuple[Frame, bytes]] = [
    (ConfigWrite(0, b"\x01"), b"\x01\x00\x01"),
    (ConfigWrite(5, b"\x01\x02\x03\x04"), b"\x01\x05\x01\x02\x03\x04"),
    (ConfigWrite(0, RECORD), b"\x01\x00" + RECORD),
    (ConfigWrite(12, b"\xff"), b"\x01\x0c\xff"),
    (ConfigState(0xDEADBEEF, RECORD), b"\x01\xef\xbe\xad\xde" + RECORD),
    (FeatureToggle(0, False), b"\x02\x00\x00"),
    (FeatureToggle(31, True), b"\x02\x1f\x01"),
    (
        Heartbeat(0x0102030405060708, 0x0A0B0C0D),
        b"\x03\x08\x07\x06\x05\x04\x03\x02\x01\x0d\x0c\x0b\x0a",
    ),
    (Heartbeat(2**64 - 1, 2**32 - 1), b"\x03" + b"\xff" * 12),
    (ErrorFrame(ErrorCode.FORBIDDEN, "admin key required"), b"\x04\x02\x00admin key required"),
    (ErrorFrame(0xFFFF, ""), b"\x04\xff\xff"),
    (
        ErrorFrame(1, "h\u00e9 \u20ac \U0001f600"),
        b"\x04\x01\x00h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    ),
    (Broadcast(Topic.METRICS, '{"rps":12}'), b'\x05\x01{"rps":12}'),
    (Broadcast(255, ""), b"\x05\xff"),
    (Broadcast(Topic.ALERT, "x" * (FRAME_MAX - 2)), b"\x05\x02" + b"x" * (FRAME_MAX - 2)),
]


@pytest.mark.parametrize(("frame", "wire"), VALID, ids=lambda v: type(v).__name__)
def test_each_frame_encodes_to_its_documented_bytes(
    codec: Codec, frame: Frame, wire: bytes
) -> None:
    assert codec.encode(frame) == wire


@pytest.mark.parametrize(("frame", "wire"), VALID, ids=lambda v: type(v).__name__)
def test_each_frame_decodes_back_from_its_bytes(codec: Codec, frame: Frame, wire: bytes) -> None:
    decoded = codec.decode(wire, sender(frame))
    assert decoded == frame
    assert type(decoded) is type(frame)


def test_heartbeat_round_trips_in_both_directions(codec: Codec) -> None:
    beat = Heartbeat(123_456_789, 7)
    wire = codec.encode(beat)
    assert codec.decode(wire, CLIENT) == beat
    assert codec.decode(wire, SERVER) == beat


def test_config_frame_shape_depends_on_direction(codec: Codec) -> None:
    state = codec.encode(ConfigState(1, RECORD))
    assert codec.decode(state, SERVER) == ConfigState(1, RECORD)
    # The same 18 bytes from a client are a 16-byte write: longer than a record.
    with pytest.raises(FrameError) as err:
        codec.decode(state, CLIENT)
    assert err.value.code == _ffi.ELONG


def test_decoded_feature_toggle_on_is_a_bool(codec: Codec) -> None:
    frame = codec.decode(b"\x02\x03\x01", CLIENT)
    assert isinstance(frame, FeatureToggle)
    assert frame.on is True


def test_decode_accepts_bytearray_and_memoryview(codec: Codec) -> None:
    wire = b"\x02\x03\x01"
    assert codec.decode(bytearray(wire), CLIENT) == FeatureToggle(3, True)  # type: ignore[arg-type]
    assert codec.decode(memoryview(wire), CLIENT) == FeatureToggle(3, True)  # type: ignore[arg-type]


def test_decoded_bytes_do_not_alias_a_reused_input_buffer(codec: Codec) -> None:
    buf = bytearray(b"\x01\x00\x01\x02")
    frame = codec.decode(buf, CLIENT)  # type: ignore[arg-type]
    buf[2:] = b"\xff\xff"
    assert frame == ConfigWrite(0, b"\x01\x02")


# ---- decode errors -------------------------------------------------------------

ETRUNC, ETYPE, ELONG, EUTF8 = _ffi.ETRUNC, _ffi.ETYPE, _ffi.ELONG, _ffi.EUTF8

BAD_FRAMES: list[tuple[str, bytes, Direction, int]] = [
    ("empty from client", b"", CLIENT, ETRUNC),
    ("empty from server", b"", SERVER, ETRUNC),
    ("unknown type 0", b"\x00", CLIENT, ETYPE),
    ("unknown type 6", b"\x06abc", SERVER, ETYPE),
    ("unknown type 255", b"\xff", CLIENT, ETYPE),
    ("feature toggle from server", b"\x02\x01\x01", SERVER, ETYPE),
    ("error from client", b"\x04\x01\x00hi", CLIENT, ETYPE),
    ("broadcast from client", b"\x05\x01{}", CLIENT, ETYPE),
    ("config write with no offset", b"\x01", CLIENT, ETRUNC),
    ("config write of 0 bytes", b"\x01\x00", CLIENT, ETRUNC),
    ("config write of 14 bytes", b"\x01\x00" + bytes(14), CLIENT, ELONG),
    ("config state short", b"\x01" + bytes(16), SERVER, ETRUNC),
    ("config state long", b"\x01" + bytes(18), SERVER, ELONG),
    ("config state type only", b"\x01", SERVER, ETRUNC),
    ("feature toggle short", b"\x02\x01", CLIENT, ETRUNC),
    ("feature toggle long", b"\x02\x01\x01\x00", CLIENT, ELONG),
    ("heartbeat short", b"\x03" + bytes(11), CLIENT, ETRUNC),
    ("heartbeat long", b"\x03" + bytes(13), SERVER, ELONG),
    ("error without code", b"\x04\x01", SERVER, ETRUNC),
    ("broadcast without topic", b"\x05", SERVER, ETRUNC),
    ("broadcast over the cap", b"\x05\x01" + b"x" * (FRAME_MAX - 1), SERVER, ELONG),
    ("oversize unknown type", b"\x09" + bytes(FRAME_MAX), SERVER, ETYPE),
    ("oversize heartbeat", b"\x03" + bytes(FRAME_MAX), SERVER, ELONG),
    (
        "broadcast with bad UTF-8 after a long text",
        b"\x05\x01" + b"a" * 100 + b"\xff",
        SERVER,
        EUTF8,
    ),
]

BAD_UTF8: dict[str, bytes] = {
    "lone continuation byte": b"\x80",
    "overlong 2-byte slash": b"\xc0\xaf",
    "overlong 2-byte C1": b"\xc1\xbf",
    "overlong 3-byte": b"\xe0\x80\xaf",
    "overlong 4-byte": b"\xf0\x80\x80\xaf",
    "surrogate high": b"\xed\xa0\x80",
    "surrogate low": b"\xed\xbf\xbf",
    "above U+10FFFF": b"\xf4\x90\x80\x80",
    "lead byte F5": b"\xf5\x80\x80\x80",
    "byte FF": b"\xff",
    "truncated 2-byte": b"\xc3",
    "truncated 3-byte": b"\xe2\x82",
    "truncated 4-byte": b"\xf0\x9f\x98",
    "bad continuation": b"\xe2\x28\xa1",
    "truncated then ASCII": b"\xe2\x82a",
}


@pytest.mark.parametrize(
    ("wire", "direction", "code"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES]
)
def test_malformed_frame_raises_frame_error_with_its_code(
    codec: Codec, wire: bytes, direction: Direction, code: int
) -> None:
    with pytest.raises(FrameError) as err:
        codec.decode(wire, direction)
    assert err.value.code == code


@pytest.mark.parametrize("text", list(BAD_UTF8.values()), ids=list(BAD_UTF8))
@pytest.mark.parametrize("head", [b"\x04\x01\x00", b"\x05\x01", b"\x05\x01prefix "])
def test_invalid_utf8_text_raises_eutf8(codec: Codec, head: bytes, text: bytes) -> None:
    with pytest.raises(FrameError) as err:
        codec.decode(head + text, SERVER)
    assert err.value.code == EUTF8


@pytest.mark.parametrize(
    "wire",
    [
        b"\x01\x0d\x00",  # offset 13: one byte past the end
        b"\x01\x0c\x00\x00",  # offset 12, 2 bytes
        b"\x01\x01" + bytes(13),  # 13 bytes at offset 1
        b"\x01\xff\x00",
        b"\x02\x20\x01",  # bit 32
        b"\x02\xff\x00",
        b"\x02\x00\x02",  # on 2
        b"\x02\x00\xff",
    ],
    ids=[
        "offset13",
        "offset12len2",
        "offset1len13",
        "offset255",
        "bit32",
        "bit255",
        "on2",
        "on255",
    ],
)
def test_field_out_of_range_raises_invalid_value(codec: Codec, wire: bytes) -> None:
    # R13_EVALUE: the frame is well formed but a field's value is not allowed.
    with pytest.raises(InvalidValue, match="field value out of range"):
        codec.decode(wire, CLIENT)


def test_frame_errors_are_r13_errors_and_value_errors() -> None:
    with pytest.raises(R13Error):
        frames.decode(b"", CLIENT)
    with pytest.raises(ValueError):
        frames.decode(b"\x02\x20\x01", CLIENT)


def test_c_and_python_report_the_same_message() -> None:
    for wire in (b"", b"\x07", b"\x03", b"\x05\x01\xff", b"\x02\x20\x00"):
        with pytest.raises(R13Error) as c_err:
            frames.decode(wire, SERVER if wire[:1] == b"\x05" else CLIENT)
        with pytest.raises(R13Error) as py_err:
            frames.py_decode(wire, SERVER if wire[:1] == b"\x05" else CLIENT)
        assert str(c_err.value) == str(py_err.value)


# ---- encode errors -------------------------------------------------------------

BAD_ENCODES: list[tuple[str, Frame, type[Exception], int | None]] = [
    ("config write of 0 bytes", ConfigWrite(0, b""), FrameError, ETRUNC),
    ("config write of 14 bytes", ConfigWrite(0, bytes(14)), FrameError, ELONG),
    ("config write past the end", ConfigWrite(10, bytes(4)), InvalidValue, None),
    ("config write offset 256", ConfigWrite(256, b"\x00"), InvalidValue, None),
    ("config write negative offset", ConfigWrite(-1, b"\x00"), InvalidValue, None),
    ("config write negative offset and no bytes", ConfigWrite(-1, b""), InvalidValue, None),
    ("config state of 12 bytes", ConfigState(1, bytes(12)), FrameError, ETRUNC),
    ("config state of 14 bytes", ConfigState(1, bytes(14)), FrameError, ELONG),
    ("config state generation 2**32", ConfigState(2**32, RECORD), InvalidValue, None),
    ("feature bit 32", FeatureToggle(32, True), InvalidValue, None),
    ("feature bit 256", FeatureToggle(256, True), InvalidValue, None),
    ("feature on 2", FeatureToggle(1, 2), InvalidValue, None),  # type: ignore[arg-type]
    ("heartbeat sent_ns 2**64", Heartbeat(2**64, 0), InvalidValue, None),
    ("heartbeat negative seq", Heartbeat(0, -1), InvalidValue, None),
    ("heartbeat float seq", Heartbeat(0, 1.5), InvalidValue, None),  # type: ignore[arg-type]
    ("error code 65536", ErrorFrame(65536, "x"), InvalidValue, None),
    ("error with lone surrogate", ErrorFrame(1, "a\ud800b"), FrameError, EUTF8),
    ("error over the cap", ErrorFrame(1, "x" * (FRAME_MAX - 2)), FrameError, ELONG),
    ("broadcast topic 256", Broadcast(256, "{}"), InvalidValue, None),
    ("broadcast with surrogate pair as two", Broadcast(1, "\udc00"), FrameError, EUTF8),
    ("broadcast over the cap", Broadcast(1, "x" * (FRAME_MAX - 1)), FrameError, ELONG),
    ("broadcast far over the cap", Broadcast(1, "x" * (2 * FRAME_MAX)), FrameError, ELONG),
]


@pytest.mark.parametrize(
    ("frame", "exc", "code"), [b[1:] for b in BAD_ENCODES], ids=[b[0] for b in BAD_ENCODES]
)
def test_encode_refuses_what_would_not_decode(
    codec: Codec, frame: Frame, exc: type[Exception], code: int | None
) -> None:
    with pytest.raises(exc) as err:
        codec.encode(frame)
    if code is not None:
        assert isinstance(err.value, FrameError)
        assert err.value.code == code


def test_encode_rejects_non_frames_with_type_error(codec: Codec) -> None:
    with pytest.raises(TypeError):
        codec.encode(b"\x03" + bytes(12))  # type: ignore[arg-type]


def test_encode_works_again_after_an_error(codec: Codec) -> None:
    with pytest.raises(FrameError):
        codec.encode(Broadcast(1, "x" * FRAME_MAX))
    assert codec.encode(ConfigWrite(1, b"\x02")) == b"\x01\x01\x02"


# ---- the C API's own guards (reached only through cffi) -----------------------


def test_c_encode_reports_the_size_needed_when_the_buffer_is_small() -> None:
    f = _ffi.ffi.new("r13_frame *", {"type": 3, "sent_ns": 1, "seq": 2})
    out = _ffi.ffi.new("uint8_t[]", 12)
    written = _ffi.ffi.new("size_t *")
    assert _ffi.lib.r13_frame_encode(f, 0, out, 12, written) == _ffi.EBUFSZ
    assert written[0] == 13
    out = _ffi.ffi.new("uint8_t[]", 13)
    assert _ffi.lib.r13_frame_encode(f, 0, out, 13, written) == _ffi.OK
    assert written[0] == 13


def test_c_codec_refuses_null_pointers_and_bad_directions() -> None:
    ffi, lib = _ffi.ffi, _ffi.lib
    out = ffi.new("r13_frame *")
    assert lib.r13_frame_decode(ffi.NULL, 3, 0, out) == _ffi.EINVAL
    assert lib.r13_frame_decode(b"\x03", 1, 2, out) == _ffi.EINVAL
    assert lib.r13_frame_decode(b"\x03", 1, 0, ffi.NULL) == _ffi.EINVAL
    written = ffi.new("size_t *")
    f = ffi.new("r13_frame *", {"type": 4, "data_len": 3})  # data is NULL
    buf = ffi.new("uint8_t[]", 16)
    assert lib.r13_frame_encode(f, 1, buf, 16, written) == _ffi.EINVAL
    f = ffi.new("r13_frame *", {"type": 3})
    assert lib.r13_frame_encode(f, -1, buf, 16, written) == _ffi.EINVAL
    assert lib.r13_frame_encode(f, 0, ffi.NULL, 16, written) == _ffi.EINVAL
    assert lib.r13_frame_encode(f, 0, buf, 16, ffi.NULL) == _ffi.EINVAL


@pytest.mark.parametrize("direction", [2, -1, 2**40, None])
def test_decode_refuses_a_bad_direction(codec: Codec, direction: Any) -> None:
    with pytest.raises(InvalidValue, match="invalid argument"):
        codec.decode(b"\x03" + bytes(12), direction)


# ---- the types ---------------------------------------------------------------


def test_frames_are_frozen_and_slotted() -> None:
    beat = Heartbeat(1, 2)
    with pytest.raises(FrozenInstanceError):
        beat.seq = 3  # type: ignore[misc]
    assert not hasattr(beat, "__dict__")


def test_broadcast_json_parses_the_payload_and_of_builds_it() -> None:
    event = Broadcast.of(Topic.PACKAGE, {"name": "@scope/pkg", "v": "1.0.0", "ü": True})
    assert event.json() == {"name": "@scope/pkg", "v": "1.0.0", "ü": True}
    assert frames.decode(frames.encode(event), SERVER).json()["name"] == "@scope/pkg"  # type: ignore[union-attr]
    with pytest.raises(json.JSONDecodeError):
        Broadcast(Topic.ALERT, "not json").json()


def test_enums_have_their_wire_values() -> None:
    assert [int(t) for t in FrameType] == [1, 2, 3, 4, 5]
    assert (Direction.FROM_CLIENT, Direction.FROM_SERVER) == (0, 1)
    assert [int(t) for t in Topic] == [1, 2, 3, 4, 5]
    assert [int(c) for c in ErrorCode] == [1, 2, 3, 4, 5, 6]
    assert FRAME_MAX == 65536


# ---- properties: the C codec and its twin agree --------------------------------

u8 = st.integers(0, 255)
text = st.text(max_size=300)
valid_frames = st.one_of(
    st.integers(0, 12).flatmap(
        lambda off: st.builds(ConfigWrite, st.just(off), st.binary(min_size=1, max_size=13 - off))
    ),
    st.builds(ConfigState, st.integers(0, 2**32 - 1), st.binary(min_size=13, max_size=13)),
    st.builds(FeatureToggle, st.integers(0, 31), st.booleans()),
    st.builds(Heartbeat, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)),
    st.builds(ErrorFrame, st.integers(0, 2**16 - 1), text),
    st.builds(Broadcast, u8, text),
)
any_int = st.one_of(st.integers(-(2**70), 2**70), u8, st.integers(-2, 300))
any_frames = st.one_of(
    valid_frames,
    st.builds(ConfigWrite, any_int, st.binary(max_size=20)),
    st.builds(ConfigState, any_int, st.binary(max_size=20)),
    st.builds(FeatureToggle, any_int, st.one_of(st.booleans(), any_int)),
    st.builds(Heartbeat, any_int, any_int),
    st.builds(ErrorFrame, any_int, st.text(st.characters(codec="utf-8"), max_size=20)),
    st.builds(Broadcast, any_int, st.text(max_size=20)),
)


@given(valid_frames)
def test_valid_frames_encode_equally_and_round_trip(frame: Frame) -> None:
    wire = frames.encode(frame)
    assert wire == frames.py_encode(frame)
    for direction in (CLIENT, SERVER) if isinstance(frame, Heartbeat) else (sender(frame),):
        assert frames.decode(wire, direction) == frame
        assert frames.py_decode(wire, direction) == frame


@given(any_frames)
@example(ErrorFrame(1, "\ud800"))
@example(ConfigWrite(-1, b""))
def test_any_frame_encodes_or_fails_the_same_in_c_and_python(frame: Frame) -> None:
    assert outcome(lambda: frames.encode(frame)) == outcome(lambda: frames.py_encode(frame))


def _agree(data: bytes) -> None:
    for direction in (CLIENT, SERVER):
        c = outcome(lambda: frames.decode(data, direction))  # noqa: B023
        py = outcome(lambda: frames.py_decode(data, direction))  # noqa: B023
        assert c == py
        if c[0] == "ok":  # a decoded frame encodes back to the same bytes
            assert frames.encode(c[1]) == data


@given(st.binary(max_size=64))
def test_random_short_bytes_decode_the_same_in_c_and_python(data: bytes) -> None:
    _agree(data)


@given(st.sampled_from([1, 2, 3, 4, 5]), st.binary(max_size=24))
def test_random_payloads_of_known_types_decode_the_same(type_: int, payload: bytes) -> None:
    _agree(bytes([type_]) + payload)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.binary(max_size=70_000))
def test_random_bytes_up_to_70k_decode_the_same_in_c_and_python(data: bytes) -> None:
    _agree(data)


@st.composite
def near_the_cap(draw: st.DrawFn) -> bytes:
    """A frame of a text-carrying (or other) type sized around FRAME_MAX."""
    size = draw(st.integers(FRAME_MAX - 4, FRAME_MAX + 4) | st.integers(FRAME_MAX - 4, 70_000))
    fill = draw(st.sampled_from([b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80"]))
    body = bytearray((fill * size)[: size - 1])
    if draw(st.booleans()) and body:  # plant a random byte somewhere
        body[draw(st.integers(0, len(body) - 1))] = draw(u8)
    return bytes([draw(st.sampled_from([1, 3, 4, 5, 6]))]) + bytes(body)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(near_the_cap())
def test_frames_around_the_size_cap_decode_the_same_in_c_and_python(data: bytes) -> None:
    _agree(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid frame's bytes, then flipped, truncated or extended."""
    data = bytearray(frames.py_encode(draw(valid_frames)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "extend", "set"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[draw(st.integers(0, len(data) - 1))] = draw(u8)
    return bytes(data)


@settings(max_examples=300)
@given(mutated())
def test_mutated_frames_decode_the_same_in_c_and_python(data: bytes) -> None:
    _agree(data)


@given(st.text(max_size=40), st.binary(max_size=6))
def test_utf8_validation_matches_python_strict_decoding(s: str, junk: bytes) -> None:
    raw = s.encode("utf-8", "surrogatepass") + junk
    wire = b"\x05\x01" + raw
    try:
        expected: Frame | None = Broadcast(1, raw.decode("utf-8"))
    except UnicodeDecodeError:
        expected = None
    if expected is None:
        with pytest.raises(FrameError) as err:
            frames.decode(wire, SERVER)
        assert err.value.code == EUTF8
    else:
        assert frames.decode(wire, SERVER) == expected


def test_struct_layout_matches_the_documented_heartbeat() -> None:
    wire = frames.encode(Heartbeat(10**18, 99))
    assert struct.unpack("<BQI", wire) == (3, 10**18, 99)


@pytest.mark.parametrize(("frame", "wire"), VALID, ids=lambda v: type(v).__name__)
def test_decoded_frames_equal_hash_and_freeze_like_constructed_ones(
    codec: Codec, frame: Frame, wire: bytes
) -> None:
    decoded = codec.decode(wire, sender(frame))
    assert hash(decoded) == hash(frame)
    with pytest.raises(FrozenInstanceError):
        setattr(decoded, fields(decoded)[0].name, 1)


def test_frame_classes_have_no_post_init_for_the_decoders_to_skip() -> None:
    for cls in (ConfigWrite, ConfigState, FeatureToggle, Heartbeat, ErrorFrame, Broadcast):
        assert not hasattr(cls, "__post_init__")
