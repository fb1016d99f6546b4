"""Bad input and missing rights get a JSON error with the right status, never a 500."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest

from tests.conftest import ADMIN, READ, WRITE, AppHarness

JSON = {"Content-Type": "application/json"}
LIMIT = 65536  # R13_MAX_BODY in the harness


def error_of(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json
    assert set(body) == {"error"}
    assert "Traceback" not in body["error"]
    return str(body["error"])


# -- access ------------------------------------------------------------------------


def test_private_registry_reads_need_a_key(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/pkg")
    error_of(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert harness.registry.calls == []


def test_public_registry_allows_anonymous_reads(harness: AppHarness) -> None:
    harness.set_private(False)
    assert harness.client.simulate_get("/pkg").status_code == 200
    assert harness.client.simulate_get("/pkg/-/pkg-1.0.0.tgz").status_code == 200


def test_the_flag_takes_effect_on_the_next_request(harness: AppHarness) -> None:
    harness.set_private(False)
    assert harness.client.simulate_get("/pkg").status_code == 200
    harness.set_private(True)
    assert harness.client.simulate_get("/pkg").status_code == 401


def test_a_bad_key_is_401_even_where_anonymous_would_do(harness: AppHarness) -> None:
    harness.set_private(False)
    r = harness.client.simulate_get("/pkg", headers={"Authorization": "Bearer r13_wrong"})
    error_of(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer", "Token abc", "Basic !!!", "Bearer  "])
def test_malformed_authorization_is_401(harness: AppHarness, header: str) -> None:
    error_of(harness.client.simulate_get("/pkg", headers={"Authorization": header}), 401)


def test_basic_auth_carries_the_key_as_password(harness: AppHarness) -> None:
    import base64

    token = base64.b64encode(b"anyone:r13_read").decode()
    r = harness.client.simulate_get("/pkg", headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/pkg"),
        ("PUT", "/pkg/-rev/1-a"),
        ("DELETE", "/pkg/-rev/1-a"),
        ("DELETE", "/pkg/-/pkg-1.0.0.tgz/-rev/1-a"),
        ("PUT", "/-/package/pkg/dist-tags/beta"),
        ("DELETE", "/-/package/pkg/dist-tags/beta"),
    ],
)
def test_writes_need_write(harness: AppHarness, method: str, path: str) -> None:
    harness.set_private(False)
    c = harness.client
    error_of(c.simulate_request(method, path, body='"1.0.0"', headers=JSON), 401)
    error_of(c.simulate_request(method, path, body='"1.0.0"', headers={**JSON, **READ}), 403)
    assert harness.registry.calls == []
    allowed = c.simulate_request(method, path, body='"1.0.0"', headers={**JSON, **ADMIN})
    assert allowed.status_code not in (401, 403)


# -- paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/.hidden",
        "/_private",
        "/node_modules",
        "/@scope",
        "/@scope%2f",
        "/@scope%2fa%2fb",
        "/%ff%fe",
        "/pkg%00",
        "/" + "a" * 300,
        "/UPPER%20space",
    ],
)
def test_invalid_names_are_400_or_404(harness: AppHarness, path: str) -> None:
    r = harness.client.simulate_get(path, headers=READ)
    assert r.status_code in (400, 404)
    error_of(r, r.status_code)
    assert harness.registry.calls == []


@pytest.mark.parametrize(
    "path",
    [
        "/pkg/-/pkg-1.0.0.zip",
        "/pkg/-/..%2f..%2fetc%2fpasswd.tgz",
        "/pkg/-/%2e%2e.tgz",
    ],
)
def test_bad_tarball_names_are_refused(harness: AppHarness, path: str) -> None:
    r = harness.client.simulate_get(path, headers=READ)
    assert r.status_code in (400, 404)
    error_of(r, r.status_code)
    assert harness.registry.calls == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/-/nothing"),
        ("GET", "/_api/nothing"),
        ("GET", "/pkg/a/b/c"),
        ("PUT", "/pkg/1.0.0"),
        ("GET", "/-/package/pkg/nothing"),
        ("GET", "/"),
        ("DELETE", "/pkg/-/pkg-1.0.0.tgz"),
        ("GET", "/%2d/package/pkg/dist-tags"),
    ],
)
def test_unknown_routes_are_404_json(harness: AppHarness, method: str, path: str) -> None:
    error_of(harness.client.simulate_request(method, path, headers=ADMIN), 404)


def test_unpublish_without_rev_is_400(harness: AppHarness) -> None:
    error_of(harness.client.simulate_delete("/pkg", headers=WRITE), 400)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_other_methods_are_405_json(harness: AppHarness, method: str) -> None:
    error_of(harness.client.simulate_request(method, "/pkg", headers=WRITE), 405)


def test_missing_package_is_404_json(harness: AppHarness) -> None:
    error_of(harness.client.simulate_get("/missing-pkg", headers=READ), 404)


@pytest.mark.parametrize("size", ["0", "-1", "9999", "x"])
def test_bad_search_size_is_400(harness: AppHarness, size: str) -> None:
    r = harness.client.simulate_get("/-/v1/search", params={"size": size}, headers=READ)
    error_of(r, 400)


def test_bad_dist_tag_name_is_400(harness: AppHarness) -> None:
    r = harness.client.simulate_put(
        "/-/package/pkg/dist-tags/a%20b", body='"1.0.0"', headers={**WRITE, **JSON}
    )
    error_of(r, 400)


# -- bodies ------------------------------------------------------------------------

WRITE_ROUTES = [
    ("PUT", "/pkg"),
    ("PUT", "/pkg/-rev/1-a"),
    ("POST", "/-/npm/v1/security/advisories/bulk"),
    ("POST", "/-/npm/v1/security/audits/quick"),
    ("POST", "/_api/advisories"),
]


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES)
def test_body_over_the_limit_is_413(harness: AppHarness, method: str, path: str) -> None:
    body = json.dumps({"x": "a" * LIMIT})
    error_of(
        harness.client.simulate_request(method, path, body=body, headers={**ADMIN, **JSON}), 413
    )
    assert harness.registry.calls == []


def test_declared_length_over_the_limit_is_413_before_reading(harness: AppHarness) -> None:
    r = harness.client.simulate_put(
        "/pkg", body=b"{}", headers={**WRITE, **JSON, "Content-Length": str(LIMIT + 1)}
    )
    error_of(r, 413)


def test_a_chunked_body_is_counted_while_streaming(harness: AppHarness) -> None:
    class Chunks:
        """A stream without a length: only counting while reading can stop it."""

        def __init__(self) -> None:
            self.sent = 0

        def read(self, n: int = -1) -> bytes:
            if self.sent > 4 * LIMIT:
                return b""
            self.sent += 4096
            return b" " * 4096

        def readline(self, n: int = -1) -> bytes:
            return self.read(n)

        def __iter__(self) -> Any:
            return iter(())

        def readlines(self, hint: int = -1) -> list[bytes]:
            return []

    stream = Chunks()
    r = harness.client.simulate_request(
        "PUT",
        "/pkg",
        headers={**WRITE, **JSON, "Transfer-Encoding": "chunked"},
        extras={"wsgi.input": stream},
    )
    error_of(r, 413)
    assert stream.sent <= LIMIT + 64 * 1024 + 4096


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES)
def test_gzip_bomb_is_413(harness: AppHarness, method: str, path: str) -> None:
    bomb = gzip.compress(b"[" + b" " * (LIMIT * 4) + b"]")
    assert len(bomb) < LIMIT
    r = harness.client.simulate_request(
        method, path, body=bomb, headers={**ADMIN, **JSON, "Content-Encoding": "gzip"}
    )
    error_of(r, 413)


def test_broken_gzip_is_400(harness: AppHarness) -> None:
    r = harness.client.simulate_post(
        "/-/npm/v1/security/advisories/bulk",
        body=b"\x1f\x8bnot gzip at all",
        headers={**READ, **JSON, "Content-Encoding": "gzip"},
    )
    error_of(r, 400)


def test_unknown_content_encoding_is_415(harness: AppHarness) -> None:
    r = harness.client.simulate_put(
        "/pkg", body=b"{}", headers={**WRITE, **JSON, "Content-Encoding": "br"}
    )
    error_of(r, 415)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize(("method", "path"), [*WRITE_ROUTES, ("PUT", "/-/package/p/dist-tags/t")])
def test_wrong_content_type_is_415(
    harness: AppHarness, ctype: str | None, method: str, path: str
) -> None:
    headers = dict(ADMIN)
    if ctype:
        headers["Content-Type"] = ctype
    error_of(harness.client.simulate_request(method, path, body=b"{}", headers=headers), 415)
    assert harness.registry.calls == []


def test_json_with_parameters_is_accepted(harness: AppHarness) -> None:
    r = harness.client.simulate_put(
        "/pkg", body=b"{}", headers={**WRITE, "Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"nope", b'{"a": }', b"\xff\xfe", b'{"a": NaN', b"[1, 2]", b'"str"', b"null"],
)
def test_invalid_json_or_not_an_object_is_400(harness: AppHarness, body: bytes) -> None:
    error_of(harness.client.simulate_put("/pkg", body=body, headers={**WRITE, **JSON}), 400)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_json_nested_too_deep_is_400(harness: AppHarness, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    deep = "{" + '"x":' + opener * 100_000 + "1" + closer * 100_000 + "}"
    r = harness.client.simulate_put("/pkg", body=deep[:LIMIT], headers={**WRITE, **JSON})
    assert "deeper" in error_of(r, 400)


def test_json_at_the_depth_limit_is_fine(harness: AppHarness) -> None:
    body = '{"x":' + "[" * 63 + "]" * 63 + "}"
    assert (
        harness.client.simulate_put("/pkg", body=body, headers={**WRITE, **JSON}).status_code == 200
    )


def test_brackets_inside_strings_do_not_count(harness: AppHarness) -> None:
    body = json.dumps({"readme": "[[[[{{{{" * 200 + '\\"]]'})
    assert (
        harness.client.simulate_put("/pkg", body=body, headers={**WRITE, **JSON}).status_code == 200
    )


def test_bulk_audit_values_must_be_version_lists(harness: AppHarness) -> None:
    r = harness.client.simulate_post(
        "/-/npm/v1/security/advisories/bulk", json={"pkg": "1.0.0"}, headers=READ
    )
    error_of(r, 400)


# -- strings r13 could not render later (refused at write time) ---------------------

JSON_WRITE_ROUTES = [
    *WRITE_ROUTES,
    ("PUT", "/-/package/pkg/dist-tags/beta"),
    ("PUT", "/-/user/org.couchdb.user:someone"),
    ("POST", "/_api/security/keys"),
    ("POST", "/_api/security/blocks"),
]


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "pkg", "description": "\\ud800"}',
        b'{"name": "pkg", "x": ["ok", "\\udfff"]}',
        b'{"\\udc00": 1}',
        b'"\\ud83d"',
    ],
)
@pytest.mark.parametrize(("method", "path"), JSON_WRITE_ROUTES)
def test_a_lone_surrogate_in_any_json_body_is_400(
    harness: AppHarness, method: str, path: str, body: bytes
) -> None:
    r = harness.client.simulate_request(method, path, body=body, headers={**ADMIN, **JSON})
    assert "lone UTF-16 surrogate" in error_of(r, 400)
    assert harness.registry.calls == []


def test_an_escaped_surrogate_pair_is_text_and_accepted(harness: AppHarness) -> None:
    body = b'{"name": "pkg", "description": "\\ud83d\\ude00"}'
    r = harness.client.simulate_put("/pkg", body=body, headers={**WRITE, **JSON})
    assert r.status_code == 200
    assert harness.registry.calls[0][2]["description"] == "\U0001f600"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"x": 1e400}', "number JSON cannot carry"),
        (b'{"x": -1e999}', "number JSON cannot carry"),
        (b'{"x": Infinity}', "number JSON cannot carry"),
        (b'{"x": "\xed\xa0\x80"}', "not valid UTF-8"),
        (b'\xef\xbb\xbf{"x": 1}', "not valid JSON"),
    ],
)
def test_numbers_and_bytes_json_cannot_carry_are_400(
    harness: AppHarness, body: bytes, reason: str
) -> None:
    r = harness.client.simulate_put("/pkg", body=body, headers={**WRITE, **JSON})
    assert reason in error_of(r, 400)
    assert harness.registry.calls == []


def test_a_body_shorter_than_its_content_length_is_400(harness: AppHarness) -> None:
    # The connection ended early: a complete-looking "{}" must not be taken for the body.
    r = harness.client.simulate_request(
        "PUT",
        "/pkg",
        headers={**WRITE, **JSON, "Content-Length": "100"},
        extras={"wsgi.input": io.BytesIO(b"{}")},
    )
    assert "ended after 2 of its 100 declared bytes" in error_of(r, 400)
    assert harness.registry.calls == []
