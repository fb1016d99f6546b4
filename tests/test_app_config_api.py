"""The app in process: ping, the config API, errors as JSON."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from app.main import create_app
from r13core.config import Config13, fnv1a32
from r13core.services import open_services
from r13core.settings import Settings, SettingsError


@pytest.fixture
def client(data_dir: Path) -> falcon.testing.TestClient:
    settings = Settings.from_env({"R13_DATA": str(data_dir), "R13_PUBLIC_URL": "http://r13.test"})
    return falcon.testing.TestClient(create_app(open_services(settings)))


def test_ping_answers_an_empty_object(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/-/ping")
    assert resp.status_code == 200 and resp.json == {}


def test_config_api_shows_the_live_record(
    client: falcon.testing.TestClient, data_dir: Path
) -> None:
    body = client.simulate_get("/_api/config", remote_addr="127.0.0.1").json
    raw = (data_dir / "config.r13").read_bytes()
    assert body["hex"] == raw.hex()
    assert body["registryHash"] == fnv1a32("http://r13.test")
    assert body["features"]["PRIVATE_REGISTRY"] is True
    assert body["generation"] >= 1
    assert Config13.from_bytes(raw).as_dict()["features"] == body["features"]


def test_unknown_routes_get_json_404(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/_api/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")
    assert "error" in resp.json


def test_feature_overrides_from_the_environment_apply_at_start(data_dir: Path) -> None:
    settings = Settings.from_env(
        {"R13_DATA": str(data_dir), "R13_FEATURE_DEBUG": "1", "R13_FEATURE_METRICS": "0"}
    )
    body = (
        falcon.testing.TestClient(create_app(open_services(settings)))
        .simulate_get("/_api/config", remote_addr="127.0.0.1")
        .json
    )
    assert body["features"]["DEBUG"] is True and body["features"]["METRICS"] is False


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"REGISTRY_PORT": "http"}, "REGISTRY_PORT"),
        ({"REGISTRY_PORT": "70000"}, "REGISTRY_PORT"),
        ({"R13_FEATURE_DEBUG": "maybe"}, "R13_FEATURE_DEBUG"),
        ({"R13_PUBLIC_URL": "ftp://x"}, "R13_PUBLIC_URL"),
        ({"SECURITY_RATE_LIMIT_MAX": "0"}, "SECURITY_RATE_LIMIT_MAX"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_config_api_needs_a_key_from_afar_in_private_mode(
    client: falcon.testing.TestClient,
) -> None:
    assert client.simulate_get("/_api/config", remote_addr="127.0.0.1").status_code == 200
    far = client.simulate_get("/_api/config", remote_addr="198.51.100.7")
    assert far.status_code == 403 and "error" in far.json
