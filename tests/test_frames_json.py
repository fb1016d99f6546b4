"""The JSON form of the live channel's frames (r13core/frames_json.py) against the binary one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core import frames
from r13core.errors import FrameError, InvalidValue
from r13core.frames import (
    Broadcast,
    ConfigState,
    ConfigWrite,
    Direction,
    ErrorFrame,
    FeatureToggle,
    Heartbeat,
)
from r13core.frames_json import decode_json, encode_json, frame_to_json

ints = st.integers(min_value=-5, max_value=2**65)
client_frames = st.one_of(
    st.builds(ConfigWrite, st.integers(-2, 20), st.binary(max_size=16)),
    st.builds(FeatureToggle, st.integers(-2, 40), st.booleans()),
    st.builds(Heartbeat, ints, ints),
)


def outcome(call: Any) -> Any:
    try:
        return call()
    except InvalidValue:
        return "InvalidValue"
    except FrameError as exc:
        return ("FrameError", exc.code)


@settings(max_examples=400)
@given(client_frames)
def test_a_client_frame_is_valid_in_json_exactly_when_it_is_valid_in_binary(frame: Any) -> None:
    binary = outcome(lambda: frames.decode(frames.encode(frame), Direction.FROM_CLIENT))
    as_json = json.dumps(
        {"type": "config", "offset": frame.offset, "data": frame.data.hex()}
        if isinstance(frame, ConfigWrite)
        else frame_to_json(frame)
    )
    assert outcome(lambda: decode_json(as_json)) == binary


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_any_text_decodes_or_raises_a_frame_error(text: str) -> None:
    try:
        frame = decode_json(text)
    except (FrameError, InvalidValue):  # nothing else may escape (no KeyError, TypeError...)
        return
    assert isinstance(frame, ConfigWrite | FeatureToggle | Heartbeat)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", FrameError),
        ("[1, 2]", FrameError),
        ('{"type": "error", "code": 1, "message": "x"}', FrameError),  # servers send those
        ('{"type": "feature", "bit": 1}', FrameError),
        ('{"type": "feature", "bit": 1, "on": true, "more": 1}', FrameError),
        ('{"type": "feature", "bit": 1, "on": 1}', InvalidValue),
        ('{"type": "feature", "bit": true, "on": true}', InvalidValue),
        ('{"type": "feature", "bit": 32, "on": true}', InvalidValue),
        ('{"type": "config", "offset": 12, "data": "0102"}', InvalidValue),
        ('{"type": "config", "offset": 0, "data": "zz"}', InvalidValue),
        ('{"type": "heartbeat", "sent_ns": -1, "seq": 0}', InvalidValue),
        ('{"type": "heartbeat", "sent_ns": 0, "seq": 4294967296}', InvalidValue),
        ("x" * 5000, FrameError),
    ],
)
def test_bad_json_frames_say_what_is_wrong(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        decode_json(text)
    assert type(info.value) is error or issubclass(type(info.value), error)


def test_server_frames_have_one_json_form() -> None:
    record = bytes(range(13))
    assert json.loads(encode_json(ConfigState(7, record))) == {
        "type": "config", "generation": 7, "record": record.hex(),
    }  # fmt: skip
    assert json.loads(encode_json(ErrorFrame(3, "no"))) == {
        "type": "error",
        "code": 3,
        "message": "no",
    }
    event = {"topic": "alert", "seq": 1, "ts": 1.0, "data": {"rule": "cpu"}}
    assert json.loads(encode_json(Broadcast.of(2, event))) == {
        "type": "broadcast", "topic": 2, "event": event,
    }  # fmt: skip
    assert json.loads(encode_json(Heartbeat(2**64 - 1, 5))) == {
        "type": "heartbeat", "sent_ns": 2**64 - 1, "seq": 5,
    }  # fmt: skip


def test_json_reads_only_what_clients_send() -> None:
    with pytest.raises(ValueError, match="clients"):
        decode_json("{}", Direction.FROM_SERVER)
