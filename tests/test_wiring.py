"""The one wiring (r13core/services.py): every front end builds the same parts over one storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import falcon.testing
import pytest

import r13core.services as services_module
from app.cli import main
from app.main import create_app
from r13core.audit import AuditLog
from r13core.config import Feature
from r13core.database import open_database
from r13core.services import open_services
from r13core.settings import Settings, SettingsError

PUBLIC = "http://r13.test"


def _counting_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real = open_database

    def opener(data_dir: Path, url: str | None = None, **options: Any) -> Any:
        opened.append(str(url))
        return real(data_dir, url, **options)

    monkeypatch.setattr(services_module, "open_database", opener)
    return opened


def test_an_app_opens_one_storage_and_every_part_shares_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _counting_opens(monkeypatch)
    services = open_services(
        Settings.from_env({"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC})
    )
    client = falcon.testing.TestClient(create_app(services))
    assert client.simulate_get("/-/ping").status_code == 200
    assert opened == [f"sqlite://{tmp_path}/registry.sqlite3"]
    storage = services.storage
    assert services.registry.storage is storage
    assert services.registry.audit is services.audit
    assert services.identity.audit is services.audit
    assert services.keys is services.identity.keys and services.users is services.identity.users
    assert services.logins.identity is services.identity
    services.close()


def test_a_part_is_built_once_and_only_when_asked(tmp_path: Path) -> None:
    services = open_services(Settings.from_env({"R13_DATA": str(tmp_path)}))
    assert "limiter" not in vars(services) and "registry" not in vars(services)
    assert services.identity is services.identity
    assert "limiter" not in vars(services)  # listing users never maps the shared table
    services.close()


def test_feature_overrides_reach_the_record_once_and_are_audited(tmp_path: Path) -> None:
    env = {"R13_DATA": str(tmp_path), "R13_FEATURE_DEBUG": "1", "R13_FEATURE_METRICS": "0"}
    for _ in range(2):  # a second worker finds the bits already as asked
        services = open_services(Settings.from_env(env))
        create_app(services)
        record = services.config.read()
        assert record.has(Feature.DEBUG) and not record.has(Feature.METRICS)
        services.close()
    events = AuditLog(open_database(tmp_path)).page(action="config.change")["events"]
    assert [(e["actor"], e["ip"]) for e in events] == [("r13", ""), ("r13", "")]


def test_the_cli_reads_the_record_without_forcing_the_server_s_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("R13_FEATURE_DEBUG", "1")
    assert main(["--data", str(tmp_path), "config", "show"]) == 0
    assert "off DEBUG" in capsys.readouterr().out  # only `r13 serve` and the workers force it


def test_a_bad_variable_stops_every_command_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("R13_IPV6_PREFIX", "200")
    assert main(["--data", str(tmp_path), "users", "list"]) == 2
    assert "R13_IPV6_PREFIX=200 is out of range" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="R13_IPV6_PREFIX"):
        Settings.from_env({"R13_IPV6_PREFIX": "200"})


def test_settings_come_in_sections_with_the_data_dir_shared(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"R13_DATA": str(tmp_path), "REGISTRY_PORT": "5000", "SECURITY_RATE_LIMIT_MAX": "7",
         "METRICS_HISTORY_SIZE": "9", "R13_SWEEP_INTERVAL": "1000"}
    )  # fmt: skip
    assert s.server.port == 5000 and s.server.public_url == "http://localhost:5000"
    assert s.security.rate_limit_max == 7 and s.monitor.history == 9
    assert s.housekeeping.sweep_interval_ms == 1000
    assert s.data_dir == s.storage.data_dir == tmp_path
    moved = s.with_data_dir(tmp_path / "other")
    assert moved.data_dir == tmp_path / "other" and moved.server == s.server
    assert moved.environment()["R13_DATA"] == str(tmp_path / "other")
