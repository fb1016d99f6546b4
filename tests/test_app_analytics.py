"""Counting publishes, unpublishes and downloads, and /_api/analytics/*, in process.

The app runs over the real registry (SQLite + blob files) and the real shared
counters; the real-gunicorn version with two workers is tests/e2e/test_e2e_counting.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from r13core.config import ConfigStore, Feature
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.services import open_services
from r13core.settings import Settings
from tests.e2e.publish_body import publish_body, tarball

PUBLIC = "https://npm.example.test"
TODAY = datetime.now(UTC).date().isoformat()


@dataclass
class World:
    client: falcon.testing.TestClient
    config: ConfigStore
    write: dict[str, str]
    read: dict[str, str]
    admin: dict[str, str]

    def publish(self, name: str, version: str = "1.0.0") -> dict[str, Any]:
        doc = publish_body(name, version, tarball(name, version))
        r = self.client.simulate_put(f"/{name.replace('/', '%2f')}", json=doc, headers=self.write)
        assert r.status_code == 201, r.text
        return doc

    def download(self, name: str, version: str = "1.0.0", **kw: Any) -> falcon.testing.Result:
        bare = name.rsplit("/", 1)[-1]
        return self.client.simulate_get(
            f"/{name}/-/{bare}-{version}.tgz", headers={**self.read, **kw.pop("headers", {})}, **kw
        )

    def analytics(self, route: str, **params: str) -> dict[str, Any]:
        r = self.client.simulate_get(f"/_api/analytics/{route}", params=params, headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json  # type: ignore[no-any-return]

    def prometheus(self) -> dict[str, float]:
        r = self.client.simulate_get("/metrics", headers=self.admin)
        out = {}
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                if not sample.labels:
                    out[sample.name] = sample.value
        return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings.from_env({"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC})
    services = open_services(settings)
    config = services.config
    keys = KeyStore(open_database(tmp_path))
    auth = {p: {"Authorization": f"Bearer {keys.create(p.name.lower(), p, None)[1]}"}
            for p in Permission}  # fmt: skip
    app = create_app(services)
    yield World(
        falcon.testing.TestClient(app),
        config,
        write=auth[Permission.WRITE],
        read=auth[Permission.READ],
        admin=auth[Permission.ADMIN],
    )
    config.close()


def daily(world: World, route: str, **params: str) -> int:
    series = world.analytics(route, **params)
    assert [d["day"] for d in series["days"]][-1] == TODAY
    return int(series["total"])


def test_downloads_count_in_the_counters_and_per_package_per_day(world: World) -> None:
    world.publish("hot")
    world.publish("@s/cold")
    for _ in range(7):
        assert world.download("hot").status_code == 200
    assert world.download("@s/cold").status_code == 200
    assert daily(world, "downloads", package="hot") == 7
    assert daily(world, "downloads", package="@s/cold") == 1
    assert daily(world, "downloads") == 8
    top = world.analytics("top", limit="1")
    assert top["packages"] == [{"package": "hot", "count": 7}]
    prom = world.prometheus()
    assert prom["r13_downloads_total"] == 8
    assert prom["r13_publishes_total"] == 2


def test_only_a_tarball_actually_sent_is_a_download(world: World) -> None:
    world.publish("pkg")
    first = world.download("pkg")
    etag = first.headers["ETag"]
    assert world.download("pkg", headers={"If-None-Match": etag}).status_code == 304
    assert world.client.simulate_head("/pkg/-/pkg-1.0.0.tgz", headers=world.read).status_code == 200
    assert world.download("pkg", "9.9.9").status_code == 404
    assert world.client.simulate_get("/pkg", headers=world.read).status_code == 200  # packument
    assert daily(world, "downloads", package="pkg") == 1
    assert world.prometheus()["r13_downloads_total"] == 1


def test_a_publish_counts_once_and_its_identical_retry_not_at_all(world: World) -> None:
    doc = world.publish("once")
    again = world.client.simulate_put("/once", json=doc, headers=world.write)
    assert again.status_code == 201  # npm retries: success, but no new version
    refused = world.client.simulate_put(
        "/once", json=publish_body("once", "1.0.0", tarball("once", "1.0.0", {"x": b"y"})),
        headers=world.write,
    )  # fmt: skip
    assert refused.status_code == 409
    world.publish("once", "1.1.0")
    assert daily(world, "publishes", package="once") == 2
    assert world.prometheus()["r13_publishes_total"] == 2


def test_unpublishes_count_every_version_that_went(world: World) -> None:
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        world.publish("gone", version)
    doc = world.client.simulate_get("/gone", params={"write": "true"}, headers=world.write).json
    del doc["versions"]["2.0.0"]
    r = world.client.simulate_put(f"/gone/-rev/{doc['_rev']}", json=doc, headers=world.write)
    assert r.status_code == 201, r.text
    rev = world.client.simulate_get("/gone", params={"write": "true"}, headers=world.write).json
    r = world.client.simulate_delete(f"/gone/-rev/{rev['_rev']}", headers=world.write)
    assert r.status_code == 200, r.text
    assert daily(world, "unpublishes", package="gone") == 3
    assert daily(world, "publishes", package="gone") == 3  # history stays
    assert world.prometheus()["r13_unpublishes_total"] == 3


def test_package_counts_do_not_depend_on_the_metrics_flag(world: World) -> None:
    world.publish("quiet")
    world.config.set_feature(Feature.METRICS, False)
    world.download("quiet")
    world.config.set_feature(Feature.METRICS, True)
    assert daily(world, "downloads", package="quiet") == 1  # registry data, always kept
    assert world.prometheus()["r13_downloads_total"] == 0  # the monitor was off


def test_analytics_need_an_admin_key(world: World) -> None:
    for route in ("downloads", "publishes", "unpublishes", "top"):
        for who, status in ((world.write, 403), ({}, 401)):
            r = world.client.simulate_get(f"/_api/analytics/{route}", headers=who)
            assert r.status_code == status, (route, r.text)
            assert set(json.loads(r.text)) == {"error"}


@pytest.mark.parametrize(
    ("route", "params", "message"),
    [
        ("downloads", {"from": "2026-02-30"}, "from must be a date"),
        ("downloads", {"to": "soon"}, "to must be a date"),
        ("publishes", {"from": "2026-11-02", "to": "2026-11-01"}, "is after to"),
        ("downloads", {"from": "1990-01-01", "to": "2026-01-01"}, "at most"),
        ("downloads", {"package": "Not A Name"}, ""),
        ("top", {"kind": "stars"}, "kind must be one of"),
        ("top", {"limit": "0"}, "limit must be"),
        ("top", {"limit": "many"}, "limit must be a whole number"),
        ("top", {"limit": "²"}, "limit must be a whole number"),
    ],
)
def test_bad_analytics_queries_are_400_saying_why(
    world: World, route: str, params: dict[str, str], message: str
) -> None:
    r = world.client.simulate_get(f"/_api/analytics/{route}", params=params, headers=world.admin)
    assert r.status_code == 400, r.text
    assert message in r.json["error"]
