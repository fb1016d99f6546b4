"""Frame codec: the C path (r13core.frames.encode/decode) against its Python twin.

Each frame's encode (and decode) for both paths shares a benchmark group, so
pytest-benchmark prints them side by side. Run with
``.venv/bin/python -m pytest bench/bench_frames.py --benchmark-only -q``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from r13core import frames
from r13core.frames import Broadcast, ConfigState, Direction, Frame, Heartbeat, Topic

# A ~64-byte metrics sample, the commonest broadcast.
_METRICS = '{"rps":1234,"p50_us":310,"p99_us":2200,"workers":2,"sockets":9}'

SAMPLES: dict[str, Frame] = {
    "heartbeat": Heartbeat(sent_ns=1_732_550_400_123_456_789, seq=41),
    "config_state": ConfigState(generation=7, record=bytes.fromhex("01deadbeef0500000001183c00")),
    "broadcast64": Broadcast(topic=Topic.METRICS, payload=_METRICS),
}
PATHS: dict[str, tuple[Callable[[Frame], bytes], Callable[[bytes, Direction], Frame]]] = {
    "c": (frames.encode, frames.decode),
    "python": (frames.py_encode, frames.py_decode),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(SAMPLES))
def test_encode(benchmark, name: str, path: str) -> None:
    benchmark.group = f"encode {name}"
    encode = PATHS[path][0]
    frame = SAMPLES[name]
    assert benchmark(encode, frame) == frames.py_encode(frame)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(SAMPLES))
def test_decode(benchmark, name: str, path: str) -> None:
    benchmark.group = f"decode {name}"
    decode = PATHS[path][1]
    frame = SAMPLES[name]
    data = frames.py_encode(frame)
    assert benchmark(decode, data, Direction.FROM_SERVER) == frame
