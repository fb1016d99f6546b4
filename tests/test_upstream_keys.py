"""The upstream's keys (r13core/upstream_keys.py) and ``GET /-/npm/v1/keys`` with both sets.

The upstream is a real HTTP server on loopback serving a keys document (or failing,
as the test says); the clock is the test's.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.main import create_app
from r13core.audit import Actor
from r13core.config import Feature
from r13core.services import SIGNING_DIR, open_services
from r13core.settings import Settings, SettingsError
from r13core.signatures import PublicKey, parse_keys, public_key_der
from r13core.upstream_keys import CACHE_FILE, UpstreamKeys


def a_key(expires: str | None = None) -> PublicKey:
    der = public_key_der(ec.generate_private_key(ec.SECP256R1()))
    return PublicKey.from_der(der, expires=expires)


@dataclass
class Upstream:
    """What the fake upstream answers: ``status`` and ``body``; it counts requests."""

    status: int = 200
    body: bytes = b""
    hits: list[str] = field(default_factory=list)
    url: str = ""

    def serve(self, keys: list[PublicKey]) -> None:
        self.status, self.body = 200, json.dumps({"keys": [k.as_json() for k in keys]}).encode()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_fetched_once_then_served_from_memory_and_disk(
    upstream: Upstream, tmp_path: Path
) -> None:
    keys = [a_key("2025-01-29T00:00:00.000Z"), a_key()]
    upstream.serve(keys)
    clock = Clock()
    uk = UpstreamKeys(upstream.url, tmp_path, clock=clock, max_age=3600)
    assert uk.current() == keys
    assert uk.current() == keys
    assert upstream.hits == ["/-/npm/v1/keys"]
    # Another worker (another object) starts from the saved copy: no request.
    other = UpstreamKeys(upstream.url, tmp_path, clock=clock, max_age=3600)
    assert other.current() == keys
    assert len(upstream.hits) == 1
    assert (tmp_path / CACHE_FILE).stat().st_mode & 0o077 == 0
    # Once older than max_age, fetched again.
    rotated = [*keys, a_key()]
    upstream.serve(rotated)
    clock.now += 3601
    assert uk.current() == rotated
    assert len(upstream.hits) == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [(503, b"{}"), (200, b"not json"), (200, b'{"keys": "no"}'), (404, b"")],
    ids=["5xx", "not JSON", "not a keys document", "no keys endpoint"],
)
def test_a_failing_upstream_leaves_the_last_good_copy_and_is_asked_again_later(
    upstream: Upstream, tmp_path: Path, status: int, body: bytes
) -> None:
    keys = [a_key()]
    upstream.serve(keys)
    clock = Clock()
    uk = UpstreamKeys(upstream.url, tmp_path, clock=clock, max_age=60, retry_after=30)
    assert uk.current() == keys
    upstream.status, upstream.body = status, body
    clock.now += 61
    assert uk.current() == keys  # stale, but the last good answer
    asked = len(upstream.hits)
    clock.now += 10
    assert uk.current() == keys
    assert len(upstream.hits) == asked  # within retry_after: not asked again
    clock.now += 30
    upstream.serve([*keys, a_key()])
    assert len(uk.current()) == 2
    assert len(upstream.hits) == asked + 1


def test_an_upstream_never_reached_has_no_keys(tmp_path: Path) -> None:
    uk = UpstreamKeys("http://127.0.0.1:9", tmp_path, clock=Clock(), timeout=2)
    assert uk.current() == []


# -- GET /-/npm/v1/keys -----------------------------------------------------------------------


def client_for(data: Path, upstream: Upstream) -> tuple[falcon.testing.TestClient, Any]:
    env = {"R13_DATA": str(data), "R13_PUBLIC_URL": "http://r13.test",
           "R13_UPLINK_URL": upstream.url}  # fmt: skip
    services = open_services(Settings.from_env(env))
    return falcon.testing.TestClient(create_app(services)), services


def test_the_keys_route_serves_r13s_keys_and_the_upstreams_when_proxying(
    upstream: Upstream, tmp_path: Path
) -> None:
    theirs = [a_key("2025-01-29T00:00:00.000Z"), a_key()]
    upstream.serve(theirs)
    client, services = client_for(tmp_path / "data", upstream)
    ours = services.signing_keys.public_keys()
    assert services.config.read().has(Feature.PRIVATE_REGISTRY)  # keys are public anyway

    answer = client.simulate_get("/-/npm/v1/keys")
    assert answer.status_code == 200
    assert parse_keys(answer.json) == ours
    assert upstream.hits == []  # PROXY_MODE off: the upstream is not asked
    for entry in answer.json["keys"]:
        assert set(entry) == {"expires", "keyid", "keytype", "scheme", "key"}
        assert entry["keytype"] == entry["scheme"] == "ecdsa-sha2-nistp256"

    services.config.set_feature(Feature.PROXY_MODE, True)
    answer = client.simulate_get("/-/npm/v1/keys")
    assert parse_keys(answer.json) == ours + theirs
    assert (tmp_path / "data" / SIGNING_DIR / CACHE_FILE).exists()

    # A rotation shows at once, the old key with its expiry.
    new, old = services.signing_keys.rotate(Actor.cli())
    listed = parse_keys(client.simulate_get("/-/npm/v1/keys").json)
    assert listed == [old, new, *theirs]
    services.config.close()


def test_the_uplink_url_setting_defaults_to_the_npm_registry_and_is_checked() -> None:
    assert Settings.from_env({}).uplink.url == "https://registry.npmjs.org"
    assert Settings.from_env({"R13_UPLINK_URL": "http://10.0.0.5:4873/"}).uplink.url == (
        "http://10.0.0.5:4873"
    )
    with pytest.raises(SettingsError, match="R13_UPLINK_URL"):
        Settings.from_env({"R13_UPLINK_URL": "registry.npmjs.org"})
