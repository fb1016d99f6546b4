"""Every version r13 serves carries its registry signature (r13core/registry/signing.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor, AuditLog
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.signatures import verify_version
from r13core.signing_keys import SigningKeys
from tests.npm_builders import open_registry, publish_body

W = PackageName.parse("widget")
S = PackageName.parse("@acme/widget")


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys(tmp_path / "signing", AuditLog(open_registry(tmp_path).storage))


@pytest.fixture
def reg(tmp_path: Path, keys: SigningKeys) -> Registry:
    return open_registry(tmp_path, signer=keys)


def packument(reg: Registry, name: PackageName, *, abbreviated: bool = False) -> Any:
    return json.loads(reg.packument(name, abbreviated=abbreviated).body)


def check_all_signed(reg: Registry, name: PackageName, keys: SigningKeys) -> None:
    """Every version, in every document a client reads, verifies as npm checks it."""
    public = keys.public_keys()
    full = packument(reg, name)
    for abbreviated in (False, True):
        doc = packument(reg, name, abbreviated=abbreviated)
        for version, manifest in doc["versions"].items():
            verify_version(manifest, public, published=full["time"][version],
                           expected_name=str(name), expected_version=version)  # fmt: skip
    for version in full["versions"]:
        one = json.loads(reg.version(name, version).body)
        verify_version(one, public, published=full["time"][version])


@pytest.mark.parametrize("name", [W, S], ids=["unscoped", "scoped"])
def test_a_publish_is_signed_in_every_document_served(
    reg: Registry, keys: SigningKeys, name: PackageName
) -> None:
    reg.put_package(name, publish_body(str(name), "1.0.0"), actor=Actor("alice"))
    reg.put_package(name, publish_body(str(name), "1.1.0"), actor=Actor("alice"))
    check_all_signed(reg, name, keys)
    sigs = packument(reg, name)["versions"]["1.0.0"]["dist"]["signatures"]
    assert [s["keyid"] for s in sigs] == [keys.active_keyid()]


def test_an_identical_retry_keeps_the_first_signature(reg: Registry) -> None:
    body = publish_body("widget", "1.0.0")
    reg.put_package(W, body, actor=Actor("alice"))
    first = packument(reg, W)["versions"]["1.0.0"]["dist"]["signatures"]
    created, _ = reg.put_package(W, body, actor=Actor("alice"))
    assert created
    assert packument(reg, W)["versions"]["1.0.0"]["dist"]["signatures"] == first


def test_a_signature_sent_by_the_client_is_replaced_by_the_registrys(
    reg: Registry, keys: SigningKeys
) -> None:
    body = publish_body("widget", "1.0.0")
    body["versions"]["1.0.0"]["dist"]["signatures"] = [{"keyid": "SHA256:mine", "sig": "AAAA"}]
    reg.put_package(W, body, actor=Actor("alice"))
    (sig,) = packument(reg, W)["versions"]["1.0.0"]["dist"]["signatures"]
    assert sig["keyid"] == keys.active_keyid()


def test_after_a_rotation_old_versions_keep_their_signature_and_new_ones_get_the_new_key(
    reg: Registry, keys: SigningKeys
) -> None:
    reg.put_package(W, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    old = keys.active_keyid()
    new, _ = keys.rotate(Actor.cli())
    reg.put_package(W, publish_body("widget", "2.0.0"), actor=Actor("alice"))
    versions = packument(reg, W)["versions"]
    assert versions["1.0.0"]["dist"]["signatures"][0]["keyid"] == old
    assert versions["2.0.0"]["dist"]["signatures"][0]["keyid"] == new.keyid
    check_all_signed(reg, W, keys)


def test_versions_published_before_signing_are_signed_once_by_the_migration(
    tmp_path: Path, keys: SigningKeys
) -> None:
    unsigned = open_registry(tmp_path)  # r13 before signatures: no signer
    for version in ("1.0.0", "1.1.0"):
        unsigned.put_package(W, publish_body("widget", version), actor=Actor("alice"))
    unsigned.put_package(S, publish_body(str(S), "0.1.0"), actor=Actor("alice"))
    assert "signatures" not in packument(unsigned, W)["versions"]["1.0.0"]["dist"]
    rev_before = unsigned.storage.package_rev("widget")

    reg = open_registry(tmp_path, signer=keys)
    reg.put_package(W, publish_body("widget", "1.2.0"), actor=Actor("alice"))  # signed now
    assert reg.sign_unsigned(actor=Actor.system()) == (2, 3)
    for name in (W, S):
        check_all_signed(reg, name, keys)
    # A new rev: every worker's render cache makes the packument again.
    assert (reg.storage.package_rev("widget") or 0) > (rev_before or 0)
    # Done once: nothing left to sign, nothing recorded.
    assert reg.sign_unsigned(actor=Actor.system()) == (0, 0)
    events = [e for e in reg.audit.page()["events"] if e["action"] == "signing.backfill"]
    assert [(e["actor"], e["detail"]) for e in events] == [("r13", {"packages": 2, "versions": 3})]


def test_an_unpublished_package_is_skipped_by_the_migration(
    tmp_path: Path, keys: SigningKeys
) -> None:
    unsigned = open_registry(tmp_path)
    unsigned.put_package(W, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    rev = json.loads(unsigned.packument_for_write(W).body)["_rev"]
    unsigned.unpublish_package(W, rev, actor=Actor("alice"))
    assert open_registry(tmp_path, signer=keys).sign_unsigned(actor=Actor.system()) == (0, 0)
