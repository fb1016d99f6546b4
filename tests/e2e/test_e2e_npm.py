"""The real npm, 11 and 10, against a real r13 (gunicorn, 2 gthread workers).

Every scenario takes the ``npm`` fixture (tests/e2e/conftest.py), so it runs
once with the machine's npm 11 and once with the pinned npm 10.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.publish_body import publish_body, tarball

pytestmark = pytest.mark.slow


def publish(sb: Sandbox, name: str, version: str = "1.0.0", **extra: object) -> Path:
    d = sb.project(f"src-{name.replace('/', '+')}-{version}", {
        "name": name, "version": version, "description": f"{name} for e2e",
        "main": "index.js", "keywords": ["r13-e2e"], **extra,
    })  # fmt: skip
    (d / "index.js").write_text(f"module.exports = {json.dumps(name + '@' + version)};\n")
    sb.run(sb.npm, "publish", "--access", "public", cwd=d)
    return d


def view(sb: Sandbox, spec: str, *fields: str) -> object:
    out = sb.run(sb.npm, "view", spec, *fields, "--json", cwd=sb.project("viewer"))
    return json.loads(out.stdout) if out.stdout.strip() else None


def test_npm_ping(sandbox: Sandbox, npm: str) -> None:
    out = sandbox.run(npm, "ping", cwd=sandbox.project("p"))
    assert "PONG" in out.stdout + out.stderr


@pytest.mark.parametrize("scoped", [False, True], ids=["unscoped", "scoped"])
def test_publish_then_install_with_integrity(sandbox: Sandbox, npm: str, scoped: bool) -> None:
    name = sandbox.unique("@e2e/pkg" if scoped else "e2e-pkg")
    publish(sandbox, name)
    assert view(sandbox, name, "version") == "1.0.0"
    dist = view(sandbox, name, "dist")
    assert isinstance(dist, dict)
    assert dist["tarball"].startswith(sandbox.server.url + "/")
    assert dist["integrity"].startswith("sha512-")

    app = sandbox.project("consumer", {"name": "consumer", "version": "0.0.0"})
    sandbox.run(npm, "install", name, cwd=app)
    installed = app / "node_modules" / name / "index.js"
    assert installed.read_text() == f"module.exports = {json.dumps(name + '@1.0.0')};\n"
    lock = json.loads((app / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{name}"]["integrity"] == dist["integrity"]
    # npm ci from a cold cache downloads and checks the integrity again.
    sandbox.run(npm, "ci", "--cache", str(sandbox.root / "cache2"), cwd=app)


def test_republishing_a_version_with_other_bytes_is_refused(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("e2e-twice")
    d = publish(sandbox, name)
    (d / "index.js").write_text("module.exports = 'changed';\n")
    out = sandbox.run(npm, "publish", cwd=d, check=False)
    assert out.returncode != 0
    if npm == "npm10":  # npm 10 sends it: the server refuses and npm shows why
        assert "409 Conflict" in out.stderr and "already exists with other contents" in out.stderr
    else:  # npm 11 refuses on its own after reading the packument
        assert "cannot publish over" in out.stderr
    # Whatever the client checks, the server refuses.
    other = publish_body(name, "1.0.0", tarball(name, "1.0.0", {"x.js": b"other"}))
    status, _, body = sandbox.server.request("PUT", f"/{name}", other, key=sandbox.token)
    assert status == 409, body
    assert set(json.loads(body)) == {"error"}


def test_publish_is_idempotent_for_the_same_bytes(sandbox: Sandbox) -> None:
    name = sandbox.unique("@e2e/again")
    doc = publish_body(name, "1.0.0", tarball(name, "1.0.0"))
    path = "/" + name.replace("/", "%2f")
    first = sandbox.server.request("PUT", path, doc, key=sandbox.token)
    again = sandbox.server.request("PUT", path, doc, key=sandbox.token)
    assert first[0] == 201, first
    assert again[0] in (200, 201), again


def test_dist_tags(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("@e2e/tags")
    publish(sandbox, name, "1.0.0")
    publish(sandbox, name, "1.1.0")
    cwd = sandbox.project("tagger")
    sandbox.run(npm, "dist-tag", "add", f"{name}@1.0.0", "stable", cwd=cwd)
    out = sandbox.run(npm, "dist-tag", "ls", name, cwd=cwd)
    assert "stable: 1.0.0" in out.stdout
    assert "latest: 1.1.0" in out.stdout
    sandbox.run(npm, "dist-tag", "rm", name, "stable", cwd=cwd)
    assert "stable" not in sandbox.run(npm, "dist-tag", "ls", name, cwd=cwd).stdout


def test_deprecate_and_undeprecate(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("e2e-old")
    publish(sandbox, name)
    cwd = sandbox.project("deprecator")
    sandbox.run(npm, "deprecate", f"{name}@1.0.0", "use something else", cwd=cwd)
    assert view(sandbox, f"{name}@1.0.0", "deprecated") == "use something else"
    sandbox.run(npm, "deprecate", f"{name}@1.0.0", "", cwd=cwd)
    assert not view(sandbox, f"{name}@1.0.0", "deprecated")


def test_unpublish_a_version_then_the_package(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("@e2e/gone")
    publish(sandbox, name, "1.0.0")
    publish(sandbox, name, "2.0.0")
    cwd = sandbox.project("unpublisher")
    sandbox.run(npm, "unpublish", f"{name}@2.0.0", cwd=cwd)
    versions = view(sandbox, name, "versions")
    assert versions == ["1.0.0"] or versions == "1.0.0"
    sandbox.run(npm, "unpublish", name, "--force", cwd=cwd)
    out = sandbox.run(npm, "view", name, cwd=cwd, check=False)
    assert out.returncode != 0
    assert "404" in out.stderr


def test_owner_ls(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("@e2e/owned")
    publish(sandbox, name)
    out = sandbox.run(npm, "owner", "ls", name, cwd=sandbox.project("owners"))
    # The publishing key is the maintainer (r13 keeps no e-mail for a bare key).
    assert out.stdout.split() == ["key:e2e-write", "<>"], out.stdout


def test_unpublished_tarballs_leave_no_file(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("e2e-nofile")
    publish(sandbox, name, "1.0.0")
    publish(sandbox, name, "1.1.0")
    blobs = sandbox.server.data / "blobs" / "objects"
    before = {p for p in blobs.rglob("*") if p.is_file()}
    cwd = sandbox.project("unpublisher")
    sandbox.run(npm, "unpublish", f"{name}@1.1.0", cwd=cwd)
    sandbox.run(npm, "unpublish", name, "--force", cwd=cwd)
    after = {p for p in blobs.rglob("*") if p.is_file()}
    assert len(before - after) == 2  # both files went at once (other tests' files stay)
    assert not after - before


def test_search(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("e2e-findme")
    publish(sandbox, name)
    out = sandbox.run(npm, "search", name, "--json", cwd=sandbox.project("searcher"))
    assert name in [hit["name"] for hit in json.loads(out.stdout)]


def test_audit_reports_an_advisory(sandbox: Sandbox, npm: str) -> None:
    name = sandbox.unique("e2e-vulnerable")
    publish(sandbox, name)
    status, _, body = sandbox.server.request(
        "POST",
        "/_api/advisories",
        {
            "package": name,
            "vulnerable_versions": "<2.0.0",
            "patched_versions": ">=2.0.0",
            "severity": "high",
            "title": "e2e advisory",
            "url": "https://example.test/advisory",
        },
        key=sandbox.server.admin_key,
    )
    assert status == 201, body
    app = sandbox.project("audited", {"name": "audited", "version": "0.0.0"})
    sandbox.run(npm, "install", name, cwd=app)
    out = sandbox.run(npm, "audit", "--json", cwd=app, check=False)
    report = json.loads(out.stdout)
    assert name in report["vulnerabilities"], out.stdout
    assert out.returncode != 0
