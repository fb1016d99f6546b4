"""The live channel's handshake checks, in process (no socket: the session itself needs
the gevent worker and is tested through a real server in tests/e2e/test_e2e_live.py)."""

from __future__ import annotations

import pytest

from r13core.config import Feature
from r13core.settings import Settings, SettingsError
from tests.conftest import ADMIN, READ, AppHarness

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(**extra: str) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Protocol": "r13.json.v1",
        **extra,
    }


def test_a_plain_get_is_told_to_upgrade(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/_api/live", headers=ADMIN)
    assert r.status_code == 426
    assert r.headers["upgrade"] == "websocket" and "WebSocket" in r.json["error"]


def test_only_version_13_is_spoken(harness: AppHarness) -> None:
    r = harness.client.simulate_get(
        "/_api/live", headers={**ADMIN, **upgrade(**{"Sec-WebSocket-Version": "8"})}
    )
    assert r.status_code == 426 and r.headers["sec-websocket-version"] == "13"


@pytest.mark.parametrize("key", ["", "short", "dGhlIHNhbXBsZSBub25jZQ", "!!!!" * 6])
def test_a_bad_handshake_key_is_400(harness: AppHarness, key: str) -> None:
    r = harness.client.simulate_get(
        "/_api/live", headers={**ADMIN, **upgrade(**{"Sec-WebSocket-Key": key})}
    )
    assert r.status_code == 400 and "Sec-WebSocket-Key" in r.json["error"]


def test_credentials_are_checked_before_anything_else(harness: AppHarness) -> None:
    assert harness.client.simulate_get("/_api/live", headers=upgrade()).status_code == 401
    bad = {"Authorization": "Bearer r13_nope", **upgrade()}
    assert harness.client.simulate_get("/_api/live", headers=bad).status_code == 401
    # Even with the registry public, the channel needs a key.
    harness.set_private(False)
    assert harness.client.simulate_get("/_api/live", headers=upgrade()).status_code == 401


def test_another_site_s_page_is_refused(harness: AppHarness) -> None:
    r = harness.client.simulate_get(
        "/_api/live", headers={**READ, **upgrade(Origin="https://evil.example")}
    )
    assert r.status_code == 403 and "Origin" in r.json["error"]


def test_the_offer_follows_binary_protocol(harness: AppHarness) -> None:
    harness.config.set_feature(Feature.BINARY_PROTOCOL, False)
    r = harness.client.simulate_get(
        "/_api/live", headers={**READ, **upgrade(**{"Sec-WebSocket-Protocol": "r13.v1"})}
    )
    assert r.status_code == 400 and "r13.json.v1" in r.json["error"]
    assert "r13.v1," not in r.json["error"]


def test_without_the_gevent_worker_a_valid_handshake_is_503(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/_api/live", headers={**READ, **upgrade()})
    assert r.status_code == 503 and "gevent" in r.json["error"]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"R13_LIVE_PING_INTERVAL": "5000", "R13_LIVE_IDLE_TIMEOUT": "5000"}, "R13_LIVE_IDLE"),
        ({"R13_LIVE_MAX_MESSAGE": "8"}, "R13_LIVE_MAX_MESSAGE"),
        ({"R13_LIVE_MAX_CONNECTIONS": "lots"}, "R13_LIVE_MAX_CONNECTIONS"),
        ({"R13_LIVE_HEARTBEAT_INTERVAL": "0"}, "R13_LIVE_HEARTBEAT_INTERVAL"),
    ],
)
def test_bad_live_settings_stop_start_up_naming_the_variable(
    env: dict[str, str], names: str
) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_live_settings_have_the_documented_defaults() -> None:
    live = Settings.from_env({}).live
    assert (live.max_message, live.ping_interval_ms, live.idle_timeout_ms) == (65536, 20000, 60000)
    assert (live.heartbeat_interval_ms, live.max_connections) == (5000, 1000)
