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
