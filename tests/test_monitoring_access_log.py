"""The access log's line (app/monitoring/middleware.py): the bytes json.dumps writes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.monitoring.middleware import access_line

FIELDS = ("ts", "method", "path", "route", "status", "bytes_in", "bytes_out", "ms", "ip",
          "trace_id", "pid")  # fmt: skip


@settings(max_examples=200)
@given(
    ts=st.floats(min_value=0, max_value=4e9, allow_nan=False).map(lambda x: round(x, 6)),
    method=st.sampled_from(["GET", "HEAD", "PUT", "OTHER"]),
    path=st.text(max_size=40),
    route=st.text(max_size=20),
    status=st.integers(100, 599),
    sizes=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
    ms=st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3)),
    ip=st.one_of(st.none(), st.sampled_from(["127.0.0.1", "2001:db8::1"]), st.text(max_size=8)),
    trace=st.one_of(st.none(), st.text(max_size=16)),
    pid=st.integers(1, 2**22),
)
def test_the_line_is_what_json_dumps_writes(
    ts: float,
    method: str,
    path: str,
    route: str,
    status: int,
    sizes: tuple[int, int],
    ms: float,
    ip: str | None,
    trace: str | None,
    pid: int,
) -> None:
    values = (ts, method, path, route, status, *sizes, ms, ip, trace, pid)
    record = dict(zip(FIELDS, values, strict=True))
    expected = json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n"
    line = access_line(*values)
    assert line == expected
    assert json.loads(line) == record
