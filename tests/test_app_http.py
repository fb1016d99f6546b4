"""The HTTP helpers in app/http.py: paths, bodies, JSON limits, caching headers, credentials."""

from __future__ import annotations

import gzip
import json
from typing import Any

import falcon
import falcon.testing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import http
from r13core.errors import BadRequest, PayloadTooLarge


def request(path: str = "/", **kwargs: Any) -> falcon.Request:
    return falcon.Request(falcon.testing.create_environ(path=path, **kwargs))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RAW_URI": "/@s%2fp?write=true"}, "/@s%2fp"),
        ({"REQUEST_URI": "/@s%2Fp#frag"}, "/@s%2Fp"),
        ({"RAW_URI": "http://host:1/@s%2fp?x"}, "/@s%2fp"),
    ],
)
def test_raw_path_prefers_the_undecoded_uri(env: dict[str, str], expected: str) -> None:
    req = request("/ignored")
    req.env.pop("RAW_URI", None)
    req.env.update(env)
    assert http.raw_path(req) == expected


def test_raw_path_falls_back_to_reencoding_path_info() -> None:
    req = request("/@s/p")
    del req.env["RAW_URI"]
    assert http.raw_path(req) == "/@s/p"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["pkg"], ("pkg", [])),
        (["pkg", "1.0.0"], ("pkg", ["1.0.0"])),
        (["@s%2fp", "-", "p-1.tgz"], ("@s%2fp", ["-", "p-1.tgz"])),
        (["@s%2Fp"], ("@s%2Fp", [])),
        (["@s", "p", "-", "p-1.tgz"], ("@s/p", ["-", "p-1.tgz"])),
        (["@s"], None),
        (["@s", ""], None),
        ([""], None),
        ([], None),
    ],
)
def test_split_package(parts: list[str], expected: tuple[str, list[str]] | None) -> None:
    assert http.split_package(parts) == expected


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1, gzip;q=0.5", True),
        ("GZIP", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=nope", False),
        ("deflate", False),
        (None, False),
    ],
)
def test_accepts_gzip(header: str | None, ok: bool) -> None:
    headers = {"Accept-Encoding": header} if header else {}
    assert http.accepts_gzip(request(headers=headers)) is ok


@pytest.mark.parametrize(
    ("header", "etags", "hit"),
    [
        ('"a"', ['"a"'], True),
        ('W/"a"', ['"a"'], True),
        ('"b", "a"', ['"a"'], True),
        ("*", ['"a"'], True),
        ('"b"', ['"a"', '"a-gz"'], False),
        (None, ['"a"'], False),
    ],
)
def test_not_modified(header: str | None, etags: list[str], hit: bool) -> None:
    headers = {"If-None-Match": header} if header else {}
    assert http.not_modified(request(headers=headers), *etags) is hit


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Bearer r13_abc", "r13_abc"),
        ("bearer   r13_abc  ", "r13_abc"),
        ("Basic dXNlcjpyMTNfYWJj", "r13_abc"),  # user:r13_abc
        ("Basic %%%", ""),
        ("Digest x", ""),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert http.bearer_token(request(headers=headers)) == token


def test_gunzip_limits_the_output_not_the_input() -> None:
    data = b"x" * 10_000
    assert http.gunzip(gzip.compress(data), 10_000) == data
    with pytest.raises(PayloadTooLarge):
        http.gunzip(gzip.compress(data), 9_999)
    with pytest.raises(BadRequest):
        http.gunzip(gzip.compress(data)[:-12], 10_000)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), children, max_size=3)
    ),
    max_leaves=80,
)


@given(json_values, st.integers(min_value=1, max_value=8))
def test_nesting_limit_matches_the_real_depth(value: Any, limit: int) -> None:
    assert http.nesting_exceeds(value, limit) is (depth(value) > limit)


@given(json_values)
def test_parse_json_round_trips_what_json_dumps_makes(value: Any) -> None:
    assert http.parse_json(json.dumps(value).encode()) == value


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b'{"a": -Infinity}'])
def test_non_json_constants_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        http.parse_json(body)


def test_nesting_is_refused_without_deep_recursion() -> None:
    with pytest.raises(BadRequest, match="deeper"):
        http.parse_json(b"[" * 1_000_000)
    with pytest.raises(BadRequest, match="deeper"):
        http.parse_json(b"[" * 65 + b"]" * 65)
    assert http.parse_json(b"[" * 64 + b"]" * 64) is not None
