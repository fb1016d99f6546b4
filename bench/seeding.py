"""Seeding for the HTTP harness: real npm tarballs published through ``PUT /:pkg``.

What bench/scenarios.py reads back in its scenarios: ``Names`` says which packages,
``seed`` publishes them exactly as npm does (r13core/npm_pack.py: base64 attachment,
sha512 integrity, sha1 shasum) and checks they read back (version counts, one tarball's
bytes).
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.load import FULL_ACCEPT, USER_AGENT, HarnessError, Target
from r13core.npm_pack import package_tarball, publish_document
from r13core.tarball import sri_sha512

integrity_of = sri_sha512  # the sha512 SRI string of a tarball

SCOPE = "@bench"


# --------------------------------------------------------------------------- packages


def packument_path(name: str) -> str:
    """URL path of a packument; scoped names are escaped as npm does (``@s%2fn``)."""
    if name.startswith("@"):
        scope, rest = name.split("/", 1)
        return f"/{scope}%2f{rest}"
    return f"/{name}"


def bench_manifest(name: str, version: str) -> dict[str, Any]:
    """The package.json of every benchmark package."""
    return {
        "name": name,
        "version": version,
        "description": "r13 benchmark package",
        "main": "index.js",
        "license": "MIT",
    }


def make_tarball(name: str, version: str) -> bytes:
    """A real npm tarball: gzip'd tar with package/package.json and package/index.js."""
    index = f"module.exports = {json.dumps(name + '@' + version)};\n"
    return package_tarball(bench_manifest(name, version), {"index.js": index})


def publish_body(target: Target, name: str, version: str) -> tuple[bytes, bytes]:
    """(JSON body of the npm publish request, the tarball bytes)."""
    tgz = make_tarball(name, version)
    document = publish_document(bench_manifest(name, version), tgz, registry=target.url)
    return json.dumps(document).encode(), tgz


@dataclass(frozen=True)
class Names:
    prefix: str
    small_count: int

    @property
    def small(self) -> list[str]:
        return [f"{self.prefix}-s{i:03d}" for i in range(self.small_count)]

    @property
    def big(self) -> str:
        return f"{self.prefix}-big"

    @property
    def scoped(self) -> str:
        return f"{SCOPE}/{self.prefix}-scoped"

    @property
    def pub(self) -> str:
        return f"{self.prefix}-pub"


def default_prefix() -> str:
    return f"r13b-{int(time.time() * 1000) % 10**11:011d}-{os.getpid() % 1000:03d}"


# --------------------------------------------------------------------------- simple client


class Client:
    """One keep-alive http.client connection (seeding, setup and publish timing)."""

    def __init__(self, target: Target, token: str | None, timeout: float = 30.0) -> None:
        self.target = target
        self.token = token
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = False,
    ) -> tuple[int, bytes]:
        h = {"User-Agent": USER_AGENT, "Accept": FULL_ACCEPT}
        if body is not None:
            h["Content-Type"] = "application/json"
        if auth and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=self.timeout
                )
            try:
                self.conn.request(method, self.target.path(path), body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                # A keep-alive connection the server closed: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def publish(client: Client, name: str, version: str) -> tuple[int, bytes]:
    body, _ = publish_body(client.target, name, version)
    return client.request("PUT", packument_path(name), body=body, auth=True)


def _check(status: int, data: bytes, what: str) -> None:
    if not 200 <= status < 300:
        excerpt = data[:300].decode("utf-8", "replace")
        raise HarnessError(f"{what}: HTTP {status}: {excerpt}")


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    names: Names
    big_versions: int
    tarball_paths: list[str]
    publishes: int
    seconds: float
    pub_next: int = 1  # next minor version for the publish scenario


def seed(
    target: Target,
    token: str | None,
    names: Names,
    big_versions: int,
    threads: int = 8,
    log: Callable[[str], None] = lambda s: None,
    deadline_s: float = 900.0,
) -> Seeded:
    """Publish everything the scenarios read, then check it reads back."""
    if not token:
        raise HarnessError("seeding publishes packages: a token is required (--token)")
    t0 = time.perf_counter()
    deadline = t0 + deadline_s

    def one(name: str) -> None:
        c = Client(target, token)
        try:
            if time.perf_counter() > deadline:
                raise HarnessError("seeding deadline passed")
            status, data = publish(c, name, "1.0.0")
            _check(status, data, f"publish {name}@1.0.0")
        finally:
            c.close()

    log(f"seeding {len(names.small)} small packages + {names.scoped} + {names.pub}")
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(one, [*names.small, names.scoped, names.pub]))

    log(f"seeding {names.big} with {big_versions} sequential versions")
    c = Client(target, token)
    try:
        for i in range(big_versions):
            if time.perf_counter() > deadline:
                raise HarnessError("seeding deadline passed")
            v = f"1.{i // 100}.{i % 100}"
            status, data = publish(c, names.big, v)
            _check(status, data, f"publish {names.big}@{v}")
    finally:
        c.close()
    publishes = len(names.small) + 2 + big_versions
    seeded = attach(target, token, names, big_versions, threads)
    seeded.publishes = publishes
    seeded.seconds = time.perf_counter() - t0
    return seeded


def attach(
    target: Target, token: str | None, names: Names, big_versions: int, threads: int = 8
) -> Seeded:
    """What :func:`seed` published, read back (and checked) without publishing: for a
    target serving packages seeded elsewhere (bench/static_nginx.py's pre-rendered files)."""
    t0 = time.perf_counter()

    # Read back: every small packument gives its tarball URL; check counts.
    def tarball_of(name: str) -> str:
        c = Client(target, token)
        try:
            status, data = c.request("GET", packument_path(name))
            _check(status, data, f"GET {name}")
            doc = json.loads(data)
            v = doc.get("dist-tags", {}).get("latest")
            if v != "1.0.0" or "1.0.0" not in doc.get("versions", {}):
                raise HarnessError(f"GET {name}: version 1.0.0 missing after publish")
            url = str(doc["versions"]["1.0.0"]["dist"]["tarball"])
            return tarball_path(target, url)
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        tarballs = list(pool.map(tarball_of, names.small))

    c = Client(target, token)
    try:
        status, data = c.request("GET", packument_path(names.big))
        _check(status, data, f"GET {names.big}")
        n = len(json.loads(data).get("versions", {}))
        if n != big_versions:
            raise HarnessError(f"{names.big} has {n} versions, expected {big_versions}")
        status, data = c.request("GET", packument_path(names.scoped))
        _check(status, data, f"GET {names.scoped}")
        # One tarball must match the integrity the harness published.
        status, data = c.request("GET", tarballs[0], headers={"Accept": "*/*"})
        _check(status, data, f"GET {tarballs[0]}")
        expected = make_tarball(names.small[0], "1.0.0")
        if integrity_of(data) != integrity_of(expected):
            raise HarnessError(f"tarball {tarballs[0]} does not match what was published")
    finally:
        c.close()
    return Seeded(names, big_versions, tarballs, 0, time.perf_counter() - t0)


def tarball_path(target: Target, url: str) -> str:
    """The path (relative to the target) of a dist.tarball URL.

    Registries put their own idea of their address in dist.tarball; the harness
    always loads the target it was given, so only the path is kept.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if target.base_path and path.startswith(target.base_path + "/"):
        path = path[len(target.base_path) :]
    if parts.query:
        path += "?" + parts.query
    return path
