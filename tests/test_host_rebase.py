"""Tarball links follow only allowed hosts, parsed strictly; the copies are bounded (item 11).

The review sent ``Host: reg.example:1@evil.example`` and got tarball links on
evil.example, and every distinct Host cached a full copy of the packument.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import falcon.testing
import pytest

from app.hosts import HostRebaser, parse_host
from app.main import create_app
from r13core.database import open_database
from r13core.errors import InvalidValue
from r13core.keys import KeyStore, Permission
from r13core.services import open_services
from r13core.settings import Settings
from tests.e2e.publish_body import publish_body, tarball

PUBLIC = "https://npm.example.test/registry"
HOSTILE = [
    "npm.corp:8080@evil.example",
    "npm.corp:1@evil.example",
    "evil.example#npm.corp",
    "npm.corp:8080/evil",
    "npm.corp:8080:9090",
    "npm.corp:+8080",
    "npm.corp:\uff18\uff10\uff18\uff10",  # fullwidth digits
    "npm.corp: 8080",
    "npm.corp.",
    "user@npm.corp",
    "[::1]evil",
    "[::1",
    "npm.corp:0",
    "npm.corp:65536",
    "npm.corp:99999999999",
    "npm.corp%2eevil.example",
    "npm.corp\\evil.example",
    "",
]
# Well formed, but not a host anyone listed.
UNLISTED = ["NPM.corp.evil.example", "evil.example:8080", "[::1]:8080", "npm.corp:8081"]


@dataclass(frozen=True)
class Rendered:
    body: bytes
    gzip: bytes
    etag: str


def doc(name: str, size: int = 0) -> Rendered:
    body = json.dumps(
        {
            "name": name,
            "pad": "x" * size,
            "versions": {"1.0.0": {"dist": {"tarball": f"{PUBLIC}/{name}/-/{name}-1.0.0.tgz"}}},
        },
        separators=(",", ":"),
    ).encode()
    return Rendered(body, gzip.compress(body), f'"{name}-{size}"')


def request(host: str | None) -> falcon.Request:
    headers = {} if host is None else {"Host": host}
    return falcon.Request(falcon.testing.create_environ("/p", headers=headers))


def test_parse_host_is_strict() -> None:
    assert parse_host("NPM.Corp:08080") == ("npm.corp", 8080)
    assert parse_host("npm.corp") == ("npm.corp", None)
    assert parse_host("[2001:DB8::1]:443") == ("[2001:db8::1]", 443)
    assert parse_host("10.0.0.5:4873") == ("10.0.0.5", 4873)
    assert parse_host("r13_registry:4873") == ("r13_registry", 4873)
    assert parse_host(" npm.corp\t") == ("npm.corp", None)  # optional whitespace
    for bad in HOSTILE:
        assert parse_host(bad) is None, bad


def test_hostile_host_headers(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "R13_DATA": str(tmp_path),
            "R13_PUBLIC_URL": PUBLIC,
            "R13_ALLOWED_HOSTS": "npm.corp:8080,[2001:db8::5]",
        }
    )
    services = open_services(settings)
    config = services.config
    config.set_feature("PRIVATE_REGISTRY", False)
    _, write = KeyStore(open_database(tmp_path)).create("w", Permission.WRITE, None)
    client = falcon.testing.TestClient(create_app(services))
    data = tarball("pkg", "1.0.0")
    put = client.simulate_put(
        "/pkg",
        json=publish_body("pkg", "1.0.0", data),
        headers={"Authorization": f"Bearer {write}"},
    )
    assert put.status_code == 201, put.text

    def link(host: str) -> str:
        r = client.simulate_get("/pkg", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)
        return str(r.json["versions"]["1.0.0"]["dist"]["tarball"])

    try:
        for host in HOSTILE + UNLISTED:
            got = link(host)
            assert got.startswith(PUBLIC + "/"), (host, got)
            assert "evil" not in got
        assert link("npm.corp:8080") == "https://npm.corp:8080/registry/pkg/-/pkg-1.0.0.tgz"
        assert link("[2001:DB8::5]") == "https://[2001:db8::5]/registry/pkg/-/pkg-1.0.0.tgz"
    finally:
        config.close()


def test_an_entry_without_a_port_allows_no_port_the_public_port_and_the_listen_port() -> None:
    hosts = HostRebaser(PUBLIC, ("mirror.internal",), listen_port=4873)
    assert hosts.base_for(request("mirror.internal")) == "https://mirror.internal/registry"
    assert hosts.base_for(request("mirror.internal:443")) == "https://mirror.internal/registry"
    assert hosts.base_for(request("mirror.internal:4873")) == (
        "https://mirror.internal:4873/registry"
    )
    assert hosts.base_for(request("mirror.internal:4874")) is None
    assert hosts.base_for(request("npm.example.test")) is None  # the public host itself
    assert hosts.base_for(request(None)) is None


def test_bad_allowed_hosts_stop_start_up() -> None:
    for entry in ("npm.corp:80@x", "https://npm.corp", "npm.corp:0", "a b"):
        with pytest.raises(InvalidValue, match="R13_ALLOWED_HOSTS"):
            HostRebaser(PUBLIC, (entry,))


def test_the_copy_cache_is_bounded_by_count_and_bytes() -> None:
    hosts = HostRebaser(
        PUBLIC,
        ("a.corp", "b.corp", "c.corp"),
        max_cached=5,
        max_cached_bytes=64 * 1024,
    )
    # Only allowed hosts ever get a copy, however many Host values arrive.
    for i in range(200):
        hosts.apply(request(f"evil{i}.example"), doc("p"))
    assert hosts.cache_stats() == (0, 0)
    # Many documents over the allowed hosts: never more than 5 copies.
    for i in range(50):
        for host in ("a.corp", "b.corp", "c.corp"):
            out = hosts.apply(request(host), doc(f"p{i}"))
            assert f"https://{host}/registry/p{i}/-/".encode() in out.body
    count, size = hosts.cache_stats()
    assert count == 5 and size <= 64 * 1024
    # Big copies are bounded by bytes (and one over a quarter of the budget is never kept).
    for i in range(10):
        hosts.apply(request("a.corp"), doc(f"big{i}", 12 * 1024))
    count, size = hosts.cache_stats()
    assert size <= 64 * 1024 and count <= 5
    huge = hosts.apply(request("b.corp"), doc("huge", 40 * 1024))
    assert b"https://b.corp/registry/huge/" in huge.body
    assert hosts.cache_stats()[1] <= 64 * 1024
    # A hit returns the same copy (LRU), with an ETag of its own.
    again = hosts.apply(request("a.corp"), doc("big9", 12 * 1024))
    assert again is hosts.apply(request("a.corp"), doc("big9", 12 * 1024))
    assert again.etag != doc("big9", 12 * 1024).etag


def test_serve_names_a_bad_allowed_host_before_starting(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--data", str(tmp_path / "d"), "serve"],
        env={**os.environ, "R13_ALLOWED_HOSTS": "npm.corp:1@evil.example"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "R13_ALLOWED_HOSTS: 'npm.corp:1@evil.example'" in out.stderr
