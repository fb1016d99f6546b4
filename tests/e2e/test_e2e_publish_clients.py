"""npm, pnpm, yarn and bun each publish to a real r13; what r13 serves is what the tarball holds.

Every client normalises a package.json differently before it sends the
publish body (npm turns a string ``bin`` into an object and strips ``./``;
pnpm keeps ``./``; yarn keeps ``man`` as written; bun sends extra fields).
r13 serves the install-relevant fields from the tarball itself
(r13core/registry/manifest.py), so the same package.json gives the same served
version whichever client published it — and npm then installs it, links its
bin and runs its install script.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Sandbox

pytestmark = pytest.mark.slow

CLIENTS = ["npm", "pnpm", "yarn", "bun"]
PUBLISH = {
    "npm": ("publish", "--access", "public"),
    "pnpm": ("publish", "--no-git-checks", "--access", "public"),
    "yarn": ("publish", "--non-interactive", "--new-version", "1.0.0", "--no-git-tag-version"),
    "bun": ("publish",),
}
POSTINSTALL = (
    "require('fs').writeFileSync(require('path').join(process.env.INIT_CWD, "
    "'postinstall-ran-' + require('./package.json').name.replace('/', '+')), 'yes')\n"
)


def project(sb: Sandbox, name: str, package: dict[str, Any], files: dict[str, str]) -> Path:
    d = sb.project(f"src-{name.replace('/', '+')}", {"name": name, "version": "1.0.0", **package})
    for path, text in files.items():
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_text(text)
    return d


def version_doc(sb: Sandbox, name: str, *, abbreviated: bool = False) -> dict[str, Any]:
    path = "/" + name.replace("/", "%2f")
    headers = {"Accept": "application/vnd.npm.install-v1+json"} if abbreviated else {}
    status, _, body = sb.server.request("GET", path, key=sb.token, headers=headers)
    assert status == 200, body
    return json.loads(body)["versions"]["1.0.0"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("tool", CLIENTS)
def test_the_served_version_is_the_tarballs_whichever_client_published(
    sandbox: Sandbox, tool: str
) -> None:
    name = sandbox.unique(f"e2e-pub-{tool}")
    d = project(
        sandbox,
        name,
        {
            "main": "./index.js",
            "bin": "./cli.js",
            "man": "./man/tool.1",
            "scripts": {"postinstall": "node postinstall.js", "test": "node_modules/.bin/x"},
            "os": ["linux"],
            "cpu": ["x64", "arm64"],
            "engines": {"node": ">=18"},
        },
        {
            "index.js": "module.exports = 1;\n",
            "cli.js": "#!/usr/bin/env node\nconsole.log('hello from the bin');\n",
            "man/tool.1": ".TH TOOL 1\n",
            "postinstall.js": POSTINSTALL,
        },
    )
    (d / "cli.js").chmod(0o755)
    sandbox.run(tool, *PUBLISH[tool], cwd=d)

    for abbreviated in (False, True):
        doc = version_doc(sandbox, name, abbreviated=abbreviated)
        assert doc["bin"] == {name: "cli.js"}, (tool, doc)
        assert doc["hasInstallScript"] is True
        assert doc["os"] == ["linux"] and doc["cpu"] == ["x64", "arm64"]
        assert doc["engines"] == {"node": ">=18"}
        assert doc["_hasShrinkwrap"] is False
    full = version_doc(sandbox, name)
    assert full["man"] == ["man/tool.1"]
    assert full["main"] == "./index.js"
    assert full["scripts"] == {"postinstall": "node postinstall.js", "test": "x"}

    app = sandbox.project("consumer", {"name": "consumer", "version": "0.0.0"})
    sandbox.run("npm", "install", name, cwd=app)
    assert (app / f"postinstall-ran-{name}").read_text() == "yes"
    out = sandbox.run("npm", "exec", "--", name, cwd=app)
    assert "hello from the bin" in out.stdout


@pytest.mark.parametrize("tool", CLIENTS)
def test_directories_bin_is_expanded_from_the_tarball_whichever_client_published(
    sandbox: Sandbox, tool: str
) -> None:
    name = sandbox.unique(f"@e2e/dirbin-{tool}")
    d = project(
        sandbox,
        name,
        {"directories": {"bin": "./bin"}},
        {
            "index.js": "module.exports = 1;\n",
            "bin/tool-a": "#!/usr/bin/env node\nconsole.log('a');\n",
            "bin/tool-b": "#!/usr/bin/env node\nconsole.log('b');\n",
        },
    )
    sandbox.run(tool, *PUBLISH[tool], cwd=d)
    for abbreviated in (False, True):
        doc = version_doc(sandbox, name, abbreviated=abbreviated)
        assert doc["bin"] == {"tool-a": "bin/tool-a", "tool-b": "bin/tool-b"}, (tool, doc)
        assert "hasInstallScript" not in doc


def test_an_install_script_of_a_bundled_dependency_is_announced(sandbox: Sandbox) -> None:
    name = sandbox.unique("e2e-bundler")
    d = project(
        sandbox,
        name,
        {"dependencies": {"inner-dep": "1.0.0"}, "bundleDependencies": ["inner-dep"]},
        {
            "index.js": "module.exports = require('inner-dep');\n",
            "node_modules/inner-dep/package.json": json.dumps(
                {"name": "inner-dep", "version": "1.0.0", "scripts": {"install": "node x.js"}}
            ),
            "node_modules/inner-dep/x.js": "\n",
            "node_modules/inner-dep/index.js": "module.exports = 2;\n",
        },
    )
    sandbox.run("npm", *PUBLISH["npm"], cwd=d)
    doc = version_doc(sandbox, name, abbreviated=True)
    assert doc["bundleDependencies"] == ["inner-dep"]
    assert doc["hasInstallScript"] is True  # the package itself has none: its bundle does
