"""Provenance: the .sigstore bundle of `npm publish --provenance`, checked, kept and served back."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest

from app import errors
from app.auth import Guard
from app.resources.signing import Attestations
from r13core import npm_pack
from r13core.audit import Actor
from r13core.config import Feature
from r13core.errors import InvalidPublish, NotFound
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.registry.attestations import (
    ATTESTATIONS_PATH,
    MAX_BUNDLE,
    attestations_url,
    check_bundle,
    purl,
)
from r13core.services import open_services
from r13core.settings import Settings
from r13core.users import Role
from tests.identity_app import PUBLIC, PW, Served, quote, serve
from tests.npm_builders import PUBLIC_URL, open_registry, package_tgz, publish_body

W = PackageName.parse("widget")
S = PackageName.parse("@acme/widget")


def body_with_provenance(name: str, version: str, **bundle_options: Any) -> dict[str, Any]:
    tgz = package_tgz(name, version)
    bundle = npm_pack.provenance_bundle(name, version, tgz, **bundle_options)
    return npm_pack.with_provenance(publish_body(name, version, tgz), bundle)


def sigstore_of(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (name,) = [a for a in body["_attachments"] if a.endswith(".sigstore")]
    return name, body["_attachments"][name]


def check(body: dict[str, Any], name: PackageName = W, version: str = "1.0.0") -> object:
    att_name, attachment = sigstore_of(body)
    tgz = base64.b64decode(body["_attachments"][f"{name}-{version}.tgz"]["data"])
    return check_bundle(att_name, attachment, name=name, version=version,
                        sha512_hex=hashlib.sha512(tgz).hexdigest())  # fmt: skip


def test_the_purl_spells_a_scope_as_npm_does() -> None:
    assert purl("widget", "1.0.0") == "pkg:npm/widget@1.0.0"
    assert purl("@acme/widget", "1.0.0-rc.1") == "pkg:npm/%40acme/widget@1.0.0-rc.1"


def test_the_bundle_npm_sends_passes_the_checks() -> None:
    att = check(body_with_provenance("widget", "1.0.0"))
    assert getattr(att, "predicate_type") == npm_pack.SLSA_PROVENANCE_V1  # noqa: B009


def _bundle(body: dict[str, Any]) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(sigstore_of(body)[1]["data"])
    return bundle


def _set_bundle(body: dict[str, Any], bundle: dict[str, Any]) -> None:
    _, attachment = sigstore_of(body)
    text = json.dumps(bundle)
    attachment.update(data=text, length=len(text))


def _statement_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        bundle = _bundle(body)
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        edit(statement)
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(
            json.dumps(statement).encode()
        ).decode()
        _set_bundle(body, bundle)

    return mutate


def _bundle_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        bundle = _bundle(body)
        edit(bundle)
        _set_bundle(body, bundle)

    return mutate


def _rename(body: dict[str, Any]) -> None:
    name, attachment = sigstore_of(body)
    del body["_attachments"][name]
    body["_attachments"]["widget-1.0.1.sigstore"] = attachment


def _huge(body: dict[str, Any]) -> None:
    bundle = _bundle(body)
    bundle["verificationMaterial"]["padding"] = "x" * MAX_BUNDLE
    _set_bundle(body, bundle)


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("named for another version", _rename, "should be named"),
    ("not a bundle's media type", lambda b: sigstore_of(b)[1].update(content_type="text/plain"),
     "is not a Sigstore bundle"),
    ("data not JSON nor base64", lambda b: sigstore_of(b)[1].update(data="@@@"), "neither"),
    ("data not a string", lambda b: sigstore_of(b)[1].update(data={"a": 1}), "must be a string"),
    ("length mismatch", lambda b: sigstore_of(b)[1].update(length=3), "length"),
    ("broken JSON", lambda b: sigstore_of(b)[1].update(data='{"a"', length=4), "not valid JSON"),
    ("mediaType differs", _bundle_edit(lambda x: x.update(mediaType="other")), "mediaType"),
    ("no verification material", _bundle_edit(lambda x: x.pop("verificationMaterial")),
     "verificationMaterial"),
    ("no envelope", _bundle_edit(lambda x: x.pop("dsseEnvelope")), "dsseEnvelope"),
    ("payload type", _bundle_edit(lambda x: x["dsseEnvelope"].update(payloadType="x")),
     "payloadType"),
    ("no signatures", _bundle_edit(lambda x: x["dsseEnvelope"].update(signatures=[])),
     "signatures"),
    ("payload not base64", _bundle_edit(lambda x: x["dsseEnvelope"].update(payload="@@")),
     "not base64"),
    ("statement not JSON", _bundle_edit(lambda x: x["dsseEnvelope"].update(payload="eA==")),
     "statement"),
    ("subject of another package", _statement_edit(
        lambda s: s["subject"][0].update(name="pkg:npm/other@1.0.0")), "is not 'pkg:npm/widget"),
    ("subject of another version", _statement_edit(
        lambda s: s["subject"][0].update(name="pkg:npm/widget@9.9.9")), "is not"),
    ("digest of other bytes", _statement_edit(
        lambda s: s["subject"][0]["digest"].update(sha512="00" * 64)), "sha512"),
    ("no subject", _statement_edit(lambda s: s.update(subject=[])), "no subject"),
    ("no predicate type", _statement_edit(lambda s: s.pop("predicateType")), "predicateType"),
    ("larger than the limit", _huge, "larger than"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), [(m, x) for _, m, x in BAD],
                         ids=[i for i, _, _ in BAD])  # fmt: skip
def test_a_bundle_that_could_never_verify_is_refused_naming_the_check(
    mutate: Callable[[dict[str, Any]], None], message: str, tmp_path: Path
) -> None:
    body = body_with_provenance("widget", "1.0.0")
    mutate(body)
    with pytest.raises(InvalidPublish, match=message):
        check(body)
    # And the publish as a whole stores nothing.
    reg = open_registry(tmp_path)
    with pytest.raises(InvalidPublish):
        reg.put_package(W, body, actor=Actor("alice"))
    assert reg.storage.package("widget") is None


def test_a_base64_copy_of_the_bundle_is_accepted_too() -> None:
    body = body_with_provenance("widget", "1.0.0")
    _, attachment = sigstore_of(body)
    raw = attachment["data"].encode()
    attachment.update(data=base64.b64encode(raw).decode(), length=len(raw))
    assert check(body)


@pytest.mark.parametrize("name", [W, S], ids=["unscoped", "scoped"])
def test_the_bundle_is_kept_and_announced_in_dist_attestations(
    tmp_path: Path, name: PackageName
) -> None:
    reg = open_registry(tmp_path)
    body = body_with_provenance(str(name), "1.0.0")
    bundle = _bundle(body)
    reg.put_package(name, body, actor=Actor("alice"))
    reg.put_package(name, publish_body(str(name), "1.1.0"), actor=Actor("alice"))  # none
    expected = {
        "url": attestations_url(PUBLIC_URL, str(name), "1.0.0"),
        "provenance": {"predicateType": npm_pack.SLSA_PROVENANCE_V1},
    }
    assert expected["url"] == f"{PUBLIC_URL}/-/npm/v1/attestations/{name.url}@1.0.0"
    for abbreviated in (False, True):
        rendered = reg.packument(name, abbreviated=abbreviated).body
        doc = json.loads(rendered)
        assert doc["versions"]["1.0.0"]["dist"]["attestations"] == expected
        assert "attestations" not in doc["versions"]["1.1.0"]["dist"]
        # The bundle itself is served only by the attestations route.
        assert bundle["dsseEnvelope"]["payload"].encode() not in rendered
        assert "attestations" not in doc
    assert json.loads(reg.version(name, "1.0.0").body)["dist"]["attestations"] == expected
    assert reg.attestations(name, "1.0.0") == {
        "attestations": [{"predicateType": npm_pack.SLSA_PROVENANCE_V1, "bundle": bundle}]
    }
    with pytest.raises(NotFound, match="no attestations"):
        reg.attestations(name, "1.1.0")
    with pytest.raises(NotFound):
        reg.attestations(name, "9.9.9")


def test_unpublishing_a_version_forgets_its_bundle(tmp_path: Path) -> None:
    reg: Registry = open_registry(tmp_path)
    reg.put_package(W, body_with_provenance("widget", "1.0.0"), actor=Actor("alice"))
    reg.put_package(W, publish_body("widget", "1.1.0"), actor=Actor("alice"))
    doc = json.loads(reg.packument_for_write(W).body)
    del doc["versions"]["1.0.0"]
    reg.put_package_rev(W, doc["_rev"], doc, actor=Actor("alice"))
    with pytest.raises(NotFound):
        reg.attestations(W, "1.0.0")
    stored = reg.storage.package("widget")
    assert stored is not None and "1.0.0" not in stored.doc.get("attestations", {})


# -- over HTTP -----------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, dict[str, str]]]:
    s = serve(tmp_path / "data")
    s.users.add("alice", PW, Role.PUBLISHER)
    yield s, s.session("alice")
    s.config.close()


@pytest.mark.parametrize("name", ["widget", "@acme/widget"])
def test_the_attestations_route_answers_as_npm_expects(
    served: tuple[Served, dict[str, str]], name: str
) -> None:
    s, alice = served
    body = body_with_provenance(name, "1.0.0")
    put = s.client.simulate_put(f"/{quote(name)}", json=body, headers=alice)
    assert put.status_code == 201, put.text
    doc = json.loads(s.client.simulate_get(f"/{quote(name)}", headers=alice).text)
    url = doc["versions"]["1.0.0"]["dist"]["attestations"]["url"]
    path = url.removeprefix(PUBLIC)
    spellings = {path, f"/-/npm/v1/attestations/{name}@1.0.0"}
    if name.startswith("@"):
        spellings.add(path.replace("%2f", "%2F"))
    for spelled in spellings:
        got = s.client.simulate_get(spelled, headers=alice)
        assert got.status_code == 200, (spelled, got.text)
        assert got.json == {"attestations": [{"predicateType": npm_pack.SLSA_PROVENANCE_V1,
                                              "bundle": _bundle(body)}]}  # fmt: skip
    for missing in (f"{name}@2.0.0", "nothing@1.0.0", "no-version", "@"):
        got = s.client.simulate_get(f"/-/npm/v1/attestations/{missing}", headers=alice)
        assert got.status_code == 404, (missing, got.text)
        assert "error" in got.json


def test_a_bad_bundle_over_http_is_a_400_naming_the_check(
    served: tuple[Served, dict[str, str]],
) -> None:
    s, alice = served
    body = body_with_provenance("widget", "1.0.0", sha512_hex="00" * 64)
    put = s.client.simulate_put("/widget", json=copy.deepcopy(body), headers=alice)
    assert put.status_code == 400
    assert "sha512 is not the tarball's" in put.json["error"]
    assert s.client.simulate_get("/widget", headers=alice).status_code == 404


def test_attestations_are_read_like_the_package(served: tuple[Served, dict[str, str]]) -> None:
    s, alice = served
    put = s.client.simulate_put("/widget", json=body_with_provenance("widget", "1.0.0"),
                                headers=alice)  # fmt: skip
    assert put.status_code == 201
    path = "/-/npm/v1/attestations/widget@1.0.0"
    s.set_private(True)
    assert s.client.simulate_get(path).status_code == 401
    assert s.client.simulate_get(path, headers=alice).status_code == 200
    s.set_private(False)
    assert s.client.simulate_get(path).status_code == 200


def test_attestations_of_names_that_are_not_local_come_from_the_upstream_hook(
    tmp_path: Path,
) -> None:
    # What the uplink wires: the route asks it only for what the registry does not have.
    services = open_services(Settings.from_env({"R13_DATA": str(tmp_path / "data")}))
    services.config.set_feature(Feature.PRIVATE_REGISTRY, False)
    registry = services.registry
    registry.put_package(W, body_with_provenance("widget", "1.0.0"), actor=Actor("alice"))
    asked: list[tuple[str, str]] = []
    upstream_answer = {"attestations": [{"predicateType": "p", "bundle": {"b": 1}}]}

    def upstream(name: PackageName, version: str) -> dict[str, Any]:
        asked.append((str(name), version))
        if str(name) == "gone":
            raise NotFound("the upstream has none")
        return upstream_answer

    app = falcon.App()
    errors.install(app)
    guard = Guard(services.authenticator, services.config.read, policy=services.policy)
    app.add_sink(Attestations(registry, guard, upstream=upstream), prefix=ATTESTATIONS_PATH)
    client = falcon.testing.TestClient(app)
    local = client.simulate_get("/-/npm/v1/attestations/widget@1.0.0")
    assert local.status_code == 200 and asked == []
    proxied = client.simulate_get("/-/npm/v1/attestations/@sigstore%2fcore@2.0.0")
    assert (proxied.status_code, proxied.json) == (200, upstream_answer)
    assert asked == [("@sigstore/core", "2.0.0")]
    assert client.simulate_get("/-/npm/v1/attestations/gone@1.0.0").status_code == 404
    # A local package never falls through to the upstream, even for a version it lacks.
    assert client.simulate_get("/-/npm/v1/attestations/widget@9.9.9").status_code == 404
    assert asked == [("@sigstore/core", "2.0.0"), ("gone", "1.0.0")]
    services.close()
