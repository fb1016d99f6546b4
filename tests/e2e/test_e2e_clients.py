"""pnpm, yarn classic and bun install what npm published to a real r13."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_e2e_npm import publish

pytestmark = pytest.mark.slow

INSTALL = {
    "pnpm": ("install", "--no-frozen-lockfile"),
    "yarn": ("install", "--non-interactive", "--no-progress"),
    "bun": ("install",),
}
LOCKFILES = {"pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock", "bun": "bun.lock"}


@pytest.mark.parametrize("tool", ["pnpm", "yarn", "bun"])
def test_install(sandbox: Sandbox, tool: str) -> None:
    plain = sandbox.unique(f"e2e-{tool}")
    scoped = sandbox.unique(f"@e2e/{tool}")
    publish(sandbox, plain)
    publish(sandbox, scoped, dependencies={plain: "^1.0.0"})
    app = sandbox.project(
        "consumer",
        {"name": "consumer", "version": "0.0.0", "dependencies": {scoped: "^1.0.0"}},
        always_auth=tool == "yarn",  # yarn 1 sends no key on unscoped GETs without it
    )
    sandbox.run(tool, *INSTALL[tool], cwd=app)
    top = app / "node_modules" / scoped
    # pnpm does not hoist: the dependency sits beside the real directory of its dependent.
    candidates = (app / "node_modules" / plain, top.resolve().parents[1] / plain)
    dep = next(d for d in candidates if (d / "index.js").exists())
    for d, name in ((top, scoped), (dep, plain)):
        assert json.dumps(f"{name}@1.0.0") in (d / "index.js").read_text()
    lock = (app / LOCKFILES[tool]).read_text()
    assert plain in lock and scoped in lock
    assert "sha512-" in lock or tool == "bun"


def add_advisory(sb: Sandbox, name: str) -> None:
    status, _, body = sb.server.request(
        "POST",
        "/_api/advisories",
        {"module_name": name, "vulnerable_versions": "<2.0.0", "severity": "high",
         "title": f"{name} is weak", "patched_versions": ">=2.0.0"},
        key=sb.server.admin_key,
    )  # fmt: skip
    assert status == 201, body


AUDIT = {"pnpm": ("audit", "--json"), "bun": ("audit", "--json")}


@pytest.mark.parametrize("tool", sorted(AUDIT))
def test_audit(sandbox: Sandbox, tool: str) -> None:
    name = sandbox.unique(f"e2e-weak-{tool}")
    publish(sandbox, name)
    add_advisory(sandbox, name)
    app = sandbox.project(
        "audited", {"name": "audited", "version": "0.0.0", "dependencies": {name: "1.0.0"}}
    )
    sandbox.run(tool, *INSTALL[tool], cwd=app)
    out = sandbox.run(tool, *AUDIT[tool], cwd=app, check=False)
    assert out.returncode != 0, out.stdout + out.stderr
    assert f"{name} is weak" in out.stdout, out.stdout + out.stderr


# pnpm 12.0-12.14 list owners with GET /-/package/:pkg/owners and parse [{username, email}];
# later pnpm 12 read the packument's maintainers. Both releases must list the publisher.
@pytest.mark.parametrize("tool", ["pnpm", "pnpm12.4"])
def test_pnpm_owner_ls(sandbox: Sandbox, tool: str) -> None:
    name = sandbox.unique("@e2e/owned")
    publish(sandbox, name)
    cwd = sandbox.project("owners")
    out = sandbox.run(tool, "owner", "ls", name, cwd=cwd)
    # "name <email>"; pnpm 12.15+ leaves out an empty "<>" (a bare key has no e-mail).
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].split()[0] == "key:e2e-write", out.stdout + out.stderr
    missing = sandbox.run(tool, "owner", "ls", sandbox.unique("e2e-nobody"), cwd=cwd, check=False)
    assert missing.returncode != 0
    assert "not found" in (missing.stdout + missing.stderr).lower()
