"""Every npm route reaches the right registry method with the right arguments and status."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import ADMIN, PUBLIC_URL, READ, WRITE, AppHarness

JSON = {"Content-Type": "application/json"}
ABBREV = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


@pytest.mark.parametrize(
    "path", ["/@scope%2fpkg", "/@scope%2Fpkg", "/@scope/pkg", "/@scope%2fpkg/"]
)
def test_scoped_packument_in_every_url_form(harness: AppHarness, path: str) -> None:
    r = harness.client.simulate_get(path, headers=READ)
    assert r.status_code == 200
    assert harness.registry.calls == [("packument", "@scope/pkg", False)]


def test_unscoped_packument_full_by_default(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/pkg", headers=READ)
    assert r.status_code == 200
    assert r.json["name"] == "pkg"
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Vary"] == "Accept, Accept-Encoding"


def test_abbreviated_packument_by_accept_header(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/pkg", headers={**READ, "Accept": ABBREV})
    assert harness.registry.calls == [("packument", "pkg", True)]
    assert r.headers["Content-Type"] == "application/vnd.npm.install-v1+json"
    assert r.headers["Vary"] == "Accept, Accept-Encoding"


def test_abbreviated_packument_keeps_etag_gzip_and_304(harness: AppHarness) -> None:
    accept = {**READ, "Accept": ABBREV}
    plain = harness.client.simulate_get("/pkg", headers=accept)
    zipped = harness.client.simulate_get("/pkg", headers={**accept, "Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Type"] == "application/vnd.npm.install-v1+json"
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    for etag in (plain.headers["ETag"], zipped.headers["ETag"]):
        again = harness.client.simulate_get("/pkg", headers={**accept, "If-None-Match": etag})
        assert again.status_code == 304
        assert "Content-Type" not in again.headers
    full = harness.client.simulate_get("/pkg", headers=READ)
    assert full.headers["ETag"] != plain.headers["ETag"]  # another representation


def test_write_true_gets_the_fresh_document_with_rev(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/pkg", params={"write": "true"}, headers=READ)
    assert r.json["_rev"] == "1-abc"
    assert harness.registry.calls == [("packument_for_write", "pkg")]


def test_packument_etag_and_304(harness: AppHarness) -> None:
    first = harness.client.simulate_get("/pkg", headers=READ)
    etag = first.headers["ETag"]
    again = harness.client.simulate_get("/pkg", headers={**READ, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = harness.client.simulate_get("/pkg", headers={**READ, "If-None-Match": '"nope"'})
    assert other.status_code == 200


def test_packument_gzip_when_accepted_with_its_own_etag(harness: AppHarness) -> None:
    plain = harness.client.simulate_get("/pkg", headers=READ)
    zipped = harness.client.simulate_get("/pkg", headers={**READ, "Accept-Encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    # Either variant's tag revalidates.
    for tag in (plain.headers["ETag"], zipped.headers["ETag"]):
        r = harness.client.simulate_get(
            "/pkg", headers={**READ, "Accept-Encoding": "gzip", "If-None-Match": tag}
        )
        assert r.status_code == 304


def test_gzip_refused_with_q0(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/pkg", headers={**READ, "Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in r.headers
    assert r.json["name"] == "pkg"


def test_version_or_tag(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/@scope%2fpkg/latest", headers=READ)
    assert r.status_code == 200
    assert harness.registry.calls == [("version", "@scope/pkg", "latest")]


@pytest.mark.parametrize("path", ["/@scope/pkg/-/pkg-1.0.0.tgz", "/@scope%2fpkg/-/pkg-1.0.0.tgz"])
def test_tarball_streams_with_length_and_etag(harness: AppHarness, path: str) -> None:
    r = harness.client.simulate_get(path, headers=READ)
    assert r.status_code == 200
    assert r.content == harness.registry.tarball_bytes
    assert r.headers["Content-Length"] == str(len(harness.registry.tarball_bytes))
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert harness.registry.calls == [("tarball", "@scope/pkg", "pkg-1.0.0.tgz")]
    again = harness.client.simulate_get(path, headers={**READ, "If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304


def test_publish_answers_201(harness: AppHarness) -> None:
    body = {"name": "pkg", "versions": {}, "_attachments": {"pkg-1.0.0.tgz": {}}}
    r = harness.client.simulate_put("/pkg", json=body, headers=WRITE)
    assert r.status_code == 201
    assert r.json == {"ok": True}
    assert harness.registry.calls == [("put_package", "pkg", body, "key:write")]


def test_deprecate_answers_200(harness: AppHarness) -> None:
    body = {"name": "@s/pkg", "versions": {"1.0.0": {"deprecated": "old"}}}
    r = harness.client.simulate_put("/@s%2fpkg", json=body, headers=WRITE)
    assert r.status_code == 200
    assert harness.registry.calls[0][:2] == ("put_package", "@s/pkg")


def test_put_with_rev(harness: AppHarness) -> None:
    r = harness.client.simulate_put("/@s%2fpkg/-rev/3-abc", json={"name": "@s/pkg"}, headers=WRITE)
    assert r.status_code == 201
    assert harness.registry.calls == [
        ("put_package_rev", "@s/pkg", "3-abc", {"name": "@s/pkg"}, "key:write")
    ]


def test_unpublish_package(harness: AppHarness) -> None:
    r = harness.client.simulate_delete("/@s%2fpkg/-rev/3-abc", headers=WRITE)
    assert r.status_code == 200
    assert harness.registry.calls == [("unpublish_package", "@s/pkg", "3-abc", "key:write")]


def test_remove_tarball_by_its_url(harness: AppHarness) -> None:
    r = harness.client.simulate_delete("/@s/pkg/-/pkg-1.0.0.tgz/-rev/4-def", headers=WRITE)
    assert r.status_code == 200
    assert harness.registry.calls == [
        ("remove_tarball", "@s/pkg", "pkg-1.0.0.tgz", "4-def", "key:write")
    ]


@pytest.mark.parametrize("form", ["@s%2fpkg", "@s%2Fpkg", "@s/pkg"])
def test_dist_tags_list_set_remove(harness: AppHarness, form: str) -> None:
    c = harness.client
    assert c.simulate_get(f"/-/package/{form}/dist-tags", headers=READ).json == {"latest": "1.0.0"}
    r = c.simulate_put(
        f"/-/package/{form}/dist-tags/beta", body='"1.0.0"', headers={**WRITE, **JSON}
    )
    assert (r.status_code, r.json) == (201, {"ok": True})
    r = c.simulate_delete(f"/-/package/{form}/dist-tags/beta", headers=WRITE)
    assert (r.status_code, r.json) == (200, {"ok": True})
    assert harness.registry.calls == [
        ("dist_tags", "@s/pkg"),
        ("set_dist_tag", "@s/pkg", "beta", "1.0.0", "key:write"),
        ("remove_dist_tag", "@s/pkg", "beta", "key:write"),
    ]


def test_dist_tag_body_must_be_a_json_string(harness: AppHarness) -> None:
    r = harness.client.simulate_put(
        "/-/package/pkg/dist-tags/beta", body='{"v": 1}', headers={**WRITE, **JSON}
    )
    assert r.status_code == 400
    assert harness.registry.calls == []


def test_owners_answer_both_the_username_and_the_name_shape(harness: AppHarness) -> None:
    # pnpm 12.0-12.14 parse [{username, email}] (both required strings); r13's own shape
    # and the packument's maintainers are [{name, email}].
    r = harness.client.simulate_get("/-/package/@s%2fpkg/owners", headers=READ)
    assert r.json == [{"username": "key:admin", "name": "key:admin", "email": ""}]


def test_collaborators_as_the_npm_registry_answers_them(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/-/package/@s%2fpkg/collaborators", headers=READ)
    assert (r.status_code, r.json) == (200, {"key:admin": "read-write"})
    r = harness.client.simulate_put("/-/package/pkg/collaborators", headers=WRITE)
    assert r.status_code == 405


def test_ping(harness: AppHarness) -> None:
    r = harness.client.simulate_get("/-/ping")
    assert (r.status_code, r.json) == (200, {})


def test_search_parameters(harness: AppHarness) -> None:
    r = harness.client.simulate_get(
        "/-/v1/search", params={"text": "a,b", "size": "5", "from": "10"}, headers=READ
    )
    assert r.status_code == 200
    assert harness.registry.calls == [("search", "a,b", 5, 10)]


def test_search_defaults(harness: AppHarness) -> None:
    harness.client.simulate_get("/-/v1/search", headers=READ)
    assert harness.registry.calls == [("search", "", 20, 0)]


def test_audit_bulk_gzip(harness: AppHarness) -> None:
    body = gzip.compress(json.dumps({"pkg": ["1.0.0"]}).encode())
    r = harness.client.simulate_post(
        "/-/npm/v1/security/advisories/bulk",
        body=body,
        headers={**READ, **JSON, "Content-Encoding": "gzip"},
    )
    assert (r.status_code, r.json) == (200, {})
    assert harness.registry.calls == [("audit_bulk", {"pkg": ["1.0.0"]})]


@pytest.mark.parametrize("path", ["/-/npm/v1/security/audits/quick", "/-/npm/v1/security/audits"])
def test_legacy_audit_routes(harness: AppHarness, path: str) -> None:
    r = harness.client.simulate_post(path, json={"name": "x", "requires": {}}, headers=READ)
    assert r.status_code == 200
    assert set(r.json) == {"advisories", "actions", "muted", "metadata"}


def test_advisories_admin_api(harness: AppHarness) -> None:
    c = harness.client
    assert c.simulate_get("/_api/advisories", headers=ADMIN).json == {"objects": []}
    r = c.simulate_post("/_api/advisories", json={"package": "pkg"}, headers=ADMIN)
    assert (r.status_code, r.json["id"]) == (201, 1)
    assert c.simulate_delete("/_api/advisories/1", headers=ADMIN).status_code == 200
    assert c.simulate_delete("/_api/advisories/404", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_advisories_need_admin(harness: AppHarness, method: str) -> None:
    r = harness.client.simulate_request(method, "/_api/advisories", json={}, headers=WRITE)
    assert r.status_code == 403
    assert harness.registry.calls == []


def test_web_login_answers_a_login_url_and_a_done_url_on_the_public_url(
    harness: AppHarness,
) -> None:
    r = harness.client.simulate_post("/-/v1/login", json={})
    assert r.status_code == 200
    assert r.json["loginUrl"].startswith(PUBLIC_URL + "/-/v1/login/")
    assert r.json["doneUrl"].startswith(PUBLIC_URL + "/-/v1/done/")


def test_rendered_documents_use_the_public_url_whatever_the_host(harness: AppHarness) -> None:
    r = harness.client.simulate_get(
        "/pkg", headers={**READ, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    )
    assert "evil.example" not in r.text
    assert PUBLIC_URL in r.text


def test_whoami_names_the_key(harness: AppHarness) -> None:
    assert harness.client.simulate_get("/-/whoami", headers=WRITE).json == {"username": "key:write"}
    r = harness.client.simulate_get("/-/whoami")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_head_sends_headers_only(harness: AppHarness) -> None:
    r = harness.client.simulate_head("/pkg/-/pkg-1.0.0.tgz", headers=READ)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(harness.registry.tarball_bytes))
    assert r.content == b""
