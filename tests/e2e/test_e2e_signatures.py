"""`npm audit signatures` (the real npm, 11 and 10) against a real r13.

npm fetches r13's keys from ``/-/npm/v1/keys``, the full packument of every
installed package, and checks each version's ``dist.signatures`` as it checks the
npm registry's. Its first step, asking Sigstore's TUF repository whether it holds
keys for the registry, cannot reach the network here; tests/e2e/tuf_offline.cjs
gives npm the answer that repository gives for any registry but npmjs.org ("no
target"), so npm goes on to r13's keys endpoint, as it does in the field.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import AuditLog
from r13core.database import open_database
from r13core.services import SIGNING_DIR
from r13core.signing_keys import SigningKeys
from tests.e2e.conftest import Sandbox, Server, start_server
from tests.e2e.test_e2e_npm import publish

pytestmark = pytest.mark.slow

SHIM = Path(__file__).with_name("tuf_offline.cjs")


def audit_signatures(sb: Sandbox, cwd: Path, cache: str) -> subprocess.CompletedProcess[str]:
    """``npm audit signatures --json`` in ``cwd`` with a fresh cache named ``cache``."""
    env = {**sb.env(), "NODE_OPTIONS": f"--require {SHIM}"}
    return subprocess.run(
        [str(sb.clients[sb.npm]), "audit", "signatures", "--json",
         "--cache", str(sb.root / cache)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def consumer(sb: Sandbox, *names: str) -> Path:
    app = sb.project(sb.unique("consumer"), {"name": "consumer", "version": "0.0.0"})
    sb.run(sb.npm, "install", *names, cwd=app)
    return app


def test_npm_audit_signatures_passes_for_packages_published_to_r13(
    sandbox: Sandbox, npm: str
) -> None:
    names = [sandbox.unique("e2e-signed"), sandbox.unique("@e2e/signed")]
    for name in names:
        publish(sandbox, name)
    app = consumer(sandbox, *names)
    out = audit_signatures(sandbox, app, "audit-cache")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report == {"invalid": [], "missing": []}, report
    plain = subprocess.run(
        [str(sandbox.clients[npm]), "audit", "signatures", "--cache",
         str(sandbox.root / "audit-cache-2")],
        cwd=app, env={**sandbox.env(), "NODE_OPTIONS": f"--require {SHIM}"},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "2 packages have verified registry signatures" in plain.stdout


def _edit_version(data: Path, name: str, version: str, edit: Any) -> None:
    """Change a stored version document of a stopped server (and drop its renders).

    A version is its own row (r13core/storage/package_rows.py)."""
    db = sqlite3.connect(data / "registry.sqlite3", timeout=30)
    try:
        (manifest,) = db.execute(
            "SELECT manifest FROM package_versions WHERE name = ? AND version = ?",
            (name, version),
        ).fetchone()
        parsed = json.loads(manifest)
        edit(parsed["dist"])
        db.execute(
            "UPDATE package_versions SET manifest = ? WHERE name = ? AND version = ?",
            (json.dumps(parsed), name, version),
        )
        db.execute("DELETE FROM renders WHERE name = ?", (name,))
        db.commit()
    finally:
        db.close()


def _signature_of_other_bytes(data: Path, name: str) -> dict[str, str]:
    """A genuine signature by r13's own key, of another integrity than the version's."""
    keys = SigningKeys(data / SIGNING_DIR, AuditLog(open_database(data)))
    return keys.sign(name, "1.0.0", "sha512-" + "A" * 86 + "==").as_json()


def test_a_tampered_signature_fails_and_a_version_from_before_signing_is_signed_at_start(
    tmp_path: Path, clients: dict[str, Path], stop_later: list[Server]
) -> None:
    srv = start_server(tmp_path)
    stop_later.append(srv)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".npmrc").write_text("")
    sb = Sandbox(tmp_path, srv, srv.key("write"), clients)
    name = sb.unique("e2e-tampered")
    publish(sb, name)
    app = consumer(sb, name)
    assert audit_signatures(sb, app, "c1").returncode == 0

    srv.stop()
    forged = _signature_of_other_bytes(srv.data, name)
    _edit_version(srv.data, name, "1.0.0", lambda dist: dist.update(signatures=[forged]))
    srv.start()
    bad = audit_signatures(sb, app, "c2")
    assert bad.returncode != 0, bad.stdout
    report = json.loads(bad.stdout)
    assert [(i["name"], i["code"]) for i in report["invalid"]] == [(name, "EINTEGRITYSIGNATURE")]

    # As r13 stored versions before it signed anything: no signature at all. The
    # next start signs it (r13 serve's migration), and npm is satisfied again.
    srv.stop()
    _edit_version(srv.data, name, "1.0.0", lambda dist: dist.pop("signatures"))
    srv.start()
    assert "signed 1 older version(s) of 1 package(s)" in srv.log.read_text()
    again = audit_signatures(sb, app, "c3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout) == {"invalid": [], "missing": []}
