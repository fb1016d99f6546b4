"""The app over the real registry (SQLite + blob files), in process: whole npm flows."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.main import create_app
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.services import open_services
from r13core.settings import Settings
from tests.e2e.publish_body import publish_body, tarball

PUBLIC = "https://npm.example.test/registry"
ABBREV = "application/vnd.npm.install-v1+json"


@dataclass
class Real:
    client: falcon.testing.TestClient
    write: dict[str, str]
    read: dict[str, str]

    def publish(
        self, name: str, version: str = "1.0.0", files: dict[str, bytes] | None = None
    ) -> tuple[falcon.testing.Result, bytes]:
        data = tarball(name, version, files)
        doc = publish_body(name, version, data)
        return self.client.simulate_put(f"/{quote(name)}", json=doc, headers=self.write), data


def quote(name: str) -> str:
    return name.replace("/", "%2f")


@pytest.fixture
def real(tmp_path: Path) -> Iterator[Real]:
    settings = Settings.from_env({"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC})
    services = open_services(settings)
    config = services.config
    keys = KeyStore(open_database(tmp_path))
    _, write = keys.create("writer", Permission.WRITE, None)
    _, read = keys.create("reader", Permission.READ, None)
    app = create_app(services)
    yield Real(
        falcon.testing.TestClient(app),
        {"Authorization": f"Bearer {write}"},
        {"Authorization": f"Bearer {read}"},
    )
    config.close()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.mark.parametrize("name", ["plain", "@scope/pkg"])
def test_publish_then_read_everything_back(real: Real, name: str) -> None:
    r, data = real.publish(name)
    assert r.status_code == 201, r.text
    assert r.json["ok"] is True

    full = real.client.simulate_get(f"/{quote(name)}", headers=real.read)
    assert full.status_code == 200
    dist = full.json["versions"]["1.0.0"]["dist"]
    bare = name.rsplit("/", 1)[-1]
    assert dist["tarball"] == f"{PUBLIC}/{name}/-/{bare}-1.0.0.tgz"
    assert dist["integrity"] == sri(data)

    abbrev = real.client.simulate_get(f"/{quote(name)}", headers={**real.read, "Accept": ABBREV})
    assert "time" in abbrev.json and "readme" not in abbrev.json

    tgz = real.client.simulate_get(f"/{name}/-/{bare}-1.0.0.tgz", headers=real.read)
    assert tgz.status_code == 200
    assert tgz.content == data
    assert tgz.headers["Content-Length"] == str(len(data))

    version = real.client.simulate_get(f"/{quote(name)}/latest", headers=real.read)
    assert version.json["version"] == "1.0.0"


def test_forged_host_headers_never_reach_a_packument(real: Real) -> None:
    real.publish("hosted")
    forged = {
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "gopher",
        "Forwarded": "host=evil.example",
    }
    for accept in ("application/json", ABBREV):
        r = real.client.simulate_get(
            "/hosted", headers={**real.read, **forged, "Accept": accept, "Accept-Encoding": "gzip"}
        )
        text = gzip.decompress(r.content).decode()
        assert "evil.example" not in text
        assert f"{PUBLIC}/hosted/-/hosted-1.0.0.tgz" in text


def test_allowed_hosts_get_tarball_links_on_their_own_host(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "R13_DATA": str(tmp_path),
            "R13_PUBLIC_URL": PUBLIC,
            "R13_ALLOWED_HOSTS": "npm.corp:8080, mirror.internal",
        }
    )
    services = open_services(settings)
    config = services.config
    config.set_feature("PRIVATE_REGISTRY", False)
    keys = KeyStore(open_database(tmp_path))
    _, write = keys.create("writer", Permission.WRITE, None)
    client = falcon.testing.TestClient(create_app(services))
    data = tarball("multi", "1.0.0")
    put = client.simulate_put(
        "/multi",
        json=publish_body("multi", "1.0.0", data),
        headers={"Authorization": f"Bearer {write}"},
    )
    assert put.status_code == 201
    try:
        seen = {}
        for host, base in [
            ("npm.corp:8080", "https://npm.corp:8080/registry"),
            ("mirror.internal", "https://mirror.internal/registry"),
            # Listed without a port: no port, the public URL's or REGISTRY_PORT's only.
            ("mirror.internal:4873", "https://mirror.internal:4873/registry"),
            ("mirror.internal:9999", PUBLIC),
            ("evil.example", PUBLIC),
            ("npm.example.test", PUBLIC),
        ]:
            for encoding in ("identity", "gzip"):
                r = client.simulate_get(
                    "/multi", headers={"Host": host, "Accept-Encoding": encoding}
                )
                body = gzip.decompress(r.content) if encoding == "gzip" else r.content
                doc = json.loads(body)
                assert (
                    doc["versions"]["1.0.0"]["dist"]["tarball"] == f"{base}/multi/-/multi-1.0.0.tgz"
                )
                seen[(host, encoding)] = r.headers["ETag"]
            version = client.simulate_get("/multi/1.0.0", headers={"Host": host}).json
            assert version["dist"]["tarball"].startswith(base + "/")
        # Each host's document is its own representation.
        assert seen[("npm.corp:8080", "identity")] != seen[("evil.example", "identity")]
        assert seen[("evil.example", "identity")] == seen[("npm.example.test", "identity")]
    finally:
        config.close()


def test_real_etag_304_and_a_change_makes_a_new_etag(real: Real) -> None:
    real.publish("etagged", "1.0.0")
    first = real.client.simulate_get("/etagged", headers=real.read)
    etag = first.headers["ETag"]
    same = real.client.simulate_get("/etagged", headers={**real.read, "If-None-Match": etag})
    assert same.status_code == 304
    real.publish("etagged", "1.1.0")
    changed = real.client.simulate_get("/etagged", headers={**real.read, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_same_bytes_again_succeed_other_bytes_are_409(real: Real) -> None:
    first, data = real.publish("twice")
    assert first.status_code == 201
    again = real.client.simulate_put(
        "/twice", json=publish_body("twice", "1.0.0", data), headers=real.write
    )
    assert again.status_code in (200, 201)
    other, _ = real.publish("twice", files={"x": b"other"})
    assert other.status_code == 409
    assert set(other.json) == {"error"}


def test_publish_checks_are_400(real: Real) -> None:
    data = tarball("checked", "1.0.0")
    doc: dict[str, Any] = publish_body("checked", "1.0.0", data)
    doc["_attachments"]["checked-1.0.0.tgz"]["length"] = 1
    r = real.client.simulate_put("/checked", json=doc, headers=real.write)
    assert r.status_code == 400
    mismatch = publish_body("other-name", "1.0.0", tarball("other-name", "1.0.0"))
    assert (
        real.client.simulate_put("/checked", json=mismatch, headers=real.write).status_code == 400
    )


def test_unpublish_flow_like_npm(real: Real) -> None:
    real.publish("flow", "1.0.0")
    real.publish("flow", "2.0.0")
    doc = real.client.simulate_get("/flow", params={"write": "true"}, headers=real.write).json
    rev = doc["_rev"]
    del doc["versions"]["2.0.0"]
    r = real.client.simulate_put(f"/flow/-rev/{rev}", json=doc, headers=real.write)
    assert r.status_code == 201, r.text
    stale = real.client.simulate_put(f"/flow/-rev/{rev}", json=doc, headers=real.write)
    assert stale.status_code == 409
    rev = real.client.simulate_get("/flow", params={"write": "true"}, headers=real.write).json[
        "_rev"
    ]
    gone = real.client.simulate_delete(f"/flow/-/flow-2.0.0.tgz/-rev/{rev}", headers=real.write)
    assert gone.status_code == 200
    assert real.client.simulate_get("/flow/-/flow-2.0.0.tgz", headers=real.read).status_code == 404
    rev = real.client.simulate_get("/flow", params={"write": "true"}, headers=real.write).json[
        "_rev"
    ]
    assert real.client.simulate_delete(f"/flow/-rev/{rev}", headers=real.write).status_code == 200
    assert real.client.simulate_get("/flow", headers=real.read).status_code == 404
    # A version once published is never reused.
    again, _ = real.publish("flow", "1.0.0", files={"new": b"bytes"})
    assert again.status_code == 409


def test_dist_tag_rules(real: Real) -> None:
    real.publish("tagged")
    c = real.client
    json_write = {**real.write, "Content-Type": "application/json"}
    ok = c.simulate_put("/-/package/tagged/dist-tags/beta", body='"1.0.0"', headers=json_write)
    assert (ok.status_code, ok.json) == (201, {"ok": True})
    semverish = c.simulate_put("/-/package/tagged/dist-tags/v1", body='"1.0.0"', headers=json_write)
    assert semverish.status_code == 400
    missing = c.simulate_put("/-/package/tagged/dist-tags/x2", body='"9.9.9"', headers=json_write)
    assert missing.status_code == 404
    assert (
        c.simulate_delete("/-/package/tagged/dist-tags/latest", headers=real.write).status_code
        == 400
    )
    tags = c.simulate_get("/-/package/tagged/dist-tags", headers=real.read).json
    assert tags == {"latest": "1.0.0", "beta": "1.0.0"}


def test_search_and_owners(real: Real) -> None:
    real.publish("@find/me")
    hits = real.client.simulate_get("/-/v1/search", params={"text": "me"}, headers=real.read).json
    assert [o["package"]["name"] for o in hits["objects"]] == ["@find/me"]
    owners = real.client.simulate_get("/-/package/@find%2fme/owners", headers=real.read).json
    assert owners[0]["name"] == "key:writer"  # a bare key is named key:<id>


def test_gzip_audit_finds_an_advisory(real: Real, tmp_path: Path) -> None:
    _, admin = KeyStore(open_database(tmp_path)).create("admin", Permission.ADMIN, None)
    adv = {"module_name": "weak", "vulnerable_versions": "<2", "severity": "high", "title": "t"}
    added = real.client.simulate_post(
        "/_api/advisories", json=adv, headers={"Authorization": f"Bearer {admin}"}
    )
    assert added.status_code == 201, added.text
    body = gzip.compress(json.dumps({"weak": ["1.0.0"], "fine": ["1.0.0"]}).encode())
    r = real.client.simulate_post(
        "/-/npm/v1/security/advisories/bulk",
        body=body,
        headers={**real.read, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert list(r.json) == ["weak"]
    assert r.json["weak"][0]["severity"] == "high"


def test_a_revoked_key_is_401_at_once(real: Real, tmp_path: Path) -> None:
    keys = KeyStore(open_database(tmp_path))
    assert real.client.simulate_get("/-/v1/search", headers=real.read).status_code == 200
    keys.revoke("reader")
    r = real.client.simulate_get("/-/v1/search", headers=real.read)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
