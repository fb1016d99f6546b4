"""Signatures through the uplink: upstream versions checked against the upstream's keys
before they are served or cached (r13core/signatures.py), provenance passed through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.npm_builders import publish_body
from tests.uplink_app import ProxyApp, build
from tests.uplink_fakes import FaultyUpstream


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    up.signing_key = ec.generate_private_key(ec.SECP256R1())
    up.add("signed", "1.0.0", "1.1.0")
    yield up
    up.stop()


@pytest.fixture
def app(tmp_path: Path, upstream: FaultyUpstream) -> ProxyApp:
    return build(tmp_path, upstream.url)


def test_versions_with_good_signatures_are_served_with_them(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    doc = app.get("/signed").json
    assert sorted(doc["versions"]) == ["1.0.0", "1.1.0"]
    sig = doc["versions"]["1.0.0"]["dist"]["signatures"][0]
    assert sig["keyid"] == upstream.keyid()
    keys = app.get("/-/npm/v1/keys").json["keys"]
    assert upstream.keyid() in {k["keyid"] for k in keys}  # npm audit signatures finds it


def test_a_version_whose_signature_fails_is_refused_never_served_unsigned(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    upstream.bad_signatures.add(("signed", "1.1.0"))
    for doc in (app.get("/signed").json, app.abbreviated("/signed").json):
        assert sorted(doc["versions"]) == ["1.0.0"]
        assert "latest" not in doc["dist-tags"]  # it named the refused version
    assert app.get("/signed/-/signed-1.1.0.tgz").status_code == 404
    assert app.get("/signed/1.1.0").status_code == 404
    assert app.services.storage.cached_dist("signed", "1.1.0") is None
    assert app.get("/signed/-/signed-1.0.0.tgz").status_code == 200


def test_an_upstream_without_keys_is_served_as_npm_would(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    upstream.signing_key = None  # signs nothing, publishes no keys
    doc = app.get("/signed").json
    assert sorted(doc["versions"]) == ["1.0.0", "1.1.0"]


def test_attestations_of_an_upstream_version_are_passed_through(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    bundle = {"attestations": [{"predicateType": "https://slsa.dev/provenance/v1", "bundle": {}}]}
    upstream.attestations["signed@1.0.0"] = bundle
    assert app.get("/-/npm/v1/attestations/signed@1.0.0").json == bundle
    assert app.get("/-/npm/v1/attestations/signed@1.1.0").status_code == 404


def test_a_local_package_never_takes_attestations_from_upstream(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    assert app.publish("mine", publish_body("mine", "1.0.0")).status_code == 201
    upstream.attestations["mine@1.0.0"] = {"attestations": [{"predicateType": "x"}]}
    assert app.get("/-/npm/v1/attestations/mine@1.0.0").status_code == 404
    assert upstream.count("/-/npm/v1/attestations/mine@1.0.0") == 0
