"""What registry signatures cost: signing a version, verifying one, rendering with them.

Run: .venv/bin/python -m pytest bench/bench_signatures.py --benchmark-only

- ``sign`` is what a publish adds (r13core/signing_keys.py ``SigningKeys.sign``: a
  stat of the key ring, then one ECDSA P-256 signature); ``sign, raw`` is the
  signature alone.
- ``verify`` is what the uplink pays per proxied version (r13core/signatures.py
  ``verify_version`` with a prepared KeySet: decoding the key is cached).
- ``render`` is a full and an abbreviated packument of a 100-version package made
  once per change (r13core/registry/render.py), with stored signatures and without:
  what signing at publish costs every render. ``render + sign each version`` is the
  alternative of signing while rendering (each render signs all 100 versions),
  which r13 does not do (docs/signatures.md).
- ``migration`` signs the unsigned versions of 20 packages of 10 versions each
  (r13core/registry/signing.py ``sign_unsigned``): one transaction per package.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from r13core.audit import Actor, AuditLog
from r13core.database import open_database
from r13core.names import PackageName
from r13core.registry.render import Renderer
from r13core.registry.signing import sign_unsigned, signed
from r13core.signatures import KeySet, PublicKey, public_key_der, sign, verify_version
from r13core.signing_keys import SigningKeys
from r13core.storage.packages import PackageRecord
from tests.npm_builders import open_registry, publish_body

VERSIONS = 100


def integrity(i: int) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(str(i).encode()).digest()).decode()


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    ring = SigningKeys(tmp_path / "signing", AuditLog(open_database(tmp_path)))
    ring.ensure()
    return ring


def test_sign_one_version(benchmark: Any, keys: SigningKeys) -> None:
    benchmark.group = "sign one version"
    benchmark(keys.sign, "left-pad", "1.3.0", integrity(1))


def test_sign_one_version_raw(benchmark: Any) -> None:
    benchmark.group = "sign one version"
    private = ec.generate_private_key(ec.SECP256R1())
    benchmark(sign, private, "left-pad", "1.3.0", integrity(1))


def test_verify_one_version(benchmark: Any) -> None:
    benchmark.group = "verify one version"
    private = ec.generate_private_key(ec.SECP256R1())
    public = PublicKey.from_der(public_key_der(private))
    keyset = KeySet([public])
    doc = {"name": "left-pad", "version": "1.3.0", "dist": {
        "integrity": integrity(1),
        "signatures": [{"keyid": public.keyid,
                        "sig": sign(private, "left-pad", "1.3.0", integrity(1))}]}}  # fmt: skip
    verify_version(doc, keyset)  # decodes the key once, as a warm uplink has
    benchmark(verify_version, doc, keyset, published="2026-01-01T00:00:00.000Z")


def record(keys: SigningKeys | None) -> PackageRecord:
    versions = {}
    for i in range(VERSIONS):
        v = f"1.0.{i}"
        manifest = {"name": "big", "version": v, "description": "a package with many versions",
                    "dependencies": {"left-pad": "^1.0.0"}, "_id": f"big@{v}",
                    "dist": {"integrity": integrity(i), "shasum": "0" * 40, "fileCount": 3,
                             "unpackedSize": 1000}}  # fmt: skip
        versions[v] = manifest if keys is None else signed(manifest, "big", v, keys)
    doc = {"name": "big", "created": "2026-01-01T00:00:00.000Z",
           "modified": "2026-01-01T00:00:00.000Z", "dist-tags": {"latest": f"1.0.{VERSIONS - 1}"},
           "versions": versions, "time": {v: "2026-01-01T00:00:00.000Z" for v in versions},
           "maintainers": [{"name": "alice", "email": ""}], "readme": "# big\n" * 50}  # fmt: skip
    return PackageRecord("big", 1, doc)


def _render(renderer: Renderer, rec: PackageRecord) -> None:
    renderer.render_full(rec)
    renderer.render_abbreviated(rec)


@pytest.mark.parametrize("signatures", ["without", "with"])
def test_render_packument_100_versions(
    benchmark: Any, tmp_path: Path, keys: SigningKeys, signatures: str
) -> None:
    benchmark.group = "render a 100-version packument (full + abbreviated)"
    renderer = Renderer(open_database(tmp_path / "db"), "http://localhost:4873")
    rec = record(keys if signatures == "with" else None)
    full, abbreviated = renderer.render_full(rec), renderer.render_abbreviated(rec)
    benchmark.extra_info["bytes"] = len(full.body) + len(abbreviated.body)
    benchmark.extra_info["gzip_bytes"] = len(full.gzip) + len(abbreviated.gzip)
    print(f"\n{signatures} signatures: {benchmark.extra_info}")
    benchmark(_render, renderer, rec)


def test_render_packument_100_versions_signing_each(
    benchmark: Any, tmp_path: Path, keys: SigningKeys
) -> None:
    benchmark.group = "render a 100-version packument (full + abbreviated)"
    renderer = Renderer(open_database(tmp_path / "db"), "http://localhost:4873")
    unsigned = record(None)

    def sign_then_render() -> None:
        doc = dict(unsigned.doc)
        doc["versions"] = {v: signed(m, "big", v, keys) for v, m in doc["versions"].items()}
        _render(renderer, PackageRecord("big", 1, doc))

    benchmark(sign_then_render)


def test_migration_signs_200_versions(
    benchmark: Any, tmp_path: Path, keys: SigningKeys, rounds: Any
) -> None:
    benchmark.group = "migration: sign every stored version"
    counter = iter(range(10_000))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        # A fresh data dir of 20 packages x 10 unsigned versions each round.
        data = tmp_path / f"round{next(counter)}"
        reg = open_registry(data)
        for p in range(20):
            name = PackageName.parse(f"pkg{p}")
            for v in range(10):
                reg.put_package(name, publish_body(str(name), f"1.0.{v}"), actor=Actor("a"))
        return (reg.storage, keys), {}

    result = benchmark.pedantic(sign_unsigned, setup=setup, rounds=rounds(3), iterations=1)
    assert result == (20, 200)
