"""The pure verifier (r13core/signatures.py): npm's key ids, signatures and every failure.

The real-data tests use the npm registry's own public keys as the npm CLI on this
machine ships them (the Sigstore TUF target ``registry.npmjs.org/keys.json`` in
npm's ``@sigstore/tuf`` seeds) and real registry signatures: r13 must compute
npm's key ids from the key bytes, and verify what the npm registry signed.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from r13core.errors import InvalidValue, SignatureError
from r13core.signatures import (
    KeySet,
    PublicKey,
    integrity_of,
    keyid_of,
    parse_keys,
    public_key_der,
    sign,
    verify_upstream_version,
    verify_version,
)
from tests.e2e.clients import npm

OLD_NPM_KEY = "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
NEW_NPM_KEY = "SHA256:DhQ8wR5APBvFHLF/+Tc+AYvPOdTpcIDqOhxsBHRwC7U"
# The npm registry's signature of typescript@5.4.5 (its dist.signatures, published
# 2024-04-10T14:25:19.427Z, before the old key's expiry).
TYPESCRIPT_545_SIG = (
    "MEUCIQC/EuYEcwumIh3BWR4qQd2ePcVqj994eiB0Nr62t4tU7wIga9Vr8kSDkXAsFoDBGj074mtGYD8EAyykePA9"
    "Hppu2z4="
)
TYPESCRIPT_545_PUBLISHED = "2024-04-10T14:25:19.427Z"
# A version the npm registry signed with its current key (its packument's version document).
STELLAR = {
    "name": "@x402/stellar",
    "version": "2.12.0",
    "dist": {
        "integrity": "sha512-Z6ncsWsbHkS1g3ncMrE5L/hFQaGcozqepQL1WTb8fYpOvH8yEhGaU3w3e"
        "uEzLWiHGM14h8LpW8b6Lxq1OizaJg==",
        "shasum": "c826f9d76278745149443f25d4dd44c3ef28c0b4",
        "signatures": [
            {
                "keyid": NEW_NPM_KEY,
                "sig": "MEQCIEIHUSPQz2bTfzirFEiEWPtBZsgy13v72S/99EAUO8abAiBhOKC+EFxCrbLJkOQ"
                "GspAYzIDqGnj8yerBLKzFgBHNtA==",
            }
        ],
    },
}
STELLAR_PUBLISHED = "2026-05-13T15:47:24.552Z"


def npm_registry_keys() -> list[PublicKey]:
    """The npm registry's signing keys as the machine's npm CLI ships them (TUF seed)."""
    root = subprocess.run(
        [str(npm()), "root", "-g"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    seeds = json.loads((Path(root) / "npm/node_modules/@sigstore/tuf/seeds.json").read_text())
    targets = seeds["https://tuf-repo-cdn.sigstore.dev"]["targets"]
    doc = json.loads(base64.b64decode(targets["registry.npmjs.org%2Fkeys.json"]))
    keys = []
    for entry in doc["keys"]:
        if entry["keyUsage"] == "npm:signatures":
            public = entry["publicKey"]
            keys.append(
                PublicKey(entry["keyId"], public["rawBytes"], public["validFor"].get("end"))
            )
    return keys


@pytest.fixture(scope="module")
def npm_keys() -> list[PublicKey]:
    return npm_registry_keys()


def version_doc(name: str, version: str, integrity: str, sigs: list[dict[str, str]]) -> Any:
    return {"name": name, "version": version, "dist": {"integrity": integrity, "signatures": sigs}}


# -- npm's real keys and signatures --------------------------------------------------------


def test_key_ids_of_the_npm_registry_keys_are_computed_from_the_key_bytes(
    npm_keys: list[PublicKey],
) -> None:
    assert {k.keyid for k in npm_keys} == {OLD_NPM_KEY, NEW_NPM_KEY}
    for key in npm_keys:
        assert keyid_of(key.der) == key.keyid  # the key's OpenSSH fingerprint, not sha256(DER)
        # And the entry round-trips through the /-/npm/v1/keys shape r13 serves.
        assert PublicKey.from_json(key.as_json()) == key
    old = next(k for k in npm_keys if k.keyid == OLD_NPM_KEY)
    assert old.expires == "2025-01-29T00:00:00.000Z"


def test_a_real_npm_signature_verifies_over_the_integrity_the_registry_serves(
    npm_keys: list[PublicKey],
) -> None:
    # One small request: the version document of typescript@5.4.5 from the npm registry.
    with urllib.request.urlopen("https://registry.npmjs.org/typescript/5.4.5", timeout=60) as r:
        served = json.loads(r.read())
    integrity = served["dist"]["integrity"]
    doc = version_doc("typescript", "5.4.5", integrity, [
        {"keyid": OLD_NPM_KEY, "sig": TYPESCRIPT_545_SIG},
    ])  # fmt: skip
    assert verify_version(doc, npm_keys, published=TYPESCRIPT_545_PUBLISHED) == (OLD_NPM_KEY,)

    tampered = json.loads(json.dumps(doc))
    first = "A" if integrity[10] != "A" else "B"
    tampered["dist"]["integrity"] = integrity[:10] + first + integrity[11:]
    with pytest.raises(SignatureError) as bad:
        verify_version(tampered, npm_keys, published=TYPESCRIPT_545_PUBLISHED)
    assert bad.value.reason == "invalid"
    # The same signature claimed for another version or package fails too.
    for field, value in (("version", "5.4.4"), ("name", "typescript-evil")):
        other = {**doc, field: value}
        with pytest.raises(SignatureError, match="invalid registry signature"):
            verify_version(other, npm_keys)


def test_a_signature_of_the_current_npm_key_verifies_and_the_old_key_refuses_it_after_expiry(
    npm_keys: list[PublicKey],
) -> None:
    assert verify_version(STELLAR, npm_keys, published=STELLAR_PUBLISHED) == (NEW_NPM_KEY,)
    # typescript@5.4.5 signed with the old key, but claiming a publish after its expiry.
    doc = version_doc("typescript", "5.4.5", "sha512-x", [
        {"keyid": OLD_NPM_KEY, "sig": TYPESCRIPT_545_SIG},
    ])  # fmt: skip
    with pytest.raises(SignatureError) as expired:
        verify_version(doc, npm_keys, published="2025-02-01T00:00:00.000Z")
    assert expired.value.reason == "expired-key"


def test_a_signature_by_a_key_the_set_lacks_is_unknown(npm_keys: list[PublicKey]) -> None:
    only_old = [k for k in npm_keys if k.keyid == OLD_NPM_KEY]
    with pytest.raises(SignatureError) as unknown:
        verify_version(STELLAR, only_old)
    assert unknown.value.reason == "unknown-key"


# -- r13's own signatures ------------------------------------------------------------------


def fresh_key() -> tuple[ec.EllipticCurvePrivateKey, PublicKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, PublicKey.from_der(public_key_der(private))


@given(
    name=st.from_regex(r"(@[a-z0-9-]{1,12}/)?[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True),
    version=st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z0-9.]{1,10})?", fullmatch=True),
    digest=st.binary(min_size=64, max_size=64),
)
def test_what_r13_signs_verifies_and_nothing_else_does(
    name: str, version: str, digest: bytes
) -> None:
    private, public = KEY
    integrity = "sha512-" + base64.b64encode(digest).decode()
    doc = version_doc(name, version, integrity, [
        {"keyid": public.keyid, "sig": sign(private, name, version, integrity)},
    ])  # fmt: skip
    assert verify_version(doc, [public], expected_name=name, expected_version=version) == (
        public.keyid,
    )
    flipped = bytes([digest[0] ^ 1]) + digest[1:]
    doc["dist"]["integrity"] = "sha512-" + base64.b64encode(flipped).decode()
    with pytest.raises(SignatureError):
        verify_version(doc, [public])


KEY = fresh_key()


def signed_doc(**dist: Any) -> dict[str, Any]:
    private, public = KEY
    integrity = "sha512-" + base64.b64encode(b"\x01" * 64).decode()
    sig = {"keyid": public.keyid, "sig": sign(private, "pkg", "1.0.0", integrity)}
    return {"name": "pkg", "version": "1.0.0", "dist": {"integrity": integrity,
                                                         "signatures": [sig], **dist}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["dist"].pop("signatures"), "missing"),
        (lambda d: d["dist"].update(signatures=[]), "missing"),
        (lambda d: d["dist"].update(signatures="x"), "malformed"),
        (lambda d: d["dist"].update(signatures=[{"keyid": 1, "sig": "x"}]), "malformed"),
        (lambda d: d["dist"].update(signatures=[{"keyid": "k", "sig": "a" * 600}]), "malformed"),
        (lambda d: d["dist"]["signatures"][0].update(sig="not base64!"), "invalid"),
        (lambda d: d["dist"]["signatures"][0].update(sig="eA=="), "invalid"),
        (lambda d: d["dist"]["signatures"][0].update(keyid="SHA256:other"), "unknown-key"),
        (lambda d: d.pop("dist"), "malformed"),
        (lambda d: d.update(version=3), "malformed"),
        (lambda d: d["dist"].pop("integrity"), "malformed"),
    ],
    ids=[
        "no signatures", "empty list", "not a list", "keyid not a string", "huge sig",
        "sig not base64", "sig not DER", "unknown key", "no dist", "version not a string",
        "no integrity",
    ],
)  # fmt: skip
def test_each_broken_signature_is_refused_with_its_reason(change: Any, reason: str) -> None:
    doc = signed_doc()
    assert verify_version(doc, [KEY[1]])
    change(doc)
    with pytest.raises(SignatureError) as refused:
        verify_version(doc, [KEY[1]])
    assert refused.value.reason == reason


def test_every_signature_of_a_version_must_verify() -> None:
    doc = signed_doc()
    _, other = fresh_key()
    good = doc["dist"]["signatures"][0]
    doc["dist"]["signatures"] = [good, {"keyid": other.keyid, "sig": good["sig"]}]
    with pytest.raises(SignatureError, match="invalid"):
        verify_version(doc, [KEY[1], other])


def test_a_document_of_another_package_or_version_is_refused_even_when_validly_signed() -> None:
    doc = signed_doc()
    with pytest.raises(SignatureError, match="not a version of"):
        verify_version(doc, [KEY[1]], expected_name="other")
    with pytest.raises(SignatureError, match="not version"):
        verify_version(doc, [KEY[1]], expected_version="2.0.0")


def test_the_sha1_shasum_stands_in_for_a_missing_integrity_as_npm_does() -> None:
    shasum = "42ccef2c571fdbd0f6718b1d1f5e6e5ef006f611"
    assert (
        integrity_of({"shasum": shasum})
        == "sha1-" + base64.b64encode(bytes.fromhex(shasum)).decode()
    )
    private, public = KEY
    sri = integrity_of({"shasum": shasum})
    doc = {"name": "old", "version": "0.1.0", "dist": {
        "shasum": shasum, "signatures": [{"keyid": public.keyid,
                                          "sig": sign(private, "old", "0.1.0", sri)}]}}  # fmt: skip
    assert verify_version(doc, [public])


def test_a_key_expiring_at_the_publish_time_no_longer_covers_it() -> None:
    public = KEY[1]
    expiring = PublicKey(public.keyid, public.key, "2026-01-01T00:00:00.000Z")
    doc = signed_doc()
    assert verify_version(doc, [expiring], published="2025-12-31T23:59:59.999Z")
    for when in ("2026-01-01T00:00:00.000Z", "2026-06-01T00:00:00Z"):
        with pytest.raises(SignatureError, match="expired"):
            verify_version(doc, [expiring], published=when)
    with pytest.raises(SignatureError, match="publish time"):
        verify_version(doc, [expiring], published="yesterday")


def test_the_uplink_rule_checks_only_when_the_upstream_publishes_keys() -> None:
    doc = signed_doc()
    del doc["dist"]["signatures"]
    assert (
        verify_upstream_version(
            doc, [], published=None, expected_name="pkg", expected_version="1.0.0"
        )
        == ()
    )
    with pytest.raises(SignatureError, match="no registry signature"):
        verify_upstream_version(
            doc, KeySet([KEY[1]]), published=None, expected_name="pkg", expected_version="1.0.0"
        )


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"keys": {}},
        {"keys": [1]},
        {"keys": [{"keyid": "SHA256:x"}]},
        {"keys": [{"keyid": "SHA256:x", "key": "not base64", "keytype": "ecdsa-sha2-nistp256",
                   "scheme": "ecdsa-sha2-nistp256"}]},
        {"keys": [{**KEY[1].as_json(), "keyid": "SHA256:another"}]},
        {"keys": [{**KEY[1].as_json(), "expires": "someday"}]},
        {"keys": [{**KEY[1].as_json(), "expires": 5}]},
    ],
    ids=["list", "keys not a list", "entry not an object", "no key", "key not base64",
         "keyid of another key", "expires not a time", "expires not a string"],
)  # fmt: skip
def test_a_bad_keys_document_is_refused(document: object) -> None:
    with pytest.raises(InvalidValue):
        parse_keys(document)


def test_keys_of_another_type_are_kept_but_never_verify() -> None:
    other = {"keyid": "SHA256:ed", "key": "AAAA", "keytype": "ed25519", "scheme": "ed25519",
             "expires": None}  # fmt: skip
    keys = parse_keys({"keys": [KEY[1].as_json(), other]})
    assert [k.keyid for k in keys] == [KEY[1].keyid, "SHA256:ed"]
    doc = signed_doc()
    doc["dist"]["signatures"][0]["keyid"] = "SHA256:ed"
    with pytest.raises(SignatureError, match="unknown key"):
        verify_version(doc, keys)
